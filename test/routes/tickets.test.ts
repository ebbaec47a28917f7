import { env } from "cloudflare:workers";
import { eq } from "drizzle-orm";
import { createLocalJWKSet, decodeProtectedHeader, importJWK, type JWK, jwtVerify, SignJWT } from "jose";
import { describe, it } from "vitest";
import {
  TICKET_QR_AUDIENCE,
  TICKET_QR_TTL_SECONDS,
  TICKET_QR_TYP,
  verifyQrToken,
} from "../../src/auth/qr-token";
import { ticketEntitlements } from "../../src/db/schema";
import { generateTicketCode } from "../../src/domain/ticket-code";
import { loadConfig } from "../../src/env";
import { db, seedProduct } from "../support/fixtures";
import { call, callJson } from "../support/http";
import { buyerToken, uniqueUser } from "../support/tokens";
import { deliver, paymentFor, pendingOrder } from "../support/webhooks";

interface TicketBody {
  code: string;
  order_id: string;
  product_id: string;
  product_name: string;
  status: string;
  issued_at: string;
  entitlements: { function: string; total_uses: number; remaining_uses: number }[];
}

const config = () => loadConfig(env);

/** A buyer with `quantity` tickets of a fresh product, paid through the webhook. */
async function buyerWithTickets(quantity = 2) {
  const product = await seedProduct({
    name: "Harbour Pass",
    functions: [
      { function: "bus", uses: 10 },
      { function: "ferry", uses: 2 },
      { function: "museum", uses: 1 },
    ],
  });
  const order = await pendingOrder(uniqueUser(), [{ product_id: product.id, quantity }]);
  const paid = await deliver(paymentFor(order));
  if (paid.status !== 200) throw new Error(`payment failed: ${paid.status}`);
  const listed = await callJson<{ tickets: TicketBody[] }>("GET", "/my/tickets", { token: order.token });
  return { product, order, token: order.token, tickets: listed.body.tickets };
}

async function jwks() {
  const response = await callJson<{ keys: JWK[] }>("GET", "/.well-known/jwks.json");
  return response.body;
}

async function qrToken(token: string, code: string) {
  return callJson<{ token: string; expires_in: number }>(
    "POST",
    `/tickets/${encodeURIComponent(code)}/qr-token`,
    {
      token,
    },
  );
}

describe("GET /my/tickets", () => {
  it("lists one ticket per unit with the product's functions as entitlements", async ({ expect }) => {
    const { product, order, tickets } = await buyerWithTickets(2);
    expect(tickets).toHaveLength(2);
    for (const ticket of tickets) {
      expect(ticket).toMatchObject({
        order_id: order.order_id,
        product_id: product.id,
        product_name: "Harbour Pass",
        status: "ACTIVE",
      });
      expect(Date.parse(ticket.issued_at)).not.toBeNaN();
      expect(ticket.entitlements).toEqual([
        { function: "bus", total_uses: 10, remaining_uses: 10 },
        { function: "ferry", total_uses: 2, remaining_uses: 2 },
        { function: "museum", total_uses: 1, remaining_uses: 1 },
      ]);
    }
    expect(new Set(tickets.map((ticket) => ticket.code)).size).toBe(2);
  });

  it("shows only the caller's tickets; a ticket with no uses left is USED_UP", async ({ expect }) => {
    const first = await buyerWithTickets(1);
    const second = await buyerWithTickets(1);
    const code = first.tickets[0]?.code ?? "";
    await db()
      .update(ticketEntitlements)
      .set({ remainingUses: 0 })
      .where(eq(ticketEntitlements.ticketCode, code));
    const mine = await callJson<{ tickets: TicketBody[] }>("GET", "/my/tickets", { token: first.token });
    expect(mine.body.tickets.map((ticket) => ticket.code)).toEqual([code]);
    expect(mine.body.tickets[0]?.status).toBe("USED_UP");
    const theirs = await callJson<{ tickets: TicketBody[] }>("GET", "/my/tickets", { token: second.token });
    expect(theirs.body.tickets.map((ticket) => ticket.code)).not.toContain(code);
  });

  it("a buyer with no tickets gets an empty list; no token is 401", async ({ expect }) => {
    const empty = await callJson("GET", "/my/tickets", { token: await buyerToken(uniqueUser()) });
    expect(empty).toMatchObject({ status: 200, body: { tickets: [] } });
    const anonymous = await callJson("GET", "/my/tickets");
    expect(anonymous.status).toBe(401);
    expect(anonymous.body).toMatchObject({ code: "unauthenticated" });
  });
});

