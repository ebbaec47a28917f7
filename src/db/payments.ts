import type { PaymentEvent } from "../types/domain";
import { type Db, isConstraintError } from "./client";
import { paymentReviews, payments } from "./schema";

/** The delivery being applied: the gateway's event and the webhook id it arrived under. */
export interface PaymentDelivery {
  webhookId: string;
  event: PaymentEvent;
  receivedAt: Date;
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
