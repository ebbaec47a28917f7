import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { and, eq } from "drizzle-orm";
import { describe, it } from "vitest";
import { orders, walletBalances, walletHolds, walletLedger } from "../../src/db/schema";
import { newId } from "../../src/ids";
import type { OrderCreditsRequest, PosDeductionRequest, WalletObject } from "../../src/objects/wallet";
import { type NewTransfer, WalletJournal } from "../../src/objects/wallet-journal";
import { walletObject } from "../../src/services/wallet-object";
import { eventually } from "../support/eventually";
import { db, seedProduct } from "../support/fixtures";
import { callJson } from "../support/http";
import { buyerToken } from "../support/tokens";
import {
  allTransactions,
  deduct,
  fundedWallet,
  posTill,
  refund,
  storedWallet,
  walletOf,
  walletQr,
} from "../support/wallet";
import { deliver, paymentFor } from "../support/webhooks";

const stubFor = (userId: string) => walletObject(env.WALLETS, userId);

/** The 64 hex digits of the wallet object's id, as a transfer id made by that object names it. */
const objectIdOf = (userId: string) => env.WALLETS.idFromName(userId).toString();

/** A transfer id minted by the wallet object of `userId`: `txn_<object id>_<20 chars>`. */
const transferIdOf = (userId: string) =>
  new RegExp(`^txn_${objectIdOf(userId)}_[0-9abcdefghjkmnpqrstvwxyz]{20}$`);

function request(userId: string, overrides: Partial<PosDeductionRequest> = {}): PosDeductionRequest {
  return {
    userId,
    ledgerKey: `pos.deduct:opr_test:${crypto.randomUUID()}`,
    requestHash: "hash-1",
    amountCents: 100,
    currency: "EUR",
    reference: null,
    jti: crypto.randomUUID(),
    tokenExpiresAt: Math.floor(Date.now() / 1000) + 90,
    operatorId: "opr_test",
    sessionId: "ses_test",
    deviceId: "dev-test",
    eventId: "evt-test",
    ...overrides,
  };
}

function orderCredits(
  userId: string,
  orderId: string,
  amountCents: number,
  orderExpiresAt = new Date(Date.now() + 15 * 60_000).toISOString(),
): OrderCreditsRequest {
  return { userId, orderId, amountCents, currency: "EUR", orderExpiresAt, createdBy: "system:payments" };
}

/** Rows of the wallet object's own SQLite. */
function objectRows<T>(userId: string, query: string, ...bindings: SqlStorageValue[]): Promise<T[]> {
  return runInDurableObject(stubFor(userId), (_instance: WalletObject, state) =>
    state.storage.sql.exec(query, ...bindings).toArray(),
  ) as Promise<T[]>;
}

/** A minimal D1 order of `userId` in `status`: all the timeout resolution reads of an order. */
async function orderRow(
  userId: string,
  status: "PENDING_PAYMENT" | "PAID" | "PAYMENT_FAILED" | "EXPIRED",
  expiresAt = new Date(Date.now() + 15 * 60_000),
): Promise<string> {
  const id = newId("ord");
  const now = new Date().toISOString();
  await db().insert(orders).values({
    id,
    userId,
    status,
    totalCents: 2_500,
    creditsAppliedCents: 1_000,
    amountDueCents: 1_500,
    currency: "EUR",
    createdAt: now,
    expiresAt: expiresAt.toISOString(),
    updatedAt: now,
    idempotencyKey: crypto.randomUUID(),
  });
  return id;
}

const d1Ledger = (userId: string) => db().select().from(walletLedger).where(eq(walletLedger.userId, userId));

