import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { eq, inArray } from "drizzle-orm";
import { describe, it } from "vitest";
import { walletLedger, walletReceipts } from "../../src/db/schema";
import { newId } from "../../src/ids";
import type { PosDeductionRequest, WalletObject } from "../../src/objects/wallet";
import { walletObject } from "../../src/services/wallet-object";
import { eventually } from "../support/eventually";
import { db } from "../support/fixtures";
import { posTill, refund, storedWallet } from "../support/wallet";

// A wallet object last run by the layout before the journal (D1 as the ledger's store, the object a
// snapshot of it plus the deductions it had not flushed yet) is upgraded in place when it wakes.

/** The old layout's DDL (src/objects/wallet-state.ts and object-outbox.ts before the journal), verbatim. */
const OLD_LAYOUT = `
  CREATE TABLE IF NOT EXISTS wallet (user_id TEXT PRIMARY KEY);
  CREATE TABLE IF NOT EXISTS snapshot (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    balance_cents INTEGER NOT NULL,
    held_cents INTEGER NOT NULL,
    updated_at TEXT,
    read_at_ms INTEGER NOT NULL,
    generation INTEGER NOT NULL,
    pending_balance INTEGER NOT NULL DEFAULT 0,
    pending_held INTEGER NOT NULL DEFAULT 0,
    pending_at TEXT);
  CREATE TABLE IF NOT EXISTS pending (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('unflushed', 'reserved', 'confirmed')),
    balance_delta INTEGER NOT NULL CHECK (balance_delta <= 0),
    held_delta INTEGER NOT NULL CHECK (held_delta >= 0),
    reservation_key TEXT UNIQUE,
    ledger_row TEXT,
    event TEXT,
    expires_at_ms INTEGER,
    confirmed_generation INTEGER,
    created_at TEXT NOT NULL);
  CREATE TABLE IF NOT EXISTS pos_outcomes (
    ledger_key TEXT PRIMARY KEY,
    request_hash TEXT NOT NULL,
    transaction_id TEXT,
    result TEXT,
    created_at_ms INTEGER NOT NULL);
  CREATE INDEX IF NOT EXISTS pos_outcomes_to_prune ON pos_outcomes (created_at_ms) WHERE result IS NOT NULL;
  CREATE TABLE IF NOT EXISTS spent_jtis (
    jti TEXT PRIMARY KEY, ledger_key TEXT NOT NULL, expires_at_ms INTEGER NOT NULL);
  CREATE INDEX IF NOT EXISTS spent_jtis_by_expiry ON spent_jtis (expires_at_ms);
  CREATE TABLE IF NOT EXISTS operations (
    ledger_key TEXT PRIMARY KEY, result TEXT NOT NULL, created_at_ms INTEGER NOT NULL);
  CREATE INDEX IF NOT EXISTS operations_by_age ON operations (created_at_ms);
  CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, payload TEXT NOT NULL);
`;

/** A ledger row as the old layout kept it in `pending.ledger_row`: D1's row, camelCase, no projectedAt. */
interface OldLedgerRow {
  id: string;
  userId: string;
  type: "PURCHASE" | "DEDUCT";
  direction: "credit" | "debit";
  amountCents: number;
  currency: string;
  reference: string | null;
  idempotencyKey: string;
  reversalOf: string | null;
  eventId: string | null;
  createdAt: string;
  createdBy: string;
}

const stubFor = (userId: string) => walletObject(env.WALLETS, userId);

/** The old layout's `wallet.deducted` event for a deduction: no `ledger`, its row went to D1 first. */
function oldDeductedEvent(row: OldLedgerRow, deviceId: string) {
  return {
    type: "wallet.deducted",
    transaction_id: row.id,
    user_id: row.userId,
    amount_cents: row.amountCents,
    currency: row.currency,
    reference: row.reference,
    event_id: row.eventId,
    device_id: deviceId,
    created_at: row.createdAt,
    audit: {
      id: `aud_${row.id}`,
      actor: "opr_old",
      action: "pos.deduct",
      target: row.id,
      details: { result: "accepted", user_id: row.userId, amount_cents: row.amountCents },
      ts: row.createdAt,
    },
  };
}

