import { busy, byId, h } from "../lib/dom";
import { dateTime, money } from "../lib/format";
import { onTabOpen } from "./tabs";
import type { PaymentReview } from "./types";
import { PagedList } from "./ui";

// Payments that need a person, newest first: refunds owed (money for an order that had already expired
// or been paid) and amounts that did not match what was due. The page only shows them: refunds are made
// at the payment gateway.

function renderReview(review: PaymentReview): HTMLElement {
  const refund = review.reason === "refund_owed";
  const detail = refund
    ? "Received after the order or top-up was settled: refund it at the gateway."
    : `Due ${money(review.expected_amount_cents ?? 0, review.expected_currency ?? review.currency)}: nothing was applied.`;
  return h(
    "li",
    { class: "card item", "data-payment": review.payment_id },
    h(
      "div",
      { class: "head" },
      h("strong", { class: "amount" }, money(review.amount_cents, review.currency)),
      h("span", { class: refund ? "badge warn" : "badge off" }, refund ? "Refund owed" : "Amount mismatch"),
    ),
    h("p", {}, detail),
    h(
      "dl",
      { class: "facts" },
      h("div", {}, h("dt", {}, "For"), h("dd", { class: "code" }, review.reference)),
      h("div", {}, h("dt", {}, "Payment"), h("dd", { class: "code" }, review.payment_id)),
      h("div", {}, h("dt", {}, "Received"), h("dd", {}, dateTime(review.received_at))),
    ),
  );
}

export function setupPayments(): void {
  const list = new PagedList<PaymentReview>({
    path: "/admin/payments/reviews",
    key: "reviews",
    list: byId("reviews"),
    more: byId<HTMLButtonElement>("reviews-more"),
    status: byId("reviews-status"),
    empty: "Nothing to review: every payment matched its order.",
    render: renderReview,
  });
  onTabOpen("payments", () => void list.reload());
  byId("reviews-refresh").addEventListener(
    "click",
    (event) => void busy(event.currentTarget as HTMLButtonElement, () => list.reload()),
  );
}
