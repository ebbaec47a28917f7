import { unlockSoundOnFirstTap } from "./gate/feedback";
import { offerFunctions, rememberFunction } from "./gate/functions";
import { createHistory } from "./gate/history";
import { createOfflineGate } from "./gate/offline-gate";
import { newScanAttempt, type ScanAttempt } from "./gate/scan-client";
import { createScanFlow } from "./gate/scan-flow";
import { createVerdictView, VERDICT_HOLD_MS } from "./gate/verdict";
import { byId, say, show } from "./lib/dom";
import { describeError } from "./lib/format";
import { QrScanner } from "./lib/scanner";
import { setupStaff, type ValidatorSession } from "./lib/staff";

// /gate: a validator. Staff sign in and open a session on a gate device; each QR the camera sees (or that
// is pasted) is checked with POST /tickets/scan, and the verdict fills the screen for a moment. With no
// network, or a server that stopped answering, the gate decides alone with its offline kit and queues the
// decision for the server (gate/offline-gate.ts); a service worker (gate-sw.ts) keeps the page itself
// available, so a reload without signal still opens it.

/** Codes the camera saw refused, by session, function and token: not sent again while held in view (the
 * answer would not change), but checked afresh for another function or after a camera restart. */
const REFUSED_LIMIT = 20;
const refusedByCamera = new Set<string>();
const SERVICE_WORKER_URL = "/gate-sw.js";
/** The worker controls this page only, not the other pages of the site. */
const SERVICE_WORKER_SCOPE = "/gate";

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
const offline = createOfflineGate({
  token: () => staff.token(),
  onError: (error) => staff.handleError(error),
  onLateAnswer: (attempt, outcome) => {
    // A lost scan that did let someone in is shown so; a late refusal (mostly "expired", as its code is by
    // then) would only hide that nobody checked it in time.
    if (outcome.kind === "accepted" && attempt.body.session_id === openSessionId) {
      flow.recordAnswer(attempt, outcome);
    }
  },
});
const flow = createScanFlow({
  verdict,
  history,
  offline,
  token: () => staff.token(),
  onError: (error) => staff.handleError(error),
  retry: (attempt) => void retry(attempt),
});
const scanner = new QrScanner(byId<HTMLVideoElement>("video"), (text) => check(text.trim(), text));
let checking = false;
/** The session whose device's functions are on offer. */
let functionsFor: string | undefined;
/** The session the work area shows, whose history late answers may update. */
let openSessionId: string | undefined;

const staff = setupStaff({ kind: "gate", onReady: ready, onStop: stop });
unlockSoundOnFirstTap();
registerServiceWorker();

function ready(session: ValidatorSession): void {
  openSessionId = session.session_id;
  history.open(session.session_id);
  offline.start(session);
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
  openSessionId = undefined;
  offline.stop();
  stopCamera();
  verdict.clear();
}

function registerServiceWorker(): void {
  if (!("serviceWorker" in navigator)) return;
  navigator.serviceWorker.register(SERVICE_WORKER_URL, { scope: SERVICE_WORKER_SCOPE }).catch(() => {
    // Not installed (an insecure origin, a private window): the open page still decides offline; only a
    // reload without network fails.
  });
}

function attemptId(body: ScanAttempt["body"]): string {
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
  const id = attemptId(fresh.body);
  if (cameraText !== undefined && refusedByCamera.has(id)) return;
  checking = true;
  try {
    // The same code again after a lost answer is the same attempt (same Idempotency-Key), never a new one
    // the server would refuse as `token_replayed`.
    const earlier = await offline.unansweredAttempt(fresh.body);
    const signal = await flow.scan(earlier ?? fresh, earlier !== undefined);
    if (cameraText === undefined) return;
    // The camera reads a code that was not accepted again while it stays in view: a refused one is then
    // skipped above until the function changes; one with no answer is resent with its own key, once its
    // verdict has been seen.
    if (signal === "refused") {
      refusedByCamera.add(id);
      bound(refusedByCamera, REFUSED_LIMIT);
      scanner.forget(cameraText);
    } else if (signal === "unchecked") {
      setTimeout(() => scanner.forget(cameraText), VERDICT_HOLD_MS);
    }
  } finally {
    checking = false;
  }
}

/** Sends an attempt that got no answer again, as staff asked: to the server, whatever the network looks like. */
async function retry(attempt: ScanAttempt): Promise<void> {
  if (checking) return;
  checking = true;
  try {
    await flow.scan(attempt, true, { retried: true });
  } finally {
    checking = false;
  }
}

/** Drops the oldest entries (a Set iterates in insertion order) beyond `limit`. */
function bound(collection: Set<string>, limit: number): void {
  for (const key of collection) {
    if (collection.size <= limit) return;
    collection.delete(key);
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
