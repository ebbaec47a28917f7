import { ApiProblem, api, NetworkError, newIdempotencyKey } from "../lib/api";
import { busy, byId, show } from "../lib/dom";
import { describeError, money } from "../lib/format";
import type { Staff } from "../lib/staff";
import type { CustomerPanel } from "./customer";
import type { Keypad } from "./keypad";
import { readJson, writeJson } from "./store";
import type { Deduction } from "./types";

// A charge is one attempt with one Idempotency-Key: when no answer comes back (the network dropped),
// "Retry" resends the very same request, so the customer is charged at most once.

/** A charge as first sent: every retry repeats exactly this body under this key. */
interface ChargeAttempt {
  key: string;
  body: { qr_token: string; amount_cents: number; session_id: string };
}

const ATTEMPT_KEY = "passes.pos.charge";

/** No answer, or an answer that says "not decided yet": the same attempt may be sent again. */
export function retryable(error: unknown): boolean {
  return (
    error instanceof NetworkError ||
    (error instanceof ApiProblem && (error.status >= 500 || error.code === "idempotency_in_progress"))
  );
}

export interface ChargeOptions {
  staff: Staff;
  customer: CustomerPanel;
  keypad: Keypad;
  onCharged(deduction: Deduction): void;
}

export function setupCharge({ staff, customer, keypad, onCharged }: ChargeOptions) {
  const chargeButton = byId<HTMLButtonElement>("charge-button");
  const retryButton = byId<HTMLButtonElement>("retry-button");
  let attempt = readJson<ChargeAttempt>(ATTEMPT_KEY);
  let sending = false;

  function remember(next: ChargeAttempt | null): void {
    attempt = next;
    writeJson(ATTEMPT_KEY, next);
    show(retryButton, Boolean(attempt));
    if (attempt) {
      retryButton.textContent = `Retry the same charge of ${money(attempt.body.amount_cents, customer.currencyCode())}`;
    }
  }

  /** The Charge button names the amount, and works only with a wallet and an amount. */
  function refresh(): void {
    const amount = keypad.amountCents();
    chargeButton.textContent =
      amount === undefined ? "Charge" : `Charge ${money(amount, customer.currencyCode())}`;
    chargeButton.disabled = sending || amount === undefined || customer.token() === null;
  }

  async function send(current: ChargeAttempt): Promise<void> {
    customer.charging(current.body.amount_cents);
    try {
      const { data, headers } = await api<Deduction>("POST", "/pos/deductions", {
        token: staff.token(),
        idempotencyKey: current.key,
        body: current.body,
      });
      remember(null);
      customer.charged(data, headers.get("idempotent-replayed") === "true");
      keypad.clear();
      onCharged(data);
    } catch (error) {
      if (retryable(error)) {
        const reason = error instanceof NetworkError ? "No answer from the server" : describeError(error);
        customer.chargeFailed(
          `${reason}: the charge may have gone through. Retry is safe, it is never taken twice.`,
          {
            retryable: true,
          },
        );
        return;
      }
      remember(null);
      if (error instanceof ApiProblem && error.code === "insufficient_funds") {
        const balance = Number(error.problem.balance_cents ?? 0);
        const topupUrl = typeof error.problem.topup_url === "string" ? error.problem.topup_url : "/#wallet";
        customer.short(balance, topupUrl);
      } else if (error instanceof ApiProblem && error.code.startsWith("token_")) {
        customer.chargeFailed(`${describeError(error)}: scan the wallet QR again`, { forgetCode: true });
      } else {
        customer.chargeFailed(describeError(error));
      }
      staff.handleError(error);
    }
  }

  async function run(current: ChargeAttempt): Promise<void> {
    sending = true;
    refresh();
    try {
      await send(current);
    } finally {
      sending = false;
      refresh();
    }
  }

  byId<HTMLFormElement>("charge-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const amount = keypad.amountCents();
    const token = customer.token();
    if (amount === undefined) {
      customer.chargeFailed("Enter an amount such as 4.50");
      return;
    }
    if (!token) {
      customer.chargeFailed("Scan the wallet QR first");
      return;
    }
    // A new charge is a new attempt with a new key; only the Retry button repeats an old one.
    const current: ChargeAttempt = {
      key: newIdempotencyKey(),
      body: { qr_token: token, amount_cents: amount, session_id: staff.session().session_id },
    };
    remember(current);
    void run(current);
  });

  retryButton.addEventListener("click", () => {
    const current = attempt;
    if (current) void busy(retryButton, () => run(current));
  });

  return {
    refresh,
    /** Shows the Retry of a charge left unanswered before a reload. */
    restore: () => remember(attempt),
  };
}
