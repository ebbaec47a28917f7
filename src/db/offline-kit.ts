import { and, desc, eq, gt, inArray, lt } from "drizzle-orm";
import type { Db } from "./client";
import { ticketEntitlements } from "./schema";

/**
 * Entries an offline kit carries at most: a few hundred kilobytes of JSON for a phone to keep. The most
 * recent changes come first; a kit cut at the bound says so (`complete: false`).
 */
export const OFFLINE_KIT_MAX_ENTRIES = 5_000;

export interface ScarceEntitlement {
  code: string;
  fn: string;
  remainingUses: number;
}

interface KitQuery {
  functions: readonly string[] | null;
  limit: number;
}

/**
 * Ticket+functions used up (0 uses left) since `changedAfter`, for the device's functions (null: all),
 * newest first; at most `limit` + 1, so the caller can tell a cut list from a complete one. One range of
 * the (remaining_uses, uses_changed_at) index.
 */
export function usedUpSince(
  db: Db,
  query: KitQuery & { changedAfter: string },
): Promise<ScarceEntitlement[]> {
  return db
    .select(ENTRY)
    .from(ticketEntitlements)
    .where(
      and(
        eq(ticketEntitlements.remainingUses, 0),
        gt(ticketEntitlements.usesChangedAt, query.changedAfter),
        functionFilter(query.functions),
      ),
    )
    .orderBy(desc(ticketEntitlements.usesChangedAt))
    .limit(query.limit + 1);
}

/**
 * Ticket+functions with some uses left but fewer than `below` (a budget above one use), changed after
 * `changedAfter` when given, newest change first; at most `limit` + 1.
 */
export function scarceSince(
  db: Db,
  query: KitQuery & { below: number; changedAfter?: string },
): Promise<ScarceEntitlement[]> {
  return db
    .select(ENTRY)
    .from(ticketEntitlements)
    .where(
      and(
        gt(ticketEntitlements.remainingUses, 0),
        lt(ticketEntitlements.remainingUses, query.below),
        query.changedAfter === undefined
          ? undefined
          : gt(ticketEntitlements.usesChangedAt, query.changedAfter),
        functionFilter(query.functions),
      ),
    )
    .orderBy(desc(ticketEntitlements.usesChangedAt))
    .limit(query.limit + 1);
}

const ENTRY = {
  code: ticketEntitlements.ticketCode,
  fn: ticketEntitlements.function,
  remainingUses: ticketEntitlements.remainingUses,
};

function functionFilter(functions: readonly string[] | null) {
  return functions === null ? undefined : inArray(ticketEntitlements.function, [...functions]);
}
