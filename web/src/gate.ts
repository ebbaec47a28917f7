import { unlockSoundOnFirstTap } from "./gate/feedback";
import { offerFunctions, rememberFunction } from "./gate/functions";
import { createHistory } from "./gate/history";
import {
  type Entitlement,
  newScanAttempt,
  type ScanAttempt,
  type ScanOutcome,
  sendScan,
  ticketCodeInToken,
} from "./gate/scan-client";
import { createVerdictView, VERDICT_HOLD_MS } from "./gate/verdict";
import { byId, say, show } from "./lib/dom";
import { describeError } from "./lib/format";
import { QrScanner } from "./lib/scanner";
import { setupStaff, type ValidatorSession } from "./lib/staff";

// /gate: a validator. Staff sign in and open a session on a gate device; each QR the camera sees (or that
// is pasted) is checked with POST /tickets/scan, and the verdict fills the screen for a moment.

/** Scans that got no answer, by session, function and token, so showing the same code again resends the
 * same attempt (same Idempotency-Key) instead of a new one the server would refuse as `token_replayed`. */
const UNANSWERED_LIMIT = 10;
const unanswered = new Map<string, ScanAttempt>();
/** Codes the camera saw refused, by the same key: not sent again while held in view (the answer would not
 * change), but checked afresh for another function or after a camera restart. */
const REFUSED_LIMIT = 20;
const refusedByCamera = new Set<string>();

const functionSelect = byId<HTMLSelectElement>("function");
const cameraButton = byId<HTMLButtonElement>("camera-button");
const cameraStatus = byId("camera-status");
const manualForm = byId<HTMLFormElement>("manual-form");
const manualToken = byId<HTMLTextAreaElement>("manual-token");

const verdict = createVerdictView();
const history = createHistory({
  token: () => staff.token(),
  sessionId: () => staff.session().session_id,
  onError: (error) => staff.handleError(error),
});
const scanner = new QrScanner(byId<HTMLVideoElement>("video"), (text) => check(text.trim(), text));
let checking = false;
/** The session whose device's functions are on offer. */
let functionsFor: string | undefined;

const staff = setupStaff({ kind: "gate", onReady: ready, onStop: stop });
unlockSoundOnFirstTap();

function ready(session: ValidatorSession): void {
  history.open(session.session_id);
  if (functionsFor === session.session_id) return;
  functionsFor = session.session_id;
  // Sessions opened before the API named the device's functions have none: every function, as before.
  const deviceFunctions = (session as ValidatorSession & { functions?: string[] | null }).functions ?? null;
  offerFunctions(functionSelect, deviceFunctions).catch((error: unknown) => {
    functionsFor = undefined;
    say(cameraStatus, `Could not load the functions: ${describeError(error)}`, "error");
  });
}

function stop(): void {
  stopCamera();
  verdict.clear();
}

function unansweredId(body: ScanAttempt["body"]): string {
  return [body.session_id, body.function, body.qr_token].join("\n");
}

/** Checks a code; `cameraText` is what the camera read, so it can read that code again later. */
async function check(qrToken: string, cameraText?: string): Promise<void> {
  if (checking && cameraText !== undefined) {
    // Busy with a pasted code: the camera reads this one again afterwards.
    scanner.forget(cameraText);
    return;
  }
  if (!qrToken || checking) return;
  const fresh = newScanAttempt(qrToken, functionSelect.value, staff.session().session_id);
  const id = unansweredId(fresh.body);
  if (cameraText !== undefined && refusedByCamera.has(id)) return;
  const earlier = unanswered.get(id);
  await send(earlier ?? fresh, earlier !== undefined, cameraText);
}

/** Drops the oldest entries (a Set or Map iterates in insertion order) beyond `limit`. */
function bound(collection: Set<string> | Map<string, unknown>, limit: number): void {
  for (const key of collection.keys()) {
    if (collection.size <= limit) return;
    collection.delete(key);
  }
}

