import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, it } from "vitest";
import { appendLedgerRowsStatement, type LedgerRow } from "../../src/db/wallet";
import { ObjectOutbox } from "../../src/objects/object-outbox";
import type { PosDeductionRequest, WalletObject } from "../../src/objects/wallet";
import { WalletState } from "../../src/objects/wallet-state";
import { db } from "../support/fixtures";
import { fundedWallet, storedWallet } from "../support/wallet";

const stubFor = (userId: string) => env.WALLETS.get(env.WALLETS.idFromName(userId));

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

/** Rows of the object's own SQLite, for asserting what it keeps. */
function objectRows<T>(userId: string, query: string): Promise<T[]> {
  return runInDurableObject(stubFor(userId), (_instance: WalletObject, state) =>
    state.storage.sql.exec(query).toArray(),
  ) as Promise<T[]>;
}

const unflushedCount = async (userId: string) =>
  (await objectRows<{ n: number }>(userId, "SELECT COUNT(*) AS n FROM pending WHERE kind = 'unflushed'"))[0]
    ?.n ?? 0;

describe("WalletObject.deduct", () => {
  it("decides alone: the answer comes before D1 has the row, and the flush brings D1 to the same balance", async ({
    expect,
  }) => {
    const { userId } = await fundedWallet(1_000);
    const stub = stubFor(userId);
    // The first deduction after a quiet spell is flushed at once; keep the alarm from running here.
    const answers = [];
    for (let i = 0; i < 3; i++) answers.push(await stub.deduct(request(userId)));
    expect(answers.map((a) => a.result)).toMatchObject([
      { ok: true, balanceCents: 900 },
      { ok: true, balanceCents: 800 },
      { ok: true, balanceCents: 700 },
    ]);
    const before = await storedWallet(userId, { flush: false });
    const inD1 = before.ledger.filter((row) => row.type === "DEDUCT").length;
    expect(inD1 + (await unflushedCount(userId))).toBe(3);
    await runDurableObjectAlarm(stub);
    const after = await storedWallet(userId, { flush: false });
    expect(after.ledger.filter((row) => row.type === "DEDUCT")).toHaveLength(3);
    expect(after).toMatchObject({ balanceCents: 700, ledgerSumCents: 700 });
    expect(await unflushedCount(userId)).toBe(0);
  });

  it("a retried RPC answers exactly the first time's result and posts once; another request under the key is refused", async ({
    expect,
  }) => {
    const { userId } = await fundedWallet(1_000);
    const stub = stubFor(userId);
    const once = request(userId);
    const first = await stub.deduct(once);
    const again = await stub.deduct(once);
    expect(first).toMatchObject({ replayed: false, result: { ok: true, balanceCents: 900 } });
    expect(again).toEqual({ ...first, replayed: true });
    expect(await stub.deduct({ ...once, requestHash: "hash-2" })).toEqual({
      replayed: false,
      result: { ok: false, code: "idempotency_key_reused" },
    });
    expect((await storedWallet(userId)).ledger.filter((row) => row.type === "DEDUCT")).toHaveLength(1);
  });

  it("a key whose stored outcome is past retention is answered from the ledger, never posted twice", async ({
    expect,
  }) => {
    const { userId } = await fundedWallet(1_000);
    const stub = stubFor(userId);
    const once = request(userId);
    const first = await stub.deduct(once);
    await storedWallet(userId); // flushed
    await runInDurableObject(stub, (_instance: WalletObject, state) => {
      state.storage.sql.exec("UPDATE pos_outcomes SET result = NULL");
    });
    const again = await stub.deduct(once);
    expect(again).toMatchObject({
      replayed: true,
      result: {
        ok: true,
        transaction: { id: (first.result as { transaction: { id: string } }).transaction.id },
      },
    });
    expect(await storedWallet(userId)).toMatchObject({ balanceCents: 900, ledgerSumCents: 900 });
  });

  it("a spent jti is refused under another key; an expired one is refused before the jti is looked at", async ({
    expect,
  }) => {
    const { userId } = await fundedWallet(1_000);
    const stub = stubFor(userId);
    const jti = crypto.randomUUID();
    expect((await stub.deduct(request(userId, { jti }))).result).toMatchObject({ ok: true });
    expect((await stub.deduct(request(userId, { jti }))).result).toEqual({
      ok: false,
      code: "token_replayed",
    });
    const lapsed = request(userId, { tokenExpiresAt: Math.floor(Date.now() / 1000) - 1 });
    expect((await stub.deduct(lapsed)).result).toEqual({ ok: false, code: "token_expired" });
    // The refusal is the key's outcome: a replay answers it again, even once the jti is forgotten.
    expect(await stub.deduct(lapsed)).toEqual({
      replayed: true,
      result: { ok: false, code: "token_expired" },
    });
  });

  it("the alarm forgets jtis once their tokens have expired", async ({ expect }) => {
    const { userId } = await fundedWallet(1_000);
    const stub = stubFor(userId);
    // At least a second ahead (Unix seconds round down), so a busy machine cannot expire it in flight.
    const shortLived = request(userId, { tokenExpiresAt: Math.ceil(Date.now() / 1000) + 1 });
    expect((await stub.deduct(shortLived)).result).toMatchObject({ ok: true });
    const count = async () =>
      (await objectRows<{ n: number }>(userId, "SELECT COUNT(*) AS n FROM spent_jtis"))[0]?.n;
    expect(await count()).toBe(1);
    await new Promise((resolve) => setTimeout(resolve, shortLived.tokenExpiresAt * 1000 - Date.now() + 100));
    await runDurableObjectAlarm(stub);
    expect(await count()).toBe(0);
    // A replay of that token now fails on its expiry, never on a forgotten jti.
    const other = { ...shortLived, ledgerKey: "pos.deduct:opr_test:other" };
    expect((await stub.deduct(other)).result).toEqual({ ok: false, code: "token_expired" });
  });

  it("refuses what the view cannot cover only after one refresh: a top-up it had not seen is spendable", async ({
    expect,
  }) => {
    const { userId } = await fundedWallet(500);
    const stub = stubFor(userId);
    expect((await stub.deduct(request(userId, { amountCents: 400 }))).result).toMatchObject({ ok: true });
    // Credit D1 behind the object's back: its snapshot says 100 available, the truth is 600.
    await env.DB.prepare(
      `INSERT INTO wallet_ledger (id, user_id, type, direction, amount_cents, currency, reference,
         idempotency_key, reversal_of, event_id, created_at, created_by)
       VALUES (?, ?, 'ADJUSTMENT', 'credit', 500, 'EUR', NULL, ?, NULL, NULL, ?, 'operator:test')`,
    )
      .bind(`txn_${crypto.randomUUID()}`, userId, crypto.randomUUID(), new Date().toISOString())
      .run();
    expect((await stub.deduct(request(userId, { amountCents: 600 }))).result).toMatchObject({
      ok: true,
      balanceCents: 0,
    });
    expect((await stub.deduct(request(userId, { amountCents: 1 }))).result).toMatchObject({
      ok: false,
      code: "insufficient_funds",
      balanceCents: 0,
    });
    expect(await storedWallet(userId)).toMatchObject({ balanceCents: 0, ledgerSumCents: 0 });
  });
});

