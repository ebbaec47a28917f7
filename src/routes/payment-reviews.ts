import { createRoute, z } from "@hono/zod-openapi";
import { getDb } from "../db/client";
import type { PaymentRefundRow } from "../db/payment-refunds";
import {
  decodePaymentReviewCursor,
  encodePaymentReviewCursor,
  listPaymentReviews,
  MAX_PAYMENT_REVIEW_CURSOR_LENGTH,
  PAYMENT_REVIEW_PAGE_MAX,
  PAYMENT_REVIEW_REASONS,
} from "../db/payments";
import { ApiError } from "../errors";
import { requireOperator } from "../http/auth";
import { createRouter } from "../http/context";
import {
  BODY_PROBLEMS,
  IsoTimestamp,
  idPageQuery,
  json,
  NextCursor,
  OpaqueCursor,
  problems,
} from "../http/schemas";
import { hostedPaymentProvider, PAYMENT_PROVIDERS, PaymentProviderError } from "../payments/provider";
import { refundOwedPayment } from "../services/refund-owed-payment";

const PaymentReviewSchema = z
  .object({
    payment_id: z.string().openapi({ example: "pay_9f2k4m6p8r" }),
    reference: z.string().openapi({
      example: "ord_3n5p7r9t1v3x5z7b9d1f",
      description: "The order (`ord_…`) or top-up (`top_…`) the payment named",
    }),
    reason: z.enum(PAYMENT_REVIEW_REASONS).openapi({
      description:
        "`amount_mismatch`: a SUCCESS whose amount or currency differed from what was due; it was refused " +
        "(422) and nothing was applied. `refund_owed`: a SUCCESS for an order or top-up that was already " +
        "settled (expired, failed, or paid by another payment); the money must go back to the payer.",
    }),
    amount_cents: z.number().int().openapi({ description: "What the gateway reported" }),
    currency: z.string().openapi({ example: "EUR" }),
    expected_amount_cents: z
      .number()
      .int()
      .nullable()
      .openapi({ description: "What was due, for `amount_mismatch`; `null` for `refund_owed`" }),
    expected_currency: z.string().nullable(),
    received_at: IsoTimestamp,
    refund_status: z
      .enum(["requested", "issued", "failed", "recorded"])
      .nullable()
      .openapi({
        description:
          "For `refund_owed`: where its refund stands (`POST /admin/payments/{payment_id}/refund`); `null` " +
          "until one is asked for, and always for `amount_mismatch`",
      }),
  })
  .openapi("PaymentReview");

const PaymentReviewListSchema = z
  .object({
    reviews: z.array(PaymentReviewSchema),
    next_cursor: NextCursor,
  })
  .openapi("PaymentReviewList");

// Newest first is not id order, so the cursor is the last row's position rather than its id; the limit is
// the admin lists' own.
const PaymentReviewPageQuery = idPageQuery(PAYMENT_REVIEW_PAGE_MAX).extend({
  cursor: OpaqueCursor(
    (value) => decodePaymentReviewCursor(value) !== undefined,
    MAX_PAYMENT_REVIEW_CURSOR_LENGTH,
  ),
});

export const paymentReviewRoutes = createRouter().openapi(
  createRoute({
    method: "get",
    path: "/admin/payments/reviews",
    operationId: "listPaymentReviews",
    tags: ["Admin"],
    summary: "Payments that need a refund or a review",
    description:
      "Role `admin`. Payments recorded for a person: amounts that did not match what was due " +
      "(`amount_mismatch`) and money received for something already settled, such as an expired order " +
      `(\`refund_owed\`). Newest first, up to \`limit\` (max ${PAYMENT_REVIEW_PAGE_MAX}) per page; pass ` +
      "`next_cursor` back as `cursor` for the next page. Listing changes nothing; a refund owed is given " +
      "back with `POST /admin/payments/{payment_id}/refund`.",
    security: [{ operatorToken: [] }],
    middleware: [requireOperator("admin")] as const,
    request: { query: PaymentReviewPageQuery },
    responses: {
      200: json(PaymentReviewListSchema, "A page of payments to review"),
      ...problems("validation_failed", "unauthenticated", "forbidden", "service_unavailable"),
    },
  }),
  async (c) => {
    const query = c.req.valid("query");
    const page = await listPaymentReviews(getDb(c.env.DB), {
      after: query.cursor === undefined ? undefined : decodePaymentReviewCursor(query.cursor),
      limit: query.limit,
    });
    return c.json(
      { reviews: page.reviews, next_cursor: page.next && encodePaymentReviewCursor(page.next) },
      200,
    );
  },
);

