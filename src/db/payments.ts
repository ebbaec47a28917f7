import { sql } from "drizzle-orm";
import type { PaymentProviderName } from "../payments/provider";
import type { PaymentEvent } from "../types/domain";
import { type Db, isConstraintError } from "./client";
import { decodeCursor, encodeCursor } from "./cursor";
import { paymentRefunds, paymentReviews, payments } from "./schema";

/** The delivery being applied: the gateway's event and the webhook id it arrived under. */
export interface PaymentDelivery {
  webhookId: string;
  event: PaymentEvent;
  receivedAt: Date;
  /** Who took the payment (a refund goes back through it); absent means the Standard Webhooks gateway. */
  provider?: PaymentProviderName;
}

/**
 * Records a payment. Put it in the same batch as the payment's effects: its two unique keys (payment_id,
 * webhook_id) make a second delivery throw, which rolls back the effects it would have repeated.
 */
export function recordPaymentStatement(
  db: Db,
  delivery: PaymentDelivery,
  outcome: "processed" | "ignored",
  needsRefund: boolean,
) {
  const { event } = delivery;
  return db.insert(payments).values({
    paymentId: event.payment_id,
    webhookId: delivery.webhookId,
    reference: event.reference,
    status: event.status,
    amountCents: event.amount_cents,
    currency: event.currency,
    outcome,
    needsRefund,
    receivedAt: delivery.receivedAt.toISOString(),
    provider: delivery.provider ?? "standard",
  });
}

/** A second delivery of the same webhook, or of the same payment under another webhook id. */
export const isDuplicatePayment = (error: unknown) =>
  isConstraintError(error, /payments\.(payment_id|webhook_id)/i);

/** Keeps a payment that did not match what was due for a human; once per payment however often it arrives. */
export async function recordAmountMismatch(
  db: Db,
  delivery: PaymentDelivery,
  expected: { amountCents: number; currency: string },
): Promise<void> {
  const { event } = delivery;
  await db
    .insert(paymentReviews)
    .values({
      paymentId: event.payment_id,
      webhookId: delivery.webhookId,
      reference: event.reference,
      reason: "amount_mismatch",
      amountCents: event.amount_cents,
      currency: event.currency,
      expectedAmountCents: expected.amountCents,
      expectedCurrency: expected.currency,
      receivedAt: delivery.receivedAt.toISOString(),
    })
    .onConflictDoNothing()
    .run();
}

/** The most payments one page of the review listing returns. */
export const PAYMENT_REVIEW_PAGE_MAX = 200;

/**
 * Why a payment waits for a person: `amount_mismatch` (refused with 422, nothing applied: a row of
 * payment_reviews) or `refund_owed` (money arrived for an order or top-up already settled, such as an
 * expired order: a payments row with needs_refund).
 */
export const PAYMENT_REVIEW_REASONS = ["amount_mismatch", "refund_owed"] as const;
export type PaymentReviewReason = (typeof PAYMENT_REVIEW_REASONS)[number];

export interface PaymentReview {
  payment_id: string;
  reference: string;
  reason: PaymentReviewReason;
  amount_cents: number;
  currency: string;
  /** What was due, for an amount mismatch; `null` for a refund. */
  expected_amount_cents: number | null;
  expected_currency: string | null;
  received_at: string;
  /** For `refund_owed`: where its refund stands (`null`: not refunded yet); always `null` otherwise. */
  refund_status: "requested" | "issued" | "failed" | "recorded" | null;
}

/**
 * Where the next page starts: the last review returned. A payment can be in both sources (a mismatch,
 * then the right amount after the order expired), so the reason is part of the position.
 */
export interface PaymentReviewCursor {
  receivedAt: string;
  paymentId: string;
  reason: PaymentReviewReason;
}

/** Longer than any cursor this listing hands out (payment ids are at most 128 characters). */
export const MAX_PAYMENT_REVIEW_CURSOR_LENGTH = 512;

export function encodePaymentReviewCursor(cursor: PaymentReviewCursor): string {
  return encodeCursor([cursor.receivedAt, cursor.paymentId, cursor.reason]);
}

/** An opaque cursor from a previous page, or undefined when the text is not one. */
export function decodePaymentReviewCursor(text: string): PaymentReviewCursor | undefined {
  const position = decodeCursor(text);
  if (
    position?.length === 3 &&
    typeof position[0] === "string" &&
    typeof position[1] === "string" &&
    (PAYMENT_REVIEW_REASONS as readonly unknown[]).includes(position[2])
  ) {
    return { receivedAt: position[0], paymentId: position[1], reason: position[2] as PaymentReviewReason };
  }
  return undefined;
}

/**
 * One page of the payments that need a person, newest first, ordered by (received_at, payment_id, reason)
 * descending. Both sources are read in one statement so that SQLite alone orders them: the cursor compares
 * in the same collation the page was sorted in, and no row is skipped or repeated between pages.
 */
export async function listPaymentReviews(
  db: Db,
  page: { after?: PaymentReviewCursor; limit: number },
): Promise<{ reviews: PaymentReview[]; next: PaymentReviewCursor | null }> {
  const { after } = page;
  const position = after
    ? sql`WHERE (received_at, payment_id, reason) < (${after.receivedAt}, ${after.paymentId}, ${after.reason})`
    : sql``;
  const rows = await db.all<PaymentReview>(sql`
    SELECT payment_id, reference, reason, amount_cents, currency, expected_amount_cents, expected_currency,
      received_at, refund_status
    FROM (
      SELECT payment_id, reference, reason, amount_cents, currency, expected_amount_cents, expected_currency,
        received_at, NULL AS refund_status
      FROM ${paymentReviews}
      UNION ALL
      SELECT p.payment_id, p.reference, 'refund_owed', p.amount_cents, p.currency, NULL, NULL, p.received_at,
        r.status
      FROM ${payments} AS p LEFT JOIN ${paymentRefunds} AS r ON r.payment_id = p.payment_id
      WHERE p.needs_refund = 1
    )
    ${position}
    ORDER BY received_at DESC, payment_id DESC, reason DESC
    LIMIT ${page.limit + 1}`);
  const shown = rows.slice(0, page.limit);
  const last = shown.at(-1);
  return {
    reviews: shown,
    next:
      rows.length > page.limit && last
        ? { receivedAt: last.received_at, paymentId: last.payment_id, reason: last.reason }
        : null,
  };
}
