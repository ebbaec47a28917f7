import { ApiProblem, newIdempotencyKey } from "../lib/api";
import { busy, byId, h, render, say, show } from "../lib/dom";
import { describeError, money } from "../lib/format";
import { DEV_TOOLS, ordersChanged, paymentSplit, readJson, retryable, timeLeft, writeJson } from "./common";
import { hostedCheckoutUrl } from "./hosted-payment";
import { letGo, letGoText, PAY_LABEL, payAndSay } from "./orders";
import { hidePayChoice, offerCredits, onPayChoice, showCreditsError } from "./pay-choice";
import { buyerApi } from "./session";
import { openTab } from "./tabs";
import { announceTickets } from "./tickets";
import type { Order, OrderLine, Product } from "./types";
import { availableCents, fetchWallet } from "./wallet";

// Checkout, in a dialog that opens where the buyer tapped Buy: how to pay (card, credits, or credits and
// card, when the wallet has credit), the reservation, and then pay, let go, or keep it for later. Closing
// the dialog never loses an order: an unpaid one stays in My orders until it is paid, let go or expires.

const CHECKOUT_KEY = "passes.buyer.checkout";

/** One checkout: what is being bought, and the attempt at ordering it. */
interface Checkout {
  items: OrderLine[];
  label: string;
  total_cents: number;
  currency: string;
  /**
   * The request in flight or unanswered: its Idempotency-Key is reused by every retry until the API
   * answers, and only for the same body (the same credits).
   */
  attempt?: { key: string; credits_cents?: number };
  order?: Order;
}

const dialog = byId<HTMLDialogElement>("checkout");
const status = byId("checkout-status");
let checkout: Checkout | null = null;
/** Where closing the dialog takes the buyer, when the refusal named a place to go. */
let afterClose: "orders" | null = null;
let countdown: ReturnType<typeof setInterval> | undefined;
/** The provider's page for the order in the dialog, once the API has answered it. */
let hostedPage: { orderId: string; url: string } | null = null;

/** Kept per tab only while a request is unanswered, so that a reload can retry it with the same key. */
function persist(): void {
  writeJson(CHECKOUT_KEY, checkout?.attempt && !checkout.order ? checkout : null);
}

function summary(current: Checkout, ...extra: (Node | null)[]): void {
  render(
    byId("order-summary"),
    h("p", {}, current.label),
    h("p", { class: "money" }, money(current.order?.total_cents ?? current.total_cents, current.currency)),
    ...extra,
  );
}

function showButtons(
  buttons: { retry?: boolean; pay?: boolean; letGo?: boolean },
  closeLabel = "Close",
): void {
  show(byId("order-retry"), Boolean(buttons.retry));
  const pay = byId("pay-button");
  pay.textContent = PAY_LABEL;
  show(pay, Boolean(buttons.pay) && DEV_TOOLS);
  show(byId("pay-note"), Boolean(buttons.pay) && !DEV_TOOLS);
  show(byId("let-go"), Boolean(buttons.letGo));
  byId("checkout-close").textContent = closeLabel;
}

export async function beginCheckout(product: Product, quantity: number): Promise<void> {
  const current: Checkout = {
    items: [{ product_id: product.id, quantity }],
    label: `${quantity} × ${product.name}`,
    total_cents: product.price_cents * quantity,
    currency: product.currency,
  };
  checkout = current;
  afterClose = null;
  clearInterval(countdown);
  summary(current);
  hidePayChoice();
  showButtons({});
  say(status, "");
  if (!dialog.open) dialog.showModal();
  let available = 0;
  try {
    available = availableCents(await fetchWallet());
  } catch {
    // No wallet (or it cannot be read now): the card is the way to pay.
  }
  if (checkout !== current) return;
  if (available > 0) offerCredits({ ...current, available_cents: available });
  else void placeOrder(current);
}

onPayChoice((creditsCents) => {
  if (checkout) void placeOrder(checkout, creditsCents);
});

async function placeOrder(current: Checkout, creditsCents?: number): Promise<void> {
  if (!current.attempt || current.attempt.credits_cents !== creditsCents) {
    current.attempt = { key: newIdempotencyKey(), credits_cents: creditsCents };
  }
  const attempt = current.attempt;
  persist();
  hidePayChoice();
  showButtons({});
  say(status, "Reserving your passes…");
  const button = byId<HTMLButtonElement>("place-order");
  try {
    const { data } = await busy(button, () =>
      buyerApi<Order>("POST", "/orders", {
        idempotencyKey: attempt.key,
        body: { items: current.items, ...(creditsCents ? { credits_cents: creditsCents } : {}) },
      }),
    );
    // Counted and listed even if the buyer closed the dialog meanwhile.
    ordersChanged();
    if (checkout !== current) return;
    current.order = data;
    persist();
    say(status, "");
    if (data.status === "PAID") {
      finish();
      announceTickets("Paid with credits: your tickets are ready.");
    } else renderOrder(current, data);
  } catch (error) {
    if (checkout !== current) return;
    if (retryable(error)) {
      showButtons({ retry: true });
      say(status, `${describeError(error)}. Retrying is safe: it cannot order twice.`, "error");
      return;
    }
    // The API answered: this attempt is over, a new one needs a new key.
    current.attempt = undefined;
    persist();
    refused(current, error);
    // A refusal for stock shows what is left.
    ordersChanged();
  }
}

