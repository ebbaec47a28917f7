// `npm run soak [-- --seconds 60] [-- --url http://localhost:8787]`: mixed traffic against a running
// instance (`npm run dev`), then every invariant checked against what this client observed.
// Uses the development secrets in .dev.vars to sign buyer tokens and gateway webhooks, like a real IdP and
// gateway would; talks to nothing but the given URL.
import { Webhook } from "standardwebhooks";
import { devVar, signDevBuyerToken } from "./dev-config";
import { openDeviceSession, type PostJson } from "./device-session";

const arg = (name: string, fallback: string) => {
  const index = process.argv.indexOf(`--${name}`);
  return index >= 0 ? (process.argv[index + 1] ?? fallback) : fallback;
};
const BASE = arg("url", "http://localhost:8787").replace(/\/$/, "");
const SECONDS = Number(arg("seconds", "60"));
const WORKERS = 6;
const DEMO_PASSWORD = "demo-password-123";
const REPORT_VISIBILITY_MS = 10_000;

// What the client saw, and every 5xx.
const serverErrors: string[] = [];
const violations: string[] = [];
const counts: Record<string, number> = {};
const bump = (key: string) => {
  counts[key] = (counts[key] ?? 0) + 1;
};

async function api<T = Record<string, unknown>>(
  method: string,
  path: string,
  init: { token?: string; body?: unknown; raw?: string; headers?: Record<string, string>; key?: string } = {},
): Promise<{ status: number; body: T; headers: Headers }> {
  const response = await fetch(`${BASE}${path}`, {
    method,
    headers: {
      "content-type": "application/json",
      ...(init.token ? { authorization: `Bearer ${init.token}` } : {}),
      ...(init.key ? { "idempotency-key": init.key } : {}),
      ...init.headers,
    },
    body: init.raw ?? (init.body === undefined ? undefined : JSON.stringify(init.body)),
  });
  const text = await response.text();
  if (response.status >= 500)
    serverErrors.push(`${method} ${path} → ${response.status} ${text.slice(0, 200)}`);
  let body: unknown = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = text;
  }
  return { status: response.status, body: body as T, headers: response.headers };
}

/** Buyer tokens for the soak's clients; an hour outlives any soak run. */
const BUYER_TOKEN_TTL_SECONDS = 3_600;
const buyerToken = (userId: string) => signDevBuyerToken(userId, BUYER_TOKEN_TTL_SECONDS);

function webhook(body: unknown, id = `msg_${crypto.randomUUID()}`) {
  const raw = JSON.stringify(body);
  const signature = new Webhook(devVar("PAYMENT_WEBHOOK_SECRET")).sign(id, new Date(), raw);
  return {
    raw,
    headers: {
      "webhook-id": id,
      "webhook-timestamp": String(Math.floor(Date.now() / 1000)),
      "webhook-signature": signature,
    },
  };
}

const login = async (username: string) =>
  (
    await api<{ operator_token: string }>("POST", "/operators/login", {
      body: { username, password: DEMO_PASSWORD },
    })
  ).body.operator_token;

// ── setup: a product, a gate device and location of our own, so the checks see only this run ──
const runId = crypto.randomUUID().slice(0, 8);
const admin = await login("admin-demo");
const gateToken = await login("gate-demo");
const analyst = await login("analyst-demo");
const location = `loc-soak-${runId}`;
const SELLABLE = 400;
const product = await api<{ id: string }>("POST", "/admin/products", {
  token: admin,
  body: {
    name: `Soak pass ${runId}`,
    price_cents: 700,
    sellable: SELLABLE,
    functions: [
      { function: "bus", uses: 4 },
      { function: "ferry", uses: 1 },
    ],
  },
});
if (product.status !== 201)
  throw new Error(`cannot create the soak product: ${product.status} ${JSON.stringify(product.body)}`);
const productId = product.body.id;
const device = await api("POST", "/admin/devices", {
  token: admin,
  body: { device_id: `soak-gate-${runId}`, kind: "gate", location_id: location },
});
if (device.status !== 201) throw new Error(`cannot register the soak gate: ${device.status}`);
const post: PostJson = async (path, body, token) => api("POST", path, { body, token });
const sessionId = await openDeviceSession(post, {
  adminToken: admin,
  operatorToken: gateToken,
  deviceId: `soak-gate-${runId}`,
});
const walletEnabled =
  (await api("GET", "/wallet", { token: await buyerToken(`probe-${runId}`) })).status === 200;
