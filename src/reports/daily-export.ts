import type { Db } from "../db/client";
import {
  LEDGER_CSV_HEADER,
  type LedgerCursor,
  type LedgerReportFilter,
  ledgerCsvFields,
  pageLedger,
} from "../db/ledger";
import {
  OFFLINE_CONFLICT_CSV_HEADER,
  type OfflineConflictCursor,
  offlineConflictCsvFields,
  pageOfflineConflicts,
} from "../db/offline-conflicts";
import {
  pageRedemptions,
  REDEMPTION_CSV_HEADER,
  type RedemptionCursor,
  redemptionCsvFields,
} from "../db/redemptions";
import { dayRange } from "../domain/report-range";
import { csvLine, csvStream } from "./csv";
import { writeStreamToR2 } from "./r2-csv";

/** Rows read from D1 per page while exporting. */
export const EXPORT_PAGE_ROWS = 1_000;
export const EXPORT_NAME_PATTERN = /^(redemptions|transactions)-\d{4}-\d{2}-\d{2}\.csv$/;
export const CSV_CONTENT_TYPE = "text/csv; charset=utf-8";

export function exportName(kind: "redemptions" | "transactions", day: string): string {
  return `${kind}-${day}.csv`;
}

export function redemptionsCsv(db: Db, filter: Parameters<typeof pageRedemptions>[1]) {
  return csvStream<RedemptionCursor>(REDEMPTION_CSV_HEADER, async (after) => {
    const page = await pageRedemptions(db, filter, after, EXPORT_PAGE_ROWS);
    return { lines: page.rows.map((row) => csvLine(redemptionCsvFields(row))), next: page.next };
  });
}

export function offlineConflictsCsv(db: Db, range: { fromIso: string; toIso: string }) {
  return csvStream<OfflineConflictCursor>(OFFLINE_CONFLICT_CSV_HEADER, async (after) => {
    const page = await pageOfflineConflicts(db, range, after, EXPORT_PAGE_ROWS);
    return { lines: page.rows.map((row) => csvLine(offlineConflictCsvFields(row))), next: page.next };
  });
}

/**
 * Exports one UTC day of redemptions to `redemptions-<day>.csv`. Re-running replaces the same object with
 * the same content, so the cron may safely fire twice.
 */
export async function exportRedemptionsDay(db: Db, bucket: R2Bucket, day: string) {
  const name = exportName("redemptions", day);
  const { bytes } = await writeStreamToR2(bucket, name, redemptionsCsv(db, dayRange(day)), {
    contentType: CSV_CONTENT_TYPE,
  });
  return { name, bytes };
}

export function transactionsCsv(db: Db, filter: LedgerReportFilter) {
  return csvStream<LedgerCursor>(LEDGER_CSV_HEADER, async (after) => {
    const page = await pageLedger(db, filter, after, EXPORT_PAGE_ROWS);
    return { lines: page.rows.map((row) => csvLine(ledgerCsvFields(row))), next: page.next };
  });
}

/** Exports one UTC day of wallet ledger rows to `transactions-<day>.csv`; re-running writes the same object. */
export async function exportTransactionsDay(db: Db, bucket: R2Bucket, day: string) {
  const name = exportName("transactions", day);
  const { bytes } = await writeStreamToR2(bucket, name, transactionsCsv(db, dayRange(day)), {
    contentType: CSV_CONTENT_TYPE,
  });
  return { name, bytes };
}