describe("POS deductions through the API", () => {
  it("parallel deductions racing for the last cent: exactly the affordable ones succeed, the rest are 402", async ({
    expect,
  }) => {
    const { userId, token } = await fundedWallet(1_000);
    const till = await posTill();
    // Each deduction spends its token's jti: one fresh token per deduction.
    const qrs = await Promise.all(Array.from({ length: 13 }, () => walletQr(token)));
    const answers = await Promise.all(qrs.map((qr) => deduct(till, qr, 100)));

    const accepted = answers.filter((answer) => answer.status === 201);
    const refused = answers.filter((answer) => answer.status !== 201);
    expect(accepted).toHaveLength(10);
    expect(refused).toHaveLength(3);
    for (const answer of refused) {
      expect(answer.status).toBe(402);
      // Refused only once nothing was left: every one of them saw the wallet empty.
      expect(answer.body).toMatchObject({ code: "insufficient_funds", balance_cents: 0, available_cents: 0 });
    }
    // Each acceptance saw the one before it: the balances after them are 900, 800, …, 0, each once.
    expect(accepted.map((answer) => answer.body.balance_cents).sort((a, b) => a - b)).toEqual([
      0, 100, 200, 300, 400, 500, 600, 700, 800, 900,
    ]);
    const ids = accepted.map((answer) => answer.body.transaction_id);
    for (const id of ids) expect(id).toMatch(transferIdOf(userId));

    const stored = await storedWallet(userId);
    expect(stored).toMatchObject({
      journalBalanceCents: 0,
      balanceCents: 0,
      ledgerSumCents: 0,
      heldCents: 0,
    });
    const deducted = stored.ledger.filter((row) => row.type === "DEDUCT");
    expect(deducted.map((row) => row.id).sort()).toEqual([...ids].sort());
    expect(deducted.every((row) => row.projectedAt !== null)).toBe(true);

    // The last cent is gone: even one more cent is refused.
    const more = await deduct(till, await walletQr(token), 1);
    expect(more).toMatchObject({ status: 402, body: { code: "insufficient_funds", balance_cents: 0 } });
  });

  it("a replay with the same key and body answers the same deduction; another body under the key is 422", async ({
    expect,
  }) => {
    const { userId, token } = await fundedWallet(1_000);
    const till = await posTill();
    const qr = await walletQr(token);
    const key = crypto.randomUUID();
    const first = await deduct(till, qr, 300, { key, reference: "sale-1" });
    expect(first.status).toBe(201);
    expect(first.headers.get("idempotent-replayed")).toBeNull();
    const again = await deduct(till, qr, 300, { key, reference: "sale-1" });
    expect(again.status).toBe(201);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    expect(again.body).toEqual(first.body);

    const other = await deduct(till, qr, 301, { key, reference: "sale-1" });
    expect(other).toMatchObject({ status: 422, body: { code: "idempotency_key_reused" } });

    const stored = await storedWallet(userId);
    expect(stored.ledger.filter((row) => row.type === "DEDUCT").map((row) => row.id)).toEqual([
      first.body.transaction_id,
    ]);
    expect(stored).toMatchObject({ journalBalanceCents: 700, balanceCents: 700, ledgerSumCents: 700 });
  });

  it("a deduction is refunded at once, found through the owner its id names; forged or unknown ids are 404", async ({
    expect,
  }) => {
    const { userId, token } = await fundedWallet(1_000);
    const till = await posTill();
    // Keep D1's copy from taking this wallet's rows while the refund is made: the refund cannot have
    // found the deduction in D1. (The message names a "too early" row, so the consumer retries it soon.)
    const trigger = `test_hold_back_${crypto.randomUUID().replaceAll("-", "")}`;
    await env.DB.prepare(
      `CREATE TRIGGER ${trigger} BEFORE INSERT ON wallet_ledger WHEN NEW.user_id = '${userId}'
       BEGIN SELECT RAISE(ABORT, 'wallet_refund_target_invalid'); END`,
    ).run();
    let deduction: Awaited<ReturnType<typeof deduct>>;
    try {
      deduction = await deduct(till, await walletQr(token), 300);
      expect(deduction.status).toBe(201);
      const id = deduction.body.transaction_id;
      expect(id).toMatch(transferIdOf(userId));

      const refunded = await refund(till, id);
      expect(refunded.status).toBe(201);
      expect(refunded.body).toMatchObject({
        type: "REFUND",
        direction: "credit",
        amount_cents: 300,
        reversal_of: id,
        balance_cents: 1_000,
      });
      expect((await d1Ledger(userId)).filter((row) => row.type !== "PURCHASE")).toEqual([]);
      // Nothing is left to refund.
      expect(await refund(till, id, { amount_cents: 1 })).toMatchObject({
        status: 409,
        body: { code: "refund_exceeds_original", refundable_cents: 0 },
      });

      const suffix = id.slice(-20);
      const other = await fundedWallet(500);
      await stubFor(other.userId).view(other.userId);
      const forged = [
        // Not an id of the wallets' namespace at all.
        `txn_${"ab".repeat(32)}_${suffix}`,
        // Another wallet's object: it has no such transfer.
        `txn_${objectIdOf(other.userId)}_${suffix}`,
        // The right object, a transfer it never made.
        `txn_${objectIdOf(userId)}_${"a".repeat(20)}`,
        // An id from before the journal that D1 does not have.
        newId("txn"),
      ];
      for (const forgedId of forged) {
        expect((await refund(till, forgedId)).status, forgedId).toBe(404);
      }
    } finally {
      await env.DB.prepare(`DROP TRIGGER IF EXISTS ${trigger}`).run();
    }
    const stored = await storedWallet(userId);
    expect(stored.ledger.map((row) => row.type).sort()).toEqual(["DEDUCT", "PURCHASE", "REFUND"]);
    expect(stored).toMatchObject({ journalBalanceCents: 1_000, balanceCents: 1_000, ledgerSumCents: 1_000 });
  });
});

