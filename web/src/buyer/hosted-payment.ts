import { byId, h, render, say, show } from "../lib/dom";
import { dateTime, describeError, money } from "../lib/format";
import { settle } from "./common";
import { buyerApi } from "./session";
import { openTab } from "./tabs";
import { announceTickets } from "./tickets";
import type { Order, Transaction, Wallet } from "./types";

interface TransactionPage {
  transactions: Transaction[];
}

// Paying on the payment provider's own page (Stripe Checkout), and coming back from it. The API answers
// where to pay (`checkout_url`) or, with a gateway the venue integrates itself, nothing: then the page
// says so, or in development simulates the payment. The provider sends the buyer back to
// `/?checkout=success|cancel&reference=<order or top-up>`, and the page shows what really happened:
// the order's state as the API tells it, never the return address's word for it.

interface CheckoutAnswer {
  checkout_url: string | null;
}

/** A return from the provider's page, read once from the address (and taken out of it). */
export interface CheckoutReturn {
  result: "success" | "cancel";
  reference: string;
}

/** The provider's page for an order (opened once per order by the API); null when none is hosted. */
export async function hostedCheckoutUrl(orderId: string): Promise<string | null> {
  const { data } = await buyerApi<CheckoutAnswer>("POST", `/orders/${encodeURIComponent(orderId)}/checkout`);
  return data.checkout_url;
}

/** Sends the buyer to the provider's page for an order; false when this deployment hosts none. */
export async function goToOrderCheckout(orderId: string): Promise<boolean> {
  const url = await hostedCheckoutUrl(orderId);
  if (!url) return false;
  location.assign(url);
  return true;
}

/** The `?checkout=…&reference=…` of a return from the provider, removed from the address bar. */
export function takeCheckoutReturn(): CheckoutReturn | null {
  const url = new URL(location.href);
  const result = url.searchParams.get("checkout");
  const reference = url.searchParams.get("reference");
  if (
    (result !== "success" && result !== "cancel") ||
    !reference ||
    !/^(ord|top)_\w{1,64}$/.test(reference)
  ) {
    return null;
  }
  url.searchParams.delete("checkout");
  url.searchParams.delete("reference");
  history.replaceState(history.state, "", url);
  return { result, reference };
}

const banner = () => byId("checkout-return");
const bannerText = () => byId("checkout-return-text");

function tell(text: string, kind?: "ok" | "error", ...extra: (Node | null)[]): void {
  show(banner(), true);
  say(bannerText(), text, kind);
  render(byId("checkout-return-actions"), ...extra);
}

const getOrder = async (orderId: string) =>
  (await buyerApi<Order>("GET", `/orders/${encodeURIComponent(orderId)}`)).data;

/** The order as it stands once the provider's confirmation had time to arrive (it may trail the buyer). */
async function showOrderReturn(back: CheckoutReturn): Promise<void> {
  if (back.result === "success") tell("Confirming your payment…");
  const order =
    back.result === "success"
      ? await settle(
          () => getOrder(back.reference),
          (current) => current.status !== "PENDING_PAYMENT",
        )
      : await getOrder(back.reference);
  switch (order.status) {
    case "PAID":
      show(banner(), false);
      announceTickets("Paid: your tickets are ready.");
      return;
    case "PENDING_PAYMENT":
      tell(
        back.result === "success"
          ? "Your payment is not confirmed yet: this order updates as soon as it is."
          : `Payment not completed. The passes stay reserved until ${dateTime(order.expires_at)}.`,
        undefined,
        h("button", { type: "button", class: "secondary", onclick: () => openTab("orders") }, "My orders"),
      );
      return;
    case "PAYMENT_FAILED":
      tell("The payment failed: nothing was charged for this order.", "error");
      return;
    case "EXPIRED":
      tell(
        back.result === "success"
          ? "The order expired before the payment arrived: the money will be refunded."
          : "This order has expired.",
        "error",
      );
  }
}

/** A top-up: done once the wallet's own activity has its PURCHASE (the API's word, not the address's). */
async function showTopupReturn(back: CheckoutReturn): Promise<void> {
  openTab("wallet");
  if (back.result === "cancel") {
    tell("Top-up not completed: nothing was charged.");
    return;
  }
  tell("Confirming your top-up…");
  const purchase = async () =>
    (await buyerApi<TransactionPage>("GET", "/wallet/transactions")).data.transactions.find(
      (row) => row.type === "PURCHASE" && row.reference === back.reference,
    );
  const posted = await settle(purchase, (row) => row !== undefined);
  if (!posted) {
    tell("Your top-up is paid; the balance updates as soon as it is confirmed.");
    return;
  }
  const wallet = (await buyerApi<Wallet>("GET", "/wallet")).data;
  tell(
    `${money(posted.amount_cents, posted.currency)} added: your balance is ${money(wallet.balance_cents, wallet.currency)}.`,
    "ok",
  );
}

/** Shows what became of the order or top-up the buyer paid (or gave up) on the provider's page. */
export async function showCheckoutReturn(back: CheckoutReturn): Promise<void> {
  try {
    if (back.reference.startsWith("ord_")) await showOrderReturn(back);
    else await showTopupReturn(back);
  } catch (error) {
    tell(describeError(error), "error");
  }
}

byId("checkout-return-close").addEventListener("click", () => show(banner(), false));
