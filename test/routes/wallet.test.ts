import { env } from "cloudflare:workers";
import { count, eq } from "drizzle-orm";
import fc from "fast-check";
import { decodeJwt, decodeProtectedHeader } from "jose";
import { describe, it } from "vitest";
import { CRON_DAILY_EXPORT } from "../../src/cron";
import { auditLog, paymentReviews, payments, walletLedger, walletTopups } from "../../src/db/schema";
import { db, operatorToken } from "../support/fixtures";
import { call, callJson } from "../support/http";
import { gateSession } from "../support/tickets";
import { buyerToken, uniqueUser } from "../support/tokens";
import {
  adjust,
  allTransactions,
  fundedWallet,
  payTopup,
  posTill,
  startTopup,
  storedWallet,
  walletOf,
  walletQr,
} from "../support/wallet";
import { deliver, newMessageId, newPaymentId } from "../support/webhooks";
import { runCron } from "../support/worker";

/** PURCHASE rows for the top-up in D1's copy, once the copy has caught up with the wallet's journal. */
async function purchasesFor(topupId: string) {
  const topup = await db().query.walletTopups.findFirst({ where: eq(walletTopups.id, topupId) });
  if (topup) await storedWallet(topup.userId);
  const [row] = await db()
    .select({ n: count() })
    .from(walletLedger)
    .where(eq(walletLedger.reference, topupId));
  return row?.n ?? 0;
}

async function topupStatus(topupId: string) {
  return (await db().query.walletTopups.findFirst({ where: eq(walletTopups.id, topupId) }))?.status;
}

describe("GET /wallet", () => {
  it("a new user has a zero wallet; it needs a buyer token", async ({ expect }) => {
    const token = await buyerToken(uniqueUser());
    const wallet = await callJson("GET", "/wallet", { token });
    expect(wallet.status).toBe(200);
    expect(wallet.body).toEqual({
      balance_cents: 0,
      held_cents: 0,
      available_cents: 0,
      currency: "EUR",
      updated_at: null,
    });
    expect((await callJson("GET", "/wallet")).status).toBe(401);
    const transactions = await callJson("GET", "/wallet/transactions", { token });
    expect(transactions.body).toEqual({ transactions: [], next_cursor: null });
  });
});