let posSession: string | undefined;
let posToken: string | undefined;
if (walletEnabled) {
  posToken = await login("pos-demo");
  posSession = await openDeviceSession(post, {
    adminToken: admin,
    operatorToken: posToken,
    deviceId: "dev-pos-1",
  });
}

// ── the client's ledger of what it saw ──
const orderQuantities = new Map<string, { quantity: number; token: string }>();
const acceptedScans = new Map<string, Map<string, number>>(); // ticket → function → accepted
const ticketOwners = new Map<string, string>(); // ticket → buyer token
const walletExpected = new Map<string, { token: string; cents: number }>();
let acceptedTotal = 0;

const pick = <T>(list: readonly T[]) => list[Math.floor(Math.random() * list.length)] as T;

async function buyAndPay(token: string) {
  const quantity = 1 + Math.floor(Math.random() * 3);
  const key = crypto.randomUUID();
  const body = { items: [{ product_id: productId, quantity }] };
  const created = await api<{ order_id: string; amount_due_cents: number; currency: string; code?: string }>(
    "POST",
    "/orders",
    { token, key, body },
  );
  if (created.status === 409 && created.body.code === "sold_out") return bump("orders.sold_out");
  if (created.status !== 201) return bump(`orders.${created.status}`);
  // A client retry with the same key must replay the same order.
  if (Math.random() < 0.3) {
    const replay = await api<{ order_id: string }>("POST", "/orders", { token, key, body });
    if (replay.body.order_id !== created.body.order_id)
      violations.push(`order replay returned another order for key ${key}`);
  }
  orderQuantities.set(created.body.order_id, { quantity, token });
  bump("orders.created");
  const roll = Math.random();
  if (roll < 0.1) return; // left unpaid: stays reserved until it expires
  const status = roll < 0.2 ? "FAILED" : "SUCCESS";
  const payment = {
    payment_id: `pay_${crypto.randomUUID()}`,
    reference: created.body.order_id,
    status,
    amount_cents: created.body.amount_due_cents,
    currency: created.body.currency,
  };
  // The gateway delivers the same message several times, some in parallel, some under a new webhook-id.
  const first = webhook(payment);
  const again = webhook(payment);
  await Promise.all([
    api("POST", "/payments/webhook", { raw: first.raw, headers: first.headers }),
    api("POST", "/payments/webhook", { raw: first.raw, headers: first.headers }),
    api("POST", "/payments/webhook", { raw: again.raw, headers: again.headers }),
  ]);
  bump(`payments.${status}`);
}

async function scanSome(token: string) {
  const mine = await api<{
    tickets: { code: string; entitlements: { function: string; remaining_uses: number }[] }[];
  }>("GET", "/my/tickets", { token });
  const ticket = mine.body.tickets?.length ? pick(mine.body.tickets) : undefined;
  if (!ticket) return;
  ticketOwners.set(ticket.code, token);
  const qr = await api<{ token: string }>("POST", `/tickets/${ticket.code}/qr-token`, { token });
  const fn = pick(["bus", "bus", "ferry"]);
  const scanOnce = () =>
    api<{ result?: string; code?: string }>("POST", "/tickets/scan", {
      token: gateToken,
      body: { qr_token: qr.body.token, function: fn, session_id: sessionId },
    });
  // Sometimes the same QR is presented at two readers at once: at most one may be accepted.
  const attempts =
    Math.random() < 0.3 ? await Promise.all([scanOnce(), scanOnce(), scanOnce()]) : [await scanOnce()];
  const accepted = attempts.filter((a) => a.status === 200).length;
  if (accepted > 1) violations.push(`one QR token accepted ${accepted} times (${ticket.code})`);
  for (const attempt of attempts) bump(`scan.${attempt.status === 200 ? "accepted" : attempt.body.code}`);
  if (accepted === 1) {
    const perFunction = acceptedScans.get(ticket.code) ?? new Map<string, number>();
    perFunction.set(fn, (perFunction.get(fn) ?? 0) + 1);
    acceptedScans.set(ticket.code, perFunction);
    acceptedTotal++;
  }
}

