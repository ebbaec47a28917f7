import { ApiProblem, api } from "./lib/api";
import { byId, h, render, say, show } from "./lib/dom";
import { describeError, reasonText } from "./lib/format";
import { QrScanner } from "./lib/scanner";
import { setupStaff } from "./lib/staff";

// /gate: a validator. Staff sign in, open a session on a gate device, then each QR seen by the camera (or
// pasted) is POSTed to /tickets/scan and the verdict fills the screen, readable at arm's length.

interface Entitlement {
  function: string;
  total_uses: number;
  remaining_uses: number;
}

interface ScanAccepted {
  result: "accepted";
  ticket_code: string;
  function: string;
  entitlements: Entitlement[];
}

const FUNCTION_KEY = "passes.gate.function";

const result = byId("result");
const verdict = byId("verdict");
const reason = byId("reason");
const uses = byId("uses");
const timing = byId("timing");
const functionSelect = byId<HTMLSelectElement>("function");
const cameraButton = byId<HTMLButtonElement>("camera-button");
const cameraStatus = byId("camera-status");
const manualForm = byId<HTMLFormElement>("manual-form");
const manualToken = byId<HTMLTextAreaElement>("manual-token");

let scanning = false;
const scanner = new QrScanner(byId<HTMLVideoElement>("video"), (text) => scan(text.trim()));

const staff = setupStaff({
  kind: "gate",
  onReady: () => void loadFunctions(),
  onStop: () => stopCamera(),
});

/** The functions sold in the catalog, so the operator picks what this gate opens instead of typing it. */
async function loadFunctions(): Promise<void> {
  if (functionSelect.options.length > 0) return;
  try {
    const { data } = await api<{ products: { functions: { function: string }[] }[] }>("GET", "/catalog");
    const names = [...new Set(data.products.flatMap((product) => product.functions.map((f) => f.function)))];
    render(functionSelect, ...names.sort().map((name) => h("option", { value: name }, name)));
    const remembered = localStorage.getItem(FUNCTION_KEY);
    if (remembered && names.includes(remembered)) functionSelect.value = remembered;
  } catch (error) {
    say(cameraStatus, `Could not load the functions: ${describeError(error)}`, "error");
  }
}

functionSelect.addEventListener("change", () => localStorage.setItem(FUNCTION_KEY, functionSelect.value));

function showEntitlements(entitlements: Entitlement[] | undefined, scanned: string): void {
  const sorted = [...(entitlements ?? [])].sort(
    (a, b) => Number(b.function === scanned) - Number(a.function === scanned),
  );
  render(
    uses,
    ...sorted.map((entitlement) =>
      h(
        "li",
        { class: entitlement.function === scanned ? "scanned" : undefined },
        h("span", {}, entitlement.function),
        h("strong", {}, `${entitlement.remaining_uses} of ${entitlement.total_uses} left`),
      ),
    ),
  );
}

function showVerdict(state: "accepted" | "refused" | "pending", title: string, detail: string): void {
  result.dataset.state = state;
  verdict.textContent = title;
  reason.textContent = detail;
}

async function scan(token: string): Promise<void> {
  if (!token || scanning) return;
  scanning = true;
  const fn = functionSelect.value;
  showVerdict("pending", "Checking…", "");
  render(uses);
  timing.textContent = "";
  try {
    const { data, elapsedMs } = await api<ScanAccepted>("POST", "/tickets/scan", {
      token: staff.token(),
      body: { qr_token: token, function: fn, session_id: staff.session().session_id },
    });
    const left = data.entitlements.find((entitlement) => entitlement.function === data.function);
    showVerdict("accepted", "ACCEPTED", `${data.function} · ticket ${data.ticket_code}`);
    showEntitlements(data.entitlements, data.function);
    timing.textContent = `Round trip ${Math.round(elapsedMs)} ms${left ? ` · ${left.remaining_uses} ${data.function} left` : ""}`;
  } catch (error) {
    if (error instanceof ApiProblem) {
      const problem = error.problem;
      showVerdict("refused", "REFUSED", `${reasonText(error.code)} (${fn})`);
      showEntitlements(problem.entitlements as Entitlement[] | undefined, fn);
      timing.textContent = `Round trip ${Math.round(error.elapsedMs)} ms`;
      staff.handleError(error);
    } else {
      showVerdict("refused", "NOT CHECKED", describeError(error));
    }
  } finally {
    scanning = false;
  }
}

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
    const decoder = await scanner.start();
    cameraButton.textContent = "Stop camera";
    say(cameraStatus, `Camera on: hold the QR code in view (${decoder})`, "ok");
  } catch (error) {
    stopCamera();
    say(cameraStatus, `No camera: ${describeError(error)}. Paste the token below instead.`, "error");
  }
});

manualForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const token = manualToken.value.trim();
  manualToken.value = "";
  void scan(token);
});
