import { OFFLINE_QR_SUPPLY_SECONDS, publicJwks } from "../auth/qr-token";
import { TICKET_QR_MAX_AGE_SECONDS } from "../auth/ticket-qr-claims";
import type { Db } from "../db/client";
import { OFFLINE_KIT_MAX_ENTRIES, type ScarceEntitlement, scarceSince, usedUpSince } from "../db/offline-kit";
import type { OfflineBudget } from "../domain/offline-rule";
import type { Config } from "../env";
import type { Device } from "../types/domain";

/**
 * A delta asks again for a little before the last kit: a read model change computed just before that kit
 * was read but committed just after it would otherwise fall between the two. Entries sent twice merge.
 */
export const OFFLINE_KIT_DELTA_OVERLAP_SECONDS = 30;
/** How far behind its ticket's object the read model may run; far more than the seconds it takes. */
const READ_MODEL_LAG_SECONDS = 60;
/**
 * How far back a used-up entry can still matter. A token names the functions already used up when it was
 * signed, so a gate refuses a function used up before then by itself; a kit needs only what
 * was used up after some token still shown was signed: within a phone's supply (10 minutes), a token's
 * age bound, and the read model's lag. Older used-up entries are left out, which keeps kits small however
 * long the deployment runs.
 */
export const OFFLINE_KIT_REACH_SECONDS =
  OFFLINE_QR_SUPPLY_SECONDS + TICKET_QR_MAX_AGE_SECONDS + READ_MODEL_LAG_SECONDS;

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
 * tickets it must refuse (used up for its functions since a token still in reach was signed), those with
 * fewer uses left than its budget, and the budget. The lists come from the tickets' read model, which follows the objects within seconds; a gate's
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
  const nowMs = request.now.getTime();
  const overlapSince =
    request.since &&
    new Date(request.since.getTime() - OFFLINE_KIT_DELTA_OVERLAP_SECONDS * 1000).toISOString();
  const reach = new Date(nowMs - OFFLINE_KIT_REACH_SECONDS * 1000).toISOString();
  const scope = { functions: device.functions, limit: OFFLINE_KIT_MAX_ENTRIES };
  const [jwks, usedUp, scarce] = await Promise.all([
    publicJwks(config),
    usedUpSince(db, { ...scope, changedAfter: overlapSince && overlapSince > reach ? overlapSince : reach }),
    // Above a budget of one use, a gate must also know the counts below it, however old: those are not
    // in the token. (At the default budget of one this list is always empty and not read.)
    budget.accepts_per_ticket_function > 1
      ? scarceSince(db, { ...scope, below: budget.accepts_per_ticket_function, changedAfter: overlapSince })
      : Promise.resolve([]),
  ]);
  const complete = usedUp.length <= OFFLINE_KIT_MAX_ENTRIES && scarce.length <= OFFLINE_KIT_MAX_ENTRIES;
  const kept = [...usedUp.slice(0, OFFLINE_KIT_MAX_ENTRIES), ...scarce.slice(0, OFFLINE_KIT_MAX_ENTRIES)];
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