describe("POST /tickets/{code}/qr-token", () => {
  it("signs a short-lived EdDSA token that verifies against the published JWKS", async ({ expect }) => {
    const { token, tickets } = await buyerWithTickets(1);
    const code = tickets[0]?.code ?? "";
    const issued = await qrToken(token, code);
    expect(issued.status).toBe(200);
    expect(issued.headers.get("cache-control")).toBe("no-store");
    expect(issued.body.expires_in).toBe(TICKET_QR_TTL_SECONDS);
    expect(issued.body.expires_in).toBeLessThanOrEqual(60);

    // A verifier that knows nothing of ours: jose over the JSON the endpoint publishes.
    const keySet = createLocalJWKSet(await jwks());
    const { payload, protectedHeader } = await jwtVerify(issued.body.token, keySet, {
      algorithms: ["EdDSA"],
      issuer: env.SERVICE_ISSUER,
      audience: "gate",
      typ: "ticket-qr+jwt",
    });
    expect(protectedHeader).toMatchObject({ alg: "EdDSA", typ: "ticket-qr+jwt", kid: "test-qr-current" });
    expect(payload.sub).toBe(code);
    expect(typeof payload.jti).toBe("string");
    expect((payload.exp ?? 0) - (payload.iat ?? 0)).toBe(issued.body.expires_in);

    const verified = await verifyQrToken(config(), issued.body.token, {
      typ: TICKET_QR_TYP,
      audience: TICKET_QR_AUDIENCE,
    });
    expect(verified).toMatchObject({ ok: true, token: { subject: code } });
  });

  it("two consecutive tokens differ in jti", async ({ expect }) => {
    const { token, tickets } = await buyerWithTickets(1);
    const code = tickets[0]?.code ?? "";
    const [a, b] = [await qrToken(token, code), await qrToken(token, code)];
    expect(a.body.token).not.toBe(b.body.token);
    const jti = async (jwt: string) => {
      const verified = await verifyQrToken(config(), jwt, {
        typ: TICKET_QR_TYP,
        audience: TICKET_QR_AUDIENCE,
      });
      return verified.ok ? verified.token.jti : verified.code;
    };
    expect(await jti(a.body.token)).not.toBe(await jti(b.body.token));
  });

  it("accepts the code as a person types it (lower case, groups)", async ({ expect }) => {
    const { token, tickets } = await buyerWithTickets(1);
    const code = tickets[0]?.code ?? "";
    const typed = `${code.slice(0, 7)}-${code.slice(7)}`.toLowerCase();
    const issued = await qrToken(token, typed);
    expect(issued.status).toBe(200);
    const { payload } = await jwtVerify(issued.body.token, createLocalJWKSet(await jwks()), {
      algorithms: ["EdDSA"],
    });
    expect(payload.sub).toBe(code);
  });

  it("someone else's ticket and an unknown ticket are both 404; a mistyped code is 422", async ({
    expect,
  }) => {
    const owner = await buyerWithTickets(1);
    const code = owner.tickets[0]?.code ?? "";
    const stranger = await buyerToken(uniqueUser());
    const foreign = await qrToken(stranger, code);
    const unknown = await qrToken(stranger, generateTicketCode());
    expect(foreign.status).toBe(404);
    expect(unknown.status).toBe(404);
    expect(foreign.body).toEqual(unknown.body);
    expect(foreign.body).toMatchObject({ code: "not_found" });

    const swapped = code.slice(0, 3) + code.charAt(4) + code.charAt(3) + code.slice(5);
    for (const bad of [swapped === code ? `${code}X` : swapped, "not-a-code", "x".repeat(200), "%2F..%2F"]) {
      const response = await qrToken(owner.token, bad);
      expect(response.status, bad).toBe(422);
      expect(response.body).toMatchObject({ code: "invalid_code" });
    }
    expect((await call("POST", `/tickets/${code}/qr-token`)).status).toBe(401);
  });
});