async function walletTraffic(userId: string, token: string) {
  if (!walletEnabled || !posToken || !posSession) return;
  const expected = walletExpected.get(userId) ?? { token, cents: 0 };
  walletExpected.set(userId, expected);
  if (expected.cents < 1_000 || Math.random() < 0.2) {
    const amount = 500 + Math.floor(Math.random() * 2_000);
    const topup = await api<{ topup_id: string }>("POST", "/wallet/topups", {
      token,
      key: crypto.randomUUID(),
      body: { amount_cents: amount },
    });
    if (topup.status !== 201) return bump(`topups.${topup.status}`);
    const delivery = webhook({
      payment_id: `pay_${crypto.randomUUID()}`,
      reference: topup.body.topup_id,
      status: "SUCCESS",
      amount_cents: amount,
      currency: "EUR",
    });
    const results = await Promise.all([
      api("POST", "/payments/webhook", { raw: delivery.raw, headers: delivery.headers }),
      api("POST", "/payments/webhook", { raw: delivery.raw, headers: delivery.headers }),
    ]);
    if (results.some((r) => r.status === 200)) expected.cents += amount;
    bump("topups.paid");
    return;
  }
  const qr = await api<{ token: string }>("POST", "/wallet/qr-token", { token });
  const amount = 1 + Math.floor(Math.random() * 400);
  const key = crypto.randomUUID();
  const deduct = () =>
    api<{ code?: string }>("POST", "/pos/deductions", {
      token: posToken,
      key,
      body: { qr_token: qr.body.token, amount_cents: amount, session_id: posSession },
    });
  // A till retrying after a timeout re-sends the same key: never two charges.
  const [first, retry] = await Promise.all([deduct(), deduct()]);
  const charged = [first, retry].some((r) => r.status === 201);
  if (charged) expected.cents -= amount;
  bump(`deductions.${charged ? "charged" : (first.body.code ?? first.status)}`);
}

// ── traffic ──
const deadline = Date.now() + SECONDS * 1_000;
console.error(
  `soak: ${SECONDS}s against ${BASE}, ${WORKERS} clients${walletEnabled ? "" : " (wallet routes absent: wallet traffic skipped)"}`,
);
await Promise.all(
  Array.from({ length: WORKERS }, async (_, worker) => {
    const userId = `soak-${runId}-${worker}`;
    const token = await buyerToken(userId);
    while (Date.now() < deadline) {
      const roll = Math.random();
      if (roll < 0.35) await buyAndPay(token);
      else if (roll < 0.75) await scanSome(token);
      else await walletTraffic(userId, token);
    }
  }),
);

// ── invariants ──
let paidUnits = 0;
let pendingUnits = 0;
for (const [orderId, { quantity, token }] of orderQuantities) {
  const order = await api<{ status: string }>("GET", `/orders/${orderId}`, { token });
  if (order.body.status === "PAID") paidUnits += quantity;
  if (order.body.status === "PENDING_PAYMENT") pendingUnits += quantity;
}
const inventory = await api<{ sellable: number; reserved: number; sold: number; available: number }>(
  "PATCH",
  `/admin/products/${productId}`,
  {
    token: admin,
    body: { active: true },
  },
);
const inv = inventory.body;
if (inv.available !== inv.sellable - inv.sold - inv.reserved)
  violations.push(`available ${inv.available} ≠ sellable − sold − reserved`);
if (inv.sold !== paidUnits)
  violations.push(`sold ${inv.sold} ≠ units in orders the client saw PAID (${paidUnits})`);
if (inv.reserved !== pendingUnits)
  violations.push(`reserved ${inv.reserved} ≠ units in orders still pending (${pendingUnits})`);
if (inv.reserved + inv.sold > inv.sellable) violations.push("reserved + sold > sellable");

for (const [code, token] of ticketOwners) {
  const mine = await api<{
    tickets: {
      code: string;
      entitlements: { function: string; total_uses: number; remaining_uses: number }[];
    }[];
  }>("GET", "/my/tickets", { token });
  const ticket = mine.body.tickets.find((t) => t.code === code);
  for (const entitlement of ticket?.entitlements ?? []) {
    const accepted = acceptedScans.get(code)?.get(entitlement.function) ?? 0;
    if (entitlement.remaining_uses !== entitlement.total_uses - accepted) {
      violations.push(
        `${code} ${entitlement.function}: remaining ${entitlement.remaining_uses} ≠ ${entitlement.total_uses} − ${accepted} accepted`,
      );
    }
  }
}

