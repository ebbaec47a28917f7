import { and, asc, desc, eq, gte, lt, sql } from "drizzle-orm";
import { receiptIdForTransaction } from "../domain/ledger";
import { newId } from "../ids";
import type { LedgerType, Topup, TopupStatus, WalletTransaction } from "../types/domain";
import { errorMatches } from "./audit";
import { type Db, isConstraintError, type Statement, selectJsonRows } from "./client";
import { decodeCursor, encodeCursor } from "./cursor";
import { orders, walletBalances, walletHolds, walletLedger, walletReceipts, walletTopups } from "./schema";

// D1's side of the wallet: the global copy of the wallets' journals (appended by the queue consumer,
// read by reports, exports and reconciliation), top-ups, and receipts. The journal of record is each
// wallet's object (src/objects/wallet-journal.ts). Balances and refund totals here are moved by the
// triggers in migrations/0005 inside the statement that appends a row, and their CHECKs keep the copy in
// its journal's order (see appendLedgerRowsStatement).

export type LedgerRow = typeof walletLedger.$inferSelect;
type TopupRow = typeof walletTopups.$inferSelect;
export type WalletReceiptRow = typeof walletReceipts.$inferSelect;

export function toWalletTransaction(row: LedgerRow): WalletTransaction {
  return {
    id: row.id,
    user_id: row.userId,
    type: row.type,
    direction: row.direction,
    amount_cents: row.amountCents,
    currency: row.currency,
    reference: row.reference,
    reversal_of: row.reversalOf,
    event_id: row.eventId,
    idempotency_key: row.idempotencyKey,
    created_at: row.createdAt,
    created_by: row.createdBy,
  };
}

/**
 * Appends posted transfers from the wallets' journals, in order, in ONE statement, skipping any whose id
 * is already in the ledger: a redelivered event writes nothing twice. A plain INSERT with a filter, never
 * OR IGNORE: that would also swallow the CHECK of the balance row the trigger moves, letting a row in
 * without moving the balance. A row whose predecessor in its journal has not arrived yet (a refund before
 * its deduction, a debit before the credit that covers it) fails that CHECK or trigger, and its event is
 * retried: D1's copy only ever holds rows whose journal order it can check.
 */
export function appendLedgerRowsStatement(db: Db, rows: readonly WalletTransaction[], now: Date): Statement {
  return db
    .insert(walletLedger)
    .select(
      selectJsonRows(
        rows,
        [
          "id",
          "user_id",
          "type",
          "direction",
          "amount_cents",
          "currency",
          "reference",
          "idempotency_key",
          "reversal_of",
          "event_id",
          "created_at",
          "created_by",
          sql`${now.toISOString()}`,
        ],
        sql`NOT EXISTS (SELECT 1 FROM ${walletLedger} WHERE ${walletLedger.id} = json_extract(value, '$.id'))`,
      ),
    );
}

/**
 * Resolves a credit hold D1 placed before the wallet's journal, as the journal resolved it. Guarded by
 * PENDING, so a redelivery matches nothing (the hold's trigger would throw on a second resolution).
 */
export function resolveLegacyHoldStatement(
  db: Db,
  orderId: string,
  status: "POSTED" | "VOIDED",
  at: string,
): Statement {
  return db
    .update(walletHolds)
    .set({ status, resolvedAt: at })
    .where(and(eq(walletHolds.orderId, orderId), eq(walletHolds.status, "PENDING")));
}

/**
 * One page of a wallet's D1 ledger, oldest first: what the wallet's object copies when it opens its
 * journal (src/objects/wallet-opening.ts).
 */
export async function walletHistoryPage(
  db: Db,
  userId: string,
  after: LedgerCursor | undefined,
  limit: number,
): Promise<LedgerRow[]> {
  return db
    .select()
    .from(walletLedger)
    .where(
      and(
        eq(walletLedger.userId, userId),
        after
          ? sql`(${walletLedger.createdAt}, ${walletLedger.id}) > (${after.createdAt}, ${after.id})`
          : undefined,
      ),
    )
    .orderBy(asc(walletLedger.createdAt), asc(walletLedger.id))
    .limit(limit);
}