/**
 * A wallet as the old layout left it: in D1 a top-up and two deductions (`flushed`, and `lost`, whose
 * flush committed but whose answer never came back, so it is still unflushed in the object too); in the
 * object the snapshot, `lost` and `unflushed` (not in D1) waiting for a flush, an order's reservation, a
 * remembered operation, the jti `unflushed` spent with its stored POS outcome, the unsent event of
 * `flushed`, and the old flush alarm.
 */
async function oldLayoutWallet(eventId: string) {
  const userId = `wallet-${crypto.randomUUID()}`;
  const deviceId = "dev-old";
  const at = (minutesAgo: number) => new Date(Date.now() - minutesAgo * 60_000).toISOString();
  const row = (type: "PURCHASE" | "DEDUCT", amountCents: number, createdAt: string): OldLedgerRow => ({
    id: newId("txn"),
    userId,
    type,
    direction: type === "PURCHASE" ? "credit" : "debit",
    amountCents,
    currency: "EUR",
    reference: type === "PURCHASE" ? newId("top") : null,
    idempotencyKey:
      type === "PURCHASE" ? `topup:${crypto.randomUUID()}` : `pos.deduct:opr_old:${crypto.randomUUID()}`,
    reversalOf: null,
    eventId: type === "PURCHASE" ? null : eventId,
    createdAt,
    createdBy: type === "PURCHASE" ? "system:payments" : `device:${deviceId}`,
  });
  const purchase = row("PURCHASE", 1_000, at(30));
  const flushed = row("DEDUCT", 100, at(20));
  const lost = row("DEDUCT", 150, at(10));
  const unflushed = row("DEDUCT", 200, at(1));
  await db().batch([
    db().insert(walletLedger).values(purchase),
    db().insert(walletLedger).values(flushed),
    db().insert(walletLedger).values(lost),
  ]);

  const jti = crypto.randomUUID();
  const outcome = {
    requestHash: "hash-unflushed",
    result: {
      ok: true,
      transaction: {
        id: unflushed.id,
        user_id: userId,
        type: "DEDUCT",
        direction: "debit",
        amount_cents: unflushed.amountCents,
        currency: "EUR",
        reference: null,
        reversal_of: null,
        event_id: eventId,
        idempotency_key: unflushed.idempotencyKey,
        created_at: unflushed.createdAt,
        created_by: unflushed.createdBy,
      },
      balanceCents: 550,
      availableCents: 550,
    },
  };
  const stub = stubFor(userId);
  // runInDurableObject constructs the object first (creating the journal's tables, still empty); the
  // old tables are created next to them, as the old code had them.
  const accountRows = await runInDurableObject(stub, async (_instance: WalletObject, state) => {
    const sql = state.storage.sql;
    sql.exec(OLD_LAYOUT);
    sql.exec("INSERT INTO wallet (user_id) VALUES (?)", userId);
    sql.exec(
      `INSERT INTO snapshot (id, balance_cents, held_cents, updated_at, read_at_ms, generation,
         pending_balance, pending_held, pending_at)
       VALUES (1, 900, 0, ?, ?, 7, -350, 0, ?)`,
      flushed.createdAt,
      Date.now() - 60_000,
      unflushed.createdAt,
    );
    for (const deduction of [lost, unflushed]) {
      sql.exec(
        `INSERT INTO pending (kind, balance_delta, held_delta, ledger_row, event, created_at)
         VALUES ('unflushed', ?, 0, ?, ?, ?)`,
        -deduction.amountCents,
        JSON.stringify(deduction),
        JSON.stringify(oldDeductedEvent(deduction, deviceId)),
        deduction.createdAt,
      );
    }
    // A reservation for an old D1 batch: settled in D1 by now, never imported.
    sql.exec(
      `INSERT INTO pending (kind, balance_delta, held_delta, reservation_key, expires_at_ms, created_at)
       VALUES ('reserved', 0, 300, ?, ?, ?)`,
      `order:${newId("ord")}`,
      Date.now() + 60_000,
      at(2),
    );
    sql.exec(
      "INSERT INTO operations (ledger_key, result, created_at_ms) VALUES (?, ?, ?)",
      `adjust:opr_old:${crypto.randomUUID()}`,
      JSON.stringify({ ok: true }),
      Date.now(),
    );
    sql.exec(
      "INSERT INTO spent_jtis (jti, ledger_key, expires_at_ms) VALUES (?, ?, ?)",
      jti,
      unflushed.idempotencyKey,
      Date.now() + 90_000,
    );
    sql.exec(
      `INSERT INTO pos_outcomes (ledger_key, request_hash, transaction_id, result, created_at_ms)
       VALUES (?, ?, ?, ?, ?)`,
      unflushed.idempotencyKey,
      outcome.requestHash,
      unflushed.id,
      JSON.stringify(outcome.result),
      Date.now() - 60_000,
    );
    // The flushed deduction's event, moved to the outbox by its flush and not sent yet.
    sql.exec("INSERT INTO outbox (payload) VALUES (?)", JSON.stringify(oldDeductedEvent(flushed, deviceId)));
    await state.storage.setAlarm(Date.now() + 60_000);
    return sql.exec<{ n: number }>("SELECT count(*) AS n FROM account").one().n;
  });
  if (accountRows !== 0) throw new Error("the journal of a fresh object is not open yet");
  // Memory gone: the next request meets the old layout as a freshly deployed object would.
  await evictDurableObject(stub);
  return { userId, deviceId, jti, outcome, purchase, flushed, lost, unflushed };
}

