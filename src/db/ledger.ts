import { and, asc, eq, gte, lt, sql } from "drizzle-orm";
import type { LedgerType, WalletTransaction } from "../types/domain";
import { errorMatches } from "./audit";
import { type Db, isConstraintError, type Statement, selectJsonRows } from "./client";
import { decodeCursor, encodeCursor } from "./cursor";
import { walletLedger } from "./schema";

// D1's `wallet_ledger`: the complete, append-only global copy of every wallet's journal (the journal of
// record is each wallet's object, src/objects/wallet-journal.ts). Appended once per transfer id by the
// queue consumer; read by reports, exports and reconciliation. Balances and refund totals here are moved
// by the triggers in migrations/0005 inside the statement that appends a row, and their CHECKs keep the
// copy in its journal's order (see appendLedgerRowsStatement).

export type LedgerRow = typeof walletLedger.$inferSelect;

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

/** A journal row D1 cannot take yet: an earlier row of its wallet is still on its way. */
export const isLedgerOutOfOrder = (error: unknown) =>
  isConstraintError(error, /wallet_balance_not_negative|wallet_holds_within_balance|FOREIGN KEY/) ||
  errorMatches(error, /wallet_refund_target_invalid/);

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
 *
 * The wallets are those with a balance row and those with a paid top-up: a wallet whose first row never
 * reached D1 (its event dead-lettered) has no balance row yet, and would otherwise never be compared.
 * Each side is walked in index order and cut at `limit` before the union, so a page costs O(limit).
 */
export async function walletBalancesPage(
  db: Db,
  after: string | undefined,
  limit: number,
): Promise<{ userId: string; balanceCents: number; ledgerSumCents: number; ledgerRows: number }[]> {
  const from = after ?? "";
  const rows = await db.all<{
    user_id: string;
    balance_cents: number;
    ledger_sum: number;
    ledger_rows: number;
  }>(sql`
    SELECT w.user_id,
      coalesce((SELECT b.balance_cents FROM wallet_balances AS b WHERE b.user_id = w.user_id), 0) AS balance_cents,
      (SELECT coalesce(sum(CASE l.direction WHEN 'credit' THEN l.amount_cents ELSE -l.amount_cents END), 0)
         FROM wallet_ledger AS l WHERE l.user_id = w.user_id) AS ledger_sum,
      (SELECT count(*) FROM wallet_ledger AS l WHERE l.user_id = w.user_id) AS ledger_rows
    FROM (
      SELECT user_id FROM (SELECT user_id FROM wallet_balances WHERE user_id > ${from} ORDER BY user_id LIMIT ${limit})
      UNION
      SELECT user_id FROM (SELECT DISTINCT user_id FROM wallet_topups
        WHERE status = 'PAID' AND user_id > ${from} ORDER BY user_id LIMIT ${limit})
    ) AS w
    ORDER BY w.user_id LIMIT ${limit}`);
  return rows.map((row) => ({
    userId: row.user_id,
    balanceCents: row.balance_cents,
    ledgerSumCents: row.ledger_sum,
    ledgerRows: row.ledger_rows,
  }));
}
