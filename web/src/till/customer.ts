import { byId, h, render, say } from "../lib/dom";
import { money, timeOfDay } from "../lib/format";
import type { Deduction, Refund, WalletView } from "./types";

// The customer panel at the top of the till: whose wallet is on the counter, its balance, and the answer
// to the last charge or refund, all where the cashier is already looking (the panel sticks to the top of
// the screen). It forgets the customer on a new scan, and by itself once nothing more can happen: when
// the wallet code expires, or a while after the sale.

/** How long a charge's or refund's answer stays up before the panel is ready for the next customer. */
export const RESULT_HOLD_MS = 30_000;
/** A looked-up customer who is never charged is forgotten after this (or when the code expires). */
export const CUSTOMER_IDLE_MS = 120_000;

type PanelState = "idle" | "pending" | "found" | "ok" | "error";

/** The `exp` of a wallet QR token (a JWS), in ms; undefined when it cannot be read. */
function tokenExpiryMs(token: string): number | undefined {
  try {
    const payload = token.split(".")[1] ?? "";
    const json = atob(payload.replaceAll("-", "+").replaceAll("_", "/"));
    const exp = (JSON.parse(json) as { exp?: unknown }).exp;
    return typeof exp === "number" ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

export class CustomerPanel {
  private readonly panel = byId("customer");
  private readonly balance = byId("balance");
  private readonly walletLine = byId("wallet-ref");
  private readonly result = byId("charge-result");
  private readonly status = byId("scan-status");
  private walletToken: string | null = null;
  private currency = "EUR";
  private clearTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(private readonly onTokenChange: (token: string | null) => void) {}

  /** The scanned wallet code a charge would use, while it can still be used. */
  token(): string | null {
    return this.walletToken;
  }

  currencyCode(): string {
    return this.currency;
  }

  /** Back to "next customer": nothing of the previous one stays on screen. */
  clear(): void {
    clearTimeout(this.clearTimer);
    this.setToken(null);
    this.balance.textContent = "—";
    this.walletLine.textContent = "";
    render(this.result);
    say(this.status, "Next customer: scan the wallet QR");
    this.setState("idle");
  }

  /** A new scan: the previous customer goes before anything about the new one is known. */
  lookingUp(): void {
    this.clear();
    say(this.status, "Looking up the wallet…");
    this.setState("pending");
  }

  found(view: WalletView, token: string): void {
    this.currency = view.currency;
    this.setToken(token);
    this.balance.textContent = money(view.balance_cents, view.currency);
    this.walletLine.textContent = `Wallet ${view.wallet_ref}${
      view.last_receipt ? ` · last paid here ${timeOfDay(view.last_receipt.created_at)}` : ""
    }`;
    render(this.result);
    say(this.status, "Wallet found: enter the amount", "ok");
    this.setState("found");
    const expiresAt = tokenExpiryMs(token);
    const idleMs = CUSTOMER_IDLE_MS;
    this.clearLater(expiresAt === undefined ? idleMs : Math.min(idleMs, expiresAt - Date.now()));
  }

  /** The lookup was refused (a spent or expired code, another event's…): nobody is on the counter. */
  lookupRefused(message: string): void {
    this.clear();
    this.showResult("error", h("strong", {}, message));
  }

  charging(amountCents: number): void {
    say(this.status, "");
    this.showResult("pending", `Charging ${money(amountCents, this.currency)}…`);
  }

  charged(deduction: Deduction, replayed: boolean): void {
    // The code is spent by this charge: the next one needs a fresh scan.
    this.setToken(null);
    this.balance.textContent = money(deduction.balance_cents, this.currency);
    this.showResult(
      "ok",
      h("strong", { class: "till-result-head" }, `Charged ${money(deduction.amount_cents, this.currency)}`),
      h(
        "span",
        {},
        `New balance ${money(deduction.balance_cents, this.currency)}`,
        replayed ? " (confirmed on retry, charged once)" : "",
      ),
    );
    say(this.status, "Scan the next wallet QR for another charge");
    this.clearLater(RESULT_HOLD_MS);
  }

  /** Not enough credit: the code stays usable, so a retry after a top-up needs no new scan. */
  short(balanceCents: number, topupUrl: string): void {
    this.balance.textContent = money(balanceCents, this.currency);
    this.showResult(
      "error",
      h("strong", { class: "till-result-head" }, "Not enough credit"),
      h(
        "span",
        {},
        `Balance ${money(balanceCents, this.currency)}. `,
        h("a", { href: topupUrl, target: "_blank", rel: "noopener" }, "Top up the wallet"),
      ),
    );
    say(this.status, "After a top-up, charge again: the same code still works");
  }

  /** A charge that did not go through; `forgetCode` when the code itself was the problem. */
  chargeFailed(message: string, options: { forgetCode?: boolean; retryable?: boolean } = {}): void {
    if (options.forgetCode) {
      this.setToken(null);
      this.balance.textContent = "—";
      this.walletLine.textContent = "";
      say(this.status, "Scan the wallet QR again", "error");
    } else say(this.status, "");
    this.showResult(options.retryable ? "pending" : "error", h("strong", {}, message));
  }

  refunded(refund: Refund, currency: string, receiptId: string): void {
    this.setToken(null);
    this.walletLine.textContent = `Refund of receipt ${receiptId}`;
    this.balance.textContent = money(refund.balance_cents, currency);
    this.showResult(
      "ok",
      h("strong", { class: "till-result-head" }, `Refunded ${money(refund.amount_cents, currency)}`),
      h("span", {}, `Wallet balance now ${money(refund.balance_cents, currency)}`),
    );
    say(this.status, "Next customer: scan the wallet QR");
    this.clearLater(RESULT_HOLD_MS);
  }

  private showResult(kind: "ok" | "error" | "pending", ...children: (Node | string)[]): void {
    render(this.result, h("div", { class: `till-result ${kind}` }, ...children));
    this.setState(kind === "pending" ? "pending" : kind);
    // On a phone shorter than the till, the panel sticks to the top; this covers one that does not.
    if (this.panel.getBoundingClientRect().top < 0) this.panel.scrollIntoView({ block: "start" });
  }

  private setState(state: PanelState): void {
    this.panel.dataset.state = state;
  }

  private setToken(token: string | null): void {
    this.walletToken = token;
    this.onTokenChange(token);
  }

  private clearLater(ms: number): void {
    clearTimeout(this.clearTimer);
    this.clearTimer = setTimeout(() => this.clear(), Math.max(0, ms));
  }
}
