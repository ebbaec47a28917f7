import type { Db, Statement } from "../db/client";
import { appendLedgerRowsStatement, isLedgerOutOfOrder } from "../db/ledger";
import { resolveLegacyHoldStatement } from "../db/wallet";
import type { WalletTransaction } from "../types/domain";
import type { EventMessage } from "./messages";

// D1's copy of the wallets' journals: each wallet event carries the posted transfer it announces, and the
// consumer appends it to `wallet_ledger` before anything that refers to it (a receipt's foreign key), in
// the same batch, once per transaction id.

/** How long to wait before retrying a row whose predecessor in its journal has not been copied yet. */
const OUT_OF_ORDER_RETRY_SECONDS = 1;

/** Thrown when D1 cannot take a journal row yet; the consumer retries its message after the delay. */
export class LedgerRowTooEarly extends Error {
  readonly retryAfterSeconds = OUT_OF_ORDER_RETRY_SECONDS;
  constructor(cause: unknown) {
    super(`wallet ledger row arrived before its predecessor: ${String(cause)}`);
  }
}

type WalletEvent = Extract<
  EventMessage,
  { type: "wallet.deducted" | "wallet.topped_up" | "wallet.refunded" | "wallet.posted" }
>;

/**
 * What copying these events' transfers writes, in their order: a legacy hold a posting resolves is
 * released first (held −= x) and the DEDUCT appended after, or the balance would dip below what is held.
 */
export function ledgerCopyStatements(db: Db, events: readonly WalletEvent[], now: Date): Statement[] {
  const rows: WalletTransaction[] = [];
  const holds: Statement[] = [];
  for (const event of events) {
    if (!event.ledger) continue; // from before the journal: its row was written to D1 first
    rows.push(event.ledger);
    if (event.type === "wallet.posted" && event.legacy_hold && event.ledger.reference !== null) {
      holds.push(resolveLegacyHoldStatement(db, event.ledger.reference, "POSTED", event.ledger.created_at));
    }
  }
  return rows.length === 0 ? holds : [...holds, appendLedgerRowsStatement(db, rows, now)];
}

/** Runs a batch that copies journal rows, turning "too early" into a retry after a moment. */
export async function withLedgerOrder<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    if (isLedgerOutOfOrder(error)) throw new LedgerRowTooEarly(error);
    throw error;
  }
}