/** Credit holds D1 placed for a wallet's orders before the wallet's object owned them, still PENDING. */
export async function pendingHoldsOf(
  db: Db,
  userId: string,
): Promise<
  { orderId: string; amountCents: number; currency: string; createdAt: string; expiresAt: string }[]
> {
  return db
    .select({
      orderId: walletHolds.orderId,
      amountCents: walletHolds.amountCents,
      currency: walletHolds.currency,
      createdAt: walletHolds.createdAt,
      expiresAt: orders.expiresAt,
    })
    .from(walletHolds)
    .innerJoin(orders, eq(orders.id, walletHolds.orderId))
    .where(and(eq(walletHolds.userId, userId), eq(walletHolds.status, "PENDING")));
}

/** A journal row D1 cannot take yet: an earlier row of its wallet is still on its way. */
export const isLedgerOutOfOrder = (error: unknown) =>
  isConstraintError(error, /wallet_balance_not_negative|wallet_holds_within_balance|FOREIGN KEY/) ||
  errorMatches(error, /wallet_refund_target_invalid/);

export const isTopupAlreadySettled = (error: unknown) => errorMatches(error, /wallet_topup_already_settled/);
export const isDuplicateTopupKey = (error: unknown) =>
  isConstraintError(error, /UNIQUE.*wallet_topups\.(user_id|idempotency_key)/);

export async function findLedgerEntry(db: Db, id: string): Promise<LedgerRow | undefined> {
  const [row] = await db.select().from(walletLedger).where(eq(walletLedger.id, id)).limit(1);
  return row;
}

/** Where the next page starts: the last row returned, in the listing's order. */
export interface LedgerCursor {
  createdAt: string;
  id: string;
}

export function encodeLedgerCursor(cursor: LedgerCursor): string {
  return encodeCursor([cursor.createdAt, cursor.id]);
}

/** An opaque cursor from a previous page, or undefined when the text is not one. */
export function decodeLedgerCursor(text: string): LedgerCursor | undefined {
  const position = decodeCursor(text);
  if (position?.length === 2 && typeof position[0] === "string" && typeof position[1] === "string") {
    return { createdAt: position[0], id: position[1] };
  }
  return undefined;
}

export interface LedgerReportFilter {
  fromIso: string;
  toIso: string;
  type?: LedgerType;
  eventId?: string;
}

/** One keyset page of ledger rows with `from <= created_at < to`, oldest first, for reports and exports. */
export async function pageLedger(
  db: Db,
  filter: LedgerReportFilter,
  after: LedgerCursor | undefined,
  limit: number,
): Promise<{ rows: LedgerRow[]; next: LedgerCursor | undefined }> {
  const rows = await db
    .select()
    .from(walletLedger)
    .where(
      and(
        gte(walletLedger.createdAt, filter.fromIso),
        lt(walletLedger.createdAt, filter.toIso),
        filter.type === undefined ? undefined : eq(walletLedger.type, filter.type),
        filter.eventId === undefined ? undefined : eq(walletLedger.eventId, filter.eventId),
        after
          ? sql`(${walletLedger.createdAt}, ${walletLedger.id}) > (${after.createdAt}, ${after.id})`
          : undefined,
      ),
    )
    .orderBy(asc(walletLedger.createdAt), asc(walletLedger.id))
    .limit(limit + 1);
  const page = rows.slice(0, limit);
  const last = page.at(-1);
  return {
    rows: page,
    next: rows.length > limit && last ? { createdAt: last.createdAt, id: last.id } : undefined,
  };
}

/**
 * The longest time a row projected since `since` took to arrive from its wallet's journal, in ms; null if
 * none arrived since then.
 */