describe("JWKS and key rotation", () => {
  it("publishes the current and previous public keys, never a private part", async ({ expect }) => {
    const response = await call("GET", "/.well-known/jwks.json");
    expect(response.status).toBe(200);
    expect(response.headers.get("cache-control")).toContain("max-age");
    const { keys } = (await response.json()) as { keys: JWK[] };
    expect(keys.map((key) => key.kid)).toEqual(["test-qr-current", "test-qr-previous"]);
    for (const key of keys) {
      expect(key).toMatchObject({ kty: "OKP", crv: "Ed25519", alg: "EdDSA", use: "sig" });
      expect(key).not.toHaveProperty("d");
    }
  });

  it("a token signed with the previous key still verifies, via the JWKS and via verifyQrToken", async ({
    expect,
  }) => {
    const previous = JSON.parse(env.QR_SIGNING_JWK_PREVIOUS ?? "{}") as JWK;
    const now = Math.floor(Date.now() / 1000);
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: "EdDSA", typ: TICKET_QR_TYP, kid: previous.kid })
      .setIssuer(env.SERVICE_ISSUER ?? "")
      .setAudience(TICKET_QR_AUDIENCE)
      .setSubject(generateTicketCode())
      .setJti(crypto.randomUUID())
      .setIssuedAt(now)
      .setExpirationTime(now + TICKET_QR_TTL_SECONDS)
      .sign(await importJWK(previous, "EdDSA"));
    expect(decodeProtectedHeader(token).kid).toBe("test-qr-previous");
    await jwtVerify(token, createLocalJWKSet(await jwks()), { algorithms: ["EdDSA"], audience: "gate" });
    const verified = await verifyQrToken(config(), token, {
      typ: TICKET_QR_TYP,
      audience: TICKET_QR_AUDIENCE,
    });
    expect(verified.ok && verified.token.jti).toBeTruthy();
  });

  it("verifyQrToken pins typ, audience, key and expiry", async ({ expect }) => {
    const current = JSON.parse(env.QR_SIGNING_JWK ?? "{}") as JWK;
    const currentKey = await importJWK(current, "EdDSA");
    const now = Math.floor(Date.now() / 1000);
    const sign = (changes: { typ?: string; aud?: string; kid?: string; exp?: number; iss?: string }) =>
      new SignJWT({})
        .setProtectedHeader({
          alg: "EdDSA",
          typ: changes.typ ?? TICKET_QR_TYP,
          kid: changes.kid ?? current.kid,
        })
        .setIssuer(changes.iss ?? env.SERVICE_ISSUER ?? "")
        .setAudience(changes.aud ?? TICKET_QR_AUDIENCE)
        .setSubject(generateTicketCode())
        .setJti(crypto.randomUUID())
        .setIssuedAt(now - 20)
        .setExpirationTime(changes.exp ?? now + 30)
        .sign(currentKey);
    const expected = { typ: TICKET_QR_TYP, audience: TICKET_QR_AUDIENCE };
    const codeOf = async (token: Promise<string>) =>
      verifyQrToken(config(), await token, expected).then((verified) => (verified.ok ? "ok" : verified.code));
    expect(await codeOf(sign({}))).toBe("ok");
    expect(await codeOf(sign({ typ: "wallet-qr+jwt" }))).toBe("token_invalid");
    expect(await codeOf(sign({ aud: "pos" }))).toBe("token_invalid");
    expect(await codeOf(sign({ iss: "https://elsewhere.example/" }))).toBe("token_invalid");
    expect(await codeOf(sign({ kid: "unknown-kid" }))).toBe("token_invalid");
    expect(await codeOf(sign({ exp: now - 60 }))).toBe("token_expired");
    expect(await codeOf(Promise.resolve("not.a.token"))).toBe("token_invalid");
  });
});