describe("POST /wallet/topups and the top-up webhook", () => {
  it("creates a pending top-up; the webhook posts one PURCHASE; GET /wallet and the ledger agree", async ({
    expect,
  }) => {
    const user = uniqueUser();
    const token = await buyerToken(user);
    const key = crypto.randomUUID();
    const created = await startTopup(token, 2_000, key);
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ status: "PENDING_PAYMENT", amount_cents: 2_000, currency: "EUR" });
    expect(created.body.topup_id).toMatch(/^top_/);
    const replay = await startTopup(token, 2_000, key);
    expect(replay.status).toBe(201);
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    expect(replay.body).toEqual(created.body);
    expect((await startTopup(token, 2_500, key)).body.code).toBe("idempotency_key_reused");

    expect((await walletOf(token)).balance_cents).toBe(0);
    const paid = await payTopup(created.body);
    expect(paid.body).toEqual({ received: true, outcome: "processed" });
    expect(await topupStatus(created.body.topup_id)).toBe("PAID");

    const wallet = await walletOf(token);
    expect(wallet).toMatchObject({ balance_cents: 2_000, held_cents: 0, available_cents: 2_000 });
    expect(wallet.updated_at).toBeTruthy();
    const transactions = await allTransactions(token);
    expect(transactions).toEqual([
      expect.objectContaining({
        type: "PURCHASE",
        direction: "credit",
        amount_cents: 2_000,
        currency: "EUR",
        reference: created.body.topup_id,
        user_id: user,
        reversal_of: null,
        event_id: null,
        idempotency_key: `topup:${created.body.topup_id}`,
        created_by: "system:payments",
      }),
    ]);
  });

  it("amounts outside TOPUP_MIN_CENTS..TOPUP_MAX_CENTS are 400 validation_failed", async ({ expect }) => {
    const token = await buyerToken(uniqueUser());
    for (const amount of [499, 50_001, 0, -5]) {
      const response = await startTopup(token, amount);
      expect(response.status, String(amount)).toBe(400);
      expect(response.body.code).toBe("validation_failed");
    }
    for (const amount of [500, 50_000]) expect((await startTopup(token, amount)).status).toBe(201);
    const noKey = await callJson("POST", "/wallet/topups", { token, body: { amount_cents: 1_000 } });
    expect(noKey.body).toMatchObject({ code: "idempotency_key_missing" });
  });

  it("the webhook delivered 10 times in parallel posts exactly one PURCHASE", async ({ expect }) => {
    const { token } = await fundedWallet(0);
    const created = await startTopup(token, 3_000);
    const paymentId = newPaymentId();
    const shared = newMessageId();
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        deliver<{ outcome: string }>(
          {
            payment_id: paymentId,
            reference: created.body.topup_id,
            status: "SUCCESS",
            amount_cents: 3_000,
            currency: "EUR",
          },
          { msgId: i % 2 === 0 ? shared : newMessageId() },
        ),
      ),
    );
    expect(results.map((r) => r.status)).toEqual(Array(10).fill(200));
    const outcomes = results.map((r) => r.body.outcome);
    expect(outcomes.filter((o) => o === "processed")).toHaveLength(1);
    expect(outcomes.filter((o) => o === "duplicate")).toHaveLength(9);
    expect(await purchasesFor(created.body.topup_id)).toBe(1);
    expect((await walletOf(token)).balance_cents).toBe(3_000);

    // A second, different payment for the same top-up is ignored and flagged for a refund.
    const second = await payTopup(created.body);
    expect(second.body.outcome).toBe("ignored");
    expect(await purchasesFor(created.body.topup_id)).toBe(1);
    const flagged = await db().select().from(payments).where(eq(payments.reference, created.body.topup_id));
    expect(flagged.filter((p) => p.needsRefund)).toHaveLength(1);
  });

  it("amount or currency mismatch → 422, recorded for review, nothing posted", async ({ expect }) => {
    const { token } = await fundedWallet(0);
    const created = await startTopup(token, 1_500);
    const short = {
      payment_id: newPaymentId(),
      reference: created.body.topup_id,
      status: "SUCCESS" as const,
      amount_cents: 1_499,
      currency: "EUR",
    };
    const response = await deliver(short);
    expect(response.status).toBe(422);
    expect(response.body).toMatchObject({ code: "amount_mismatch", expected_amount_cents: 1_500 });
    const wrongCurrency = await deliver({
      ...short,
      payment_id: newPaymentId(),
      amount_cents: 1_500,
      currency: "USD",
    });
    expect(wrongCurrency.status).toBe(422);
    expect(await purchasesFor(created.body.topup_id)).toBe(0);
    expect(await topupStatus(created.body.topup_id)).toBe("PENDING_PAYMENT");
    const reviews = await db()
      .select()
      .from(paymentReviews)
      .where(eq(paymentReviews.reference, created.body.topup_id));
    expect(reviews).toHaveLength(2);
    expect((await payTopup(created.body)).body.outcome).toBe("processed");
  });

  it("FAILED → top-up FAILED; a later SUCCESS is ignored and flagged; unknown top-ups are 404", async ({
    expect,
  }) => {
    const { token } = await fundedWallet(0);
    const created = await startTopup(token, 1_000);
    const failed = {
      payment_id: newPaymentId(),
      reference: created.body.topup_id,
      status: "FAILED" as const,
      amount_cents: 1_000,
      currency: "EUR",
    };
    expect((await deliver(failed)).body).toMatchObject({ outcome: "processed" });
    expect((await deliver(failed)).body).toMatchObject({ outcome: "duplicate" });
    expect(await topupStatus(created.body.topup_id)).toBe("FAILED");
    const late = await payTopup(created.body);
    expect(late.body.outcome).toBe("ignored");
    expect(await purchasesFor(created.body.topup_id)).toBe(0);
    expect((await walletOf(token)).balance_cents).toBe(0);

    const unknown = await deliver({ ...failed, payment_id: newPaymentId(), reference: "top_doesnotexist" });
    expect(unknown).toMatchObject({ status: 404, body: { code: "reference_not_found" } });
  });
});