export async function observedLedgerLagMs(db: Db, since: Date): Promise<number | null> {
  const [row] = await db
    .select({
      lag: sql<
        number | null
      >`max(round((julianday(${walletLedger.projectedAt}) - julianday(${walletLedger.createdAt})) * 86400000))`,
    })
    .from(walletLedger)
    .where(gte(walletLedger.projectedAt, since.toISOString()));
  return row?.lag ?? null;
}

export const LEDGER_CSV_HEADER = [
  "transaction_id",
  "created_at",
  "user_id",
  "type",
  "direction",
  "amount_cents",
  "currency",
  "reference",
  "reversal_of",
  "event_id",
  "idempotency_key",
  "created_by",
] as const;

export function ledgerCsvFields(row: LedgerRow) {
  return [
    row.id,
    row.createdAt,
    row.userId,
    row.type,
    row.direction,
    row.amountCents,
    row.currency,
    row.reference,
    row.reversalOf,
    row.eventId,
    row.idempotencyKey,
    row.createdBy,
  ];
}

// Top-ups: a pending request for credit that the payment webhook settles exactly once.

export function toTopup(row: TopupRow): Topup {
  return {
    topup_id: row.id,
    status: row.status,
    amount_cents: row.amountCents,
    currency: row.currency,
    created_at: row.createdAt,
  };
}

export function insertTopupStatement(
  db: Db,
  topup: { userId: string; amountCents: number; currency: string; idempotencyKey: string; now: Date },
): { row: TopupRow; statement: Statement } {
  const timestamp = topup.now.toISOString();
  const row: TopupRow = {
    id: newId("top"),
    userId: topup.userId,
    amountCents: topup.amountCents,
    currency: topup.currency,
    status: "PENDING_PAYMENT",
    idempotencyKey: topup.idempotencyKey,
    createdAt: timestamp,
    updatedAt: timestamp,
  };
  return { row, statement: db.insert(walletTopups).values(row) };
}

export async function findTopup(db: Db, id: string): Promise<TopupRow | undefined> {
  const [row] = await db.select().from(walletTopups).where(eq(walletTopups.id, id)).limit(1);
  return row;
}

export async function findTopupByKey(db: Db, userId: string, key: string): Promise<TopupRow | undefined> {
  const [row] = await db
    .select()
    .from(walletTopups)
    .where(and(eq(walletTopups.userId, userId), eq(walletTopups.idempotencyKey, key)))
    .limit(1);
  return row;
}

/** Settles a pending top-up; the trigger makes a second settlement throw and roll back its batch. */
export function settleTopupStatement(
  db: Db,
  id: string,
  status: Exclude<TopupStatus, "PENDING_PAYMENT">,
  now: Date,
): Statement {
  return db.update(walletTopups).set({ status, updatedAt: now.toISOString() }).where(eq(walletTopups.id, id));
}

// Receipts, written by the queue consumer.

export interface NewWalletReceipt {
  transactionId: string;
  userId: string;
  kind: WalletReceiptRow["kind"];
  amountCents: number;
  currency: string;
  reference: string | null;
  eventId: string | null;
  deviceId: string | null;
  createdAt: string;
}

/** Writes the transaction's receipt unless it exists, and returns the stored one. */
export async function writeWalletReceipt(
  db: Db,
  receipt: NewWalletReceipt,
  now: Date,
): Promise<WalletReceiptRow | undefined> {
  const id = receiptIdForTransaction(receipt.transactionId);
  const [, stored] = await db.batch([
    db
      .insert(walletReceipts)
      .values({ id, ...receipt, writtenAt: now.toISOString(), mailedAt: null })
      .onConflictDoNothing(),
    db.select().from(walletReceipts).where(eq(walletReceipts.id, id)),
  ]);
  return stored[0];
}

/**
 * The set form of writeWalletReceipt for a queue batch: every receipt in one statement (one JSON
 * parameter), each written unless its transaction's receipt exists.
 */
