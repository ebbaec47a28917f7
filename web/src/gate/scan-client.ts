import { ApiProblem, api, NetworkError, newIdempotencyKey } from "../lib/api";
import { answerWithin } from "./deadline";

// One scan attempt, sent until an answer arrives. The attempt's Idempotency-Key and body never change, so
// a resend after a lost answer gets the server's first answer back instead of `token_replayed`: a use
// spent by a request whose answer was lost is confirmed, never spent twice, never refused.

export interface Entitlement {
  function: string;
  total_uses: number;
  remaining_uses: number;
}

export interface ScanAccepted {
  result: "accepted";
  redemption_id: string;
  ticket_code: string;
  function: string;
  entitlements: Entitlement[];
  scanned_at?: string;
}

export interface ScanAttempt {
  /** The Idempotency-Key: this attempt's own id, reused only to resend this same attempt. */
  key: string;
  body: { qr_token: string; function: string; session_id: string };
}

export type ScanOutcome =
  | { kind: "accepted"; data: ScanAccepted; confirmedOnRetry: boolean }
  | { kind: "refused"; problem: ApiProblem; confirmedOnRetry: boolean }
  /** No answer about the ticket: the network failed, or the server could not judge it (session, sign-in). */
  | { kind: "unchecked"; error: unknown; resendable: boolean };

/** Waits before each resend: a dropped connection usually recovers within a second or two. */
const RETRY_DELAYS_MS = [300, 1_000, 2_000];
/** A request with no answer by then counts as lost and is resent (the same key makes that safe). */
const ANSWER_TIMEOUT_MS = 8_000;
/** The refusals that judge the ticket; any other problem leaves the passenger not checked. */
const TICKET_REFUSALS = new Set([
  "token_invalid",
  "token_expired",
  "token_replayed",
  "no_entitlement",
  "exhausted",
  "function_not_allowed",
]);

export function newScanAttempt(qrToken: string, fn: string, sessionId: string): ScanAttempt {
  return { key: newIdempotencyKey(), body: { qr_token: qrToken, function: fn, session_id: sessionId } };
}

function resendable(error: unknown): boolean {
  return (
    error instanceof NetworkError ||
    (error instanceof ApiProblem && (error.status >= 500 || error.code === "idempotency_in_progress"))
  );
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function sendOnce(attempt: ScanAttempt, token: string) {
  return answerWithin(
    api<ScanAccepted>("POST", "/tickets/scan", { token, body: attempt.body, idempotencyKey: attempt.key }),
    ANSWER_TIMEOUT_MS,
  );
}

/**
 * Sends `attempt`, resending it (same key, same body) after a lost answer, a busy server or an attempt
 * still in progress, a bounded number of times. `resent`: this attempt was sent before (a Retry button).
 */
export async function sendScan(
  attempt: ScanAttempt,
  token: string,
  options: { resent?: boolean; onRetry?: (retry: number) => void } = {},
): Promise<ScanOutcome> {
  let lastError: unknown;
  for (let send = 0; send <= RETRY_DELAYS_MS.length; send += 1) {
    if (send > 0) {
      options.onRetry?.(send);
      await sleep(RETRY_DELAYS_MS[send - 1] ?? 0);
    }
    const resent = Boolean(options.resent) || send > 0;
    try {
      const { data, headers } = await sendOnce(attempt, token);
      return {
        kind: "accepted",
        data,
        confirmedOnRetry: resent || headers.get("idempotent-replayed") === "true",
      };
    } catch (error) {
      lastError = error;
      if (resendable(error)) continue;
      if (error instanceof ApiProblem && TICKET_REFUSALS.has(error.code)) {
        return { kind: "refused", problem: error, confirmedOnRetry: resent };
      }
      return { kind: "unchecked", error, resendable: false };
    }
  }
  return { kind: "unchecked", error: lastError, resendable: true };
}

/** The claims of a QR token the page reads without verifying them. */
export interface UnverifiedClaims {
  sub?: string;
  jti?: string;
  exp?: number;
}

/**
 * A QR token's claims read without verifying it: only to label and file what the server (or the offline
 * rule, which verifies) has judged, never to judge. Empty for anything that is not a JWT.
 */
export function unverifiedClaims(qrToken: string): UnverifiedClaims {
  try {
    const payload = qrToken.split(".")[1] ?? "";
    const claims: Record<string, unknown> = JSON.parse(
      atob(payload.replaceAll("-", "+").replaceAll("_", "/")),
    );
    return {
      sub: typeof claims.sub === "string" ? claims.sub : undefined,
      jti: typeof claims.jti === "string" ? claims.jti : undefined,
      exp: typeof claims.exp === "number" ? claims.exp : undefined,
    };
  } catch {
    return {};
  }
}

/** The ticket code a QR token names (its `sub`), unverified: to label a scan that got no answer. */
export function ticketCodeInToken(qrToken: string): string | undefined {
  return unverifiedClaims(qrToken).sub;
}

/** The scan got no answer because the network failed (not the server): the gate should decide offline. */
export function lostToNetwork(outcome: ScanOutcome): boolean {
  return outcome.kind === "unchecked" && outcome.resendable && outcome.error instanceof NetworkError;
}