const PaymentIdParam = z.object({
  payment_id: z
    .string()
    .min(1)
    .max(128)
    .openapi({ param: { name: "payment_id", in: "path" }, example: "pi_3Nf2k4m6p8r" }),
});

const RefundRequestSchema = z
  .object({
    note: z.string().trim().min(1).max(500).optional().openapi({
      description: "Why, or (for the standard gateway) where the money was given back",
    }),
  })
  .strict()
  .openapi("PaymentRefundRequest");

export const PaymentRefundSchema = z
  .object({
    payment_id: z.string(),
    provider: z.enum(PAYMENT_PROVIDERS),
    status: z.enum(["requested", "issued", "failed", "recorded"]).openapi({
      description:
        "`issued`: the provider accepted the refund (`provider_refund_id`; the bank may take days). " +
        "`failed`: the provider refused (`failure`); asking again tries again. `recorded`: the standard " +
        "gateway has no refund API, so this records a refund made in its dashboard. `requested`: the " +
        "provider has not answered yet.",
    }),
    amount_cents: z.number().int(),
    currency: z.string(),
    provider_refund_id: z.string().nullable(),
    failure: z.string().nullable(),
    requested_by: z.string(),
    note: z.string().nullable(),
    requested_at: IsoTimestamp,
    completed_at: IsoTimestamp.nullable(),
  })
  .openapi("PaymentRefund");

const toRefundBody = (refund: PaymentRefundRow) => ({
  payment_id: refund.paymentId,
  provider: refund.provider,
  status: refund.status,
  amount_cents: refund.amountCents,
  currency: refund.currency,
  provider_refund_id: refund.providerRefundId,
  failure: refund.failure,
  requested_by: refund.requestedBy,
  note: refund.note,
  requested_at: refund.requestedAt,
  completed_at: refund.completedAt,
});

export const paymentRefundRoutes = createRouter().openapi(
  createRoute({
    method: "post",
    path: "/admin/payments/{payment_id}/refund",
    operationId: "refundOwedPayment",
    tags: ["Admin"],
    summary: "Give back a payment owed a refund (exactly once)",
    description:
      "Role `admin`. For a payment listed as `refund_owed` (money that arrived for an order or top-up " +
      "already settled). With Stripe, the whole amount is refunded through Stripe's API; the refund is " +
      "keyed by the payment id here and at Stripe (idempotency key `refund:<payment_id>`), so repeated or " +
      "parallel requests make one refund, and asking again answers it. The standard gateway has no refund " +
      "API: refund in its dashboard, then call this to record it (`recorded`). Every attempt is in the " +
      "audit log. A payment not owed a refund is 409 `refund_not_owed`; Stripe unreachable is 502 " +
      "`payment_provider_error` (safe to retry); a Stripe payment while Stripe is not configured is 503.",
    security: [{ operatorToken: [] }],
    middleware: [requireOperator("admin")] as const,
    request: {
      params: PaymentIdParam,
      body: { required: false, content: { "application/json": { schema: RefundRequestSchema } } },
    },
    responses: {
      200: json(PaymentRefundSchema, "The refund, as it stands"),
      ...problems(
        ...BODY_PROBLEMS,
        "unauthenticated",
        "forbidden",
        "not_found",
        "refund_not_owed",
        "payment_provider_error",
        "service_unavailable",
      ),
    },
  }),
  async (c) => {
    const { payment_id: paymentId } = c.req.valid("param");
    const body = c.req.valid("json") ?? {};
    const config = c.get("config");
    let outcome: Awaited<ReturnType<typeof refundOwedPayment>>;
    try {
      outcome = await refundOwedPayment(getDb(c.env.DB), c.env.EVENTS, await hostedPaymentProvider(config), {
        paymentId,
        operatorId: c.get("operator").operatorId,
        note: body.note ?? null,
        now: new Date(),
      });
    } catch (error) {
      if (!(error instanceof PaymentProviderError)) throw error;
      console.log(JSON.stringify({ level: "error", msg: "refund not made", error: error.message }));
      throw new ApiError("payment_provider_error", "The payment provider could not be reached; try again");
    }
    switch (outcome.kind) {
      case "not_found":
        throw new ApiError("not_found", "No payment has this id");
      case "not_owed":
        throw new ApiError("refund_not_owed", "This payment was applied; it is not owed a refund");
      case "provider_unavailable":
        throw new ApiError(
          "service_unavailable",
          `The payment was taken by ${outcome.provider}, which this deployment is not configured for`,
        );
      case "refunded":
        return c.json(toRefundBody(outcome.refund), 200);
    }
  },
);
