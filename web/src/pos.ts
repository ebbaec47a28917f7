import { ApiProblem, api, NetworkError, newIdempotencyKey } from "./lib/api";
import { busy, byId, h, render, say, show } from "./lib/dom";
import { dateTime, describeError, money, parseAmountCents } from "./lib/format";
import { QrScanner } from "./lib/scanner";
import { setupStaff } from "./lib/staff";

// /pos: a till. Staff open a POS session for an event, scan the customer's wallet QR, see the balance and
// charge an amount. A charge is one attempt with one Idempotency-Key: when no answer comes back (the network
// dropped), "Retry" resends the very same request, so the customer is charged at most once.

interface Lookup {
  wallet_ref: string;
  balance_cents: number;
  currency: string;
  last_receipt?: { id: string; created_at: string } | null;
}

interface Deduction {
  transaction_id: string;
  amount_cents: number;
  balance_cents: number;
  receipt: { id: string; event_id: string; device_id: string; created_at: string };
}

/** A charge as first sent: every retry repeats exactly this body under this key. */
interface ChargeAttempt {
  key: string;
  body: { qr_token: string; amount_cents: number; session_id: string };
}

interface RefundAttempt {
  key: string;
  transaction_id: string;
}

const ATTEMPT_KEY = "passes.pos.charge";
const LAST_KEY = "passes.pos.last";
const REFUND_KEY = "passes.pos.refund";
const REFUND_REASON = "Refunded at the till";

const amountInput = byId<HTMLInputElement>("amount");
const chargeButton = byId<HTMLButtonElement>("charge-button");
const retryButton = byId<HTMLButtonElement>("retry-button");
const chargeResult = byId("charge-result");
const scanStatus = byId("scan-status");
const cameraButton = byId<HTMLButtonElement>("camera-button");

let walletToken: string | null = null;
let currency = "EUR";
let attempt = readJson<ChargeAttempt>(ATTEMPT_KEY);
let lastCharge = readJson<Deduction>(LAST_KEY);
let refundAttempt = readJson<RefundAttempt>(REFUND_KEY);

function readJson<T>(key: string): T | null {
  try {
    return JSON.parse(sessionStorage.getItem(key) ?? "null") as T | null;
  } catch {
    return null;
  }
}

function writeJson(key: string, value: unknown): void {
  if (value === null) sessionStorage.removeItem(key);
  else sessionStorage.setItem(key, JSON.stringify(value));
}

function retryable(error: unknown): boolean {
  return (
    error instanceof NetworkError ||
    (error instanceof ApiProblem && (error.status >= 500 || error.code === "idempotency_in_progress"))
  );
}

const scanner = new QrScanner(byId<HTMLVideoElement>("video"), async (text) => {
  stopCamera();
  await lookUp(text.trim());
});

const staff = setupStaff({
  kind: "pos",
  onReady: () => {
    renderAttempt();
    renderLast();
  },
  onStop: () => {
    stopCamera();
    forgetWallet();
  },
});

function forgetWallet(): void {
  walletToken = null;
  chargeButton.disabled = true;
  byId("balance").textContent = "—";
  byId("wallet-ref").textContent = "";
}

async function lookUp(token: string): Promise<void> {
  if (!token) return;
  say(scanStatus, "Looking up the wallet…");
  try {
    const { data } = await api<Lookup>("POST", "/pos/wallet-lookup", {
      token: staff.token(),
      body: { qr_token: token, session_id: staff.session().session_id },
    });
    walletToken = token;
    currency = data.currency;
    byId("balance").textContent = money(data.balance_cents, data.currency);
    byId("wallet-ref").textContent = `Wallet ${data.wallet_ref}${
      data.last_receipt ? ` · last receipt ${dateTime(data.last_receipt.created_at)}` : ""
    }`;
    chargeButton.disabled = false;
    say(scanStatus, "Wallet found: enter the amount", "ok");
    render(chargeResult);
    amountInput.focus();
  } catch (error) {
    forgetWallet();
    say(scanStatus, describeError(error), "error");
    staff.handleError(error);
  }
}

function stopCamera(): void {
  scanner.stop();
  show(byId("camera"), false);
  cameraButton.textContent = "Scan wallet QR";
}

cameraButton.addEventListener("click", async () => {
  if (scanner.active) {
    stopCamera();
    return;
  }
  say(scanStatus, "Starting the camera…");
  show(byId("camera"), true);
  try {
    scanner.forgetLastCode();
    await scanner.start();
    cameraButton.textContent = "Stop camera";
    say(scanStatus, "Hold the wallet QR in view");
  } catch (error) {
    stopCamera();
    say(scanStatus, `No camera: ${describeError(error)}. Paste the token instead.`, "error");
  }
});

byId<HTMLFormElement>("manual-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const field = byId<HTMLTextAreaElement>("manual-token");
  const token = field.value.trim();
  field.value = "";
  void lookUp(token);
});

function renderAttempt(): void {
  show(retryButton, Boolean(attempt));
  if (attempt)
    retryButton.textContent = `Retry the same charge of ${money(attempt.body.amount_cents, currency)}`;
}