export function writeWalletReceiptsStatement(db: Db, receipts: NewWalletReceipt[], now: Date): Statement {
  const rows = receipts.map((receipt) => ({
    id: receiptIdForTransaction(receipt.transactionId),
    ...receipt,
  }));
  return db
    .insert(walletReceipts)
    .select(
      selectJsonRows(rows, [
        "id",
        "transactionId",
        "userId",
        "kind",
        "amountCents",
        "currency",
        "reference",
        "eventId",
        "deviceId",
        "createdAt",
        sql`${now.toISOString()}`,
        // mailed_at, mail_skipped_at: not mailed yet.
        sql`NULL`,
        sql`NULL`,
      ]),
    )
    .onConflictDoNothing();
}

/** Ids travel as one JSON parameter: D1 allows 100 bound parameters per statement, a batch may hold 100. */
const idIn = (ids: string[]) =>
  sql`${walletReceipts.id} IN (SELECT value FROM json_each(${JSON.stringify(ids)}))`;

export async function markWalletReceiptsMailed(db: Db, ids: string[], now: Date): Promise<void> {
  if (ids.length === 0) return;
  await db.update(walletReceipts).set({ mailedAt: now.toISOString() }).where(idIn(ids)).run();
}

export async function markWalletReceiptMailed(db: Db, id: string, now: Date): Promise<void> {
  await db.update(walletReceipts).set({ mailedAt: now.toISOString() }).where(eq(walletReceipts.id, id)).run();
}

/** The wallet's latest POS receipt at one event: all a till may see of the wallet's past. */
export async function lastPosReceipt(
  db: Db,
  userId: string,
  eventId: string,
): Promise<WalletReceiptRow | undefined> {
  const [row] = await db
    .select()
    .from(walletReceipts)
    .where(
      and(
        eq(walletReceipts.userId, userId),
        eq(walletReceipts.eventId, eventId),
        eq(walletReceipts.kind, "DEDUCTION"),
      ),
    )
    .orderBy(desc(walletReceipts.createdAt))
    .limit(1);
  return row;
}

/** A ledger row's effect on the balance, in SQL: what the balance triggers add up. */
const signedAmount = sql<number>`CASE ${walletLedger.direction} WHEN 'credit' THEN ${walletLedger.amountCents} ELSE -${walletLedger.amountCents} END`;

/** The signed sum of a wallet's ledger rows in D1's copy, and how many there are. */
export async function ledgerCopyTotals(db: Db, userId: string): Promise<{ sumCents: number; rows: number }> {
  const [row] = await db
    .select({ sum: sql<number>`coalesce(sum(${signedAmount}), 0)`, rows: sql<number>`count(*)` })
    .from(walletLedger)
    .where(eq(walletLedger.userId, userId));
  return { sumCents: row?.sum ?? 0, rows: row?.rows ?? 0 };
}

/**
 * One page of wallets in user id order, each with its balance row and its ledger's signed sum (summed
 * per wallet through the ledger's (user_id, …) index, not by grouping the whole ledger per page).
 */
export async function walletBalancesPage(
  db: Db,
  after: string | undefined,
  limit: number,
): Promise<{ userId: string; balanceCents: number; ledgerSumCents: number; ledgerRows: number }[]> {
  return db
    .select({
      userId: walletBalances.userId,
      balanceCents: walletBalances.balanceCents,
      ledgerSumCents: sql<number>`(SELECT coalesce(sum(CASE l.direction WHEN 'credit' THEN l.amount_cents
        ELSE -l.amount_cents END), 0) FROM wallet_ledger AS l WHERE l.user_id = wallet_balances.user_id)`,
      ledgerRows: sql<number>`(SELECT count(*) FROM wallet_ledger AS l WHERE l.user_id = wallet_balances.user_id)`,
    })
    .from(walletBalances)
    .where(after === undefined ? undefined : sql`${walletBalances.userId} > ${after}`)
    .orderBy(asc(walletBalances.userId))
    .limit(limit);
}
