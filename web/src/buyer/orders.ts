import { ApiProblem } from "../lib/api";
import { busy, byId, h, render, say, show } from "../lib/dom";
import { dateTime, describeError, money } from "../lib/format";
import {
  DEV_TOOLS,
  onOrdersChanged,
  orderLabel,
  ordersChanged,
  paymentSplit,
  settle,
  timeLeft,
} from "./common";
import { goToOrderCheckout } from "./hosted-payment";
import { buyerApi } from "./session";
import { openTab } from "./tabs";
import { announceTickets } from "./tickets";
import type { Order, OrderPage, OrderStatus } from "./types";

// "My orders": every order of the buyer, newest first, a page at a time. An unpaid order can be paid
// (simulated in development) or let go, which gives its passes back to the catalog and its held credit
// back to the wallet at once instead of at its deadline.

/** Orders per page of the list. */
const ORDERS_PAGE_SIZE = 10;
/** One read counts the unpaid orders: the API's pending-units cap keeps them well under this. */
const PENDING_COUNT_LIMIT = 50;

const STATUS_WORDS: Record<OrderStatus, string> = {
  PENDING_PAYMENT: "Awaiting payment",
  PAID: "Paid",
  PAYMENT_FAILED: "Payment failed",
  EXPIRED: "Expired",
};

const list = byId<HTMLUListElement>("orders");
const filter = byId<HTMLSelectElement>("orders-filter");
const more = byId<HTMLButtonElement>("orders-more");
let nextCursor: string | null = null;
/** Sequence number of list reads: a slower, older answer must not overwrite a newer one. */
let latestRead = 0;
let countdown: ReturnType<typeof setInterval> | undefined;

function getOrder(orderId: string): Promise<Order> {
  return buyerApi<Order>("GET", `/orders/${encodeURIComponent(orderId)}`).then((result) => result.data);
}

/**
 * Lets the order go now. Answers the order as it ended up: EXPIRED, or PAID / PAYMENT_FAILED when that
 * happened first (the API's `order_not_pending`).
 */
export async function letGo(order: Order): Promise<Order> {
  try {
    const { data } = await buyerApi<Order>("POST", `/orders/${encodeURIComponent(order.order_id)}/cancel`);
    return data;
  } catch (error) {
    if (error instanceof ApiProblem && error.code === "order_not_pending") return getOrder(order.order_id);
    throw error;
  } finally {
    ordersChanged();
  }
}

/** What letting go did, in words. */
export function letGoText(before: Order, after: Order): { text: string; kind: "ok" | "error" } {
  if (after.status === "PAID")
    return { text: "Too late to let go: this order is already paid", kind: "error" };
  if (after.status === "PAYMENT_FAILED")
    return { text: "Its payment failed: nothing is reserved any more", kind: "ok" };
  const credit =
    before.credits_applied_cents > 0
      ? ` and ${money(before.credits_applied_cents, before.currency)} of credit is free again`
      : "";
  return { text: `Let go: the passes are back on sale${credit}`, kind: "ok" };
}

/** The development stand-in for the payment provider; answers the order once it left PENDING_PAYMENT. */
export async function simulatePayment(order: Order): Promise<Order> {
  try {
    await buyerApi("POST", "/dev/simulate-payment", { body: { order_id: order.order_id } });
    return await settle(
      () => getOrder(order.order_id),
      (current) => current.status !== "PENDING_PAYMENT",
    );
  } finally {
    ordersChanged();
  }
}

/** The pay button's words: development simulates a payment where no provider page is configured. */
export const PAY_LABEL = DEV_TOOLS ? "Simulate payment" : "Pay";

/**
 * Pays an order: on the payment provider's page when the deployment has one (the browser leaves for it:
 * `"left"`), else in development by a simulated payment (the order as it ended up), else nowhere this page
 * can reach (`"elsewhere"`: the venue's own gateway).
 */
export async function payOrder(order: Order): Promise<Order | "left" | "elsewhere"> {
  if (await goToOrderCheckout(order.order_id)) return "left";
  if (DEV_TOOLS) return simulatePayment(order);
  return "elsewhere";
}

/** Pays from a button and says what happened under it. */
export async function payAndSay(order: Order, status: HTMLElement): Promise<Order | null> {
  say(status, "Paying…");
  const outcome = await payOrder(order);
  if (outcome === "left") {
    say(status, "Opening the payment page…");
    return null;
  }
  if (outcome === "elsewhere") {
    say(status, "Complete the payment with the payment provider; this order updates once it is confirmed");
    return null;
  }
  afterPayment(outcome, status);
  return outcome;
}

/** Opens the tickets of a paid order, or says why the payment did not go through. */
export function afterPayment(paid: Order, status: HTMLElement): boolean {
  if (paid.status !== "PAID") {
    const why =
      paid.status === "PENDING_PAYMENT" ? "not confirmed yet" : STATUS_WORDS[paid.status].toLowerCase();
    say(status, `Payment did not go through (${why})`, "error");
    return false;
  }
  announceTickets("Paid: your tickets are ready.");
  return true;
}

