import { env } from "cloudflare:workers";
import { and, eq } from "drizzle-orm";
import { describe, it } from "vitest";
import { tillSalesStatements } from "../../src/db/receipts";
import { auditLog } from "../../src/db/schema";
import { POS_SALES_MAX_PAGE_SIZE } from "../../src/routes/pos";
import { db, operatorToken } from "../support/fixtures";
import { call, callJson } from "../support/http";
import { openSession, registeredDevice } from "../support/staff";
import { gateSession } from "../support/tickets";
import { deduct, fundedWallet, posSessionFor, posTill, refund, type Till, walletQr } from "../support/wallet";

// GET /pos/sessions/{session_id}/sales (a till's own sales in its shift) and the lookup's refusal of a
// wallet code a deduction already spent.

interface Sale {
  type: "DEDUCT" | "REFUND";
  transaction_id: string;
  receipt_id: string;
  reversal_of: string | null;
  amount_cents: number;
  reference: string | null;
  created_at: string;
}

interface SalesBody {
  session_id: string;
  device_id: string;
  event_id: string;
  from: string;
  as_of: string;
  currency: string;
  totals: { sales: number; sales_cents: number; refunds: number; refunds_cents: number; net_cents: number };
  entries: Sale[];
  next_cursor: string | null;
  code?: string;
  errors?: { path: string; message: string }[];
}

function sales(till: Pick<Till, "token" | "sessionId">, query = "") {
  return callJson<SalesBody>(
    "GET",
    `/pos/sessions/${encodeURIComponent(till.sessionId)}/sales${query ? `?${query}` : ""}`,
    { token: till.token },
  );
}

/**
 * The till's sales once D1 has caught up: a deduction reaches it with its wallet's flush and the queue's
 * receipt, a few seconds after the 201. Polls until `ready` holds (or the contract's few seconds pass).
 */
