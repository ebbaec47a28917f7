import { publicJwks } from "../auth/qr-token";
import type { Db } from "../db/client";
import { OFFLINE_KIT_MAX_ENTRIES, type ScarceEntitlement, scarceEntitlements } from "../db/offline-kit";
import type { OfflineBudget } from "../domain/offline-rule";
import type { Config } from "../env";
import type { Device } from "../types/domain";

/**
 * A delta asks again for a little before the last kit: a read model change computed just before that kit
 * was read but committed just after it would otherwise fall between the two. Entries sent twice merge.
 */
export const OFFLINE_KIT_DELTA_OVERLAP_SECONDS = 30;

export interface OfflineKit {
  issued_at: string;
  valid_until: string;
  issuer: string;
  jwks: Awaited<ReturnType<typeof publicJwks>>;
  functions: string[] | null;
  blocked: { code: string; functions: string[] }[];
  scarce: { code: string; function: string; remaining_uses: number }[];
  complete: boolean;
  budget: OfflineBudget;
}

/**
 * What a gate needs to decide alone (src/domain/offline-rule.ts): the keys to check codes with, the
 * tickets it must refuse (used up for its functions), those with fewer uses left than its budget, and the
 * budget. The lists come from the tickets' read model, which follows the objects within seconds; a gate's
 * own knowledge never lets a stale kit raise a count it has seen lower.
 */
export async function buildOfflineKit(
  db: Db,
  config: Config,
  device: Device,
  request: { since?: Date; now: Date },
): Promise<OfflineKit> {
  const budget: OfflineBudget = {
    max_offline_seconds: config.offlineMaxSeconds,
    accepts_per_ticket_function: config.offlineAcceptsPerTicketFunction,
  };
  const since =
    request.since &&
    new Date(request.since.getTime() - OFFLINE_KIT_DELTA_OVERLAP_SECONDS * 1000).toISOString();
  const [jwks, entries] = await Promise.all([
    publicJwks(config),
    scarceEntitlements(db, {
      functions: device.functions,
      // Used up (0) always; with a budget above one use, also the counts below it.
      below: Math.max(1, budget.accepts_per_ticket_function),
      since,
      limit: OFFLINE_KIT_MAX_ENTRIES,
    }),
  ]);
  const complete = entries.length <= OFFLINE_KIT_MAX_ENTRIES;
  const kept = entries.slice(0, OFFLINE_KIT_MAX_ENTRIES);
  return {
    issued_at: request.now.toISOString(),
    valid_until: new Date(request.now.getTime() + budget.max_offline_seconds * 1000).toISOString(),
    issuer: config.serviceIssuer,
    jwks,
    functions: device.functions,
    blocked: blockedTickets(kept),
    scarce: kept
      .filter((entry) => entry.remainingUses > 0)
      .map((entry) => ({ code: entry.code, function: entry.fn, remaining_uses: entry.remainingUses })),
    complete,
    budget,
  };
}

/** Used-up entries grouped per ticket, in the order first seen (newest change first). */
function blockedTickets(entries: ScarceEntitlement[]): OfflineKit["blocked"] {
  const byCode = new Map<string, string[]>();
  for (const entry of entries) {
    if (entry.remainingUses > 0) continue;
    const functions = byCode.get(entry.code) ?? [];
    functions.push(entry.fn);
    byCode.set(entry.code, functions);
  }
  return [...byCode].map(([code, functions]) => ({ code, functions: functions.sort() }));
}
