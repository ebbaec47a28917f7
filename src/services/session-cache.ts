import { LRUCache } from "lru-cache";
import type { SessionWithDevice } from "../db/validator-sessions";

/**
 * How long an isolate reuses a session it has looked up. Every scan and POS request checks its session;
 * without this, that is one D1 round trip on the gate's critical path. The checks that depend on time
 * (expiry) are still judged on every request; only a close or deactivation made through ANOTHER isolate
 * can take up to this long to be seen (the isolate that made it forgets the entry at once).
 */
export const SESSION_CACHE_MS = 5_000;
/** Bounds the memory one isolate spends on this: far more sessions than one isolate serves at once. */
const SESSION_CACHE_MAX_ENTRIES = 5_000;

// Freshness is judged against the caller's clock (so tests and callers agree on "now"); the LRU bounds memory.
const entries = new LRUCache<string, { found: SessionWithDevice; cachedAtMs: number }>({
  max: SESSION_CACHE_MAX_ENTRIES,
});

export function cachedSession(sessionId: string, nowMs: number): SessionWithDevice | undefined {
  const entry = entries.get(sessionId);
  if (!entry) return undefined;
  if (nowMs - entry.cachedAtMs >= SESSION_CACHE_MS || nowMs < entry.cachedAtMs) {
    entries.delete(sessionId);
    return undefined;
  }
  return entry.found;
}

export function cacheSession(found: SessionWithDevice, nowMs: number): void {
  entries.set(found.session.id, { found, cachedAtMs: nowMs });
}

export function forgetSession(sessionId: string): void {
  entries.delete(sessionId);
}

function forgetSessionsWhere(matches: (found: SessionWithDevice) => boolean): void {
  const matching = [...entries.entries()].filter(([, entry]) => matches(entry.found));
  for (const [id] of matching) entries.delete(id);
}

/** After a device's revocation or re-enrollment made through this isolate. */
export function forgetDeviceSessions(deviceId: string): void {
  forgetSessionsWhere((found) => found.device.id === deviceId);
}

/** After an operator's revocation made through this isolate. */
export function forgetOperatorSessions(operatorId: string): void {
  forgetSessionsWhere((found) => found.session.operatorId === operatorId);
}
