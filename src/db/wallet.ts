import { and, asc, desc, eq, gte, lt, sql } from "drizzle-orm";
import { directionOf, holdIdForOrder, receiptIdForTransaction } from "../domain/ledger";
import { newId } from "../ids";
import type {
  LedgerDirection,
  LedgerType,
  Topup,
  TopupStatus,
  WalletSummary,
  WalletTransaction,
} from "../types/domain";
import { errorMatches } from "./audit";
import { type Db, isConstraintError, type Statement, selectJsonRows } from "./client";
import { decodeCursor, encodeCursor } from "./cursor";
import {
  walletBalances,
  walletHolds,
  walletLedger,
  walletReceipts,
  walletRefundTotals,
  walletTopups,
} from "./schema";

// The wallet's store. Balances, held amounts and refund totals are moved by the triggers in
// migrations/0005 inside the statement that appends a ledger row or places/resolves a hold; this module
// only ever appends rows and reads.

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

export interface NewLedgerEntry {
  userId: string;
  type: LedgerType;
  /** Only for ADJUSTMENT; every other type has a fixed direction. */
  direction?: LedgerDirection;
  amountCents: number;
  currency: string;
  reference: string | null;
  idempotencyKey: string;
  reversalOf?: string | null;
  eventId?: string | null;
  createdBy: string;
  now: Date;
}

/**
 * The row to append and its insert. The insert alone moves the balance (and, for a refund, the deduction's
 * refund total); an overdraft or an over-refund fails its CHECK and aborts the whole batch it is in.
 * Never add onConflict handling here: see the note at the top of migrations/0005.
 */
export function ledgerEntry(db: Db, entry: NewLedgerEntry): { row: LedgerRow; statement: Statement } {
  const row: LedgerRow = {
    id: newId("txn"),
    userId: entry.userId,
    type: entry.type,
    direction: directionOf(entry.type, entry.direction),
    amountCents: entry.amountCents,
    currency: entry.currency,
    reference: entry.reference,
    idempotencyKey: entry.idempotencyKey,
    reversalOf: entry.reversalOf ?? null,
    eventId: entry.eventId ?? null,
    createdAt: entry.now.toISOString(),
    createdBy: entry.createdBy,
  };
  return { row, statement: db.insert(walletLedger).values(row) };
}

/**
 * Appends ledger rows decided elsewhere (the wallet object's deductions), in order, in ONE statement,
 * skipping any row whose id is already in the ledger: a flush repeated after its answer was lost writes
 * nothing twice. A plain INSERT with a filter, never OR IGNORE: that would also swallow the CHECK of the
 * balance row the trigger moves, letting a row in without moving the balance.
 */
export function appendLedgerRowsStatement(db: Db, rows: readonly LedgerRow[]): Statement {
  return db
    .insert(walletLedger)
    .select(
      selectJsonRows(
        rows,
        [
          "id",
          "userId",
          "type",
          "direction",
          "amountCents",
          "currency",
          "reference",
          "idempotencyKey",
          "reversalOf",
          "eventId",
          "createdAt",
          "createdBy",
        ],
        sql`NOT EXISTS (SELECT 1 FROM ${walletLedger} WHERE ${walletLedger.id} = json_extract(value, '$.id'))`,
      ),
    );
}

/** The balance would go below zero, or below what is held for pending orders. */
export const isWalletShort = (error: unknown) =>
  isConstraintError(error, /wallet_balance_not_negative|wallet_holds_within_balance/);
export const isRefundOverOriginal = (error: unknown) =>
  isConstraintError(error, /wallet_refund_within_original/);
export const isDuplicateLedgerKey = (error: unknown) =>
  isConstraintError(error, /UNIQUE.*wallet_ledger\.(user_id|idempotency_key)/);
export const isTopupAlreadySettled = (error: unknown) => errorMatches(error, /wallet_topup_already_settled/);
export const isDuplicateTopupKey = (error: unknown) =>
  isConstraintError(error, /UNIQUE.*wallet_topups\.(user_id|idempotency_key)/);

/** The wallet as stored; a user who never had a wallet row has a zero balance. */
/** The wallet's balance row as a query, to run on its own or as the last statement of a posting batch. */
export function walletBalanceQuery(db: Db, userId: string) {
  return db.select().from(walletBalances).where(eq(walletBalances.userId, userId)).limit(1);
}

export function toWalletSummary(
  row: typeof walletBalances.$inferSelect | undefined,
  currency: string,
): WalletSummary {
  if (!row) return { balance_cents: 0, held_cents: 0, available_cents: 0, currency, updated_at: null };
  return {
    balance_cents: row.balanceCents,
    held_cents: row.heldCents,
    available_cents: row.balanceCents - row.heldCents,
    currency: row.currency,
    updated_at: row.updatedAt,
  };
}