describe("WalletObject.deduct", () => {
  it("a retried RPC answers the first result and posts once; a key past retention answers from the journal", async ({
    expect,
  }) => {
    const { userId } = await fundedWallet(1_000);
    const stub = stubFor(userId);
    const once = request(userId);
    const first = await stub.deduct(once);
    expect(first).toMatchObject({ replayed: false, result: { ok: true, balanceCents: 900 } });
    expect(await stub.deduct(once)).toEqual({ ...first, replayed: true });
    expect(await stub.deduct({ ...once, requestHash: "hash-2" })).toEqual({
      replayed: false,
      result: { ok: false, code: "idempotency_key_reused" },
    });
    // Past retention only the key, its hash and its transaction are kept.
    await runInDurableObject(stub, (_instance: WalletObject, state) => {
      state.storage.sql.exec("UPDATE pos_outcomes SET result = NULL");
    });
    const late = await stub.deduct(once);
    expect(late).toMatchObject({
      replayed: true,
      result: {
        ok: true,
        transaction: { id: (first.result as { transaction: { id: string } }).transaction.id },
        balanceCents: 900,
      },
    });
    expect(await storedWallet(userId)).toMatchObject({ balanceCents: 900, ledgerSumCents: 900 });
  });

  it("a spent jti is refused under another key; an expired token is refused; refusals replay", async ({
    expect,
  }) => {
    const { userId } = await fundedWallet(1_000);
    const stub = stubFor(userId);
    const jti = crypto.randomUUID();
    expect((await stub.deduct(request(userId, { jti }))).result).toMatchObject({ ok: true });
    expect((await stub.view(userId, jti)).jtiSpent).toBe(true);
    expect((await stub.view(userId, crypto.randomUUID())).jtiSpent).toBe(false);
    expect((await stub.deduct(request(userId, { jti }))).result).toEqual({
      ok: false,
      code: "token_replayed",
    });
    const lapsed = request(userId, { tokenExpiresAt: Math.floor(Date.now() / 1000) - 1 });
    expect((await stub.deduct(lapsed)).result).toEqual({ ok: false, code: "token_expired" });
    expect(await stub.deduct(lapsed)).toEqual({
      replayed: true,
      result: { ok: false, code: "token_expired" },
    });
    expect((await stub.view(userId)).balance_cents).toBe(900);
  });

  it("the journal outlives eviction: balance, spent jtis and stored outcomes are read back from storage", async ({
    expect,
  }) => {
    const { userId } = await fundedWallet(1_000);
    const stub = stubFor(userId);
    const once = request(userId, { amountCents: 250 });
    const first = await stub.deduct(once);
    await evictDurableObject(stub);
    expect(await stub.view(userId, once.jti)).toMatchObject({
      balance_cents: 750,
      available_cents: 750,
      jtiSpent: true,
    });
    expect(await stub.deduct(once)).toEqual({ ...first, replayed: true });
    expect(await storedWallet(userId)).toMatchObject({ balanceCents: 750, ledgerSumCents: 750 });
  });
});