describe("GET /wallet/transactions", () => {
  it("pages newest first with a keyset cursor and agrees with the balance", async ({ expect }) => {
    const admin = await operatorToken(["admin"]);
    const user = uniqueUser();
    const token = await buyerToken(user);
    // 120 rows: more than two pages. Sent ten at a time; the wallet's object takes them one by one.
    for (let i = 0; i < 120; i += 10) {
      const sent = await Promise.all(
        Array.from({ length: 10 }, (_, j) => adjust(admin.token, user, "credit", 1 + i + j)),
      );
      expect(sent.map((r) => r.status)).toEqual(Array(10).fill(201));
    }
    const first = await callJson<{
      transactions: { id: string; amount_cents: number }[];
      next_cursor: string;
    }>("GET", "/wallet/transactions", { token });
    expect(first.body.transactions).toHaveLength(50);
    const amounts = first.body.transactions.map((row) => row.amount_cents);
    expect(Math.max(...amounts)).toBeGreaterThan(100);
    const all = await allTransactions(token);
    expect(all).toHaveLength(120);
    expect(new Set(all.map((row) => row.id)).size).toBe(120);
    const sum = all.reduce(
      (total, row) => total + (row.direction === "credit" ? 1 : -1) * row.amount_cents,
      0,
    );
    expect((await walletOf(token)).balance_cents).toBe(sum);

    const bad = await callJson("GET", "/wallet/transactions?cursor=not-a-cursor", { token });
    expect(bad).toMatchObject({ status: 400, body: { code: "validation_failed" } });
    // Someone else's wallet is never listed.
    expect(await allTransactions(await buyerToken(uniqueUser()))).toEqual([]);
  });
});

describe("POST /wallet/qr-token", () => {
  it("is a wallet-qr+jwt for the POS audience with a nonce, living 60..120 s, and is refused at the gate", async ({
    expect,
  }) => {
    const user = uniqueUser();
    const token = await buyerToken(user);
    const response = await callJson<{ token: string; expires_in: number }>("POST", "/wallet/qr-token", {
      token,
    });
    expect(response.status).toBe(200);
    expect(response.body.expires_in).toBeGreaterThanOrEqual(60);
    expect(response.body.expires_in).toBeLessThanOrEqual(120);
    const header = decodeProtectedHeader(response.body.token);
    expect(header).toMatchObject({ typ: "wallet-qr+jwt", alg: "EdDSA" });
    const claims = decodeJwt(response.body.token);
    expect(claims).toMatchObject({ aud: "pos", sub: user, iss: env.SERVICE_ISSUER });
    expect(typeof claims.jti).toBe("string");
    expect(typeof claims.nonce).toBe("string");
    expect((claims.exp ?? 0) - (claims.iat ?? 0)).toBe(response.body.expires_in);
    const again = decodeJwt(await walletQr(token));
    expect(again.jti).not.toBe(claims.jti);
    expect(again.nonce).not.toBe(claims.nonce);

    const gate = await gateSession();
    const scanned = await callJson("POST", "/tickets/scan", {
      token: gate.token,
      body: { qr_token: response.body.token, function: "bus", session_id: gate.sessionId },
    });
    expect(scanned).toMatchObject({ status: 422, body: { code: "token_invalid" } });
  });
});

describe("POST /admin/wallets/{user_id}/adjustments", () => {
  it("credits and debits with a direction; a debit below zero is 402; idempotent; audited; admin only", async ({
    expect,
  }) => {
    const admin = await operatorToken(["admin"]);
    const user = uniqueUser();
    const key = crypto.randomUUID();
    const credit = await adjust(admin.token, user, "credit", 700, key);
    expect(credit.status).toBe(201);
    expect(credit.body).toMatchObject({
      type: "ADJUSTMENT",
      direction: "credit",
      amount_cents: 700,
      user_id: user,
      idempotency_key: `adjust:${admin.operatorId}:${key}`,
      created_by: `operator:${admin.operatorId}`,
    });
    const replay = await adjust(admin.token, user, "credit", 700, key);
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    expect(replay.body).toEqual(credit.body);
    expect((await adjust(admin.token, user, "credit", 701, key)).body.code).toBe("idempotency_key_reused");

    const tooMuch = await adjust(admin.token, user, "debit", 701);
    expect(tooMuch.status).toBe(402);
    expect(tooMuch.body).toMatchObject({
      code: "insufficient_funds",
      balance_cents: 700,
      available_cents: 700,
    });
    const debit = await adjust(admin.token, user, "debit", 700);
    expect(debit.body).toMatchObject({ direction: "debit", amount_cents: 700 });
    const stored = await storedWallet(user);
    expect(stored).toMatchObject({ balanceCents: 0, ledgerSumCents: 0 });
    expect(stored.ledger).toHaveLength(2);

    const audited = await db().select().from(auditLog).where(eq(auditLog.target, credit.body.id));
    expect(audited).toHaveLength(1);
    expect(audited[0]).toMatchObject({ action: "wallet.adjust", actor: admin.operatorId });
    expect(JSON.parse(audited[0]?.details ?? "{}")).toMatchObject({
      reason: "test adjustment",
      direction: "credit",
    });

    const pos = await operatorToken(["pos"], ["evt-x"]);
    expect(await adjust(pos.token, user, "credit", 5)).toMatchObject({
      status: 403,
      body: { code: "forbidden" },
    });
    const bad = await callJson("POST", `/admin/wallets/${user}/adjustments`, {
      token: admin.token,
      idempotencyKey: crypto.randomUUID(),
      body: { direction: "sideways", amount_cents: 5, reason: "x" },
    });
    expect(bad).toMatchObject({ status: 400, body: { code: "validation_failed" } });
  });
});