describe("WalletObject flush", () => {
  it("a flush whose D1 batch committed but whose answer was lost is repeated without doubling anything", async ({
    expect,
  }) => {
    const { userId } = await fundedWallet(1_000);
    const stub = stubFor(userId);
    await storedWallet(userId); // a snapshot exists, so the deductions below wait for the window
    for (let i = 0; i < 3; i++) await stub.deduct(request(userId, { amountCents: 50 }));
    // Write what the object has not flushed straight into D1, as a flush whose answer never came back would.
    const rows = await objectRows<{ ledger_row: string }>(
      userId,
      "SELECT ledger_row FROM pending WHERE kind = 'unflushed'",
    );
    expect(rows.length).toBeGreaterThan(0);
    // The flush's own statement, as the lost flush ran it.
    const lost = rows.map(({ ledger_row }) => JSON.parse(ledger_row) as LedgerRow);
    await db().batch([appendLedgerRowsStatement(db(), lost)]);
    await runDurableObjectAlarm(stub);
    const stored = await storedWallet(userId);
    expect(stored.ledger.filter((row) => row.type === "DEDUCT")).toHaveLength(3);
    expect(stored).toMatchObject({ balanceCents: 850, ledgerSumCents: 850 });
    expect(await unflushedCount(userId)).toBe(0);
  });

  it("a backlog larger than one flush drains flush after flush, every row once", async ({ expect }) => {
    const { userId } = await fundedWallet(2_000);
    const stub = stubFor(userId);
    await storedWallet(userId);
    const DEDUCTIONS = 1_050; // more than one flush carries
    for (let i = 0; i < DEDUCTIONS; i += 50) {
      await Promise.all(Array.from({ length: 50 }, () => stub.deduct(request(userId, { amountCents: 1 }))));
    }
    for (let run = 0; run < 3 && (await unflushedCount(userId)) > 0; run++) await runDurableObjectAlarm(stub);
    expect(await unflushedCount(userId)).toBe(0);
    const stored = await storedWallet(userId, { flush: false });
    expect(stored.ledger.filter((row) => row.type === "DEDUCT")).toHaveLength(DEDUCTIONS);
    expect(stored).toMatchObject({ balanceCents: 2_000 - DEDUCTIONS, ledgerSumCents: 2_000 - DEDUCTIONS });
    expect(await stub.sync(userId)).toMatchObject({ balanceCents: 2_000 - DEDUCTIONS });
  });

  it("an object evicted with unflushed deductions flushes them when it wakes: nothing is lost", async ({
    expect,
  }) => {
    const { userId } = await fundedWallet(1_000);
    const stub = stubFor(userId);
    await storedWallet(userId);
    for (let i = 0; i < 4; i++) await stub.deduct(request(userId, { amountCents: 25 }));
    // Eviction drops memory (the FIFO, the flags), never storage: a fresh instance sees the same rows.
    await evictDurableObject(stub);
    expect(await unflushedCount(userId)).toBeGreaterThan(0);
    await runDurableObjectAlarm(stub);
    expect(await storedWallet(userId, { flush: false })).toMatchObject({
      balanceCents: 900,
      ledgerSumCents: 900,
    });
  });

  it("with D1 failing, the till is answered from the view; what the view cannot cover is an error, never a guess", async ({
    expect,
  }) => {
    const { userId } = await fundedWallet(1_000);
    const stub = stubFor(userId);
    await storedWallet(userId);
    await stub.deduct(request(userId, { amountCents: 300 }));
    await env.DB.prepare(
      "CREATE TRIGGER IF NOT EXISTS test_refuse_ledger BEFORE INSERT ON wallet_ledger BEGIN SELECT RAISE(ABORT, 'd1 unavailable'); END",
    ).run();
    try {
      await runDurableObjectAlarm(stub);
      expect(await unflushedCount(userId)).toBe(1);
      // The view still counts the unflushed 300: the wallet is never spent twice while D1 is down.
      expect((await stub.deduct(request(userId, { amountCents: 700 }))).result).toMatchObject({
        ok: true,
        balanceCents: 0,
      });
      // Refusing needs a look at D1 first (money may have come free); with D1 down that is "try again",
      // and nothing is stored under the key.
      const unsure = request(userId, { amountCents: 1 });
      expect(await stub.deduct(unsure)).toEqual({
        replayed: false,
        result: { ok: false, code: "unavailable" },
      });
      expect(
        await objectRows(userId, `SELECT 1 FROM pos_outcomes WHERE ledger_key = '${unsure.ledgerKey}'`),
      ).toEqual([]);
    } finally {
      await env.DB.prepare("DROP TRIGGER IF EXISTS test_refuse_ledger").run();
    }
    await runDurableObjectAlarm(stub);
    expect(await unflushedCount(userId)).toBe(0);
    expect(await storedWallet(userId, { flush: false })).toMatchObject({
      balanceCents: 0,
      ledgerSumCents: 0,
    });
  });
});

