import { describeError } from "../lib/format";
import type { Signal } from "./feedback";
import type { History } from "./history";
import type { OfflineGate } from "./offline-gate";
import { UNDECIDED_OFFLINE } from "./offline-reasons";
import {
  type Entitlement,
  lostToNetwork,
  type ScanAttempt,
  type ScanOutcome,
  sendScan,
  ticketCodeInToken,
} from "./scan-client";
import type { VerdictView } from "./verdict";

// One scan from code to verdict: to the server when the network answers and this gate's queue is
// uploaded, else (or when the answer is lost on the way) decided on this device. Every outcome goes to
// the verdict, the history, and what the gate knows for its next offline decision.

export type Answered = Extract<ScanOutcome, { kind: "accepted" | "refused" }>;

export interface ScanFlowOptions {
  verdict: VerdictView;
  history: History;
  offline: OfflineGate;
  token(): string;
  onError(error: unknown): void;
  /** Staff tapped Retry on a scan that got no answer. */
  retry(attempt: ScanAttempt): void;
}

export interface ScanFlow {
  /**
   * Checks `attempt` and shows its verdict. `unanswered`: it was sent before and got no answer;
   * `retried`: staff asked for it to go to the server.
   */
  scan(attempt: ScanAttempt, unanswered: boolean, options?: { retried?: boolean }): Promise<Signal>;
  /** Puts an online answer in the history (also a late one, found in the background). */
  recordAnswer(attempt: ScanAttempt, outcome: Answered): void;
}

function refusedTicket(outcome: Extract<ScanOutcome, { kind: "refused" }>): string | undefined {
  const code = outcome.problem.problem.ticket_code;
  return typeof code === "string" ? code : undefined;
}

export function createScanFlow({ verdict, history, offline, ...options }: ScanFlowOptions): ScanFlow {
  function recordAnswer(attempt: ScanAttempt, outcome: Answered): void {
    const { body, key } = attempt;
    const at = new Date().toISOString();
    if (outcome.kind === "accepted") {
      const { data } = outcome;
      history.record({
        id: key,
        at,
        ticketCode: data.ticket_code,
        fn: data.function,
        verdict: "accepted",
        redemptionId: data.redemption_id,
      });
    } else {
      const reason = outcome.problem.code;
      history.record({
        id: key,
        at,
        ticketCode: refusedTicket(outcome),
        fn: body.function,
        verdict: "refused",
        reason,
      });
    }
  }

  /** The attempt may or may not have spent a use: staff must Retry (the same attempt) before letting them in. */
  function showNoAnswer(attempt: ScanAttempt): Signal {
    const { body, key } = attempt;
    const ticketCode = ticketCodeInToken(body.qr_token);
    history.record({
      id: key,
      at: new Date().toISOString(),
      ticketCode,
      fn: body.function,
      verdict: "unchecked",
    });
    verdict.show({
      state: "unchecked",
      fn: body.function,
      ticketCode,
      reason: "No answer from the server. Retry before letting them through.",
      retry: () => options.retry(attempt),
    });
    return "unchecked";
  }

  function settle(attempt: ScanAttempt, outcome: ScanOutcome): Signal {
    const { body, key } = attempt;
    if (outcome.kind === "accepted") {
      recordAnswer(attempt, outcome);
      verdict.show({ state: "accepted", data: outcome.data, confirmedOnRetry: outcome.confirmedOnRetry });
      return "accepted";
    }
    if (outcome.kind === "refused") {
      recordAnswer(attempt, outcome);
      verdict.show({
        state: "refused",
        code: outcome.problem.code,
        fn: body.function,
        ticketCode: refusedTicket(outcome),
        entitlements: outcome.problem.problem.entitlements as Entitlement[] | undefined,
        confirmedOnRetry: outcome.confirmedOnRetry,
      });
      return "refused";
    }
    if (outcome.resendable) return showNoAnswer(attempt);
    const ticketCode = ticketCodeInToken(body.qr_token);
    history.record({
      id: key,
      at: new Date().toISOString(),
      ticketCode,
      fn: body.function,
      verdict: "unchecked",
    });
    verdict.show({ state: "unchecked", fn: body.function, ticketCode, reason: describeError(outcome.error) });
    options.onError(outcome.error);
    return "unchecked";
  }

  async function decideOffline(attempt: ScanAttempt, unanswered: boolean): Promise<Signal> {
    const { body } = attempt;
    const judgement = await offline.judge(body.qr_token, body.function);
    const refusal = judgement ? judgement.refusal : "no_offline_kit";
    // After a lost answer the server may have let the holder in already: when the gate cannot decide
    // alone, it says "not checked" (with Retry) rather than refuse someone whose use may be spent.
    if (unanswered && refusal !== undefined && UNDECIDED_OFFLINE.has(refusal)) return showNoAnswer(attempt);
    const scanId = judgement ? await offline.queue(judgement) : undefined;
    const decision = refusal === undefined ? "accepted" : "refused";
    const ticketCode = judgement?.ticketCode;
    history.record({
      id: scanId ?? attempt.key,
      at: new Date().toISOString(),
      ticketCode,
      fn: body.function,
      verdict: decision,
      reason: refusal,
      offline: true,
    });
    verdict.show({ state: "offline", decision, code: refusal, fn: body.function, ticketCode });
    return decision;
  }

  async function scan(attempt: ScanAttempt, unanswered: boolean, scanOptions: { retried?: boolean } = {}) {
    verdict.show({ state: "pending", text: "" });
    try {
      // Only the server can answer an attempt whose answer was lost: a Retry asks it in any case (after
      // the queue, like any online scan, when the network allows).
      if ((await offline.mayScanOnline()) || scanOptions.retried) {
        const outcome = await sendScan(attempt, options.token(), {
          resent: unanswered,
          onRetry: () => verdict.show({ state: "pending", text: "No answer yet: trying again" }),
        });
        await offline.learnFromOnline(attempt, outcome);
        if (!lostToNetwork(outcome)) return settle(attempt, outcome);
        return await decideOffline(attempt, true);
      }
      return await decideOffline(attempt, unanswered);
    } catch (error) {
      // The device's own storage or key failed: nobody decided, so nobody may pass on this verdict.
      verdict.show({ state: "unchecked", fn: attempt.body.function, reason: describeError(error) });
      return "unchecked" as const;
    }
  }

  return { scan, recordAnswer };
}
