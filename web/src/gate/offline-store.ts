import { createStore, promisifyRequest } from "idb-keyval";
import type { OfflineScanRecord } from "../../../src/auth/device-proof-token";
import type { StoredKit } from "./offline-kit";
import type { ScanAttempt } from "./scan-client";

// What a gate keeps in IndexedDB to decide offline and to reconcile afterwards, so that a reload (or a
// crash) loses none of it: the kit, the queue of offline decisions, the online scans that got no answer,
// the counts of uses left it was told, and the ticket codes' jtis it has accepted. One object store with
// array keys, so a device's queue is one key range read in the order the decisions were made, and every
// change that must happen together happens in one transaction.

const useStore = createStore("passes-offline", "gate");

/** Far more than a busy gate decides in the longest time it may stay offline: a bound, not a target. */
export const MAX_QUEUED_SCANS = 5_000;
/** Online scans with no answer kept per device; past it the oldest is forgotten (see rememberUnanswered). */
const MAX_UNANSWERED_SCANS = 100;
/** A jti is kept this long past its token's expiry, beyond any clock skew a check tolerates. */
const SPENT_JTI_MARGIN_MS = 60_000;
/**
 * A count of uses left is kept this long: older ones are covered by the kit, which is at most
 * max_offline_seconds old whenever it lets the gate accept.
 */
const LEARNED_REMAINING_TTL_MS = 60 * 60_000;

/** An offline decision as POST /devices/{device_id}/offline-scans takes it. */
export interface OfflineScanUpload extends OfflineScanRecord {
  device_signature: string;
}

/** A queued decision, with the ticket it accepted (from the verified token) so it counts as outstanding. */
export interface QueuedScan {
  upload: OfflineScanUpload;
  ticketCode: string | undefined;
}

/** An online scan that got no answer: it may have spent a use, so it counts until it is answered. */
export interface UnansweredScan {
  attempt: ScanAttempt;
  ticketCode: string | undefined;
  /** The token's expiry (ms, unverified): once past, a resend can only confirm what the lost one did. */
  tokenExpiresAtMs: number | undefined;
  sentAtMs: number;
}

/** A count of uses left the gate was told. */
export interface LearnedRemaining {
  ticketCode: string;
  fn: string;
  remaining: number;
}

interface StoredRemaining {
  remaining: number;
  learnedAtMs: number;
}

function rangeOf(...prefix: string[]): IDBKeyRange {
  // An array sorts after every string and number, so [...prefix, []] closes the prefix's range.
  return IDBKeyRange.bound(prefix, [...prefix, []]);
}

function queueKey(deviceId: string, upload: OfflineScanUpload): IDBValidKey {
  return ["scan", deviceId, Date.parse(upload.scanned_at), upload.scan_id];
}

export function loadKit(deviceId: string): Promise<StoredKit | undefined> {
  return useStore("readonly", (store) =>
    promisifyRequest<StoredKit | undefined>(store.get(["kit", deviceId])),
  );
}

export function saveKit(deviceId: string, kit: StoredKit): Promise<void> {
  return useStore("readwrite", (store) => {
    store.put(kit, ["kit", deviceId]);
    return promisifyRequest(store.transaction);
  });
}

/** Queues a decision; an accept also spends its token's jti here, in the same transaction. */
export function enqueueScan(
  deviceId: string,
  scan: QueuedScan,
  spent?: { jti: string; expiresAtMs: number },
): Promise<void> {
  return useStore("readwrite", (store) => {
    store.put(scan, queueKey(deviceId, scan.upload));
    if (spent) store.put(spent.expiresAtMs, ["spent-jti", spent.jti]);
    return promisifyRequest(store.transaction);
  });
}

/** The device's queued decisions, oldest first, at most `limit`. */
export function queuedScans(deviceId: string, limit?: number): Promise<QueuedScan[]> {
  return useStore("readonly", (store) =>
    promisifyRequest<QueuedScan[]>(store.getAll(rangeOf("scan", deviceId), limit)),
  );
}

export function queuedCount(deviceId: string): Promise<number> {
  return useStore("readonly", (store) => promisifyRequest(store.count(rangeOf("scan", deviceId))));
}

async function learnIn(store: IDBObjectStore, fact: LearnedRemaining, nowMs: number): Promise<void> {
  const key = ["remaining", fact.ticketCode, fact.fn];
  const known = await promisifyRequest<StoredRemaining | undefined>(store.get(key));
  const stillKnown = known && known.learnedAtMs + LEARNED_REMAINING_TTL_MS > nowMs;
  const remaining = stillKnown ? Math.min(known.remaining, fact.remaining) : fact.remaining;
  store.put({ remaining, learnedAtMs: nowMs } satisfies StoredRemaining, key);
}

/**
 * Removes reconciled decisions from the queue, with what their results taught, in one transaction: a
 * decision stops counting as outstanding exactly when the count that includes it is known.
 */
