import type { JSONWebKeySet } from "jose";
import type { OfflineBudget } from "../../../src/domain/offline-rule";
import { api } from "../lib/api";

// The offline kit: what the server hands a gate so it can decide alone (the keys that sign ticket codes,
// the tickets it must never accept offline, the budget). Fetched whole, then as deltas since the last
// one, and merged; a whole kit now and then drops entries a delta cannot take back (a use given back).

export interface BlockedTicket {
  code: string;
  /** The functions it is used up for; absent: all of them. */
  functions?: string[];
}

export interface ScarceUse {
  code: string;
  function: string;
  remaining_uses: number;
}

/** GET /devices/{device_id}/offline-kit, as docs/offline-gates.md pins it. */
export interface OfflineKit {
  issued_at: string;
  valid_until: string;
  issuer: string;
  jwks: JSONWebKeySet;
  functions: string[] | null;
  blocked: BlockedTicket[];
  scarce: ScarceUse[];
  complete: boolean;
  budget: OfflineBudget;
}

/** A kit as the page keeps it. */
export interface StoredKit {
  kit: OfflineKit;
  /** The server's clock minus this device's when the kit arrived (ms): offline decisions run on the server's time. */
  clockOffsetMs: number;
  /** This device's clock when the kit (whole or delta) last arrived (ms). */
  fetchedAtMs: number;
  /** This device's clock when the last whole kit arrived (ms). */
  wholeFetchedAtMs: number;
}

/** A delta only adds and changes entries: a whole kit at least this often drops those that no longer apply. */
export const WHOLE_KIT_EVERY_MS = 10 * 60_000;

function scarceKey(code: string, fn: string): string {
  return `${code}\n${fn}`;
}

/** Both entries' functions: a delta names only the functions used up since the last kit. */
function blockedUnion(older: BlockedTicket | undefined, newer: BlockedTicket): BlockedTicket {
  if (!older) return newer;
  if (older.functions === undefined || newer.functions === undefined) return { code: newer.code };
  return { code: newer.code, functions: [...new Set([...older.functions, ...newer.functions])] };
}

/**
 * `delta` merged into `kit`: a ticket blocked for more functions, a newer count of uses left over the
 * older one; the rest (times, keys, budget) is `delta`'s.
 */
export function mergeKitDelta(kit: OfflineKit, delta: OfflineKit): OfflineKit {
  const blocked = new Map(kit.blocked.map((entry) => [entry.code, entry]));
  for (const entry of delta.blocked) blocked.set(entry.code, blockedUnion(blocked.get(entry.code), entry));
  const scarce = new Map(kit.scarce.map((entry) => [scarceKey(entry.code, entry.function), entry]));
  for (const entry of delta.scarce) scarce.set(scarceKey(entry.code, entry.function), entry);
  return {
    ...delta,
    blocked: [...blocked.values()],
    scarce: [...scarce.values()],
    // A list cut at its size bound stays incomplete until a whole kit says otherwise.
    complete: kit.complete && delta.complete,
  };
}

/**
 * Fetches the device's kit: a delta since `stored` when there is one recent enough, else a whole kit.
 * Rejects like api() does (NetworkError, ApiProblem).
 */
export async function fetchKit(
  deviceId: string,
  sessionId: string,
  token: string,
  stored: StoredKit | undefined,
): Promise<StoredKit> {
  const sentAtMs = Date.now();
  const whole = !stored || sentAtMs - stored.wholeFetchedAtMs >= WHOLE_KIT_EVERY_MS;
  const { data } = await api<OfflineKit>("GET", `/devices/${encodeURIComponent(deviceId)}/offline-kit`, {
    token,
    query: { session_id: sessionId, since: whole ? undefined : stored?.kit.issued_at },
  });
  const arrivedAtMs = Date.now();
  const kit = whole || !stored ? data : mergeKitDelta(stored.kit, data);
  return {
    kit,
    // The server signed the kit somewhere in the round trip: its middle is the best guess.
    clockOffsetMs: Date.parse(data.issued_at) - (sentAtMs + arrivedAtMs) / 2,
    fetchedAtMs: arrivedAtMs,
    wholeFetchedAtMs: whole || !stored ? arrivedAtMs : stored.wholeFetchedAtMs,
  };
}

/** What the kit says of one ticket+function. */
export function kitKnowledge(
  kit: OfflineKit,
  ticketCode: string,
  fn: string,
): { blocked: boolean; remaining: number | undefined } {
  const blocked = kit.blocked.find((entry) => entry.code === ticketCode);
  const scarce = kit.scarce.find((entry) => entry.code === ticketCode && entry.function === fn);
  return {
    blocked: blocked !== undefined && (blocked.functions === undefined || blocked.functions.includes(fn)),
    remaining: scarce?.remaining_uses,
  };
}
