import { createRoute, z } from "@hono/zod-openapi";
import { verifyWebhookSignature, WEBHOOK_TOLERANCE_SECONDS } from "../auth/webhook-signature";
import { getDb } from "../db/client";
import { ApiError } from "../errors";
import { createRouter } from "../http/context";
import { paymentRefused } from "../http/payment-refusals";
import { json, problems } from "../http/schemas";
import { meter, setMetricOutcome } from "../observability/metrics";
import { applyPaymentEvent } from "../services/payment-events";
import { PAYMENT_STATUSES, type PaymentEvent, WEBHOOK_OUTCOMES } from "../types/domain";

const MAX_GATEWAY_ID_LENGTH = 128;

const PaymentWebhookEventSchema = z
  .object({
    payment_id: z.string().min(1).max(MAX_GATEWAY_ID_LENGTH).openapi({ example: "pay_9f2k4m6p8r" }),
    reference: z.string().min(1).max(MAX_GATEWAY_ID_LENGTH).openapi({
      example: "ord_3n5p7r9t1v3x5z7b9d1f",
      description: "The order (`ord_…`) or top-up (`top_…`) paid for",
    }),
    status: z.enum(PAYMENT_STATUSES),
    amount_cents: z.number().int().min(0),
    currency: z
      .string()
      .regex(/^[A-Z]{3}$/)
      .openapi({ example: "EUR" }),
  })
  .strict()
  .openapi("PaymentWebhookEvent", { description: "The gateway's event, signed as raw bytes." });

export const WebhookReceiptSchema = z
  .object({
    received: z.literal(true),
    outcome: z.enum(WEBHOOK_OUTCOMES).openapi({
      description:
        "`processed`: applied now. `duplicate`: this webhook-id or payment_id was applied before; nothing " +
        "changed. `ignored`: the reference is already settled (a SUCCESS is then recorded as needing a refund).",
    }),
  })
  .openapi("WebhookReceipt");

// Optional to the validator so that a missing header is the contract's 401 signature_invalid, not a 400.
const WebhookHeadersSchema = z.object({
  "webhook-id": z
    .string()
    .optional()
    .openapi({ description: "Required (missing → 401). Unique per message; a deduplication key" }),
  "webhook-timestamp": z
    .string()
    .optional()
    .openapi({ description: "Required (missing → 401). Unix seconds", example: "1795262400" }),
  "webhook-signature": z.string().optional().openapi({
    description: "Required (missing → 401). Space-separated `v1,<base64 HMAC-SHA256>` entries",
    example: "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=",
  }),
});

function validationFailed(issues: readonly z.core.$ZodIssue[]): ApiError {
  const errors = issues.map((issue) => ({
    path: issue.path.length > 0 ? issue.path.map(String).join(".") : "(root)",
    message: issue.message,
  }));
  return new ApiError("validation_failed", `${errors.length} field(s) failed validation`, { errors });
}

/** Parses the verified bytes; only ever called after the signature check. */
function parsePaymentEvent(body: Uint8Array): PaymentEvent {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(body));
  } catch {
    throw new ApiError("invalid_json");
  }
  const parsed = PaymentWebhookEventSchema.safeParse(value);
  if (!parsed.success) throw validationFailed(parsed.error.issues);
  return parsed.data;
}

const router = createRouter();
// The body schema is documented by reference rather than attached as a validator: a JSON validator would
// parse (and consume) the body before the signature over its raw bytes has been checked.
router.openAPIRegistry.register("PaymentWebhookEvent", PaymentWebhookEventSchema);

export const paymentRoutes = router.openapi(
  createRoute({
    method: "post",
    path: "/payments/webhook",
    operationId: "receivePaymentWebhook",
    tags: ["Payments"],
    summary: "Payment gateway webhook (Standard Webhooks signature)",
    description:
      "Signed per Standard Webhooks: HMAC-SHA256 with the `PAYMENT_WEBHOOK_SECRET` key over " +
      "`<webhook-id>.<webhook-timestamp>.<raw body>`. Any one matching `v1` signature suffices; other " +
      `versions are ignored. A timestamp more than ${WEBHOOK_TOLERANCE_SECONDS} s in the past or the future ` +
      "is refused. The signature is checked before the body is parsed.\n\n" +
      "Deduplicated on `webhook-id` and on `payment_id`: any number of deliveries, in parallel or in " +
      "sequence, have the effect of one. A SUCCESS for a pending order marks it PAID, commits its inventory " +
      "and issues its tickets before the 200 returns. A SUCCESS whose amount or currency does not match " +
      "`amount_due_cents` is refused (422) and recorded for review. A SUCCESS for an order that is no longer " +
      "pending (expired, failed, or paid by another payment) is `ignored` and recorded as needing a refund. " +
      "A FAILED payment marks a pending order PAYMENT_FAILED and releases its reservation and credit hold. " +
      "For a wallet top-up (`top_…`), a SUCCESS posts exactly one PURCHASE to the wallet and a FAILED marks " +
      "the top-up FAILED; the same duplicate, mismatch and settled-already rules apply.",
    middleware: [meter("webhook")] as const,
    request: {
      headers: WebhookHeadersSchema,
      body: {
        required: true,
        content: { "application/json": { schema: { $ref: "#/components/schemas/PaymentWebhookEvent" } } },
      },
    },
    responses: {
      200: json(WebhookReceiptSchema, "Received"),
      ...problems(
        "validation_failed",
        "invalid_json",
        "signature_invalid",
        "reference_not_found",
        "payload_too_large",
        "amount_mismatch",
        "service_unavailable",
      ),
    },
  }),
  async (c) => {
    const secret = c.get("config").paymentWebhookSecret;
    if (!secret) throw new ApiError("service_unavailable", "Payment webhooks are not configured");
    const now = new Date();
    const body = new Uint8Array(await c.req.arrayBuffer());
    const signature = await verifyWebhookSignature(
      secret,
      {
        id: c.req.header("webhook-id"),
        timestamp: c.req.header("webhook-timestamp"),
        signature: c.req.header("webhook-signature"),
      },
      body,
      now,
    );
    if (!signature.ok) throw new ApiError("signature_invalid", signature.detail);
    const event = parsePaymentEvent(body);
    const applied = await applyPaymentEvent(
      { db: getDb(c.env.DB), events: c.env.EVENTS, wallets: c.env.WALLETS },
      { webhookId: signature.webhookId, event, receivedAt: now },
    );
    if (!applied.ok) throw paymentRefused(applied);
    setMetricOutcome(c, applied.outcome);
    return c.json({ received: true as const, outcome: applied.outcome }, 200);
  },
);
