import { ApiProblem, NetworkError } from "../lib/api";
import type { ValidatorSession } from "../lib/staff";
import { createConnectivity } from "./connectivity";
import { answerWithin } from "./deadline";
import { judgeOffline, type OfflineJudgement, queueOfflineDecision } from "./offline-decide";
import { fetchKit, type StoredKit } from "./offline-kit";
import { createOfflineStatus } from "./offline-status";
import {
  forgetStale,
  forgetUnanswered,
  type LearnedRemaining,
  learnRemaining,
  loadKit,
  markJtiSpent,
  queuedCount,
  rememberUnanswered,
  saveKit,
  unansweredScans,
} from "./offline-store";
import { createOfflineSync } from "./offline-sync";
import {
  type Entitlement,
  lostToNetwork,
  type ScanAttempt,
  type ScanOutcome,
  sendScan,
  unverifiedClaims,
} from "./scan-client";

// Keeps a gate able to decide alone and brings what it decided back to the server: the kit refreshed
// every minute while the server answers (a probe every few seconds while it does not), the queue
// uploaded when the network returns, what online answers teach about tickets, and the status line.
//
// The order that bounds the over-spend: an online scan waits until this gate's queue is uploaded, so the
// server applies a gate's accepts in the order it made them, and every count the gate learns includes them.

/** The contract's cadence for a gate's kit while online. */
const KIT_REFRESH_MS = 60_000;
/** While requests get no answer, this often the kit is asked for again, to find the way back quickly. */
const PROBE_EVERY_MS = 15_000;
const KIT_TIMEOUT_MS = 10_000;
/**
 * A lost scan is resent in the background only this long after its token expired (the verifying side's
 * clock tolerance and more): the server then either repeats its first answer or refuses the expired
 * token, and never spends a use for a holder who may have been turned away.
 */
const LATE_RESEND_AFTER_EXPIRY_MS = 30_000;
/** A kit that arrived this long after a lost scan was sent has that scan's effect in it, if it had one. */
const KIT_COVERS_SCANS_SENT_BEFORE_MS = 60_000;

export interface OfflineGateOptions {
  token(): string;
  /** A request the server refused (sign-in expired, session closed): staff.handleError. */
  onError(error: unknown): void;
  /** A scan whose answer was lost got one in the background. */
  onLateAnswer(attempt: ScanAttempt, outcome: ScanOutcome): void;
}

export interface OfflineGate {
  /** Starts keeping `session`'s device ready for offline (again after a reload). */
  start(session: ValidatorSession): void;
  stop(): void;
  /** Whether a scan may go to the server now: the network answers and this gate's queue is uploaded. */
  mayScanOnline(): Promise<boolean>;
  /** Decides a code offline; undefined when this device has no kit yet. */
  judge(qrToken: string, fn: string): Promise<OfflineJudgement | undefined>;
  /** Signs and queues an offline decision: its scan id, or undefined when it cannot be uploaded. */
  queue(judgement: OfflineJudgement): Promise<string | undefined>;
  /** Learns from an online scan's outcome: counts of uses left, a spent jti, an answer lost or found. */
  learnFromOnline(attempt: ScanAttempt, outcome: ScanOutcome): Promise<void>;
  /** The attempt sent earlier with this same body that got no answer, to resend with its key. */
  unansweredAttempt(body: ScanAttempt["body"]): Promise<ScanAttempt | undefined>;
}

function learnedFrom(ticketCode: unknown, entitlements: unknown): LearnedRemaining[] {
  if (typeof ticketCode !== "string" || !Array.isArray(entitlements)) return [];
  return (entitlements as Entitlement[]).map((entitlement) => ({
    ticketCode,
    fn: entitlement.function,
    remaining: entitlement.remaining_uses,
  }));
}

