import { ApiProblem, api, NetworkError } from "../lib/api";
import { describeError } from "../lib/format";
import type { Connectivity } from "./connectivity";
import { answerWithin } from "./deadline";
import {
  type LearnedRemaining,
  type QueuedScan,
  queuedCount,
  queuedScans,
  settleQueuedScans,
} from "./offline-store";

// Uploads the gate's offline decisions (POST /devices/{device_id}/offline-scans), oldest first, one upload
// at a time, until the queue is empty. A failed upload is tried again in bursts: a few tries with growing,
// jittered waits, then nothing until the network comes back or the next timer, so a gate offline for an
// hour does not hammer the network it does not have.

/** The contract's bound on one upload. */
export const MAX_SCANS_PER_UPLOAD = 500;
/** Half the server's body limit for an upload (1 MiB): a queue of long codes is sent in several. */
const MAX_UPLOAD_BYTES = 512 * 1024;
const UPLOAD_TIMEOUT_MS = 15_000;
const TRIES_PER_BURST = 6;
const FIRST_RETRY_MS = 1_000;
const MAX_RETRY_MS = 60_000;

interface ScanResult {
  scan_id: string;
  outcome: "applied" | "duplicate" | "conflict" | "invalid" | "recorded";
  redemption_id?: string;
  remaining_uses?: number;
}

/** synced: the queue is empty; retry: no answer, or the server failed; stopped: the server refused the upload. */
export type SyncOutcome = "synced" | "retry" | "stopped";

export interface OfflineSyncOptions {
  deviceId(): string;
  sessionId(): string;
  token(): string;
  connectivity: Connectivity;
  /** An upload started or ended: the queue's size may have changed. */
  onProgress(): void;
  /** The server refused an upload (the session closed, the sign-in expired…); the queue stays. */
  onRefused(error: ApiProblem): void;
  /** An upload pass found the queue empty, or emptied it. */
  onSynced(): void;
}

export interface OfflineSync {
  /** Starts a burst of uploads, or cuts the wait of the running one short. */
  kick(): void;
  /** One upload pass now (or the one under way): what an online scan waits for. */
  flush(): Promise<SyncOutcome>;
  /** Scans are being uploaded now. */
  syncing(): boolean;
  /** Why the last pass stopped short of an empty queue, in words; undefined after a pass that emptied it. */
  problem(): string | undefined;
}

/** What a result teaches about the ticket+function: a conflict means no use was left. */
function learnedFrom(scan: QueuedScan, result: ScanResult): LearnedRemaining | undefined {
  if (!scan.ticketCode) return undefined;
  const remaining = result.outcome === "conflict" ? 0 : result.remaining_uses;
  return remaining === undefined
    ? undefined
    : { ticketCode: scan.ticketCode, fn: scan.upload.function, remaining };
}

/** The oldest scans whose uploads fit in `maxBytes` of JSON (at least one, which the server judges alone). */
function withinBytes(scans: QueuedScan[], maxBytes: number): QueuedScan[] {
  let bytes = 0;
  const fitting: QueuedScan[] = [];
  for (const scan of scans) {
    bytes += JSON.stringify(scan.upload).length;
    if (fitting.length > 0 && bytes > maxBytes) break;
    fitting.push(scan);
  }
  return fitting;
}

/** The server refused the upload as malformed or too large: the same scans would be refused for ever. */
function isMalformed(error: unknown): boolean {
  return (
    error instanceof ApiProblem && (error.code === "validation_failed" || error.code === "payload_too_large")
  );
}

/** Waits before try `tryIndex + 1` of a burst: doubling from FIRST_RETRY_MS up to MAX_RETRY_MS, half of it random. */
function retryDelayMs(tryIndex: number): number {
  const delay = Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** tryIndex);
  // Jitter, so gates that lost the same network do not all come back in the same second.
  return delay / 2 + Math.random() * (delay / 2);
}