function renderLast(): void {
  show(byId("last"), Boolean(lastCharge));
  if (!lastCharge) return;
  show(byId("refund-button"), true);
  say(byId("refund-status"), "");
  byId("last-summary").textContent =
    `${money(lastCharge.amount_cents, currency)} · receipt ${lastCharge.receipt.id} · ${dateTime(lastCharge.receipt.created_at)}`;
}

function notice(kind: "ok" | "error", ...children: (Node | string)[]): void {
  render(chargeResult, h("div", { class: kind === "ok" ? "notice ok" : "notice" }, ...children));
}

async function sendCharge(current: ChargeAttempt): Promise<void> {
  notice("ok", "Charging…");
  try {
    const { data, headers } = await api<Deduction>("POST", "/pos/deductions", {
      token: staff.token(),
      idempotencyKey: current.key,
      body: current.body,
    });
    attempt = null;
    writeJson(ATTEMPT_KEY, null);
    lastCharge = data;
    writeJson(LAST_KEY, data);
    refundAttempt = null;
    writeJson(REFUND_KEY, null);
    // The token's jti is spent by this charge: the next one needs a fresh scan.
    forgetWallet();
    byId("balance").textContent = money(data.balance_cents, currency);
    say(scanStatus, "Scan the wallet QR again for another charge");
    notice(
      "ok",
      h("strong", {}, `Charged ${money(data.amount_cents, currency)}`),
      h("br"),
      `New balance ${money(data.balance_cents, currency)}`,
      headers.get("idempotent-replayed") === "true" ? " (confirmed on retry, charged once)" : "",
    );
    amountInput.value = "";
    renderLast();
  } catch (error) {
    if (retryable(error)) {
      notice(
        "error",
        `${describeError(error)}. Retry sends the same charge again: it can never be taken twice.`,
      );
      return;
    }
    attempt = null;
    writeJson(ATTEMPT_KEY, null);
    if (error instanceof ApiProblem && error.code === "insufficient_funds") {
      const balance = Number(error.problem.balance_cents ?? 0);
      const topupUrl = typeof error.problem.topup_url === "string" ? error.problem.topup_url : "/#wallet";
      notice(
        "error",
        h("strong", {}, "Not enough credit"),
        h("br"),
        `Balance ${money(balance, currency)}. `,
        h("a", { href: topupUrl, target: "_blank", rel: "noopener" }, "Top up the wallet"),
      );
    } else if (error instanceof ApiProblem && error.code.startsWith("token_")) {
      forgetWallet();
      notice("error", `${describeError(error)}: scan the wallet QR again`);
    } else {
      notice("error", describeError(error));
    }
    staff.handleError(error);
  } finally {
    renderAttempt();
  }
}

byId<HTMLFormElement>("charge-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const amount = parseAmountCents(amountInput.value);
  if (amount === undefined) {
    notice("error", "Enter an amount such as 4.50");
    return;
  }
  if (!walletToken) {
    notice("error", "Scan the wallet QR first");
    return;
  }
  const body = { qr_token: walletToken, amount_cents: amount, session_id: staff.session().session_id };
  // A new charge is a new attempt with a new key; only the Retry button repeats an old one.
  const current: ChargeAttempt = { key: newIdempotencyKey(), body };
  attempt = current;
  writeJson(ATTEMPT_KEY, current);
  renderAttempt();
  chargeButton.disabled = true;
  void sendCharge(current).finally(() => {
    chargeButton.disabled = walletToken === null;
  });
});

retryButton.addEventListener("click", () => {
  const current = attempt;
  if (current) void busy(retryButton, () => sendCharge(current));
});

byId("refund-button").addEventListener("click", (event) => {
  const charge = lastCharge;
  if (!charge) return;
  if (!refundAttempt || refundAttempt.transaction_id !== charge.transaction_id) {
    refundAttempt = { key: newIdempotencyKey(), transaction_id: charge.transaction_id };
    writeJson(REFUND_KEY, refundAttempt);
  }
  const current = refundAttempt;
  const status = byId("refund-status");
  void busy(event.currentTarget as HTMLButtonElement, async () => {
    say(status, "Refunding…");
    try {
      const { data } = await api<{ amount_cents: number }>(
        "POST",
        `/pos/deductions/${encodeURIComponent(current.transaction_id)}/refund`,
        {
          token: staff.token(),
          idempotencyKey: current.key,
          body: { reason: REFUND_REASON, session_id: staff.session().session_id },
        },
      );
      say(status, `Refunded ${money(data.amount_cents, currency)}`, "ok");
      lastCharge = null;
      writeJson(LAST_KEY, null);
      refundAttempt = null;
      writeJson(REFUND_KEY, null);
      byId("last-summary").textContent = `Receipt ${charge.receipt.id}`;
      show(byId("refund-button"), false);
    } catch (error) {
      say(
        status,
        retryable(error)
          ? `${describeError(error)}. Press Refund again to retry safely.`
          : describeError(error),
        "error",
      );
      if (!retryable(error)) {
        refundAttempt = null;
        writeJson(REFUND_KEY, null);
      }
      staff.handleError(error);
    }
  });
});
