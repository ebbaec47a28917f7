import type Stripe from "stripe";
import type { PaymentDelivery } from "../db/payments";

/**
 * What a verified Stripe event means for us: a payment to settle exactly like a Standard Webhooks
 * delivery (same code, same deduplication: the event id in place of `webhook-id`, the PaymentIntent id
 * as `payment_id`), or nothing, with the reason logged.
 */
export type StripeEventMeaning =
  /** `sessionId`: the Checkout Session it is about, which must be one this deployment opened. */
  { kind: "settle"; delivery: PaymentDelivery; sessionId: string } | { kind: "ignore"; reason: string };

/** References we create: an order or a top-up (see src/ids.ts). Anything else is another integration's. */
const OUR_REFERENCE = /^(ord|top)_[A-Za-z0-9]{1,64}$/;

const ignore = (reason: string): StripeEventMeaning => ({ kind: "ignore", reason });

function settle(
  event: Stripe.Event,
  sessionId: string,
  fields: {
    paymentId: string;
    reference: string;
    status: "SUCCESS" | "FAILED";
    amount: number;
    currency: string;
  },
  receivedAt: Date,
): StripeEventMeaning {
  return {
    kind: "settle",
    sessionId,
    delivery: {
      webhookId: event.id,
      event: {
        payment_id: fields.paymentId,
        reference: fields.reference,
        status: fields.status,
        amount_cents: fields.amount,
        currency: fields.currency.toUpperCase(),
      },
      receivedAt,
      provider: "stripe",
    },
  };
}

const idOf = (value: string | { id: string } | null): string | null =>
  value === null ? null : typeof value === "string" ? value : value.id;

/**
 * - `checkout.session.completed` (and `…async_payment_succeeded`) with `payment_status: "paid"` is a
 *   SUCCESS for `client_reference_id`, for `amount_total`, under the PaymentIntent's id. Completed but not
 *   yet paid (a delayed method) waits for the async event.
 * - `checkout.session.expired` (and `…async_payment_failed`) is a FAILED: the buyer can no longer pay on
 *   that page. Its payment id is the session's, so it never collides with a success's.
 * - `payment_intent.payment_failed` is a declined attempt inside a page that stays open: the buyer may try
 *   another card. Failing the order on it would release the stock under a buyer about to pay, so it is
 *   acknowledged and changes nothing; the page's expiry (or the order's) is the failure that counts.
 */
export function meaningOfStripeEvent(event: Stripe.Event, receivedAt: Date): StripeEventMeaning {
  switch (event.type) {
    case "checkout.session.completed":
    case "checkout.session.async_payment_succeeded": {
      const session = event.data.object;
      const reference = session.client_reference_id;
      if (!reference || !OUR_REFERENCE.test(reference)) return ignore("not a session of ours");
      if (session.payment_status !== "paid") return ignore(`payment_status ${session.payment_status}`);
      const paymentId = idOf(session.payment_intent) ?? session.id;
      if (session.amount_total === null || !session.currency) return ignore("session without an amount");
      return settle(
        event,
        session.id,
        { paymentId, reference, status: "SUCCESS", amount: session.amount_total, currency: session.currency },
        receivedAt,
      );
    }
    case "checkout.session.expired":
    case "checkout.session.async_payment_failed": {
      const session = event.data.object;
      const reference = session.client_reference_id;
      if (!reference || !OUR_REFERENCE.test(reference)) return ignore("not a session of ours");
      return settle(
        event,
        session.id,
        {
          paymentId: session.id,
          reference,
          status: "FAILED",
          amount: session.amount_total ?? 0,
          currency: session.currency ?? "",
        },
        receivedAt,
      );
    }
    case "payment_intent.payment_failed":
      return ignore("a declined attempt; the checkout page stays open");
    default:
      return ignore(`event type ${event.type} is not used`);
  }
}