export function createOfflineSync(options: OfflineSyncOptions): OfflineSync {
  let pass: Promise<SyncOutcome> | undefined;
  /** A pass is uploading scans (most passes, before an online scan, find the queue empty). */
  let uploading = false;
  let bursting = false;
  let wake: (() => void) | undefined;
  let problem: string | undefined;

  /** Scans per upload: halved after the server refuses one as malformed or too large, to find the culprit. */
  let batchLimit = MAX_SCANS_PER_UPLOAD;

  async function uploadOnce(deviceId: string): Promise<"more" | "done"> {
    const scans = withinBytes(await queuedScans(deviceId, batchLimit), MAX_UPLOAD_BYTES);
    if (scans.length === 0) return "done";
    let answer: { data: { results: ScanResult[] } };
    try {
      answer = await answerWithin(
        api<{ results: ScanResult[] }>("POST", `/devices/${encodeURIComponent(deviceId)}/offline-scans`, {
          token: options.token(),
          body: { session_id: options.sessionId(), scans: scans.map((scan) => scan.upload) },
        }),
        UPLOAD_TIMEOUT_MS,
      );
    } catch (error) {
      if (!isMalformed(error)) throw error;
      const [only] = scans;
      if (scans.length > 1 || !only) {
        batchLimit = Math.max(1, Math.floor(scans.length / 2));
        return "more";
      }
      // One scan the server will never take: set it aside rather than hold every later one back. What it
      // was about is treated as used up here, since whether it spent a use will never be known.
      console.warn(
        "offline scan refused by the server, set aside",
        only.upload.scan_id,
        describeError(error),
      );
      const learned = only.ticketCode
        ? { ticketCode: only.ticketCode, fn: only.upload.function, remaining: 0 }
        : undefined;
      await settleQueuedScans(deviceId, [{ upload: only.upload, learned }], Date.now());
      return "more";
    }
    batchLimit = MAX_SCANS_PER_UPLOAD;
    const { data } = answer;
    options.connectivity.reportAnswer();
    const results = new Map(data.results.map((result) => [result.scan_id, result]));
    const settled = scans.flatMap((scan) => {
      const result = results.get(scan.upload.scan_id);
      return result ? [{ upload: scan.upload, learned: learnedFrom(scan, result) }] : [];
    });
    // An answer that settles none of what was sent would send the same scans for ever.
    if (settled.length === 0) throw new Error("The upload's results name none of its scans");
    await settleQueuedScans(deviceId, settled, Date.now());
    options.onProgress();
    return "more";
  }

  async function uploadAll(): Promise<SyncOutcome> {
    try {
      const deviceId = options.deviceId();
      let more = (await queuedCount(deviceId)) > 0;
      uploading = more;
      if (more) options.onProgress();
      while (more) more = (await uploadOnce(deviceId)) === "more";
      problem = undefined;
      options.onSynced();
      return "synced";
    } catch (error) {
      problem = describeError(error);
      if (error instanceof NetworkError) {
        options.connectivity.reportNoAnswer();
        return "retry";
      }
      if (error instanceof ApiProblem && error.status >= 500) return "retry";
      if (error instanceof ApiProblem) options.onRefused(error);
      return "stopped";
    }
  }

  function flush(): Promise<SyncOutcome> {
    pass ??= uploadAll().finally(() => {
      pass = undefined;
      uploading = false;
      options.onProgress();
    });
    return pass;
  }

  async function runBurst(): Promise<void> {
    for (let tryIndex = 0; tryIndex < TRIES_PER_BURST; tryIndex += 1) {
      if ((await flush()) !== "retry" || tryIndex === TRIES_PER_BURST - 1) return;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, retryDelayMs(tryIndex));
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wake = undefined;
    }
  }

  return {
    kick() {
      if (wake) wake();
      else if (!bursting) {
        bursting = true;
        void runBurst().finally(() => {
          bursting = false;
        });
      }
    },
    flush,
    syncing: () => uploading,
    problem: () => problem,
  };
}
