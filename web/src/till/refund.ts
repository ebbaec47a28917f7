import { ApiProblem, api, newIdempotencyKey } from "../lib/api";
import { busy, byId, say } from "../lib/dom";
import { describeError, money, timeOfDay } from "../lib/format";
import type { Staff } from "../lib/staff";
import { retryable } from "./charge";
import { readJson, writeJson } from "./store";
import type { Refund } from "./types";

// Refunds are asked for from the shift's sales list, far from the Charge button, and always confirmed in a
// dialog that names the sale. One attempt per sale keeps its Idempotency-Key until it is answered, so a
// refund retried after a dropped connection is made once.

const REFUND_KEY = "passes.pos.refund";
const REFUND_REASON = "Refunded at the till";

/** What the confirmation shows of the sale to refund. */
export interface RefundableSale {
  transactionId: string;
  receiptId: string;
  /** What is left to refund of the sale: the API refunds exactly that when no amount is named. */
  refundableCents: number;
  createdAt: string;
}

interface RefundAttempt {
  key: string;
  transaction_id: string;
}

export interface RefundOptions {
  staff: Staff;
  currency(): string;
  onRefunded(refund: Refund, sale: RefundableSale): void;
}

export function setupRefunds({ staff, currency, onRefunded }: RefundOptions) {
  const dialog = byId<HTMLDialogElement>("refund-dialog");
  const summary = byId("refund-summary");
  const status = byId("refund-status");
  const confirm = byId<HTMLButtonElement>("refund-confirm");
  let sale: RefundableSale | null = null;

  function ask(next: RefundableSale): void {
    sale = next;
    const amount = money(next.refundableCents, currency());
    summary.textContent = `${amount} back to the customer's wallet, for the sale of ${timeOfDay(next.createdAt)} (receipt ${next.receiptId}).`;
    confirm.textContent = `Refund ${amount}`;
    say(status, "");
    dialog.showModal();
    // The safe choice has the focus: Enter or a stray tap does not refund.
    byId("refund-cancel").focus();
  }

  byId("refund-cancel").addEventListener("click", () => dialog.close());

  byId<HTMLFormElement>("refund-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const current = sale;
    if (!current) return;
    let attempt = readJson<RefundAttempt>(REFUND_KEY);
    if (!attempt || attempt.transaction_id !== current.transactionId) {
      attempt = { key: newIdempotencyKey(), transaction_id: current.transactionId };
      writeJson(REFUND_KEY, attempt);
    }
    const key = attempt.key;
    void busy(confirm, async () => {
      say(status, "Refunding…");
      try {
        const { data } = await api<Refund>(
          "POST",
          `/pos/deductions/${encodeURIComponent(current.transactionId)}/refund`,
          {
            token: staff.token(),
            idempotencyKey: key,
            body: { reason: REFUND_REASON, session_id: staff.session().session_id },
          },
        );
        writeJson(REFUND_KEY, null);
        dialog.close();
        onRefunded(data, current);
      } catch (error) {
        const again = retryable(error);
        if (!again) writeJson(REFUND_KEY, null);
        say(
          status,
          again ? `${describeError(error)}. Press Refund again to retry safely.` : describeError(error),
          "error",
        );
        // Signed out or the session ended: the page goes back to sign-in, the dialog with it.
        if (error instanceof ApiProblem && ["unauthenticated", "session_invalid"].includes(error.code))
          dialog.close();
        staff.handleError(error);
      }
    });
  });

  return { ask };
}