describe("WalletJournal account", () => {
  it("the store's CHECKs refuse an overdraft or an over-hold written past the object's checks, leaving nothing", async ({
    expect,
  }) => {
    const { userId } = await fundedWallet(1_000);
    const stub = stubFor(userId);
    await stub.view(userId);
    const outcome = await runInDurableObject(stub, (_instance: WalletObject, state) => {
      const journal = new WalletJournal(state.storage.sql);
      const transfer = (key: string, amountCents: number): NewTransfer => ({
        id: `txn_${state.id.toString()}_${newId("txn").slice(4)}`,
        userId,
        type: "DEDUCT",
        direction: "debit",
        amountCents,
        currency: "EUR",
        reference: null,
        idempotencyKey: key,
        createdBy: "device:dev-test",
        createdAt: new Date().toISOString(),
      });
      const attempt = (status: "posted" | "pending", amountCents: number) => {
        const key = `test:${crypto.randomUUID()}`;
        let error = "";
        try {
          state.storage.transactionSync(() =>
            journal.record(
              transfer(key, amountCents),
              status,
              status === "pending" ? Date.now() + 60_000 : null,
            ),
          );
        } catch (thrown) {
          error = String(thrown);
        }
        return { error, left: journal.byKey(key) ?? null, account: journal.account() };
      };
      const before = journal.account();
      const overdraft = attempt("posted", 1_001);
      const overHold = attempt("pending", 1_001);
      // The same write within the balance goes through: the refusals above are the CHECKs' doing.
      const fits = attempt("posted", 1_000);
      return { before, overdraft, overHold, fits };
    });
    expect(outcome.before).toMatchObject({ balanceCents: 1_000, heldCents: 0 });
    for (const refused of [outcome.overdraft, outcome.overHold]) {
      expect(refused.error).toMatch(/CHECK constraint failed/);
      expect(refused.left).toBeNull();
      expect(refused.account).toEqual(outcome.before);
    }
    expect(outcome.fits.error).toBe("");
    expect(outcome.fits.left).toMatchObject({ status: "posted", amount_cents: 1_000 });
    expect(outcome.fits.account).toMatchObject({ balanceCents: 0, heldCents: 0 });
  });
});