for (const [userId, { token, cents }] of walletExpected) {
  const wallet = await api<{ balance_cents: number }>("GET", "/wallet", { token });
  let ledgerSum = 0;
  let cursor: string | null = null;
  do {
    const page: {
      body: {
        transactions: { type: string; amount_cents: number; direction?: string }[];
        next_cursor: string | null;
      };
    } = await api("GET", `/wallet/transactions${cursor ? `?cursor=${encodeURIComponent(cursor)}` : ""}`, {
      token,
    });
    for (const row of page.body.transactions) {
      const credit =
        row.type === "PURCHASE" ||
        row.type === "REFUND" ||
        (row.type === "ADJUSTMENT" && row.direction === "credit");
      ledgerSum += credit ? row.amount_cents : -row.amount_cents;
    }
    cursor = page.body.next_cursor;
  } while (cursor);
  if (wallet.body.balance_cents !== ledgerSum)
    violations.push(`${userId}: balance ${wallet.body.balance_cents} ≠ ledger sum ${ledgerSum}`);
  if (wallet.body.balance_cents !== cents)
    violations.push(`${userId}: balance ${wallet.body.balance_cents} ≠ client expectation ${cents}`);
  if (wallet.body.balance_cents < 0) violations.push(`${userId}: negative balance`);
}

// Every wallet of the instance: its journal against D1's copy of its ledger (the same check the daily cron
// runs). A wallet whose copy may still be behind is counted in flight and compared again, until none is
// left or the copy had twice its 10 s bound to catch up; one still in flight then is a violation too.
const RECONCILE_DEADLINE_MS = 20_000;
let reconciled = 0;
let inFlight = 0;
const reconcileDeadline = Date.now() + RECONCILE_DEADLINE_MS;
for (;;) {
  reconciled = 0;
  inFlight = 0;
  const mismatches: string[] = [];
  let reconcileCursor: string | undefined;
  do {
    const page = await api<{
      checked: number;
      in_flight: number;
      mismatches: { user_id: string; reason: string }[];
      next_cursor: string | null;
    }>("POST", "/admin/wallets/reconciliation", {
      token: admin,
      body: reconcileCursor === undefined ? {} : { cursor: reconcileCursor },
    });
    if (page.status !== 200) {
      mismatches.push(`reconciliation answered ${page.status}`);
      break;
    }
    reconciled += page.body.checked;
    inFlight += page.body.in_flight;
    for (const mismatch of page.body.mismatches) mismatches.push(`${mismatch.user_id}: ${mismatch.reason}`);
    reconcileCursor = page.body.next_cursor ?? undefined;
  } while (reconcileCursor !== undefined);
  if (mismatches.length > 0 || inFlight === 0 || Date.now() > reconcileDeadline) {
    violations.push(...mismatches);
    if (inFlight > 0)
      violations.push(`${inFlight} wallets still in flight after ${RECONCILE_DEADLINE_MS / 1000}s`);
    break;
  }
  await new Promise((resolve) => setTimeout(resolve, 1_000));
}

const today = new Date().toISOString().slice(0, 10);
const reportDeadline = Date.now() + REPORT_VISIBILITY_MS;
let reported = -1;
while (Date.now() < reportDeadline) {
  const report = await api<{ total: number }>(
    "GET",
    `/reports/redemptions?from=${today}&to=${today}&location_id=${location}`,
    { token: analyst },
  );
  reported = report.body.total;
  if (reported === acceptedTotal) break;
  await new Promise((resolve) => setTimeout(resolve, 500));
}
if (reported !== acceptedTotal)
  violations.push(
    `report total ${reported} ≠ accepted scans ${acceptedTotal} after ${REPORT_VISIBILITY_MS / 1000}s`,
  );

console.log(
  JSON.stringify(
    {
      seconds: SECONDS,
      counts,
      inventory: inv,
      accepted_scans: acceptedTotal,
      wallets: walletExpected.size,
      wallets_reconciled: reconciled,
    },
    null,
    2,
  ),
);
if (serverErrors.length > 0)
  violations.push(`${serverErrors.length} responses were 5xx, e.g. ${serverErrors.slice(0, 3).join(" | ")}`);
if (violations.length > 0) {
  console.error(`soak FAILED:\n- ${violations.join("\n- ")}`);
  process.exit(1);
}
console.log("soak passed: every invariant held and no response was a 5xx");
