import { and, desc, gt, inArray, lt, sql } from "drizzle-orm";
import type { Db } from "./client";
import { ticketEntitlements } from "./schema";

/**
 * Entries an offline kit carries at most: a few hundred kilobytes of JSON for a phone to keep. The most
 * recently used-up tickets come first (a screenshot is passed on soon after its ticket was used up); a kit
 * cut at the bound says so (`complete: false`).
 */
export const OFFLINE_KIT_MAX_ENTRIES = 5_000;

export interface ScarceEntitlement {
  code: string;
  fn: string;
  remainingUses: number;
}

/**
 * Ticket+functions with fewer than `below` uses left (0 = used up), for the device's functions (null:
 * all), newest change first, changed after `since` when given; at most `limit` + 1, so the caller can tell
 * a cut list from a complete one. Reads one range of the (remaining_uses, uses_changed_at) index per count.
 */
export async function scarceEntitlements(
  db: Db,
  query: { functions: readonly string[] | null; below: number; since?: string; limit: number },
): Promise<ScarceEntitlement[]> {
  const rows = await db
    .select({
      code: ticketEntitlements.ticketCode,
      fn: ticketEntitlements.function,
      remainingUses: ticketEntitlements.remainingUses,
    })
    .from(ticketEntitlements)
    .where(
      and(
        lt(ticketEntitlements.remainingUses, query.below),
        query.functions === null ? undefined : inArray(ticketEntitlements.function, [...query.functions]),
        query.since === undefined ? undefined : gt(ticketEntitlements.usesChangedAt, query.since),
      ),
    )
    // SQLite sorts NULL lowest: rows last moved before the column existed come after every dated change.
    .orderBy(desc(ticketEntitlements.usesChangedAt), sql`${ticketEntitlements.ticketCode}`)
    .limit(query.limit + 1);
  return rows;
}