describe("WalletObject order credits", () => {
  it("two-phase: a hold sets credit aside, posting takes it once, voiding returns it; every call is idempotent", async ({
    expect,
  }) => {
    const { userId } = await fundedWallet(1_000);
    const stub = stubFor(userId);
    const posted = newId("ord");
    const voided = newId("ord");

    expect(await stub.holdOrderCredits(orderCredits(userId, posted, 400))).toEqual({
      ok: true,
      status: "pending",
    });
    expect(await stub.holdOrderCredits(orderCredits(userId, posted, 400))).toEqual({
      ok: true,
      status: "pending",
    });
    expect(await stub.view(userId)).toMatchObject({
      balance_cents: 1_000,
      held_cents: 400,
      available_cents: 600,
    });
    // Held credit is spent to every till and every other order.
    expect((await stub.deduct(request(userId, { amountCents: 601 }))).result).toMatchObject({
      ok: false,
      code: "insufficient_funds",
      balanceCents: 1_000,
      availableCents: 600,
    });
    expect(await stub.holdOrderCredits(orderCredits(userId, voided, 601))).toMatchObject({
      ok: false,
      code: "insufficient_funds",
      availableCents: 600,
    });

    expect(await stub.resolveOrderCredits(userId, posted, "post")).toEqual({ ok: true, status: "posted" });
    expect(await stub.view(userId)).toMatchObject({
      balance_cents: 600,
      held_cents: 0,
      available_cents: 600,
    });
    expect(await stub.resolveOrderCredits(userId, posted, "post")).toEqual({ ok: true, status: "posted" });
    expect(await stub.holdOrderCredits(orderCredits(userId, posted, 400))).toEqual({
      ok: true,
      status: "posted",
    });
    // Posted credits stay posted.
    expect(await stub.resolveOrderCredits(userId, posted, "void")).toEqual({ ok: true, status: "posted" });
    expect((await stub.view(userId)).balance_cents).toBe(600);

    expect(await stub.holdOrderCredits(orderCredits(userId, voided, 250))).toEqual({
      ok: true,
      status: "pending",
    });
    expect(await stub.view(userId)).toMatchObject({
      balance_cents: 600,
      held_cents: 250,
      available_cents: 350,
    });
    expect(await stub.resolveOrderCredits(userId, voided, "void")).toEqual({ ok: false, code: "voided" });
    expect(await stub.view(userId)).toMatchObject({
      balance_cents: 600,
      held_cents: 0,
      available_cents: 600,
    });
    expect(await stub.resolveOrderCredits(userId, voided, "void")).toEqual({ ok: false, code: "voided" });
    expect(await stub.resolveOrderCredits(userId, voided, "post")).toEqual({ ok: false, code: "voided" });
    // The order's key made its transfer: a hold for the same order again is that transfer's answer.
    expect(await stub.holdOrderCredits(orderCredits(userId, voided, 250))).toEqual({
      ok: false,
      code: "voided",
    });
    expect(await stub.view(userId)).toMatchObject({ balance_cents: 600, held_cents: 0 });
    expect(await stub.resolveOrderCredits(userId, newId("ord"), "post")).toEqual({
      ok: false,
      code: "not_found",
    });

    const stored = await storedWallet(userId);
    const deducts = stored.ledger.filter((row) => row.type === "DEDUCT");
    expect(deducts).toEqual([
      expect.objectContaining({
        idempotencyKey: `order:${posted}`,
        reference: posted,
        amountCents: 400,
        direction: "debit",
        createdBy: "system:payments",
      }),
    ]);
    expect(deducts[0]?.id).toMatch(transferIdOf(userId));
    expect(stored.ledger.some((row) => row.idempotencyKey === `order:${voided}`)).toBe(false);
    expect(stored).toMatchObject({
      journalBalanceCents: 600,
      balanceCents: 600,
      ledgerSumCents: 600,
      heldCents: 0,
    });
  });

  it("at its timeout a pending transfer follows its order in D1: PAID posts, EXPIRED and missing void, PENDING_PAYMENT waits", async ({
    expect,
  }) => {
    const { userId } = await fundedWallet(1_000);
    const stub = stubFor(userId);
    const paid = await orderRow(userId, "PAID");
    const expired = await orderRow(userId, "EXPIRED");
    const missing = newId("ord"); // its batch never committed
    const awaiting = await orderRow(userId, "PENDING_PAYMENT");
    const amounts = { [paid]: 100, [expired]: 150, [missing]: 200, [awaiting]: 250 };
    for (const [orderId, cents] of Object.entries(amounts)) {
      expect(await stub.holdOrderCredits(orderCredits(userId, orderId, cents))).toEqual({
        ok: true,
        status: "pending",
      });
    }
    expect(await stub.view(userId)).toMatchObject({ balance_cents: 1_000, held_cents: 700 });

    // Nothing is due yet: the alarm (the outbox's, if any) resolves none of them.
    await runDurableObjectAlarm(stub);
    expect((await stub.view(userId)).held_cents).toBe(700);

    await runInDurableObject(stub, (_instance: WalletObject, state) => {
      state.storage.sql.exec(
        "UPDATE transfers SET timeout_at_ms = ? WHERE status = 'pending'",
        Date.now() - 1_000,
      );
    });
    const alarmAtMs = Date.now();
    expect(await runDurableObjectAlarm(stub)).toBe(true);

    const rows = await objectRows<{ reference: string; status: string; timeout_at_ms: number | null }>(
      userId,
      "SELECT reference, status, timeout_at_ms FROM transfers WHERE idempotency_key LIKE 'order:%'",
    );
    const byOrder = new Map(rows.map((row) => [row.reference, row]));
    expect(byOrder.get(paid)).toMatchObject({ status: "posted", timeout_at_ms: null });
    expect(byOrder.get(expired)).toMatchObject({ status: "voided", timeout_at_ms: null });
    expect(byOrder.get(missing)).toMatchObject({ status: "voided", timeout_at_ms: null });
    expect(byOrder.get(awaiting)?.status).toBe("pending");
    // Looked at again a minute later, not at once.
    expect(byOrder.get(awaiting)?.timeout_at_ms).toBeGreaterThanOrEqual(alarmAtMs + 59_000);
    expect(await stub.view(userId)).toMatchObject({
      balance_cents: 900,
      held_cents: 250,
      available_cents: 650,
    });

    const stored = await storedWallet(userId);
    expect(stored.ledger.filter((row) => row.type === "DEDUCT")).toEqual([
      expect.objectContaining({ idempotencyKey: `order:${paid}`, amountCents: 100 }),
    ]);
    expect(stored).toMatchObject({
      journalBalanceCents: 900,
      balanceCents: 900,
      ledgerSumCents: 900,
      heldCents: 250,
    });

    // The order is paid meanwhile: at its next timeout the transfer is posted.
    await db().update(orders).set({ status: "PAID" }).where(eq(orders.id, awaiting));
    await runInDurableObject(stub, (_instance: WalletObject, state) => {
      state.storage.sql.exec(
        "UPDATE transfers SET timeout_at_ms = ? WHERE status = 'pending'",
        Date.now() - 1,
      );
    });
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    expect(await storedWallet(userId)).toMatchObject({
      journalBalanceCents: 650,
      balanceCents: 650,
      ledgerSumCents: 650,
      heldCents: 0,
    });
  });

  it("a real order awaiting its card payment keeps its credits held past its timeout; its payment posts them", async ({
    expect,
  }) => {
    const product = await seedProduct({ price_cents: 2_500, sellable: 5 });
    const { userId, token } = await fundedWallet(3_000);
    const stub = stubFor(userId);
    const created = await callJson<{
      order_id: string;
      status: string;
      amount_due_cents: number;
      currency: string;
      expires_at: string;
    }>("POST", "/orders", {
      token,
      idempotencyKey: crypto.randomUUID(),
      body: { items: [{ product_id: product.id, quantity: 1 }], credits_cents: 1_000 },
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ status: "PENDING_PAYMENT", amount_due_cents: 1_500 });
    const orderId = created.body.order_id;
    const [transfer] = await objectRows<{ status: string; timeout_at_ms: number }>(
      userId,
      "SELECT status, timeout_at_ms FROM transfers WHERE idempotency_key = ?",
      `order:${orderId}`,
    );
    // Looked at a minute after the order's deadline.
    expect(transfer).toEqual({
      status: "pending",
      timeout_at_ms: Date.parse(created.body.expires_at) + 60_000,
    });
    expect(await walletOf(token)).toMatchObject({
      balance_cents: 3_000,
      held_cents: 1_000,
      available_cents: 2_000,
    });

    await runInDurableObject(stub, (_instance: WalletObject, state) => {
      state.storage.sql.exec(
        "UPDATE transfers SET timeout_at_ms = ? WHERE status = 'pending'",
        Date.now() - 1,
      );
    });
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    expect(await walletOf(token)).toMatchObject({ balance_cents: 3_000, held_cents: 1_000 });

    const paid = await deliver<{ outcome: string }>(paymentFor({ ...created.body, token }));
    expect(paid.body.outcome).toBe("processed");
    const stored = await storedWallet(userId);
    expect(stored.ledger.filter((row) => row.type === "DEDUCT")).toEqual([
      expect.objectContaining({ idempotencyKey: `order:${orderId}`, amountCents: 1_000 }),
    ]);
    expect(stored).toMatchObject({
      journalBalanceCents: 2_000,
      balanceCents: 2_000,
      ledgerSumCents: 2_000,
      heldCents: 0,
    });
  });
});

