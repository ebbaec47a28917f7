import { and, asc, eq, gt, gte, lt, or } from "drizzle-orm";
import type { OfflineScanFlagged } from "../queues/messages";
import type { Db, Statement } from "./client";
import { offlineConflicts } from "./schema";

export type OfflineConflictRow = typeof offlineConflicts.$inferSelect;

/** Stores a flagged offline scan once: the flag's id is deterministic, so a redelivery inserts nothing. */
export function recordOfflineFlagStatement(db: Db, flag: OfflineScanFlagged): Statement {
  return db
    .insert(offlineConflicts)
    .values({
      id: flag.id,
      outcome: flag.outcome,
      reason: flag.reason,
      scanId: flag.scan_id,
      ticketCode: flag.ticket_code,
      function: flag.function,
      deviceId: flag.device_id,
      operatorId: flag.operator_id,
      sessionId: flag.session_id,
      locationId: flag.location_id,
      scannedAt: flag.scanned_at,
      recordedAt: flag.recorded_at,
      overBudget: flag.over_budget,
      otherRedemptionId: flag.other?.redemption_id ?? null,
      otherDeviceId: flag.other?.device_id ?? null,
      otherScannedAt: flag.other?.scanned_at ?? null,
      otherOffline: flag.other ? flag.other.offline : null,
    })
    .onConflictDoNothing();
}

export interface OfflineConflictCursor {
  scannedAt: string;
  id: string;
}

/** One keyset page of flagged offline scans with `from <= scanned_at < to`, in (scanned_at, id) order. */
export async function pageOfflineConflicts(
  db: Db,
  filter: { fromIso: string; toIso: string },
  after: OfflineConflictCursor | undefined,
  pageSize: number,
): Promise<{ rows: OfflineConflictRow[]; next: OfflineConflictCursor | undefined }> {
  const rows = await db
    .select()
    .from(offlineConflicts)
    .where(
      and(
        gte(offlineConflicts.scannedAt, filter.fromIso),
        lt(offlineConflicts.scannedAt, filter.toIso),
        after === undefined
          ? undefined
          : or(
              gt(offlineConflicts.scannedAt, after.scannedAt),
              and(eq(offlineConflicts.scannedAt, after.scannedAt), gt(offlineConflicts.id, after.id)),
            ),
      ),
    )
    .orderBy(asc(offlineConflicts.scannedAt), asc(offlineConflicts.id))
    .limit(pageSize);
  const last = rows.at(-1);
  return {
    rows,
    next: rows.length === pageSize && last ? { scannedAt: last.scannedAt, id: last.id } : undefined,
  };
}

/** The report's shape of one row (JSON), also the CSV's columns in this order. */
export function toOfflineConflict(row: OfflineConflictRow) {
  return {
    id: row.id,
    outcome: row.outcome,
    reason: row.reason,
    scan_id: row.scanId,
    ticket_code: row.ticketCode,
    function: row.function,
    device_id: row.deviceId,
    operator_id: row.operatorId,
    session_id: row.sessionId,
    location_id: row.locationId,
    scanned_at: row.scannedAt,
    recorded_at: row.recordedAt,
    over_budget: row.overBudget,
    other_redemption_id: row.otherRedemptionId,
    other_device_id: row.otherDeviceId,
    other_scanned_at: row.otherScannedAt,
    other_offline: row.otherOffline,
  };
}

export type OfflineConflict = ReturnType<typeof toOfflineConflict>;

export const OFFLINE_CONFLICT_CSV_HEADER = [
  "id",
  "outcome",
  "reason",
  "scan_id",
  "ticket_code",
  "function",
  "device_id",
  "operator_id",
  "session_id",
  "location_id",
  "scanned_at",
  "recorded_at",
  "over_budget",
  "other_redemption_id",
  "other_device_id",
  "other_scanned_at",
  "other_offline",
] as const satisfies readonly (keyof OfflineConflict)[];

export function offlineConflictCsvFields(row: OfflineConflictRow): (string | null)[] {
  const conflict = toOfflineConflict(row);
  return OFFLINE_CONFLICT_CSV_HEADER.map((column) => {
    const value = conflict[column];
    return value === null ? null : String(value);
  });
}