describe("the ledger is append-only", () => {
  it("UPDATE and DELETE of a ledger row fail in the database itself", async ({ expect }) => {
    const { userId } = await fundedWallet(1_000);
    const [row] = (await storedWallet(userId)).ledger;
    if (!row) throw new Error("no row");
    await expect(
      env.DB.prepare("UPDATE wallet_ledger SET amount_cents = 1 WHERE id = ?").bind(row.id).run(),
    ).rejects.toThrow(/wallet_ledger_append_only/);
    await expect(env.DB.prepare("DELETE FROM wallet_ledger WHERE id = ?").bind(row.id).run()).rejects.toThrow(
      /wallet_ledger_append_only/,
    );
    // Nor can the balance be pushed below zero by any statement, whichever path writes it.
    await expect(
      env.DB.prepare(
        `INSERT INTO wallet_ledger (id, user_id, type, direction, amount_cents, currency, idempotency_key,
           created_at, created_by) VALUES ('txn_raw_overdraft', ?, 'DEDUCT', 'debit', 1001, 'EUR', 'raw', ?, 'test')`,
      )
        .bind(userId, new Date().toISOString())
        .run(),
    ).rejects.toThrow(/wallet_balance_not_negative/);
    expect(await storedWallet(userId)).toMatchObject({ balanceCents: 1_000, ledgerSumCents: 1_000 });
  });
});

describe("GET /reports/transactions and the daily export", () => {
  it("filters by range, type and event; pages JSON; streams CSV; analysts and admins only", async ({
    expect,
  }) => {
    const admin = await operatorToken(["admin"]);
    const analyst = await operatorToken(["analyst"]);
    const user = uniqueUser();
    for (let i = 0; i < 3; i++) await adjust(admin.token, user, "credit", 100 + i);
    await fundedWallet(600, user);
    // Reports read D1's copy of the ledger, which trails the wallet's journal by a moment.
    await storedWallet(user);
    const today = new Date().toISOString().slice(0, 10);
    const report = await callJson<{
      transactions: { user_id: string; type: string }[];
      next_cursor: string | null;
    }>("GET", `/reports/transactions?from=${today}&to=${today}&type=PURCHASE`, { token: analyst.token });
    expect(report.status).toBe(200);
    expect(report.body.transactions.every((row) => row.type === "PURCHASE")).toBe(true);
    expect(report.body.transactions.filter((row) => row.user_id === user)).toHaveLength(1);

    const csv = await call("GET", `/reports/transactions?from=${today}&to=${today}&format=csv`, {
      token: analyst.token,
    });
    expect(csv.headers.get("content-type")).toContain("text/csv");
    const lines = (await csv.text()).trim().split("\r\n");
    expect(lines[0]).toBe(
      "transaction_id,created_at,user_id,type,direction,amount_cents,currency,reference,reversal_of,event_id,idempotency_key,created_by",
    );
    const rows = lines.filter((line) => line.includes(user));
    expect(rows).toHaveLength(4);
    // Every row names what made it exactly once and who made it.
    for (const row of rows)
      expect(row).toMatch(
        /,(topup|order|pos\.deduct|pos\.refund|adjust):[^,]+,(user|device|operator|system):[^,]+$/,
      );

    const gate = await operatorToken(["gate"]);
    expect(
      (await callJson("GET", `/reports/transactions?from=${today}&to=${today}`, { token: gate.token }))
        .status,
    ).toBe(403);
    const tooLong = await callJson("GET", "/reports/transactions?from=2024-01-01&to=2026-01-02", {
      token: admin.token,
    });
    expect(tooLong).toMatchObject({ status: 400, body: { code: "validation_failed" } });
    const badType = await callJson("GET", `/reports/transactions?from=${today}&to=${today}&type=GIFT`, {
      token: admin.token,
    });
    expect(badType.status).toBe(400);
  });

  it("JSON pages never exceed the page size and follow next_cursor to every row", async ({ expect }) => {
    const day = "2026-02-03";
    const rows = Array.from({ length: 1_100 }, (_, i) => ({
      id: `txn_report_${String(i).padStart(5, "0")}`,
      userId: `report-user-${i % 7}`,
      type: "ADJUSTMENT" as const,
      direction: "credit" as const,
      amountCents: 1 + i,
      currency: "EUR",
      reference: null,
      idempotencyKey: `report-${i}`,
      reversalOf: null,
      eventId: null,
      createdAt: `${day}T10:${String(Math.floor(i / 60) % 60).padStart(2, "0")}:00.000Z`,
      createdBy: "test",
    }));
    for (let i = 0; i < rows.length; i += 8)
      await db()
        .insert(walletLedger)
        .values(rows.slice(i, i + 8));
    const analyst = await operatorToken(["analyst"]);
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page: { body: { transactions: { id: string }[]; next_cursor: string | null } } = await callJson(
        "GET",
        `/reports/transactions?from=${day}&to=${day}${cursor ? `&cursor=${cursor}` : ""}`,
        { token: analyst.token },
      );
      expect(page.body.transactions.length).toBeLessThanOrEqual(500);
      seen.push(...page.body.transactions.map((row) => row.id));
      cursor = page.body.next_cursor;
      pages++;
    } while (cursor);
    expect(pages).toBe(3);
    expect(seen).toEqual(rows.map((row) => row.id));

    await runCron(CRON_DAILY_EXPORT, Date.parse(`${day}T00:10:00Z`) + 24 * 3_600_000);
    const object = await env.EXPORTS.get(`transactions-${day}.csv`);
    const exported = (await object?.text())?.trim().split("\r\n") ?? [];
    expect(exported).toHaveLength(1 + rows.length);
    expect(exported[1]?.startsWith("txn_report_00000,")).toBe(true);
  });
});