async function send(attempt: ScanAttempt, resent: boolean, cameraText?: string): Promise<void> {
  if (checking) return;
  checking = true;
  verdict.show({ state: "pending", text: "" });
  try {
    const outcome = await sendScan(attempt, staff.token(), {
      resent,
      onRetry: () => verdict.show({ state: "pending", text: "No answer yet: trying again" }),
    });
    settle(attempt, outcome);
    if (cameraText === undefined) return;
    // The camera reads a code that was not accepted again while it stays in view: a refused one is then
    // skipped above until the function changes; one with no answer is resent with its own key, once its
    // verdict has been seen.
    if (outcome.kind === "refused") {
      refusedByCamera.add(unansweredId(attempt.body));
      bound(refusedByCamera, REFUSED_LIMIT);
      scanner.forget(cameraText);
    } else if (outcome.kind === "unchecked") {
      setTimeout(() => scanner.forget(cameraText), VERDICT_HOLD_MS);
    }
  } finally {
    checking = false;
  }
}

function settle(attempt: ScanAttempt, outcome: ScanOutcome): void {
  const { body, key } = attempt;
  const at = new Date().toISOString();
  const id = unansweredId(body);
  unanswered.delete(id);
  if (outcome.kind === "accepted") {
    const { data, confirmedOnRetry } = outcome;
    history.record({
      id: key,
      at,
      ticketCode: data.ticket_code,
      fn: data.function,
      verdict: "accepted",
      redemptionId: data.redemption_id,
    });
    verdict.show({ state: "accepted", data, confirmedOnRetry });
  } else if (outcome.kind === "refused") {
    const { problem } = outcome.problem;
    const ticketCode = typeof problem.ticket_code === "string" ? problem.ticket_code : undefined;
    history.record({ id: key, at, ticketCode, fn: body.function, verdict: "refused", reason: problem.code });
    verdict.show({
      state: "refused",
      code: problem.code,
      fn: body.function,
      ticketCode,
      entitlements: problem.entitlements as Entitlement[] | undefined,
      confirmedOnRetry: outcome.confirmedOnRetry,
    });
  } else {
    const ticketCode = ticketCodeInToken(body.qr_token);
    if (outcome.resendable) {
      unanswered.set(id, attempt);
      bound(unanswered, UNANSWERED_LIMIT);
    }
    history.record({ id: key, at, ticketCode, fn: body.function, verdict: "unchecked" });
    verdict.show({
      state: "unchecked",
      fn: body.function,
      ticketCode,
      reason: outcome.resendable
        ? "No answer from the server. Retry before letting them through."
        : describeError(outcome.error),
      retry: outcome.resendable ? () => void send(attempt, true) : undefined,
    });
    staff.handleError(outcome.error);
  }
}

functionSelect.addEventListener("change", () => {
  rememberFunction(functionSelect.value);
  // A code refused for the old function is checked again for the new one while still in view.
  scanner.forget();
  verdict.clear();
});

function stopCamera(): void {
  scanner.stop();
  show(byId("camera"), false);
  cameraButton.textContent = "Start camera";
}

cameraButton.addEventListener("click", async () => {
  if (scanner.active) {
    stopCamera();
    say(cameraStatus, "Camera off");
    return;
  }
  say(cameraStatus, "Starting the camera…");
  show(byId("camera"), true);
  try {
    // A restarted camera checks every code afresh, refused ones too.
    refusedByCamera.clear();
    await scanner.start();
    cameraButton.textContent = "Stop camera";
    say(cameraStatus, "Camera on: hold the QR code in view", "ok");
  } catch (error) {
    stopCamera();
    say(cameraStatus, `No camera: ${describeError(error)}. Paste the code below instead.`, "error");
  }
});

manualForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const token = manualToken.value.trim();
  manualToken.value = "";
  void check(token);
});