/** The deduction request the old layout answered with the stored outcome. */
function replayOf(old: Awaited<ReturnType<typeof oldLayoutWallet>>, eventId: string): PosDeductionRequest {
  return {
    userId: old.userId,
    ledgerKey: old.unflushed.idempotencyKey,
    requestHash: old.outcome.requestHash,
    amountCents: old.unflushed.amountCents,
    currency: "EUR",
    reference: null,
    jti: old.jti,
    tokenExpiresAt: Math.floor(Date.now() / 1000) + 90,
    operatorId: "opr_old",
    sessionId: "ses_old",
    deviceId: old.deviceId,
    eventId,
  };
}

function objectTables(userId: string) {
  return runInDurableObject(stubFor(userId), (_instance: WalletObject, state) =>
    state.storage.sql
      .exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
      .toArray()
      .map((row) => row.name),
  );
}

describe("upgrading a wallet object from the old layout", () => {
  it("on its first request: every deduction counted once, spent jtis and stored outcomes kept, old tables dropped, D1 complete", async ({
    expect,
  }) => {
    const till = await posTill();
    const old = await oldLayoutWallet(till.eventId);
    const stub = stubFor(old.userId);

    expect(await stub.view(old.userId, old.jti)).toMatchObject({
      // 1 000 − 100 − 150 − 200: `lost` is in D1 and in the old pending rows, counted once; the
      // reservation is not counted.
      balance_cents: 550,
      held_cents: 0,
      available_cents: 550,
      updated_at: old.unflushed.createdAt,
      jtiSpent: true,
    });

    const transfers = await runInDurableObject(stub, (_instance: WalletObject, state) =>
      state.storage.sql
        .exec<{ id: string; status: string; n: number }>(
          "SELECT id, status, count(*) AS n FROM transfers GROUP BY id ORDER BY rowid",
        )
        .toArray(),
    );
    expect(transfers).toEqual(
      [old.purchase, old.flushed, old.lost, old.unflushed].map((row) => ({
        id: row.id,
        status: "posted",
        n: 1,
      })),
    );
    const tables = await objectTables(old.userId);
    for (const gone of ["snapshot", "pending", "operations"]) expect(tables).not.toContain(gone);
    for (const kept of ["wallet", "account", "transfers", "pos_outcomes", "spent_jtis", "outbox"]) {
      expect(tables).toContain(kept);
    }

    // The old outcome replays as it was stored; another request under its key is refused.
    const replay = replayOf(old, till.eventId);
    expect(await stub.deduct(replay)).toEqual({ replayed: true, result: old.outcome.result });
    expect(await stub.deduct({ ...replay, requestHash: "another" })).toEqual({
      replayed: false,
      result: { ok: false, code: "idempotency_key_reused" },
    });
    // The spent jti is still spent for any other key.
    expect(
      (
        await stub.deduct({
          ...replay,
          ledgerKey: `pos.deduct:opr_old:${crypto.randomUUID()}`,
          amountCents: 1,
        })
      ).result,
    ).toEqual({ ok: false, code: "token_replayed" });

    const stored = await storedWallet(old.userId);
    expect(stored).toMatchObject({
      journalBalanceCents: 550,
      balanceCents: 550,
      ledgerSumCents: 550,
      heldCents: 0,
    });
    expect(stored.ledger.map((row) => row.id)).toEqual(
      [old.purchase, old.flushed, old.lost, old.unflushed].map((row) => row.id),
    );
    expect(stored.ledger.find((row) => row.id === old.unflushed.id)).toMatchObject({
      type: "DEDUCT",
      amountCents: 200,
      idempotencyKey: old.unflushed.idempotencyKey,
      eventId: till.eventId,
    });
    // Every deduction's event was sent once: one receipt each.
    const deductionIds = [old.flushed, old.lost, old.unflushed].map((row) => row.id);
    const receipts = await eventually(
      () => db().select().from(walletReceipts).where(inArray(walletReceipts.transactionId, deductionIds)),
      (rows) => rows.length >= 3,
    );
    expect(receipts.map((receipt) => receipt.transactionId).sort()).toEqual([...deductionIds].sort());

    // The imported deduction is the journal's like any other: refunded through it.
    const refunded = await refund(till, old.unflushed.id);
    expect(refunded).toMatchObject({
      status: 201,
      body: { type: "REFUND", amount_cents: 200, reversal_of: old.unflushed.id, balance_cents: 750 },
    });
    expect(await storedWallet(old.userId)).toMatchObject({
      journalBalanceCents: 750,
      balanceCents: 750,
      ledgerSumCents: 750,
    });
  });

  it("woken by its old alarm: opens without a request and forwards the deductions it had not flushed", async ({
    expect,
  }) => {
    const till = await posTill();
    const old = await oldLayoutWallet(till.eventId);
    const stub = stubFor(old.userId);

    expect(await runDurableObjectAlarm(stub)).toBe(true);
    const ledger = await eventually(
      () => db().select().from(walletLedger).where(eq(walletLedger.userId, old.userId)),
      (rows) => rows.length >= 4,
    );
    expect(ledger.map((row) => row.id).sort()).toEqual(
      [old.purchase, old.flushed, old.lost, old.unflushed].map((row) => row.id).sort(),
    );
    expect(ledger.find((row) => row.id === old.unflushed.id)?.projectedAt).not.toBeNull();
    const tables = await objectTables(old.userId);
    expect(tables).not.toContain("snapshot");
    expect(tables).not.toContain("pending");
    expect(await storedWallet(old.userId)).toMatchObject({
      journalBalanceCents: 550,
      balanceCents: 550,
      ledgerSumCents: 550,
    });
    expect((await stub.view(old.userId, old.jti)).jtiSpent).toBe(true);
  });
});
