import { and, asc, eq, gt, gte, isNull, lt, or, sql } from "drizzle-orm";
import { type Db, type Statement, selectJsonRows } from "./client";
import { redemptionAnnulments, redemptions } from "./schema";

export type RedemptionRow = typeof redemptions.$inferSelect;

/**
 * Many redemptions in ONE statement (rows travel as one JSON parameter): a queue batch of scans costs one
 * statement to build and run instead of one per scan. Idempotent on each id: a redelivered event inserts
 * nothing. A redemption whose annulment arrived first (the queue is unordered) is inserted annulled.
 */
export function recordRedemptionsStatement(db: Db, rows: Omit<RedemptionRow, "annulledAt">[]): Statement {
  return db
    .insert(redemptions)
    .select(
      selectJsonRows(rows, [
        "id",
        "ticketCode",
        "function",
        "operatorId",
        "sessionId",
        "deviceId",
        "locationId",
        "ts",
        sql`(SELECT annulled_at FROM redemption_annulments WHERE redemption_id = json_extract(value, '$.id'))`,
        sql`coalesce(json_extract(value, '$.offline'), 0)`,
      ]),
    )
    .onConflictDoNothing();
}

export type RedemptionAnnulmentRow = typeof redemptionAnnulments.$inferSelect;

/**
 * An annulment, as two idempotent statements for one batch: remember it (for a redemption that has not
 * arrived yet), and mark the redemption if it has. Either order of arrival ends with the redemption
 * marked once, at the annulment's time.
 */
export function recordAnnulmentStatements(db: Db, row: RedemptionAnnulmentRow): Statement[] {
  return [
    db.insert(redemptionAnnulments).values(row).onConflictDoNothing(),
    db
      .update(redemptions)
      .set({ annulledAt: row.annulledAt })
      .where(and(eq(redemptions.id, row.redemptionId), isNull(redemptions.annulledAt))),
  ];
}

/** A redemption as the read model holds it: what an annulment needs of one minted before ids named their ticket. */
export interface RecordedRedemption {
  ticketCode: string;
  fn: string;
  deviceId: string;
  scannedAtMs: number;
}

export async function findRecordedRedemption(
  db: Db,
  redemptionId: string,
): Promise<RecordedRedemption | undefined> {
  const [row] = await db
    .select({
      ticketCode: redemptions.ticketCode,
      fn: redemptions.function,
      deviceId: redemptions.deviceId,
      ts: redemptions.ts,
    })
    .from(redemptions)
    .where(eq(redemptions.id, redemptionId))
    .limit(1);
  return (
    row && { ticketCode: row.ticketCode, fn: row.fn, deviceId: row.deviceId, scannedAtMs: Date.parse(row.ts) }
  );
}

export interface RedemptionFilter {
  fromIso: string;
  toIso: string;
  fn?: string;
  locationId?: string;
}

function filterWhere(filter: RedemptionFilter, options: { standingOnly: boolean }) {
  return and(
    options.standingOnly ? isNull(redemptions.annulledAt) : undefined,
    gte(redemptions.ts, filter.fromIso),
    lt(redemptions.ts, filter.toIso),
    filter.fn === undefined ? undefined : eq(redemptions.function, filter.fn),
    filter.locationId === undefined ? undefined : eq(redemptions.locationId, filter.locationId),
  );
}

export interface RedemptionAggregate {
  day: string;
  function: string;
  location_id: string | null;
  redemptions: number;
}

/**
 * Redemptions that stand (not annulled) per UTC day, function and location. Reads one range of the
 * covering (ts, function, location_id, annulled_at) index, so its cost follows the range asked for, not
 * the size of the table.
 */
export async function aggregateRedemptions(
  db: Db,
  filter: RedemptionFilter,
  limit: number,
): Promise<RedemptionAggregate[]> {
  const day = sql<string>`substr(${redemptions.ts}, 1, 10)`;
  const rows = await db
    .select({
      day,
      function: redemptions.function,
      location_id: redemptions.locationId,
      redemptions: sql<number>`count(*)`,
    })
    .from(redemptions)
    .where(filterWhere(filter, { standingOnly: true }))
    .groupBy(day, redemptions.function, redemptions.locationId)
    .orderBy(day, redemptions.function, redemptions.locationId)
    .limit(limit);
  return rows.map((row) => ({ ...row, redemptions: Number(row.redemptions) }));
}

export interface RedemptionCursor {
  ts: string;
  id: string;
}

/** One keyset page of raw events in (ts, id) order, annulled ones included, for streaming CSV and exports. */
export async function pageRedemptions(
  db: Db,
  filter: RedemptionFilter,
  after: RedemptionCursor | undefined,
  pageSize: number,
): Promise<{ rows: RedemptionRow[]; next: RedemptionCursor | undefined }> {
  const rows = await db
    .select()
    .from(redemptions)
    .where(
      and(
        filterWhere(filter, { standingOnly: false }),
        after === undefined
          ? undefined
          : or(gt(redemptions.ts, after.ts), and(eq(redemptions.ts, after.ts), gt(redemptions.id, after.id))),
      ),
    )
    .orderBy(asc(redemptions.ts), asc(redemptions.id))
    .limit(pageSize);
  const last = rows.at(-1);
  return { rows, next: rows.length === pageSize && last ? { ts: last.ts, id: last.id } : undefined };
}

export const REDEMPTION_CSV_HEADER = [
  "redemption_id",
  "ts",
  "ticket_code",
  "function",
  "operator_id",
  "session_id",
  "device_id",
  "location_id",
  "annulled_at",
  "offline",
] as const;

export function redemptionCsvFields(row: RedemptionRow) {
  return [
    row.id,
    row.ts,
    row.ticketCode,
    row.function,
    row.operatorId,
    row.sessionId,
    row.deviceId,
    row.locationId,
    row.annulledAt,
    row.offline ? "true" : "false",
  ];
}