/** Says why the API refused the order, next to what the buyer can change. */
function refused(current: Checkout, error: unknown): void {
  if (error instanceof ApiProblem && error.code === "insufficient_funds") {
    const available = Number(error.problem.available_cents ?? error.problem.balance_cents ?? 0);
    say(status, "");
    offerCredits({ ...current, available_cents: available });
    const balance = money(Number(error.problem.balance_cents ?? available), current.currency);
    showCreditsError(
      `Not enough credit: ${money(available, current.currency)} available (balance ${balance})`,
    );
    return;
  }
  if (error instanceof ApiProblem && error.code === "too_many_pending") {
    say(
      status,
      `Your unpaid orders already hold ${String(error.problem.pending_units ?? "too many")} passes: pay or let them go first.`,
      "error",
    );
    showButtons({});
    byId("checkout-close").textContent = "Open My orders";
    afterClose = "orders";
    return;
  }
  const text =
    error instanceof ApiProblem && error.code === "sold_out"
      ? `Sold out: ${String(error.problem.available ?? 0)} left`
      : describeError(error);
  say(status, text, "error");
  showButtons({});
}

function renderOrder(current: Checkout, order: Order): void {
  clearInterval(countdown);
  const left = h("span", {}, timeLeft(order.expires_at));
  summary(
    current,
    h("p", {}, paymentSplit(order)),
    order.credits_applied_cents > 0
      ? h(
          "p",
          { class: "muted" },
          `${money(order.credits_applied_cents, order.currency)} of your credit is held for this order until it is paid, let go or expires.`,
        )
      : null,
    h("p", { class: "muted" }, `Order ${order.order_id} · awaiting payment`),
    h("p", {}, "Reserved for you: ", left),
  );
  showButtons({ pay: true, letGo: true }, "Pay later");
  countdown = setInterval(() => {
    left.textContent = timeLeft(order.expires_at);
  }, 1_000);
  void offerHostedCheckout(order);
}

/**
 * Asks at once where the order is paid: with a provider page (Stripe Checkout) the button says "Pay" and
 * a tap leaves for the page without another round trip. Without one the dialog stays as it is (simulate
 * in development, a note elsewhere). A failure here is not shown: the tap asks again and says it.
 */
async function offerHostedCheckout(order: Order): Promise<void> {
  const url = await hostedCheckoutUrl(order.order_id).catch(() => null);
  if (!url || checkout?.order?.order_id !== order.order_id) return;
  hostedPage = { orderId: order.order_id, url };
  const button = byId("pay-button");
  button.textContent = "Pay";
  show(button, true);
  show(byId("pay-note"), false);
}

/** The checkout is over: the dialog closes and forgets it. */
function finish(): void {
  clearInterval(countdown);
  checkout = null;
  persist();
  if (dialog.open) dialog.close();
}

byId("order-retry").addEventListener("click", () => {
  if (checkout?.attempt) void placeOrder(checkout, checkout.attempt.credits_cents);
});

byId("pay-button").addEventListener("click", (event) => {
  const order = checkout?.order;
  if (!order) return;
  if (hostedPage?.orderId === order.order_id) {
    say(status, "Opening the payment page…");
    location.assign(hostedPage.url);
    return;
  }
  void busy(event.currentTarget as HTMLButtonElement, async () => {
    try {
      const paid = await payAndSay(order, status);
      // afterPayment opened the tickets; the dialog closes so they show.
      if (paid?.status === "PAID") finish();
    } catch (error) {
      say(status, describeError(error), "error");
    }
  });
});

byId("let-go").addEventListener("click", (event) => {
  const order = checkout?.order;
  if (!order) return;
  void busy(event.currentTarget as HTMLButtonElement, async () => {
    say(status, "Letting go…");
    try {
      const after = await letGo(order);
      clearInterval(countdown);
      if (checkout) checkout.order = after;
      const { text, kind } = letGoText(order, after);
      say(status, text, kind);
      showButtons({});
    } catch (error) {
      say(status, describeError(error), "error");
    }
  });
});

byId("checkout-close").addEventListener("click", () => dialog.close());

// Also reached with Escape. An unpaid order stays in My orders; the note above the catalog says so.
dialog.addEventListener("close", () => {
  const next = afterClose;
  afterClose = null;
  clearInterval(countdown);
  checkout = null;
  persist();
  if (next === "orders") openTab("orders");
});

/** After a reload: an order request that never got its answer is offered again, with the same key. */
export function restoreCheckout(): void {
  const stored = readJson<Checkout>(CHECKOUT_KEY);
  if (!stored?.attempt || stored.order) return;
  checkout = stored;
  summary(stored);
  hidePayChoice();
  showButtons({ retry: true });
  say(status, "The last order got no answer. Retrying is safe: it cannot order twice.", "error");
  if (!dialog.open) dialog.showModal();
}

export function resetCheckout(): void {
  clearInterval(countdown);
  checkout = null;
  writeJson(CHECKOUT_KEY, null);
  if (dialog.open) dialog.close();
}