async function salesOnceSettled(till: Till, ready: (body: SalesBody) => boolean, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const response = await sales(till);
    if (response.status !== 200)
      throw new Error(`sales: ${response.status} ${JSON.stringify(response.body)}`);
    if (ready(response.body) || Date.now() > deadline) return response.body;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function charge(till: Till, buyer: string, cents: number, reference?: string) {
  const paid = await deduct(till, await walletQr(buyer), cents, { reference });
  if (paid.status !== 201) throw new Error(`deduction: ${paid.status} ${JSON.stringify(paid.body)}`);
  return paid.body;
}

function lookup(till: Till, qr: string) {
  return callJson<{ balance_cents: number; code?: string; detail?: string }>("POST", "/pos/wallet-lookup", {
    token: till.token,
    body: { qr_token: qr, session_id: till.sessionId },
  });
}

describe("GET /pos/sessions/{session_id}/sales", () => {
  it("lists this till's deductions and the refunds of them, newest first, with the shift's total", async ({
    expect,
  }) => {
    const till = await posTill();
    const neighbour = await posTill(till.eventId); // same event, another device and operator
    const first = await fundedWallet(5_000);
    const second = await fundedWallet(5_000);

    const empty = await sales(till);
    expect(empty.status).toBe(200);
    expect(empty.headers.get("cache-control")).toBe("no-store");
    expect(empty.body).toMatchObject({
      session_id: till.sessionId,
      device_id: till.deviceId,
      event_id: till.eventId,
      currency: "EUR",
      totals: { sales: 0, sales_cents: 0, refunds: 0, refunds_cents: 0, net_cents: 0 },
      entries: [],
      next_cursor: null,
    });

    const a = await charge(till, first.token, 450, "sale-1");
    const b = await charge(till, second.token, 1_200);
    const c = await charge(till, first.token, 300);
    const theirs = await charge(neighbour, second.token, 999);
    const refunded = await refund(till, b.transaction_id, { amount_cents: 200 });
    expect(refunded.status).toBe(201);

    const body = await salesOnceSettled(till, (page) => page.totals.sales === 3);
    expect(body.totals).toEqual({
      sales: 3,
      sales_cents: 1_950,
      refunds: 1,
      refunds_cents: 200,
      net_cents: 1_750,
    });
    // The refund is the newest; the deductions follow in reverse order of making.
    expect(body.entries.map((entry) => [entry.type, entry.transaction_id])).toEqual([
      ["REFUND", refunded.body.id],
      ["DEDUCT", c.transaction_id],
      ["DEDUCT", b.transaction_id],
      ["DEDUCT", a.transaction_id],
    ]);
    expect(body.entries[0]).toMatchObject({
      receipt_id: b.receipt.id,
      reversal_of: b.transaction_id,
      amount_cents: 200,
    });
    expect(body.entries[3]).toEqual({
      type: "DEDUCT",
      transaction_id: a.transaction_id,
      receipt_id: a.receipt.id,
      reversal_of: null,
      amount_cents: 450,
      reference: "sale-1",
      created_at: a.receipt.created_at,
    });
    // Nothing that identifies a customer or reaches into a wallet's past.
    const text = JSON.stringify(body);
    for (const userId of [first.userId, second.userId]) expect(text).not.toContain(userId);
    expect(text).not.toContain("wal_");
    expect(text).not.toContain("balance");
    expect(text).not.toContain(theirs.transaction_id);

    // The neighbouring till sees its own sale only.
    const other = await salesOnceSettled(neighbour, (page) => page.totals.sales === 1);
    expect(other.entries.map((entry) => entry.transaction_id)).toEqual([theirs.transaction_id]);
    expect(other.totals.net_cents).toBe(999);
  });

  it("counts a refund of this till's sale made elsewhere, and not sales of an earlier session on the device", async ({
    expect,
  }) => {
    const till = await posTill();
    const buyer = await fundedWallet(5_000);
    const earlier = await charge(till, buyer.token, 700);
    await salesOnceSettled(till, (page) => page.totals.sales === 1);
    // The shift ends; the same cashier opens the next session on the same device.
    expect(
      (await call("DELETE", `/validators/sessions/${till.sessionId}`, { token: till.token })).status,
    ).toBe(200);
    const reopened = await openSession(till.token, { device_id: till.deviceId });
    expect(reopened.status).toBe(201);
    const next: Till = { ...till, sessionId: reopened.body.session_id };
    const fresh = await charge(next, buyer.token, 250);
    // A supervisor refunds the earlier shift's sale from their own till: it comes off this shift's takings.
    const supervisor = await operatorToken(["supervisor", "pos"], [till.eventId]);
    const refunded = await refund(
      await posSessionFor(supervisor.token, till.eventId),
      earlier.transaction_id,
    );
    expect(refunded.status).toBe(201);

    const body = await salesOnceSettled(next, (page) => page.totals.sales === 1);
    expect(body.from).toBe(reopened.body.opened_at);
    expect(body.entries.map((entry) => [entry.type, entry.transaction_id])).toEqual([
      ["REFUND", refunded.body.id],
      ["DEDUCT", fresh.transaction_id],
    ]);
    expect(body.totals).toMatchObject({ sales_cents: 250, refunds_cents: 700, net_cents: -450 });
    // The closed session's list is gone with it.
    expect(await sales(till)).toMatchObject({ status: 403, body: { code: "session_invalid" } });
  });

  it("pages by cursor without gaps or repeats, with the whole shift's totals on every page", async ({
    expect,
  }) => {
    const till = await posTill();
    const buyer = await fundedWallet(5_000);
    const made: string[] = [];
    for (const cents of [100, 200, 300, 400, 500])
      made.push((await charge(till, buyer.token, cents)).transaction_id);
    const refunded = await refund(till, made[1] ?? "", { amount_cents: 50 });
    expect(refunded.status).toBe(201);
    await salesOnceSettled(till, (page) => page.totals.sales === 5);

    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const query: string = `limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`;
      const page = await sales(till, query);
      expect(page.status).toBe(200);
      expect(page.body.entries.length).toBeLessThanOrEqual(2);
      expect(page.body.totals).toEqual({
        sales: 5,
        sales_cents: 1_500,
        refunds: 1,
        refunds_cents: 50,
        net_cents: 1_450,
      });
      seen.push(...page.body.entries.map((entry) => entry.transaction_id));
      cursor = page.body.next_cursor;
      pages++;
    } while (cursor && pages < 10);
    expect(pages).toBe(3);
    expect(seen).toEqual([refunded.body.id, ...[...made].reverse()]);
    expect(new Set(seen).size).toBe(seen.length);
  });

  it("is the caller's own open POS session only", async ({ expect }) => {
    const till = await posTill();
    const buyer = await fundedWallet(1_000);
    await charge(till, buyer.token, 100);

    // Another POS operator at the same event, with a session of their own, cannot read this one's.
    const other = await posTill(till.eventId);
    const notMine = await sales({ token: other.token, sessionId: till.sessionId });
    expect(notMine).toMatchObject({ status: 403, body: { code: "session_invalid" } });
    // An admin passes the role check but the session is still not theirs.
    const admin = await operatorToken(["admin"]);
    expect(await sales({ token: admin.token, sessionId: till.sessionId })).toMatchObject({
      status: 403,
      body: { code: "session_invalid" },
    });
    // Unknown sessions answer exactly like someone else's.
    expect(await sales({ token: till.token, sessionId: "ses_nope" })).toMatchObject({
      status: 403,
      body: { code: "session_invalid" },
    });
    // A gate session is not a till, even for an operator holding both roles.
    const both = await operatorToken(["pos", "gate"], [till.eventId]);
    const gateDevice = await registeredDevice({ kind: "gate", location_id: "loc-sales" });
    const gateOfBoth = await openSession(both.token, { device_id: gateDevice });
    expect(gateOfBoth.status).toBe(201);
    expect(await sales({ token: both.token, sessionId: gateOfBoth.body.session_id })).toMatchObject({
      status: 403,
      body: { code: "session_invalid" },
    });
    // Gate staff are not till staff; buyers and strangers are nobody here.
    const gate = await gateSession();
    expect(await sales({ token: gate.token, sessionId: gate.sessionId })).toMatchObject({
      status: 403,
      body: { code: "forbidden" },
    });
    expect((await sales({ token: buyer.token, sessionId: till.sessionId })).status).toBe(401);
    expect((await sales({ token: "", sessionId: till.sessionId })).status).toBe(401);
  });

  it.for<[string, string]>([
    ["a cursor that is not one", "cursor=nope"],
    ["limit 0", "limit=0"],
    ["a limit over the maximum", `limit=${POS_SALES_MAX_PAGE_SIZE + 1}`],
    ["a non-numeric limit", "limit=ten"],
  ])("400 validation_failed for %s", async ([, query], { expect }) => {
    const till = await posTill();
    const response = await sales(till, query);
    expect(response.status).toBe(400);
    expect(response.body.code).toBe("validation_failed");
    expect(response.body.errors?.[0]?.message).toBeTruthy();
  });
});

