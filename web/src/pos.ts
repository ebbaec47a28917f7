import { ApiProblem, api } from "./lib/api";
import { byId, show } from "./lib/dom";
import { describeError } from "./lib/format";
import { QrScanner } from "./lib/scanner";
import { type Staff, setupStaff } from "./lib/staff";
import { setupCharge } from "./till/charge";
import { CustomerPanel } from "./till/customer";
import { setupKeypad } from "./till/keypad";
import { setupRefunds } from "./till/refund";
import { setupSales } from "./till/sales";
import type { WalletView } from "./till/types";

// /pos: a till. Staff open a POS session for an event, scan the customer's wallet QR, see the balance and
// charge an amount from a big keypad. The answer shows in the customer panel at the top of the screen.
// Below: this till's sales in the shift, with its total, from which a sale is refunded after a
// confirmation. The modules in ./till/ do one thing each; this file wires them together.

const SPENT_CODE_ADVICE = "This wallet code already paid: ask the customer for a fresh one";

const cameraButton = byId<HTMLButtonElement>("camera-button");
/** The modules get the staff session through this: setupStaff (below) needs them to exist first. */
const lazyStaff: Staff = {
  token: () => staff.token(),
  session: () => staff.session(),
  handleError: (error) => staff.handleError(error),
};
const customer = new CustomerPanel(() => charge.refresh());
const keypad = setupKeypad(() => charge.refresh());
const charge = setupCharge({
  staff: lazyStaff,
  customer,
  keypad,
  onCharged: (deduction) => sales.addCharge(deduction),
});
const refunds = setupRefunds({
  staff: lazyStaff,
  currency: () => customer.currencyCode(),
  onRefunded: (refund, sale) => {
    customer.refunded(refund, customer.currencyCode(), sale.receiptId);
    sales.addRefund(refund);
  },
});
const sales = setupSales({
  staff: lazyStaff,
  currency: () => customer.currencyCode(),
  onRefund: (sale) => refunds.ask(sale),
});

const scanner = new QrScanner(byId<HTMLVideoElement>("video"), async (text) => {
  stopCamera();
  await lookUp(text.trim());
});

const staff = setupStaff({
  kind: "pos",
  onReady: () => {
    customer.clear();
    charge.restore();
    charge.refresh();
    // setupStaff calls this before it returns (a session kept from before a reload): after it, then.
    queueMicrotask(() => sales.start());
  },
  onStop: () => {
    stopCamera();
    customer.clear();
    sales.stop();
  },
});

async function lookUp(token: string): Promise<void> {
  if (!token) return;
  customer.lookingUp();
  try {
    const { data } = await api<WalletView>("POST", "/pos/wallet-lookup", {
      token: staff.token(),
      body: { qr_token: token, session_id: staff.session().session_id },
    });
    customer.found(data, token);
  } catch (error) {
    const spent = error instanceof ApiProblem && error.code === "token_replayed";
    customer.lookupRefused(spent ? SPENT_CODE_ADVICE : describeError(error));
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
  // A new scan starts a new customer: nothing of the previous one stays on screen.
  customer.clear();
  show(byId("camera"), true);
  try {
    await scanner.start();
    cameraButton.textContent = "Stop camera";
  } catch (error) {
    stopCamera();
    customer.lookupRefused(`No camera: ${describeError(error)}. Paste the code instead.`);
  }
});

byId<HTMLFormElement>("manual-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const field = byId<HTMLTextAreaElement>("manual-token");
  const token = field.value.trim();
  field.value = "";
  void lookUp(token);
});