describe("WalletObject order credits", () => {
  const hold = (userId: string, orderId: string, amountCents: number, expiresAtMs = Date.now() + 60_000) => ({
    userId,
    orderId,
    kind: "hold" as const,
    amountCents,
    expiresAtMs,
  });

  it("a reservation is spent credit to every till until it is released", async ({ expect }) => {
    const { userId } = await fundedWallet(1_000);
    const stub = stubFor(userId);
    expect(await stub.reserveOrderCredits(hold(userId, "ord_a", 800))).toEqual({ ok: true });
    // Idempotent per order.
    expect(await stub.reserveOrderCredits(hold(userId, "ord_a", 800))).toEqual({ ok: true });
    expect((await stub.deduct(request(userId, { amountCents: 201 }))).result).toMatchObject({
      ok: false,
      code: "insufficient_funds",
      availableCents: 200,
    });
    await stub.settleOrderCredits(userId, "ord_a", false);
    expect((await stub.deduct(request(userId, { amountCents: 201 }))).result).toMatchObject({ ok: true });
  });

  it("a deduction racing an order's reservation for the last credit: exactly one gets it", async ({
    expect,
  }) => {
    const { userId } = await fundedWallet(1_000);
    const stub = stubFor(userId);
    await storedWallet(userId);
    const [deduction, reservation] = await Promise.all([
      stub.deduct(request(userId, { amountCents: 700 })),
      stub.reserveOrderCredits(hold(userId, "ord_race", 700)),
    ]);
    expect([deduction.result.ok, reservation.ok].filter(Boolean)).toHaveLength(1);
  });

  it("a reservation whose confirmation never comes is dropped after it expires, once a snapshot shows the truth", async ({
    expect,
  }) => {
    const { userId } = await fundedWallet(1_000);
    const stub = stubFor(userId);
    await stub.reserveOrderCredits(hold(userId, "ord_lost", 600, Date.now() + 200));
    expect((await stub.deduct(request(userId, { amountCents: 500 }))).result).toMatchObject({ ok: false });
    await new Promise((resolve) => setTimeout(resolve, 300));
    await runDurableObjectAlarm(stub);
    expect((await stub.deduct(request(userId, { amountCents: 500 }))).result).toMatchObject({
      ok: true,
      balanceCents: 500,
    });
  });
});

