import { ApiProblem, newIdempotencyKey } from "../lib/api";
import { busy, byId, h, render, say, show } from "../lib/dom";
import { dateTime, describeError, money, parseAmountCents } from "../lib/format";
import { DEV_TOOLS, readJson, retryable, settle, writeJson } from "./common";
import { openQr } from "./qr-screen";
import { buyerApi } from "./session";
import type { QrToken, Transaction, Wallet } from "./types";

// The credit wallet: balance (and what unpaid orders hold of it), top-ups, recent activity in plain
// words, and the wallet's QR code for paying at a till. While that code is shown the balance is watched:
// a charge is said ("Paid €4.50 · balance €15.50") and answered with a fresh code, since the till has
// spent the one on screen.

const TOPUP_KEY = "passes.buyer.topup";
/** Activity rows shown: the first page's newest. */
const ACTIVITY_ROWS = 10;

/** One top-up attempt: its Idempotency-Key is made once and reused by every retry until the API answers. */
interface TopupAttempt {
  key: string;
  amount_cents: number;
  /** `checkout_url`: the payment provider's page for it; `null` with a gateway the venue integrates. */
  topup?: { topup_id: string; status: string; amount_cents: number; checkout_url?: string | null };
}

let topupAttempt: TopupAttempt | null = readJson<TopupAttempt>(TOPUP_KEY);
/** Sequence number of wallet reads: a slower, older answer must not overwrite a newer one. */
let latestRead = 0;

const walletControls = () => [
  byId<HTMLButtonElement>("wallet-qr-button"),
  byId<HTMLButtonElement>("topup-button"),
];

export async function fetchWallet(): Promise<Wallet> {
  return (await buyerApi<Wallet>("GET", "/wallet")).data;
}

/** What the wallet can pay now: its balance less what unpaid orders hold. */
export const availableCents = (wallet: Wallet) =>
  wallet.available_cents ?? wallet.balance_cents - (wallet.held_cents ?? 0);

export async function loadWallet(): Promise<void> {
  const read = ++latestRead;
  const status = byId("wallet-status");
  try {
    const wallet = await fetchWallet();
    if (read !== latestRead) return;
    byId("balance").textContent = money(wallet.balance_cents, wallet.currency);
    byId("wallet-held").textContent = wallet.held_cents
      ? `${money(wallet.held_cents, wallet.currency)} held for unpaid orders · ${money(
          availableCents(wallet),
          wallet.currency,
        )} available`
      : "";
    byId("wallet-updated").textContent = wallet.updated_at ? `Updated ${dateTime(wallet.updated_at)}` : "";
    for (const control of walletControls()) control.disabled = false;
    if (status.dataset.kind === "error") say(status, "");
    void loadActivity(read);
  } catch (error) {
    const missing = error instanceof ApiProblem && error.status === 404;
    say(status, missing ? "The wallet is not available on this server yet." : describeError(error), "error");
    if (missing) for (const control of walletControls()) control.disabled = true;
  }
}

/** A ledger row in the buyer's words. An order's reference names it (`ord_…`); a till's does not. */
function activityWords(row: Transaction): string {
  switch (row.type) {
    case "PURCHASE":
      return "Top-up";
    case "DEDUCT":
      return row.reference?.startsWith("ord_") ? "Paid for passes" : "Paid at a till";
    case "REFUND":
      return "Refund from a till";
    case "ADJUSTMENT":
      return "Adjustment";
    default:
      return "Other change";
  }
}

/** Amounts are positive; `direction` gives the sign (a DEDUCT is a debit where it is not stated). */
const debit = (row: Transaction) => (row.direction ? row.direction === "debit" : row.type === "DEDUCT");

/** The first page's newest rows; `read` is the wallet read it belongs to (a newer one wins). */
async function loadActivity(read: number): Promise<void> {
  const list = byId("transactions");
  try {
    const { data } = await buyerApi<{ transactions: Transaction[] }>("GET", "/wallet/transactions");
    if (read !== latestRead) return;
    render(
      list,
      ...data.transactions
        .slice(0, ACTIVITY_ROWS)
        .map((row) =>
          h(
            "li",
            { class: "head", "data-type": row.type },
            h(
              "span",
              {},
              h("span", { class: "what" }, activityWords(row)),
              h("br"),
              h("small", { class: "muted" }, dateTime(row.created_at)),
            ),
            h("strong", {}, `${debit(row) ? "−" : "+"}${money(row.amount_cents, row.currency)}`),
          ),
        ),
    );
    if (data.transactions.length === 0) render(list, h("li", { class: "muted" }, "Nothing yet."));
  } catch {
    if (read === latestRead) render(list, h("li", { class: "muted" }, "Activity is not available."));
  }
}

