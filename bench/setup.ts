// Builds the data each scenario needs, through the public API where that is what a client would do,
// and straight into D1 where the API is deliberately bounded (a ticket with a million uses, a year of
// redemption rows).
import { importJWK, SignJWT } from "jose";
import { Webhook } from "standardwebhooks";
import { fetchPoster, openDeviceSession } from "../scripts/device-session";
import { DEMO_PASSWORD } from "../scripts/seed.mjs";
import { BENCH_VARS, type BenchSecrets } from "./start";

export interface Api {
  url: string;
  secrets: BenchSecrets;
  db: D1Database;
}

async function request<T>(
  api: Api,
  method: string,
  path: string,
  init: { token?: string; body?: unknown; headers?: Record<string, string> } = {},
) {
  const response = await fetch(`${api.url}${path}`, {
    method,
    headers: {
      "content-type": "application/json",
      ...(init.token ? { authorization: `Bearer ${init.token}` } : {}),
      ...init.headers,
    },
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path} → ${response.status}: ${text.slice(0, 300)}`);
  return JSON.parse(text) as T;
}

export function buyerToken(api: Api, userId: string): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(userId)
    .setIssuer(BENCH_VARS.BUYER_JWT_ISSUER)
    .setAudience(BENCH_VARS.BUYER_JWT_AUDIENCE)
    .setIssuedAt(now)
    .setExpirationTime(now + 3_600)
    .sign(new TextEncoder().encode(api.secrets.BUYER_JWT_SECRET));
}

export async function login(api: Api, username: string): Promise<string> {
  const body = await request<{ operator_token: string }>(api, "POST", "/operators/login", {
    body: { username, password: DEMO_PASSWORD },
  });
  return body.operator_token;
}

/** QR tokens as the API signs them, made in bulk on the client side so the scenario measures scans only. */
export async function qrSigner(api: Api) {
  const jwk = JSON.parse(api.secrets.QR_SIGNING_JWK);
  const key = await importJWK(jwk, "EdDSA");
  return (typ: "ticket-qr+jwt" | "wallet-qr+jwt", subject: string, ttlSeconds: number) => {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ nonce: crypto.randomUUID() })
      .setProtectedHeader({ alg: "EdDSA", typ, kid: jwk.kid })
      .setIssuer(BENCH_VARS.SERVICE_ISSUER)
      .setAudience(typ === "ticket-qr+jwt" ? "gate" : "pos")
      .setSubject(subject)
      .setJti(crypto.randomUUID())
      .setIssuedAt(now)
      .setExpirationTime(now + ttlSeconds)
      .sign(key);
  };
}

export function signedDelivery(api: Api, body: unknown) {
  const payload = JSON.stringify(body);
  const id = `msg_${crypto.randomUUID()}`;
  const signature = new Webhook(api.secrets.PAYMENT_WEBHOOK_SECRET).sign(id, new Date(), payload);
  return {
    body: payload,
    headers: {
      "webhook-id": id,
      "webhook-timestamp": String(Math.floor(Date.now() / 1000)),
      "webhook-signature": signature,
    },
  };
}

export async function insertProduct(
  api: Api,
  id: string,
  functions: { function: string; uses: number }[],
  sellable: number,
) {
  const now = new Date().toISOString();
  await api.db
    .prepare(
      `INSERT INTO products (id, name, description, price_cents, currency, functions, sellable, reserved, sold, active, created_at, updated_at)
       VALUES (?, ?, '', 1000, 'EUR', ?, ?, 0, 0, 1, ?, ?)`,
    )
    .bind(id, `Bench ${id}`, JSON.stringify(functions), sellable, now, now)
    .run();
}

export interface PendingOrder {
  order_id: string;
  amount_due_cents: number;
  currency: string;
}

export function createOrder(
  api: Api,
  token: string,
  productId: string,
  quantity: number,
  key = crypto.randomUUID(),
) {
  return request<PendingOrder>(api, "POST", "/orders", {
    token,
    headers: { "idempotency-key": key },
    body: { items: [{ product_id: productId, quantity }] },
  });
}

export async function payOrder(api: Api, order: PendingOrder) {
  const delivery = signedDelivery(api, {
    payment_id: `pay_${crypto.randomUUID()}`,
    reference: order.order_id,
    status: "SUCCESS",
    amount_cents: order.amount_due_cents,
    currency: order.currency,
  });
  await request(api, "POST", "/payments/webhook", {
    body: JSON.parse(delivery.body),
    headers: delivery.headers,
  });
}

/** Buys `count` tickets of `productId` for one buyer (in orders of up to 20) and returns their codes. */
export async function buyTickets(
  api: Api,
  userId: string,
  productId: string,
  count: number,
): Promise<string[]> {
  const token = await buyerToken(api, userId);
  for (let left = count; left > 0; left -= 20) {
    await payOrder(api, await createOrder(api, token, productId, Math.min(20, left)));
  }
  const mine = await request<{ tickets: { code: string }[] }>(api, "GET", "/my/tickets", { token });
  return mine.tickets.map((ticket) => ticket.code);
}

/** A session on a seeded device for a seeded operator, the device enrolled with an admin's code. */
export async function deviceSessionFor(api: Api, username: string, deviceId: string) {
  const token = await login(api, username);
  const sessionId = await openDeviceSession(fetchPoster(api.url), {
    adminToken: await login(api, "admin-demo"),
    operatorToken: token,
    deviceId,
  });
  return { token, sessionId };
}

export function gateSessionFor(api: Api) {
  return deviceSessionFor(api, "gate-demo", "dev-gate-1");
}

/**
 * `rows` redemption rows spread over the year before `day`, plus `onDay` rows on `day` itself, generated
 * inside SQLite (a recursive CTE) so a million rows take seconds, not a million statements.
 */
export async function insertRedemptions(
  api: Api,
  day: string,
  onDay: number,
  otherRows: number,
  prefix: string,
) {
  const CHUNK = 200_000;
  const insert = async (count: number, offset: number, tsExpr: string) => {
    if (count === 0) return;
    await api.db
      .prepare(
        `INSERT INTO redemptions (id, ticket_code, function, operator_id, session_id, device_id, location_id, ts)
         WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < ? - 1)
         SELECT ? || (i + ?), 'T' || (i % 5000), CASE i % 3 WHEN 0 THEN 'bus' WHEN 1 THEN 'ferry' ELSE 'museum' END,
                'opr_bench', 'ses_bench', 'dev-gate-1', 'loc-' || (i % 7), ${tsExpr}
         FROM s`,
      )
      .bind(count, prefix, offset)
      .run();
  };
  await insert(
    onDay,
    0,
    `'${day}T' || printf('%02d:%02d:%02d.000Z', (i / 3600) % 24, (i / 60) % 60, i % 60)`,
  );
  for (let done = 0; done < otherRows; done += CHUNK) {
    const count = Math.min(CHUNK, otherRows - done);
    // Spread over the 365 days before `day`, never on it.
    await insert(
      count,
      onDay + done,
      `strftime('%Y-%m-%dT%H:%M:%S.000Z', '${day}', '-' || (1 + (i % 365)) || ' days', '+' || (i % 86400) || ' seconds')`,
    );
  }
}
