import { and, asc, eq, gt, gte, lt, or, sql } from "drizzle-orm";
import { type Db, type Statement, selectJsonRows } from "./client";
import { redemptions } from "./schema";

export type RedemptionRow = typeof redemptions.$inferSelect;

/** Idempotent on the redemption id: a redelivered event inserts nothing. */
export function recordRedemptionStatement(db: Db, row: RedemptionRow): Statement {
  return db.insert(redemptions).values(row).onConflictDoNothing();
}

/**
 * Many redemptions in ONE statement (rows travel as one JSON parameter): a queue batch of scans costs one
 * statement to build and run instead of one per scan. Idempotent on each id like the single form.
 */
export function recordRedemptionsStatement(db: Db, rows: RedemptionRow[]): Statement {
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
      ] satisfies (keyof RedemptionRow)[]),
    )
    .onConflictDoNothing();
}

export interface RedemptionFilter {
  fromIso: string;
  toIso: string;
  fn?: string;
  locationId?: string;
}

function filterWhere(filter: RedemptionFilter) {
  return and(
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
 * Redemptions per UTC day, function and location. Reads one range of the covering (ts, function,
 * location_id) index, so its cost follows the range asked for, not the size of the table.
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
    .where(filterWhere(filter))
    .groupBy(day, redemptions.function, redemptions.locationId)
    .orderBy(day, redemptions.function, redemptions.locationId)
    .limit(limit);
  return rows.map((row) => ({ ...row, redemptions: Number(row.redemptions) }));
}

export interface RedemptionCursor {
  ts: string;
  id: string;
}

/** One keyset page of raw events in (ts, id) order, for streaming CSV and exports. */
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
        filterWhere(filter),
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
  ];
}