export function settleQueuedScans(
  deviceId: string,
  settled: { upload: OfflineScanUpload; learned: LearnedRemaining | undefined }[],
  nowMs: number,
): Promise<void> {
  return useStore("readwrite", async (store) => {
    for (const { upload, learned } of settled) {
      if (learned) await learnIn(store, learned, nowMs);
      store.delete(queueKey(deviceId, upload));
    }
    return promisifyRequest(store.transaction);
  });
}

/** Keeps the lowest count of uses left of each ticket+function: uses only go down. */
export function learnRemaining(facts: LearnedRemaining[], nowMs: number): Promise<void> {
  if (facts.length === 0) return Promise.resolve();
  return useStore("readwrite", async (store) => {
    for (const fact of facts) await learnIn(store, fact, nowMs);
    return promisifyRequest(store.transaction);
  });
}

export async function learnedRemaining(
  ticketCode: string,
  fn: string,
  nowMs: number,
): Promise<number | undefined> {
  const known = await useStore("readonly", (store) =>
    promisifyRequest<StoredRemaining | undefined>(store.get(["remaining", ticketCode, fn])),
  );
  return known && known.learnedAtMs + LEARNED_REMAINING_TTL_MS > nowMs ? known.remaining : undefined;
}

export function markJtiSpent(jti: string, expiresAtMs: number): Promise<void> {
  return useStore("readwrite", (store) => {
    store.put(expiresAtMs, ["spent-jti", jti]);
    return promisifyRequest(store.transaction);
  });
}

export async function isJtiSpent(jti: string): Promise<boolean> {
  const expiresAtMs = await useStore("readonly", (store) =>
    promisifyRequest<number | undefined>(store.get(["spent-jti", jti])),
  );
  return expiresAtMs !== undefined;
}

/**
 * Keeps an online scan with no answer. Past MAX_UNANSWERED_SCANS the oldest goes: by then the server has
 * been answering nothing for a long while. It may have spent a use this gate will never hear of, so its
 * ticket+function is taken as used up here (a forgotten scan must not give its allowance back).
 */
export function rememberUnanswered(deviceId: string, scan: UnansweredScan): Promise<void> {
  return useStore("readwrite", async (store) => {
    store.put(scan, ["unanswered", deviceId, scan.attempt.key]);
    const kept = await promisifyRequest<UnansweredScan[]>(store.getAll(rangeOf("unanswered", deviceId)));
    const oldestFirst = kept.sort((a, b) => a.sentAtMs - b.sentAtMs);
    const nowMs = Date.now();
    for (const old of oldestFirst.slice(0, Math.max(0, kept.length - MAX_UNANSWERED_SCANS))) {
      if (old.ticketCode) {
        await learnIn(
          store,
          { ticketCode: old.ticketCode, fn: old.attempt.body.function, remaining: 0 },
          nowMs,
        );
      }
      store.delete(["unanswered", deviceId, old.attempt.key]);
    }
    return promisifyRequest(store.transaction);
  });
}

export function forgetUnanswered(deviceId: string, key: string): Promise<void> {
  return useStore("readwrite", (store) => {
    store.delete(["unanswered", deviceId, key]);
    return promisifyRequest(store.transaction);
  });
}

export function unansweredScans(deviceId: string): Promise<UnansweredScan[]> {
  return useStore("readonly", (store) =>
    promisifyRequest<UnansweredScan[]>(store.getAll(rangeOf("unanswered", deviceId))),
  );
}

/** The device's accepts of a ticket+function whose result it has not seen: queued, or sent without an answer. */
export function outstandingFor(deviceId: string, ticketCode: string, fn: string): Promise<number> {
  return useStore("readonly", async (store) => {
    const [queued, unanswered] = await Promise.all([
      promisifyRequest<QueuedScan[]>(store.getAll(rangeOf("scan", deviceId))),
      promisifyRequest<UnansweredScan[]>(store.getAll(rangeOf("unanswered", deviceId))),
    ]);
    const accepts = queued.filter(
      (scan) =>
        scan.upload.decision === "accepted" && scan.ticketCode === ticketCode && scan.upload.function === fn,
    );
    const lost = unanswered.filter(
      (scan) => scan.ticketCode === ticketCode && scan.attempt.body.function === fn,
    );
    return accepts.length + lost.length;
  });
}

/** Drops jtis whose tokens have long expired and counts of uses left the kit has caught up with. */
export function forgetStale(nowMs: number): Promise<void> {
  return useStore("readwrite", (store) => {
    deleteWhere(
      store,
      rangeOf("spent-jti"),
      (expiresAtMs: number) => expiresAtMs + SPENT_JTI_MARGIN_MS < nowMs,
    );
    deleteWhere(
      store,
      rangeOf("remaining"),
      (known: StoredRemaining) => known.learnedAtMs + LEARNED_REMAINING_TTL_MS <= nowMs,
    );
    return promisifyRequest(store.transaction);
  });
}

function deleteWhere<T>(store: IDBObjectStore, range: IDBKeyRange, stale: (value: T) => boolean): void {
  const request = store.openCursor(range);
  request.onsuccess = () => {
    const cursor = request.result;
    if (!cursor) return;
    if (stale(cursor.value as T)) cursor.delete();
    cursor.continue();
  };
}
