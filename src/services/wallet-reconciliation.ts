import pMap from "p-map";
import { getDb } from "../db/client";
import { decodeCursor, encodeCursor } from "../db/cursor";
import { ledgerCopyTotals, walletBalancesPage } from "../db/ledger";
import { LEDGER_LAG_BOUND_MS } from "../domain/ledger";
import type { Env } from "../env";
import { walletObject } from "./wallet-object";

/** Wallets compared per page (one D1 read each). */
export const RECONCILIATION_PAGE_SIZE = 100;
/**
 * How long a wallet's unsent events may explain a difference. Its alarm sends them within seconds and
 * retries every few; events still unsent this long after the wallet's newest posting are stuck (a send
 * that keeps failing), and the difference is reported instead of being waited for forever.
 */
export const UNSENT_STUCK_AFTER_MS = 10 * 60 * 1000;
/** Wallet objects asked at once: enough to overlap their round trips, few enough not to crowd D1. */
const OBJECTS_AT_ONCE = 5;

/**
 * - `balance_row_differs`: D1's `wallet_balances` row is not the signed sum of the wallet's ledger rows
 *   (the triggers that keep it are broken, or someone wrote it by hand).
 * - `object_differs`: the wallet's journal (its object, the record) and D1's copy disagree, with nothing
 *   in flight: another balance than the copy's sum, or another number of rows once the newest posting is
 *   older than LEDGER_LAG_BOUND_MS (a row lost on the way, or one the journal never made), and no event is
 *   waiting to be sent, or one has waited past UNSENT_STUCK_AFTER_MS (a send that keeps failing).
 */
export type MismatchReason = "balance_row_differs" | "object_differs";

export interface WalletMismatch {
  user_id: string;
  reason: MismatchReason;
  ledger_sum_cents: number;
  balance_row_cents: number;
  /** null when the object was not compared (its latest transfers may still be on their way to D1). */
  object_balance_cents: number | null;
}

export interface ReconciliationPage {
  /** Wallets compared on this page. */
  checked: number;
  /** Of those, wallets whose copy may still lag: compared in D1 only, and again on the next run. */
  in_flight: number;
  mismatches: WalletMismatch[];
  /** Where the next page starts; null after the last wallet. */
  next_cursor: string | null;
}

const encodeWalletCursor = (userId: string) => encodeCursor([userId]);

/** The user id a page cursor continues after, or undefined when the text is not such a cursor. */
export function decodeWalletCursor(text: string): string | undefined {
  const position = decodeCursor(text);
  return position?.length === 1 && typeof position[0] === "string" ? position[0] : undefined;
}

/**
 * Checks one page of wallets, in user id order after `after`: the balance row against the signed sum of
 * the D1 ledger, and the wallet's journal (its object, the record) against the same sum once D1's lag is
 * over for it. Mismatches are returned and logged as errors; nothing is ever corrected here, since which side is
 * right is a person's call. A change landing between the two reads can make a false difference, so a
 * difference is confirmed with a second read of the ledger's sum before it is reported.
 */
export async function reconcileWalletPage(
  env: Pick<Env, "DB" | "WALLETS">,
  page: { after?: string; limit?: number } = {},
): Promise<ReconciliationPage> {
  const db = getDb(env.DB);
  const limit = page.limit ?? RECONCILIATION_PAGE_SIZE;
  const rows = await walletBalancesPage(db, page.after, limit);
  let inFlight = 0;
  const found = await pMap(
    rows,
    async (row): Promise<WalletMismatch[]> => {
      const mismatches: WalletMismatch[] = [];
      const mismatch = (
        reason: MismatchReason,
        objectBalanceCents: number | null,
        sum = row.ledgerSumCents,
      ) =>
        mismatches.push({
          user_id: row.userId,
          reason,
          ledger_sum_cents: sum,
          balance_row_cents: row.balanceCents,
          object_balance_cents: objectBalanceCents,
        });
      if (row.balanceCents !== row.ledgerSumCents) mismatch("balance_row_differs", null);
      const object = await walletObject(env.WALLETS, row.userId).reconciliationView(row.userId);
      const differs = (copy: { sumCents: number; rows: number }) =>
        object.balanceCents !== copy.sumCents || object.postedCount !== copy.rows;
      if (!differs({ sumCents: row.ledgerSumCents, rows: row.ledgerRows })) return mismatches;
      // The copy may only be behind: events not sent yet, or a posting too recent to have arrived.
      const newestMs = object.newestPostedAt === null ? 0 : Date.parse(object.newestPostedAt);
      const sinceNewestMs = Date.now() - newestMs;
      if (sinceNewestMs < LEDGER_LAG_BOUND_MS || (object.unsent && sinceNewestMs < UNSENT_STUCK_AFTER_MS)) {
        inFlight += 1;
        return mismatches;
      }
      const copyNow = await ledgerCopyTotals(db, row.userId);
      if (differs(copyNow)) mismatch("object_differs", object.balanceCents, copyNow.sumCents);
      return mismatches;
    },
    { concurrency: OBJECTS_AT_ONCE },
  );
  const mismatches = found.flat();
  for (const mismatch of mismatches) {
    console.error(JSON.stringify({ level: "error", msg: "wallet reconciliation mismatch", ...mismatch }));
  }
  return {
    checked: rows.length,
    in_flight: inFlight,
    mismatches,
    next_cursor: rows.length === limit ? encodeWalletCursor(rows.at(-1)?.userId ?? "") : null,
  };
}

/** Every wallet, page after page (the daily cron). Answers the totals; mismatches are logged as found. */
export async function reconcileAllWallets(
  env: Pick<Env, "DB" | "WALLETS">,
): Promise<{ checked: number; in_flight: number; mismatches: number }> {
  const totals = { checked: 0, in_flight: 0, mismatches: 0 };
  let after: string | undefined;
  do {
    const page = await reconcileWalletPage(env, { after });
    totals.checked += page.checked;
    totals.in_flight += page.in_flight;
    totals.mismatches += page.mismatches.length;
    after = page.next_cursor === null ? undefined : decodeWalletCursor(page.next_cursor);
  } while (after !== undefined);
  return totals;
}
