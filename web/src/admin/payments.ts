import { busy, byId, h, say } from "../lib/dom";
import { dateTime, money } from "../lib/format";
import { adminApi } from "./session";
import { onTabOpen } from "./tabs";
import type { PaymentRefund, PaymentReview } from "./types";
import { confirmInline, PagedList } from "./ui";

// Payments that need a person, newest first: refunds owed (money for an order that had already expired
// or been paid) and amounts that did not match what was due. A refund owed is given back from here:
// through the provider's API (Stripe), or, for the standard gateway (which has none), recorded once the
// admin has refunded it in the gateway's dashboard. The API makes either happen once per payment.

const REFUND_WORDS: Record<NonNullable<PaymentReview["refund_status"]>, string> = {
  requested: "Refund requested: the provider has not answered yet. Ask again to finish it.",
  issued: "Refunded through the payment provider.",
  failed: "The provider refused the refund: ask again, or refund at the provider.",
  recorded: "Recorded as refunded at the gateway.",
};

function refundText(refund: PaymentRefund): string {
  if (refund.status === "issued") return `Refunded (${refund.provider_refund_id ?? "provider"})`;
  if (refund.status === "recorded") return "Recorded as refunded at the gateway";
  if (refund.status === "failed") return `Refused: ${refund.failure ?? "no reason given"}`;
  return "Requested: not confirmed yet";
}

function refundActions(review: PaymentReview, status: HTMLElement): HTMLElement | null {
  if (
    review.reason !== "refund_owed" ||
    review.refund_status === "issued" ||
    review.refund_status === "recorded"
  )
    return null;
  const actions = h("div", { class: "row" });
  const button = h("button", { type: "button" }, "Refund");
  button.addEventListener("click", () =>
    confirmInline(
      actions,
      status,
      {
        text: `Give back ${money(review.amount_cents, review.currency)} for ${review.reference}? Through Stripe this refunds the card; for the standard gateway, refund it in its dashboard first: this records it.`,
        confirm: `Refund ${money(review.amount_cents, review.currency)}`,
      },
      async () => {
        const { data } = await adminApi<PaymentRefund>(
          "POST",
          `/admin/payments/${encodeURIComponent(review.payment_id)}/refund`,
          { body: {} },
        );
        say(status, refundText(data), data.status === "failed" ? "error" : "ok");
        if (data.status === "issued" || data.status === "recorded") actions.remove();
      },
    ),
  );
  actions.append(button);
  return actions;
}

function renderReview(review: PaymentReview): HTMLElement {
  const refund = review.reason === "refund_owed";
  const detail = refund
    ? review.refund_status
      ? REFUND_WORDS[review.refund_status]
      : "Received after the order or top-up was settled: the money must go back to the payer."
    : `Due ${money(review.expected_amount_cents ?? 0, review.expected_currency ?? review.currency)}: nothing was applied.`;
  const status = h("p", { class: "status", role: "status" });
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
    refundActions(review, status),
    status,
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