export async function readWallet(db: Db, userId: string, currency: string): Promise<WalletSummary> {
  return toWalletSummary((await walletBalanceQuery(db, userId))[0], currency);
}

export async function findLedgerEntry(db: Db, id: string): Promise<LedgerRow | undefined> {
  const [row] = await db.select().from(walletLedger).where(eq(walletLedger.id, id)).limit(1);
  return row;
}

export async function findLedgerEntryByKey(
  db: Db,
  userId: string,
  idempotencyKey: string,
): Promise<LedgerRow | undefined> {
  const [row] = await db
    .select()
    .from(walletLedger)
    .where(and(eq(walletLedger.userId, userId), eq(walletLedger.idempotencyKey, idempotencyKey)))
    .limit(1);
  return row;
}

export async function findRefundTotals(
  db: Db,
  deductId: string,
): Promise<{ original_cents: number; refunded_cents: number } | undefined> {
  const [row] = await db
    .select()
    .from(walletRefundTotals)
    .where(eq(walletRefundTotals.deductId, deductId))
    .limit(1);
  return row && { original_cents: row.originalCents, refunded_cents: row.refundedCents };
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

/** One page of a buyer's ledger, newest first; a keyset page is one range of the (user_id, created_at, id) index. */
export async function listWalletTransactions(
  db: Db,
  userId: string,
  before: LedgerCursor | undefined,
  limit: number,
): Promise<{ transactions: WalletTransaction[]; next: LedgerCursor | null }> {
  const rows = await db
    .select()
    .from(walletLedger)
    .where(
      and(
        eq(walletLedger.userId, userId),
        before
          ? sql`(${walletLedger.createdAt}, ${walletLedger.id}) < (${before.createdAt}, ${before.id})`
          : undefined,
      ),
    )
    .orderBy(desc(walletLedger.createdAt), desc(walletLedger.id))
    .limit(limit + 1);
  const page = rows.slice(0, limit);
  const last = page.at(-1);
  return {
    transactions: page.map(toWalletTransaction),
    next: rows.length > limit && last ? { createdAt: last.createdAt, id: last.id } : null,
  };
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

// Credit holds for orders paid partly by card. Placing one raises `held_cents` (its CHECK refuses more
// than the balance); posting or voiding lowers it again, once: a second resolution throws.

export function placeHoldStatement(
  db: Db,
  hold: { userId: string; orderId: string; amountCents: number; currency: string; now: Date },
): Statement {
  return db.insert(walletHolds).values({
    id: holdIdForOrder(hold.orderId),
    userId: hold.userId,
    orderId: hold.orderId,
    amountCents: hold.amountCents,
    currency: hold.currency,
    status: "PENDING",
    createdAt: hold.now.toISOString(),
    resolvedAt: null,
  });
}

/**
 * Resolves the order's hold. Deliberately not guarded by `status = 'PENDING'`: resolving a resolved hold
 * must throw (the trigger does), not quietly match nothing. No hold for the order matches nothing.
 */
export function resolveHoldStatement(
  db: Db,
  orderId: string,
  status: "POSTED" | "VOIDED",
  now: Date,
): Statement {
  return db
    .update(walletHolds)
    .set({ status, resolvedAt: now.toISOString() })
    .where(eq(walletHolds.orderId, orderId));
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

/** The signed sum of a wallet's ledger rows: what its balance is, by definition. */
export async function ledgerSumCents(db: Db, userId: string): Promise<number> {
  const [row] = await db
    .select({ sum: sql<number>`coalesce(sum(${signedAmount}), 0)` })
    .from(walletLedger)
    .where(eq(walletLedger.userId, userId));
  return row?.sum ?? 0;
}

/**
 * One page of wallets in user id order, each with its balance row and its ledger's signed sum (summed
 * per wallet through the ledger's (user_id, …) index, not by grouping the whole ledger per page).
 */
export async function walletBalancesPage(
  db: Db,
  after: string | undefined,
  limit: number,
): Promise<{ userId: string; balanceCents: number; ledgerSumCents: number }[]> {
  return db
    .select({
      userId: walletBalances.userId,
      balanceCents: walletBalances.balanceCents,
      ledgerSumCents: sql<number>`(SELECT coalesce(sum(CASE l.direction WHEN 'credit' THEN l.amount_cents
        ELSE -l.amount_cents END), 0) FROM wallet_ledger AS l WHERE l.user_id = wallet_balances.user_id)`,
    })
    .from(walletBalances)
    .where(after === undefined ? undefined : sql`${walletBalances.userId} > ${after}`)
    .orderBy(asc(walletBalances.userId))
    .limit(limit);
}