describe("the sales listing's queries", () => {
  it("read one device's receipts and their refunds through indexes, never a scan of the ledger", async ({
    expect,
  }) => {
    const statements = tillSalesStatements(db(), {
      deviceId: "dev-x",
      eventId: "evt-x",
      since: "2026-11-21T08:00:00.000Z",
      refundableSince: "2026-11-20T08:00:00.000Z",
      before: { createdAt: "2026-11-21T12:00:00.000Z", id: "txn_x" },
      limit: 50,
    });
    for (const [name, statement] of Object.entries(statements)) {
      const { sql, params } = statement.toSQL();
      const plan = await env.DB.prepare(`EXPLAIN QUERY PLAN ${sql}`)
        .bind(...params)
        .all<{ detail: string }>();
      const steps = plan.results.map((row) => row.detail);
      expect(
        steps.filter((step) => step.startsWith("SCAN")),
        name,
      ).toEqual([]);
      expect(steps.join(" | "), name).toMatch(
        /USING (COVERING )?INDEX wallet_receipts_by_device \(device_id=\?/,
      );
      if (name.startsWith("refund"))
        expect(steps.join(" | "), name).toMatch(/wallet_ledger USING INDEX wallet_ledger_by_reversal/);
    }
  });
});

describe("POST /pos/wallet-lookup refuses a spent wallet code", () => {
  it("answers 409 token_replayed once a deduction spent the token, at any till, and audits the refusal", async ({
    expect,
  }) => {
    const buyer = await fundedWallet(2_000);
    const till = await posTill();
    const elsewhere = await posTill(); // another event: the wallet's object knows the jti all the same
    const qr = await walletQr(buyer.token);
    expect((await lookup(till, qr)).status).toBe(200);
    // A refused charge spends nothing: the code still looks up.
    expect((await deduct(till, qr, 5_000)).status).toBe(402);
    expect((await lookup(till, qr)).status).toBe(200);

    expect((await deduct(till, qr, 450)).status).toBe(201);
    const again = await lookup(till, qr);
    expect(again).toMatchObject({ status: 409, body: { code: "token_replayed" } });
    expect(again.headers.get("content-type")).toContain("application/problem+json");
    expect(JSON.stringify(again.body)).not.toContain(buyer.userId);
    expect(await lookup(elsewhere, qr)).toMatchObject({ status: 409, body: { code: "token_replayed" } });

    // The customer's fresh code works, with the balance after the charge.
    const fresh = await lookup(till, await walletQr(buyer.token));
    expect(fresh).toMatchObject({ status: 200, body: { balance_cents: 1_550 } });

    const deadline = Date.now() + 10_000;
    let rejected: (typeof auditLog.$inferSelect)[] = [];
    while (rejected.length === 0 && Date.now() < deadline) {
      rejected = (
        await db()
          .select()
          .from(auditLog)
          .where(and(eq(auditLog.actor, till.operatorId), eq(auditLog.action, "pos.wallet_lookup")))
      ).filter((row) => JSON.parse(row.details).code === "token_replayed");
      if (rejected.length === 0) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(rejected).toHaveLength(1);
    expect(JSON.parse(rejected[0]?.details ?? "{}")).toMatchObject({ result: "rejected" });
  });

  it("refuses the spent code even while the deduction has not reached D1 yet, and under concurrent lookups", async ({
    expect,
  }) => {
    const buyer = await fundedWallet(2_000);
    const till = await posTill();
    const qr = await walletQr(buyer.token);
    expect((await deduct(till, qr, 100)).status).toBe(201);
    // Straight after the 201, before the flush window ends: the object answers from its own storage.
    const answers = await Promise.all(Array.from({ length: 5 }, () => lookup(till, qr)));
    expect(answers.map((answer) => answer.status)).toEqual([409, 409, 409, 409, 409]);
  });
});

describe("POST /pos/deductions/{id}/refund answers the balance", () => {
  it("with the wallet's balance right after the refund, so the till can show it without a new scan", async ({
    expect,
  }) => {
    const buyer = await fundedWallet(2_000);
    const till = await posTill();
    const paid = await charge(till, buyer.token, 450);
    expect(paid.balance_cents).toBe(1_550);
    const partial = await refund(till, paid.transaction_id, { amount_cents: 150 }, "refund-key-1");
    expect(partial).toMatchObject({
      status: 201,
      body: { type: "REFUND", amount_cents: 150, balance_cents: 1_700, available_cents: 1_700 },
    });
    // A retry replays the first answer, balance included.
    const replay = await refund(till, paid.transaction_id, { amount_cents: 150 }, "refund-key-1");
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    expect(replay.body).toEqual(partial.body);
    const rest = await refund(till, paid.transaction_id);
    expect(rest.body).toMatchObject({ amount_cents: 300, balance_cents: 2_000 });
    expect(JSON.stringify(rest.body)).not.toContain(buyer.userId);
  });
});
