import { createRoute, z } from "@hono/zod-openapi";
import { type Db, getDb } from "../db/client";
import { readOwnOrder } from "../db/orders";
import { type Config, publicBaseUrl } from "../env";
import { ApiError } from "../errors";
import { requireBuyer } from "../http/auth";
import { createRouter } from "../http/context";
import { IsoTimestamp, json, problems } from "../http/schemas";
import { hostedPaymentProvider, PAYMENT_PROVIDERS, PaymentProviderError } from "../payments/provider";
import { type CheckoutTarget, openHostedCheckout, orderCheckoutExpiry } from "../services/hosted-checkout";
import { OrderIdParam } from "./orders";

export const CheckoutSchema = z
  .object({
    order_id: z.string().openapi({ example: "ord_3n5p7r9t1v3x5z7b9d1f" }),
    provider: z.enum(PAYMENT_PROVIDERS).openapi({ description: "`PAYMENT_PROVIDER` of this deployment" }),
    checkout_url: z
      .url()
      .nullable()
      .openapi({
        description:
          "Where to send the buyer to pay (the provider's hosted page). `null` with the `standard` gateway, " +
          "which the venue integrates itself, handing it `order_id` as the payment's `reference`.",
        example: "https://checkout.stripe.com/c/pay/cs_test_a1b2c3",
      }),
    checkout_expires_at: IsoTimestamp.nullable().openapi({
      description: "When the hosted page stops taking payment; `null` without one",
    }),
    amount_due_cents: z.number().int(),
    currency: z.string().openapi({ example: "EUR" }),
  })
  .openapi("Checkout");

/** The line a provider's page shows; the same for every click on the order, as its idempotency needs. */
const orderDescription = (orderId: string, units: number) =>
  `Order ${orderId} (${units} ${units === 1 ? "ticket" : "tickets"})`;

export const checkoutRoutes = createRouter().openapi(
  createRoute({
    method: "post",
    path: "/orders/{id}/checkout",
    operationId: "checkoutOrder",
    tags: ["Orders"],
    summary: "Where to pay an order (idempotent)",
    description:
      "Owner only. For an order awaiting payment, answers the payment provider's hosted page. With " +
      "`PAYMENT_PROVIDER=stripe` that is a Stripe Checkout Session for `amount_due_cents`, with " +
      "`client_reference_id` = the order id, opened once per order: a second click, or many in " +
      "parallel, answer the same session (Stripe's idempotency key is derived from the order id). The page " +
      "takes payment until `checkout_expires_at` (the hold's end plus Stripe's 30-minute minimum); a " +
      "payment after the order expired is recorded as a refund owed. With the `standard` gateway " +
      "`checkout_url` is `null`. Someone else's order answers like a missing one (404); an order no longer " +
      "awaiting payment is 409 `order_not_pending` with its `order_status`; a provider that cannot be reached or " +
      "refuses is 502 `payment_provider_error` (safe to retry).",
    security: [{ buyerToken: [] }],
    middleware: [requireBuyer] as const,
    request: { params: OrderIdParam },
    responses: {
      200: json(CheckoutSchema, "Where to pay"),
      ...problems(
        "validation_failed",
        "unauthenticated",
        "not_found",
        "order_not_pending",
        "payment_provider_error",
      ),
    },
  }),
  async (c) => {
    const db = getDb(c.env.DB);
    const config = c.get("config");
    const now = new Date();
    const order = await readOwnOrder(db, c.req.valid("param").id, c.get("buyerId"), now);
    if (!order) throw new ApiError("not_found", "No such order");
    if (order.status !== "PENDING_PAYMENT") {
      throw new ApiError("order_not_pending", `The order is ${order.status}: there is nothing to pay`, {
        order_id: order.order_id,
        order_status: order.status,
      });
    }
    const checkout = await checkoutLinks(
      { db, config, requestOrigin: new URL(c.req.url).origin, now },
      {
        reference: order.order_id,
        amountCents: order.amount_due_cents,
        currency: order.currency,
        description: orderDescription(
          order.order_id,
          order.items.reduce((units, item) => units + item.quantity, 0),
        ),
        expiresAt: orderCheckoutExpiry(order),
        immediateOnly: true,
      },
    );
    return c.json(
      {
        order_id: order.order_id,
        provider: config.paymentProvider,
        amount_due_cents: order.amount_due_cents,
        currency: order.currency,
        ...checkout,
      },
      200,
    );
  },
);

/**
 * The hosted page for an order or a top-up (opened once per reference), or nulls with the standard
 * gateway, which hosts nothing of ours. A provider failure is a 502 the buyer may retry.
 */
export async function checkoutLinks(
  context: { db: Db; config: Config; requestOrigin: string; now: Date },
  target: CheckoutTarget,
): Promise<{ checkout_url: string | null; checkout_expires_at: string | null }> {
  const provider = await hostedPaymentProvider(context.config);
  if (!provider) return { checkout_url: null, checkout_expires_at: null };
  try {
    const session = await openHostedCheckout(
      context.db,
      provider,
      target,
      { returnBase: publicBaseUrl(context.config, context.requestOrigin) },
      context.now,
    );
    return { checkout_url: session.url, checkout_expires_at: session.expiresAt };
  } catch (error) {
    if (!(error instanceof PaymentProviderError)) throw error;
    console.log(JSON.stringify({ level: "error", msg: "checkout not opened", error: error.message }));
    throw new ApiError("payment_provider_error", "The payment provider could not open a checkout page");
  }
}