export function createOfflineGate(options: OfflineGateOptions): OfflineGate {
  const connectivity = createConnectivity();
  const status = createOfflineStatus();
  let session: ValidatorSession | undefined;
  let stored: StoredKit | undefined;
  let kitLoaded: Promise<void> = Promise.resolve();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let answeringLate = false;
  /** Each status draw reads the queue; only the newest call's count is shown. */
  let statusDraws = 0;

  function current(): ValidatorSession {
    if (!session) throw new Error("No open gate session");
    return session;
  }

  const sync = createOfflineSync({
    deviceId: () => current().device_id,
    sessionId: () => current().session_id,
    token: options.token,
    connectivity,
    onProgress: () => void showStatus(),
    onRefused: options.onError,
    onSynced: () => {
      if (answeringLate) return;
      answeringLate = true;
      answerLateScans()
        // Storage failing: the lost scans are tried again after the next upload.
        .catch(() => {})
        .finally(() => {
          answeringLate = false;
        });
    },
  });

  async function showStatus(): Promise<void> {
    if (!session) return;
    const draw = ++statusDraws;
    const waiting = await queuedCount(session.device_id).catch(() => 0);
    if (draw !== statusDraws) return;
    const state = !connectivity.usable()
      ? "offline"
      : sync.syncing()
        ? "syncing"
        : waiting > 0
          ? "waiting"
          : "online";
    status.show({
      state,
      waiting,
      problem: sync.problem(),
      kit: stored && {
        issuedAtMs: Date.parse(stored.kit.issued_at),
        clockOffsetMs: stored.clockOffsetMs,
        maxOfflineSeconds: stored.kit.budget.max_offline_seconds,
      },
    });
  }

  async function refreshKit({ device_id: deviceId, session_id: sessionId }: ValidatorSession): Promise<void> {
    try {
      const fresh = await answerWithin(
        fetchKit(deviceId, sessionId, options.token(), stored),
        KIT_TIMEOUT_MS,
      );
      connectivity.reportAnswer();
      if (session?.device_id !== deviceId) return;
      stored = fresh;
      await saveKit(deviceId, fresh);
      await forgetStale(Date.now());
    } catch (error) {
      if (error instanceof NetworkError) connectivity.reportNoAnswer();
      else if (error instanceof ApiProblem) {
        connectivity.reportAnswer();
        options.onError(error);
      }
      // Anything else is IndexedDB failing: the kit in memory still serves this page.
    }
  }

  function schedule(delayMs: number): void {
    clearTimeout(timer);
    timer = setTimeout(() => void tick(), delayMs);
  }

  async function tick(): Promise<void> {
    await kitLoaded;
    if (!session) return;
    // With no network at all a request can only fail: the browser's "online" event brings the next tick.
    if (navigator.onLine) await refreshKit(session);
    if (connectivity.usable()) sync.kick();
    await showStatus();
    if (session) schedule(connectivity.usable() ? KIT_REFRESH_MS : PROBE_EVERY_MS);
  }

  /**
   * Resends, with their own keys, the lost scans whose tokens have long expired, so that what they did is
   * known (and their history rows say it). One the server will no longer answer (its session closed) is
   * dropped once a kit that came later covers it.
   */
  async function answerLateScans(): Promise<void> {
    if (!session || !stored) return;
    const deviceId = session.device_id;
    const kit = stored;
    const serverNowMs = Date.now() + kit.clockOffsetMs;
    for (const lost of await unansweredScans(deviceId)) {
      const expiresAtMs = lost.tokenExpiresAtMs ?? 0;
      if (expiresAtMs + LATE_RESEND_AFTER_EXPIRY_MS > serverNowMs) continue;
      const outcome = await sendScan(lost.attempt, options.token(), { resent: true });
      if (outcome.kind === "unchecked") {
        if (outcome.resendable) return;
        if (lost.sentAtMs + KIT_COVERS_SCANS_SENT_BEFORE_MS < kit.fetchedAtMs) {
          await forgetUnanswered(deviceId, lost.attempt.key);
        }
        continue;
      }
      await learnFromOnline(lost.attempt, outcome);
      options.onLateAnswer(lost.attempt, outcome);
    }
  }

  async function learnFromOnline(attempt: ScanAttempt, outcome: ScanOutcome): Promise<void> {
    const deviceId = current().device_id;
    const nowMs = Date.now();
    if (outcome.kind === "unchecked") {
      if (lostToNetwork(outcome)) connectivity.reportNoAnswer();
      else connectivity.reportAnswer();
      if (!outcome.resendable) return;
      const claims = unverifiedClaims(attempt.body.qr_token);
      await rememberUnanswered(deviceId, {
        attempt,
        ticketCode: claims.sub,
        tokenExpiresAtMs: claims.exp === undefined ? undefined : claims.exp * 1000,
        sentAtMs: nowMs,
      });
      return;
    }
    connectivity.reportAnswer();
    if (outcome.kind === "accepted") {
      const { data } = outcome;
      await learnRemaining(learnedFrom(data.ticket_code, data.entitlements), nowMs);
      // The server spent the token: offline, this gate refuses it as replayed, as the server would.
      const { jti, exp } = unverifiedClaims(attempt.body.qr_token);
      if (jti && exp) await markJtiSpent(jti, exp * 1000);
    } else {
      const { problem } = outcome.problem;
      await learnRemaining(learnedFrom(problem.ticket_code, problem.entitlements), nowMs);
    }
    await forgetUnanswered(deviceId, attempt.key);
  }

  connectivity.onChange(() => {
    if (connectivity.usable()) sync.kick();
    // Lost: look for the way back sooner than the next minute's kit.
    else if (session) schedule(PROBE_EVERY_MS);
    void showStatus();
  });
  window.addEventListener("online", () => {
    if (session) schedule(0);
  });

  return {
    start(next) {
      if (session?.session_id === next.session_id) return;
      if (session?.device_id !== next.device_id) {
        stored = undefined;
        kitLoaded = loadKit(next.device_id).then(
          (kit) => {
            if (session?.device_id === next.device_id) stored ??= kit;
          },
          // Without IndexedDB nothing was kept: the first kit fetched serves this page.
          () => {},
        );
      }
      session = next;
      schedule(0);
    },
    stop() {
      session = undefined;
      clearTimeout(timer);
    },
    async mayScanOnline() {
      if (!connectivity.usable()) return false;
      if (!session) return true;
      return (await sync.flush()) === "synced";
    },
    async judge(qrToken, fn) {
      await kitLoaded;
      if (!session || !stored) return undefined;
      return judgeOffline(session.device_id, stored, qrToken, fn);
    },
    async queue(judgement) {
      const { device_id: deviceId, session_id: sessionId } = current();
      const scanId = await queueOfflineDecision(deviceId, sessionId, judgement);
      void showStatus();
      return scanId;
    },
    learnFromOnline,
    async unansweredAttempt(body) {
      if (!session) return undefined;
      const lost = await unansweredScans(session.device_id).catch(() => []);
      return lost.find(
        ({ attempt }) =>
          attempt.body.session_id === body.session_id &&
          attempt.body.function === body.function &&
          attempt.body.qr_token === body.qr_token,
      )?.attempt;
    },
  };
}
