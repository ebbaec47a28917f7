import type { Db } from "../db/client";
import { type LedgerCursor, type LedgerRow, toWalletTransaction } from "../db/ledger";
import { pendingHoldsOf, walletHistoryPage } from "../db/wallet";
import { ledgerKeys } from "../domain/ledger";
import type { WalletTransactionPosted } from "../queues/messages";
import type { ObjectOutbox } from "./object-outbox";
import type { NewTransfer, WalletJournal } from "./wallet-journal";

// Opening a wallet's journal: the one time its object reads the wallet's past instead of owning it.
//
// Before this layout, D1 was the ledger's store and the object kept a snapshot of it plus the POS
// deductions it had not flushed yet (tables `snapshot`, `pending`, `operations`). A wallet object opens
// its journal on first use, from whichever of these it finds:
// - D1's ledger rows of the wallet (every layout wrote them there), copied as posted transfers;
// - D1's PENDING credit holds of its orders, copied as pending transfers, each marked so that its
//   resolution resolves the D1 hold too;
// - the old layout's unflushed deductions, copied unless D1 already has them (a flush whose answer was
//   lost), their events moved to the outbox either way (each receipt is written once by its id).
// Spent jtis and stored POS outcomes are kept as they are: the old layout had the same tables.
// After that, D1 is only ever written from the journal's events.

/** Ledger rows read per D1 query while opening. */
const HISTORY_PAGE_ROWS = 500;
/**
 * A copied hold is looked at again this long after its order's deadline, if no settlement resolved it:
 * by then its order is paid, expired or failed in D1 (see WalletObject.resolveTimedOut).
 */
export const ORDER_CREDITS_TIMEOUT_MARGIN_MS = 60_000;

export interface WalletHistory {
  ledger: LedgerRow[];
  holds: Awaited<ReturnType<typeof pendingHoldsOf>>;
}

/** Reads the wallet's D1 record: every ledger row, oldest first, and its orders' pending holds. */
export async function readWalletHistory(db: Db, userId: string): Promise<WalletHistory> {
  const ledger: LedgerRow[] = [];
  let after: LedgerCursor | undefined;
  for (;;) {
    const page = await walletHistoryPage(db, userId, after, HISTORY_PAGE_ROWS);
    ledger.push(...page);
    const last = page.at(-1);
    if (page.length < HISTORY_PAGE_ROWS || !last) break;
    after = { createdAt: last.createdAt, id: last.id };
  }
  return { ledger, holds: await pendingHoldsOf(db, userId) };
}

const fromLedgerRow = (row: LedgerRow): NewTransfer => ({
  id: row.id,
  userId: row.userId,
  type: row.type,
  direction: row.direction,
  amountCents: row.amountCents,
  currency: row.currency,
  reference: row.reference,
  reversalOf: row.reversalOf,
  eventId: row.eventId,
  idempotencyKey: row.idempotencyKey,
  createdBy: row.createdBy,
  createdAt: row.createdAt,
});

/** Whether this object's storage is in the layout before the journal (it has the old snapshot table). */
export function hasOldLayout(sql: SqlStorage): boolean {
  return (
    sql.exec("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'snapshot'").toArray().length > 0
  );
}

/**
 * Fills the journal from `history` and the old layout, then opens it. Call inside one transactionSync,
 * after reading the history: either the journal opens complete, or nothing changed.
 */
export function openJournal(
  sql: SqlStorage,
  journal: WalletJournal,
  outbox: ObjectOutbox,
  userId: string,
  history: WalletHistory,
  now: Date,
): void {
  for (const row of history.ledger) journal.importTransfer(fromLedgerRow(row), "posted", null, false);
  for (const hold of history.holds) {
    journal.importTransfer(
      {
        id: `txn_hold_${hold.orderId}`,
        userId,
        type: "DEDUCT",
        direction: "debit",
        amountCents: hold.amountCents,
        currency: hold.currency,
        reference: hold.orderId,
        idempotencyKey: ledgerKeys.order(hold.orderId),
        createdBy: "system:payments",
        createdAt: hold.createdAt,
      },
      "pending",
      Date.parse(hold.expiresAt) + ORDER_CREDITS_TIMEOUT_MARGIN_MS,
      true,
    );
  }
  if (hasOldLayout(sql)) {
    const unflushed = sql
      .exec<{ ledger_row: string; event: string }>(
        "SELECT ledger_row, event FROM pending WHERE kind = 'unflushed' ORDER BY seq",
      )
      .toArray();
    for (const { ledger_row, event } of unflushed) {
      const row = JSON.parse(ledger_row) as LedgerRow;
      if (!journal.hasTransfer(row.id)) journal.importTransfer(fromLedgerRow(row), "posted", null, false);
      const announced: WalletTransactionPosted = {
        ...(JSON.parse(event) as WalletTransactionPosted),
        ledger: toWalletTransaction(row),
      };
      outbox.add(announced);
    }
    // Reservations of the old layout were for D1 batches of the old code, settled in D1 by now; the
    // holds and rows those batches wrote were read above.
    sql.exec("DROP TABLE IF EXISTS pending; DROP TABLE IF EXISTS snapshot; DROP TABLE IF EXISTS operations;");
  }
  journal.open(now);
}