describe("opening the journal from D1's history", () => {
  /**
   * D1 as the layouts before the journal left it, for a user whose wallet object was never used: a
   * top-up, a till's deduction partly refunded, and PENDING credit holds of two orders.
   */
  async function historyInD1(eventId: string) {
    const userId = `wallet-${crypto.randomUUID()}`;
    const at = (minutesAgo: number) => new Date(Date.now() - minutesAgo * 60_000).toISOString();
    const purchase = newId("txn");
    const deduction = newId("txn");
    const partialRefund = newId("txn");
    await db().batch([
      db()
        .insert(walletLedger)
        .values({
          id: purchase,
          userId,
          type: "PURCHASE",
          direction: "credit",
          amountCents: 2_000,
          currency: "EUR",
          reference: newId("top"),
          idempotencyKey: `topup:${crypto.randomUUID()}`,
          createdAt: at(30),
          createdBy: "system:payments",
        }),
      db()
        .insert(walletLedger)
        .values({
          id: deduction,
          userId,
          type: "DEDUCT",
          direction: "debit",
          amountCents: 500,
          currency: "EUR",
          reference: "till-1/sale-1",
          idempotencyKey: `pos.deduct:opr_old:${crypto.randomUUID()}`,
          eventId,
          createdAt: at(20),
          createdBy: "device:dev-old",
        }),
      db()
        .insert(walletLedger)
        .values({
          id: partialRefund,
          userId,
          type: "REFUND",
          direction: "credit",
          amountCents: 200,
          currency: "EUR",
          reference: "till-1/sale-1",
          idempotencyKey: `pos.refund:opr_old:${crypto.randomUUID()}`,
          reversalOf: deduction,
          eventId,
          createdAt: at(10),
          createdBy: "device:dev-old",
        }),
    ]);
    const heldForPaid = await orderRow(userId, "PENDING_PAYMENT");
    const heldForLapsed = await orderRow(userId, "PENDING_PAYMENT");
    for (const [orderId, amountCents] of [
      [heldForPaid, 300],
      [heldForLapsed, 100],
    ] as const) {
      await db()
        .insert(walletHolds)
        .values({
          id: `hld_${crypto.randomUUID()}`,
          userId,
          orderId,
          amountCents,
          currency: "EUR",
          status: "PENDING",
          createdAt: at(5),
        });
    }
    return { userId, purchase, deduction, partialRefund, heldForPaid, heldForLapsed };
  }

  it("copies D1's rows and holds once: the balance, the history, refunds within what is left, no row twice", async ({
    expect,
  }) => {
    const till = await posTill();
    const history = await historyInD1(till.eventId);
    const { userId } = history;
    const [before] = await db().select().from(walletBalances).where(eq(walletBalances.userId, userId));
    expect(before).toMatchObject({ balanceCents: 1_700, heldCents: 400 });

    const token = await buyerToken(userId);
    expect(await walletOf(token)).toMatchObject({
      balance_cents: 1_700,
      held_cents: 400,
      available_cents: 1_300,
    });
    const listed = await allTransactions(token);
    expect(listed.map((row) => row.id)).toEqual([history.partialRefund, history.deduction, history.purchase]);

    // A till can spend only what is not held.
    expect(await deduct(till, await walletQr(token), 1_301)).toMatchObject({
      status: 402,
      body: { code: "insufficient_funds", available_cents: 1_300 },
    });

    // The imported REFUND counts against the imported DEDUCT: 300 of its 500 are left to refund.
    expect(await refund(till, history.deduction, { amount_cents: 301 })).toMatchObject({
      status: 409,
      body: { code: "refund_exceeds_original", refundable_cents: 300 },
    });
    const rest = await refund(till, history.deduction);
    expect(rest).toMatchObject({
      status: 201,
      body: { type: "REFUND", amount_cents: 300, reversal_of: history.deduction, balance_cents: 2_000 },
    });
    expect(rest.body.id).toMatch(transferIdOf(userId));

    // The holds' orders end: one is paid (its settlement's call was lost), the other lapses.
    await db().update(orders).set({ status: "PAID" }).where(eq(orders.id, history.heldForPaid));
    await db().update(orders).set({ status: "EXPIRED" }).where(eq(orders.id, history.heldForLapsed));
    await runInDurableObject(stubFor(userId), (_instance: WalletObject, state) => {
      state.storage.sql.exec(
        "UPDATE transfers SET timeout_at_ms = ? WHERE status = 'pending'",
        Date.now() - 1,
      );
    });
    expect(await runDurableObjectAlarm(stubFor(userId))).toBe(true);

    const stored = await storedWallet(userId);
    expect(stored).toMatchObject({
      journalBalanceCents: 1_700,
      balanceCents: 1_700,
      ledgerSumCents: 1_700,
      heldCents: 0,
    });
    const ids = stored.ledger.map((row) => row.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(stored.ledger.map((row) => [row.type, row.amountCents])).toEqual([
      ["PURCHASE", 2_000],
      ["DEDUCT", 500],
      ["REFUND", 200],
      ["REFUND", 300],
      // The paid order's hold, posted at its timeout (after the refund).
      ["DEDUCT", 300],
    ]);
    expect(
      stored.ledger.find((row) => row.type === "DEDUCT" && row.amountCents === 300)?.idempotencyKey,
    ).toBe(`order:${history.heldForPaid}`);
    // D1's holds are resolved as the journal resolved them, and D1 holds nothing any more.
    const holds = await eventually(
      () => db().select().from(walletHolds).where(eq(walletHolds.userId, userId)),
      (rows) => rows.every((row) => row.status !== "PENDING"),
    );
    expect(new Map(holds.map((hold) => [hold.orderId, hold.status]))).toEqual(
      new Map([
        [history.heldForPaid, "POSTED"],
        [history.heldForLapsed, "VOIDED"],
      ]),
    );
    const [after] = await db().select().from(walletBalances).where(eq(walletBalances.userId, userId));
    expect(after).toMatchObject({ balanceCents: 1_700, heldCents: 0 });
    // Opening wrote nothing to D1 of what it had read: the imported rows were never appended again.
    const imported = await db()
      .select()
      .from(walletLedger)
      .where(and(eq(walletLedger.userId, userId), eq(walletLedger.id, history.deduction)));
    expect(imported).toEqual([expect.objectContaining({ projectedAt: null })]);
  });

  it("a refund of an imported deduction works as the very first use of the wallet's object", async ({
    expect,
  }) => {
    const till = await posTill();
    const history = await historyInD1(till.eventId);
    // An id from before the journal names no object: the route finds the wallet's user in D1, and the
    // object, never bound to a user yet, has to open its journal for that user to find the deduction.
    const rest = await refund(till, history.deduction);
    expect(rest).toMatchObject({
      status: 201,
      body: { type: "REFUND", amount_cents: 300, reversal_of: history.deduction, balance_cents: 2_000 },
    });
    const stored = await storedWallet(history.userId);
    expect(stored).toMatchObject({ journalBalanceCents: 2_000, balanceCents: 2_000, ledgerSumCents: 2_000 });
  });
});