export function renderTopupAttempt(): void {
  const pending = topupAttempt?.topup;
  const hosted = Boolean(pending?.checkout_url);
  show(byId("topup-pending"), Boolean(pending));
  show(byId("topup-pay"), hosted || DEV_TOOLS);
  byId("topup-pay").textContent = hosted ? "Pay" : "Simulate payment";
  if (pending) {
    byId("topup-summary").textContent = `Top-up of ${money(pending.amount_cents)} waiting for payment${
      hosted || DEV_TOOLS ? "" : ": complete it with the payment provider"
    }.`;
  }
}

export function resetWallet(): void {
  topupAttempt = null;
  writeJson(TOPUP_KEY, null);
  latestRead += 1;
}

byId<HTMLFormElement>("topup-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const status = byId("topup-status");
  const field = byId<HTMLInputElement>("topup-amount");
  const amount = parseAmountCents(field.value);
  if (amount === undefined) {
    field.setAttribute("aria-invalid", "true");
    say(status, "Enter an amount such as 20 or 12.50", "error");
    field.focus();
    return;
  }
  field.removeAttribute("aria-invalid");
  // A retry of the same amount after no answer reuses the attempt's key, so it cannot top up twice.
  if (!topupAttempt || topupAttempt.topup || topupAttempt.amount_cents !== amount) {
    topupAttempt = { key: newIdempotencyKey(), amount_cents: amount };
    writeJson(TOPUP_KEY, topupAttempt);
  }
  const attempt = topupAttempt;
  void busy(byId<HTMLButtonElement>("topup-button"), async () => {
    say(status, "Starting the top-up…");
    try {
      const { data } = await buyerApi<NonNullable<TopupAttempt["topup"]>>("POST", "/wallet/topups", {
        idempotencyKey: attempt.key,
        body: { amount_cents: attempt.amount_cents },
      });
      attempt.topup = data;
      writeJson(TOPUP_KEY, attempt);
      say(status, "");
      renderTopupAttempt();
    } catch (error) {
      say(
        status,
        retryable(error)
          ? `${describeError(error)}. Press Top up again to retry safely.`
          : describeError(error),
        "error",
      );
      if (!retryable(error)) {
        topupAttempt = null;
        writeJson(TOPUP_KEY, null);
      }
    }
  });
});

byId("topup-pay").addEventListener("click", (event) => {
  const pending = topupAttempt?.topup;
  if (!pending) return;
  const status = byId("topup-status");
  if (pending.checkout_url) {
    // The provider's page; it sends the buyer back to /?checkout=…&reference=<topup_id>.
    say(status, "Opening the payment page…");
    location.assign(pending.checkout_url);
    return;
  }
  void busy(event.currentTarget as HTMLButtonElement, async () => {
    say(status, "Paying…");
    try {
      const before = (await fetchWallet()).balance_cents;
      await buyerApi("POST", "/dev/simulate-payment", {
        body: { topup_id: pending.topup_id, amount_cents: pending.amount_cents },
      });
      const after = await settle(fetchWallet, (wallet) => wallet.balance_cents > before);
      topupAttempt = null;
      writeJson(TOPUP_KEY, null);
      renderTopupAttempt();
      await loadWallet();
      if (after.balance_cents > before)
        say(status, `${money(pending.amount_cents, after.currency)} added`, "ok");
      else say(status, "Payment sent: the balance updates as soon as it is confirmed");
    } catch (error) {
      say(status, describeError(error), "error");
    }
  });
});

byId("wallet-qr-button").addEventListener("click", () => {
  let last: Wallet | undefined;
  openQr({
    title: "Wallet",
    subtitle: "Show this code at the till to pay with your credit",
    label: "QR code for paying from your wallet",
    fetchToken: async () => (await buyerApi<QrToken>("POST", "/wallet/qr-token")).data,
    watch: async () => {
      const wallet = await fetchWallet();
      const before = last;
      last = wallet;
      const details = [h("li", {}, `Balance ${money(wallet.balance_cents, wallet.currency)}`)];
      const change = before ? wallet.balance_cents - before.balance_cents : 0;
      const balance = `balance ${money(wallet.balance_cents, wallet.currency)}`;
      // A till charged the code on screen, which is spent now: the next charge needs a fresh one.
      if (change < 0)
        return { details, notice: `Paid ${money(-change, wallet.currency)} · ${balance}`, spent: true };
      if (change > 0) return { details, notice: `Added ${money(change, wallet.currency)} · ${balance}` };
      return { details };
    },
    closed: () => void loadWallet(),
  });
});