describe("WalletObject slow operations", () => {
  it("an admin debit whose earlier attempt stopped midway reuses its reservation: set aside once, posted once", async ({
    expect,
  }) => {
    const { userId } = await fundedWallet(1_000);
    const stub = stubFor(userId);
    await stub.sync(userId);
    const ledgerKey = `adjust:opr_test:${crypto.randomUUID()}`;
    // What an attempt evicted between its reservation and its D1 batch leaves behind.
    await runInDurableObject(stub, (_instance: WalletObject, state) => {
      new WalletState(state.storage.sql, new ObjectOutbox(state.storage.sql, env.EVENTS)).reserve(
        ledgerKey,
        { balanceDelta: -400, heldDelta: 0 },
        Date.now() + 60_000,
        new Date(),
      );
    });
    const debit = {
      userId,
      ledgerKey,
      direction: "debit" as const,
      amountCents: 400,
      currency: "EUR",
      operatorId: "opr_test",
      reason: "retried correction",
    };
    expect(await stub.adjust(debit)).toMatchObject({ ok: true, balanceCents: 600, availableCents: 600 });
    expect(await stub.adjust(debit)).toMatchObject({ ok: true, balanceCents: 600 });
    expect(await stub.sync(userId)).toMatchObject({ balanceCents: 600, availableCents: 600 });
    expect(await storedWallet(userId)).toMatchObject({ balanceCents: 600, ledgerSumCents: 600 });
  });
});