describe("malformed input on the wallet routes never yields a 5xx", () => {
  it("POS, top-up, adjustment and refund bodies, paths and keys", async ({ expect }) => {
    const admin = await operatorToken(["admin"]);
    const { token: buyer } = await fundedWallet(5_000);
    const till = await posTill();
    const session = till.sessionId;
    const qr = await walletQr(buyer);
    const nearPos = fc.record(
      {
        qr_token: fc.oneof(
          fc.constant(qr),
          fc.string({ maxLength: 300 }),
          fc.integer(),
          fc.constant("a.b.c"),
        ),
        amount_cents: fc.oneof(fc.integer(), fc.double(), fc.string(), fc.constant(null)),
        reference: fc.oneof(fc.string({ maxLength: 200 }), fc.integer()),
        session_id: fc.oneof(fc.constant(session), fc.string({ maxLength: 80 })),
        direction: fc.oneof(fc.constantFrom("credit", "debit"), fc.string()),
        reason: fc.oneof(fc.string({ maxLength: 600 }), fc.constant("   ")),
      },
      { requiredKeys: [] },
    );
    const body = fc.oneof(
      nearPos.map((value) => JSON.stringify(value)),
      fc.jsonValue({ maxDepth: 3 }).map((value) => JSON.stringify(value)),
      fc.string(),
    );
    const routes = [
      { path: () => "/pos/wallet-lookup", token: till.token },
      { path: () => "/pos/deductions", token: till.token },
      { path: (id: string) => `/pos/deductions/${encodeURIComponent(id)}/refund`, token: admin.token },
      { path: (id: string) => `/admin/wallets/${encodeURIComponent(id)}/adjustments`, token: admin.token },
      { path: () => "/wallet/topups", token: buyer },
    ];
    await fc.assert(
      fc.asyncProperty(
        fc.nat({ max: routes.length - 1 }),
        body,
        fc.string({ minLength: 1, maxLength: 300 }),
        fc.string({ maxLength: 300 }),
        async (index, raw, id, key) => {
          const route = routes[index] as (typeof routes)[number];
          const response = await call("POST", route.path(id), {
            token: route.token,
            rawBody: raw,
            headers: { "content-type": "application/json" },
            idempotencyKey: key.replace(/[^\t\x20-\x7e]/g, ""),
          });
          expect(response.status, `${route.path(id)} ${raw}`).toBeLessThan(500);
          if (response.status >= 400) {
            expect(response.headers.get("content-type")).toContain("application/problem+json");
            expect(typeof ((await response.json()) as { code?: unknown }).code).toBe("string");
          }
        },
      ),
      { numRuns: 150 },
    );
  });
});