function orderCard(order: Order): HTMLLIElement {
  const pending = order.status === "PENDING_PAYMENT";
  const status = h("p", { class: "status", role: "status" });
  const actions = pending
    ? h(
        "div",
        { class: "row" },
        h(
          "button",
          {
            type: "button",
            onclick: (event: Event) =>
              void busy(event.currentTarget as HTMLButtonElement, async () => {
                try {
                  await payAndSay(order, status);
                } catch (error) {
                  say(status, describeError(error), "error");
                }
              }),
          },
          PAY_LABEL,
        ),
        h(
          "button",
          {
            type: "button",
            class: "danger",
            onclick: (event: Event) =>
              void busy(event.currentTarget as HTMLButtonElement, async () => {
                say(status, "Letting go…");
                try {
                  const after = await letGo(order);
                  // The card shows the order as it is now, and says so where the buyer tapped.
                  const replacement = orderCard(after);
                  card.replaceWith(replacement);
                  const { text, kind } = letGoText(order, after);
                  const said = replacement.querySelector<HTMLElement>(".status");
                  if (said) say(said, text, kind);
                } catch (error) {
                  say(status, describeError(error), "error");
                }
              }),
          },
          "Let go",
        ),
      )
    : null;
  const card = h(
    "li",
    { class: "card order", "data-order": order.order_id, "data-status": order.status },
    h(
      "div",
      { class: "head" },
      h("strong", {}, orderLabel(order.items)),
      h(
        "span",
        { class: pending || order.status === "PAID" ? "badge" : "badge off" },
        STATUS_WORDS[order.status],
      ),
    ),
    h(
      "p",
      {},
      money(order.total_cents, order.currency),
      h("span", { class: "muted" }, ` · ${paymentSplit(order)}`),
    ),
    pending && order.credits_applied_cents > 0
      ? h(
          "p",
          { class: "muted" },
          `${money(order.credits_applied_cents, order.currency)} of your credit is held for it`,
        )
      : null,
    pending
      ? h("p", {}, "Reserved: ", h("span", { "data-expires": order.expires_at }, timeLeft(order.expires_at)))
      : null,
    pending && !DEV_TOOLS ? h("p", { class: "muted" }, "You pay on the payment provider's page.") : null,
    order.created_at
      ? h("p", { class: "muted" }, `Ordered ${dateTime(order.created_at)} · ${order.order_id}`)
      : null,
    actions,
    status,
  );
  return card;
}

async function readPage(cursor: string | null): Promise<OrderPage> {
  const query: Record<string, string> = { limit: String(ORDERS_PAGE_SIZE) };
  if (filter.value) query.status = filter.value;
  if (cursor) query.cursor = cursor;
  return (await buyerApi<OrderPage>("GET", "/my/orders", { query })).data;
}

export async function loadOrders(): Promise<void> {
  const read = ++latestRead;
  const status = byId("orders-status");
  try {
    const page = await readPage(null);
    if (read !== latestRead) return;
    nextCursor = page.next_cursor;
    render(list, ...page.orders.map(orderCard));
    show(more, nextCursor !== null);
    if (page.orders.length === 0) render(list, h("li", { class: "muted" }, "No orders here yet."));
    if (status.dataset.kind === "error") say(status, "");
    startCountdown();
  } catch (error) {
    if (read === latestRead) say(status, `Could not load your orders: ${describeError(error)}`, "error");
  }
}

more.addEventListener("click", () => {
  const read = latestRead;
  void busy(more, async () => {
    try {
      const page = await readPage(nextCursor);
      if (read !== latestRead) return;
      nextCursor = page.next_cursor;
      list.append(...page.orders.map(orderCard));
      show(more, nextCursor !== null);
    } catch (error) {
      say(byId("orders-status"), `Could not load more orders: ${describeError(error)}`, "error");
    }
  });
});

filter.addEventListener("change", () => {
  say(byId("orders-status"), "");
  void loadOrders();
});

byId("orders-refresh").addEventListener("click", () => {
  say(byId("orders-status"), "");
  void loadOrders();
});

/** Keeps the "left" times of unpaid orders current; a deadline reached reads the list again. */
function startCountdown(): void {
  clearInterval(countdown);
  countdown = setInterval(() => {
    if (byId("tab-orders").hidden) return;
    let lapsed = false;
    for (const element of list.querySelectorAll<HTMLElement>("[data-expires]")) {
      const text = timeLeft(element.dataset.expires ?? "");
      element.textContent = text;
      if (text === "expired") lapsed = true;
    }
    if (lapsed) {
      clearInterval(countdown);
      void loadOrders();
      void refreshPendingOrders();
    }
  }, 1_000);
}

/** Counts the unpaid orders into the Orders tab and the note above the catalog. */
export async function refreshPendingOrders(): Promise<void> {
  try {
    const { data } = await buyerApi<OrderPage>("GET", "/my/orders", {
      query: { status: "PENDING_PAYMENT", limit: String(PENDING_COUNT_LIMIT) },
    });
    const count = data.orders.length;
    const badge = byId("orders-count");
    badge.textContent = count > 0 ? String(count) : "";
    show(badge, count > 0);
    const next = data.orders.map((order) => order.expires_at).sort()[0];
    byId("pending-text").textContent =
      count === 1
        ? `You have an unpaid order, reserved until ${new Date(next ?? "").toLocaleTimeString(undefined, { timeStyle: "short" })}.`
        : `You have ${count} unpaid orders.`;
    show(byId("pending-notice"), count > 0);
  } catch {
    // Only a hint: the Orders tab says what went wrong when it is opened.
  }
}

byId("pending-open").addEventListener("click", () => openTab("orders"));

// The list itself is read when the tab opens; its own cards update themselves in place.
onOrdersChanged(() => void refreshPendingOrders());

export function resetOrders(): void {
  clearInterval(countdown);
  latestRead += 1;
  nextCursor = null;
  render(list);
  show(more, false);
  show(byId("pending-notice"), false);
  show(byId("orders-count"), false);
  say(byId("orders-status"), "");
}
