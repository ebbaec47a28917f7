import { createRoute, z } from "@hono/zod-openapi";
import { findCheckoutSession } from "../db/checkout-sessions";
import { getDb } from "../db/client";
import { ApiError } from "../errors";
import { createRouter } from "../http/context";
import { paymentRefused } from "../http/payment-refusals";
import { json, problems } from "../http/schemas";
import { meter, setMetricOutcome } from "../observability/metrics";
import { meaningOfStripeEvent } from "../payments/stripe-events";
import { applyPaymentEvent } from "../services/payment-events";
import { WebhookReceiptSchema } from "./payments";

const StripeHeadersSchema = z.object({
  "stripe-signature": z.string().optional().openapi({
    description: "Required (missing → 401): `t=<unix seconds>,v1=<hex HMAC-SHA256>` from Stripe",
    example: "t=1795262400,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd",
  }),
});

const StripeEventSchema = z
  .object({ id: z.string(), type: z.string(), data: z.object({ object: z.object({}).passthrough() }) })
  .passthrough()
  .openapi("StripeEvent", { description: "A Stripe event, signed as raw bytes" });

const router = createRouter();
// Documented by reference rather than attached as a validator, which would consume the body before the
// signature over its raw bytes has been checked (as for /payments/webhook).
router.openAPIRegistry.register("StripeEvent", StripeEventSchema);

export const stripeWebhookRoutes = router.openapi(
  createRoute({
    method: "post",
    path: "/payments/stripe/webhook",
    operationId: "receiveStripeWebhook",
    tags: ["Payments"],
    summary: "Stripe webhook (Stripe-Signature)",
    description:
      "With `PAYMENT_PROVIDER=stripe`. `Stripe-Signature` is verified over the raw body with Stripe's own " +
      "verifier and the `STRIPE_WEBHOOK_SECRET` of the endpoint, refusing a timestamp more than 300 s old " +
      "(401 `signature_invalid`). The events are settled by the same code as `/payments/webhook`, " +
      "deduplicated on the event id and on the PaymentIntent id, so any number of deliveries in any order " +
      "have the effect of one:\n\n" +
      "- `checkout.session.completed` (or `…async_payment_succeeded`) with `payment_status: paid`: a SUCCESS " +
      "for `client_reference_id` (an order or a top-up) of `amount_total`.\n" +
      "- `checkout.session.expired` (or `…async_payment_failed`): a FAILED.\n" +
      "- `payment_intent.payment_failed`: a declined card inside a page that stays open; acknowledged " +
      "(`ignored`), nothing changes.\n\n" +
      "Other events, sessions this deployment did not open, and an amount that is not what is due (recorded " +
      "for review, as with the standard gateway) are `ignored` with 200, so that Stripe stops sending them. " +
      "Without `STRIPE_WEBHOOK_SECRET` the endpoint answers 503.",
    middleware: [meter("webhook")] as const,
    request: {
      headers: StripeHeadersSchema,
      body: {
        required: true,
        content: { "application/json": { schema: { $ref: "#/components/schemas/StripeEvent" } } },
      },
    },
    responses: {
      200: json(WebhookReceiptSchema, "Received"),
      ...problems("signature_invalid", "payload_too_large", "service_unavailable"),
    },
  }),
  async (c) => {
    const config = c.get("config");
    // Not tied to PAYMENT_PROVIDER: pages opened before a switch back to the standard gateway can still
    // take money, and their payments must still be settled.
    if (!config.stripeWebhookSecret) {
      throw new ApiError("service_unavailable", "Stripe webhooks are not configured");
    }
    const now = new Date();
    const body = new Uint8Array(await c.req.arrayBuffer());
    // The SDK is loaded only where Stripe is configured: it is the Worker's largest module.
    const { verifyStripeEvent } = await import("../payments/stripe");
    const event = await verifyStripeEvent(config, body, c.req.header("stripe-signature"), now);
    if (!event)
      throw new ApiError("signature_invalid", "Stripe-Signature is missing, stale or does not match");
    const db = getDb(c.env.DB);
    const ignored = (reason: string) => {
      console.log(
        JSON.stringify({
          level: "info",
          msg: "stripe event ignored",
          id: event.id,
          type: event.type,
          reason,
        }),
      );
      setMetricOutcome(c, "ignored");
      return c.json({ received: true as const, outcome: "ignored" as const }, 200);
    };
    const meaning = meaningOfStripeEvent(event, now);
    if (meaning.kind === "ignore") return ignored(meaning.reason);
    // Only pages this deployment opened: another deployment (or a CLI trigger) on the same Stripe account
    // would otherwise be answered 404, which Stripe retries for days.
    const opened = await findCheckoutSession(db, meaning.delivery.event.reference);
    if (opened?.sessionId !== meaning.sessionId) return ignored("a session this deployment did not open");
    const applied = await applyPaymentEvent(
      { db, events: c.env.EVENTS, wallets: c.env.WALLETS },
      meaning.delivery,
    );
    // Recorded for review already; a 422 would only make Stripe send it again for days.
    if (!applied.ok && applied.code === "amount_mismatch") {
      return ignored("amount mismatch, recorded for review");
    }
    if (!applied.ok) throw paymentRefused(applied);
    setMetricOutcome(c, applied.outcome);
    return c.json({ received: true as const, outcome: applied.outcome }, 200);
  },
);
