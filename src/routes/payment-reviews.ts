import { createRoute, z } from "@hono/zod-openapi";
import { getDb } from "../db/client";
import {
  decodePaymentReviewCursor,
  encodePaymentReviewCursor,
  listPaymentReviews,
  MAX_PAYMENT_REVIEW_CURSOR_LENGTH,
  PAYMENT_REVIEW_PAGE_MAX,
  PAYMENT_REVIEW_REASONS,
} from "../db/payments";
import { requireOperator } from "../http/auth";
import { createRouter } from "../http/context";
import { IsoTimestamp, idPageQuery, json, NextCursor, OpaqueCursor, problems } from "../http/schemas";

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
      "`next_cursor` back as `cursor` for the next page. Listing changes nothing: refunds are made at the " +
      "payment gateway.",
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
