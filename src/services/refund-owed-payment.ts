import { commitAudited } from "../db/audit";
import type { Db } from "../db/client";
import {
  abandonRefundAttempt,
  findPayment,
  findRefund,
  finishRefundStatement,
  type PaymentRefundRow,
  type PaymentRow,
  startRefund,
} from "../db/payment-refunds";
import { type HostedPaymentProvider, PaymentProviderError, type RefundResult } from "../payments/provider";
import type { EventMessage } from "../queues/messages";

export type RefundOwedOutcome =
  | { kind: "refunded"; refund: PaymentRefundRow }
  | { kind: "not_found" }
  | { kind: "not_owed" }
  /** The payment was taken by a provider this deployment is no longer configured for. */
  | { kind: "provider_unavailable"; provider: string };

export interface RefundOwedRequest {
  paymentId: string;
  operatorId: string;
  note: string | null;
  now: Date;
}

/**
 * Gives back a payment recorded as owed a refund (money that arrived for something already settled),
 * exactly once: the refund is keyed by the payment id here, each attempt at the provider by the payment
 * id and the attempt (its idempotency key), and an attempt adopts a refund the provider already holds for
 * the payment; so repeated or parallel requests, and a retry after a crash or an outage, make one refund.
 *
 * - Through the provider that took it (Stripe): `issued` with the provider's refund id, or `failed` with
 *   its reason (a later request tries again, under the same key).
 * - The standard gateway has no refund API: the admin refunds in its dashboard and this records it
 *   (`recorded`), so the payment leaves the list of refunds owed.
 *
 * Each attempt is in the audit log: its request commits with its effect, and the queue consumer chains
 * it. Throws PaymentProviderError when the provider cannot be reached (the refund stays `requested`).
 */
export async function refundOwedPayment(
  db: Db,
  events: Queue<EventMessage>,
  hostedProvider: HostedPaymentProvider | undefined,
  request: RefundOwedRequest,
): Promise<RefundOwedOutcome> {
  const payment = await findPayment(db, request.paymentId);
  if (!payment) return { kind: "not_found" };
  if (!payment.needsRefund) return { kind: "not_owed" };
  const started = await startRefund(db, payment, {
    requestedBy: request.operatorId,
    note: request.note,
    now: request.now,
  });
  if (started.status === "issued" || started.status === "recorded")
    return { kind: "refunded", refund: started };

  let outcome: Parameters<typeof finishRefundStatement>[2];
  if (payment.provider === "standard") {
    outcome = { status: "recorded" };
  } else {
    if (hostedProvider?.name !== payment.provider) {
      return { kind: "provider_unavailable", provider: payment.provider };
    }
    const result = await refundThrough(db, hostedProvider, payment, started.attempt);
    outcome = result.ok
      ? { status: "issued", providerRefundId: result.providerRefundId }
      : { status: "failed", failure: result.failure };
  }
  await commitAudited(
    db,
    events,
    {
      actor: request.operatorId,
      action: "payment.refund",
      target: payment.paymentId,
      details: {
        reference: payment.reference,
        provider: payment.provider,
        amount_cents: payment.amountCents,
        currency: payment.currency,
        status: outcome.status,
        ...(outcome.status === "issued" ? { provider_refund_id: outcome.providerRefundId } : {}),
        ...(outcome.status === "failed" ? { failure: outcome.failure } : {}),
        ...(request.note ? { note: request.note } : {}),
      },
    },
    request.now,
    [finishRefundStatement(db, payment.paymentId, outcome, request.now)],
  );
  const refund = await findRefund(db, payment.paymentId);
  if (!refund) throw new Error(`invariant: refund of ${payment.paymentId} vanished`);
  return { kind: "refunded", refund };
}

/**
 * One attempt at the provider. An earlier attempt may have made the refund although its answer was lost
 * (or its key has lapsed), so a refund the provider already holds for the payment is adopted first; only
 * then is one made, under this attempt's key. An attempt the provider could not be reached for is
 * abandoned, so that the next one is not answered the same failure.
 */
async function refundThrough(
  db: Db,
  provider: HostedPaymentProvider,
  payment: PaymentRow,
  attempt: number,
): Promise<RefundResult> {
  try {
    const existing = await provider.existingRefund(payment.paymentId);
    if (existing) return { ok: true, providerRefundId: existing };
    return await provider.refund({
      paymentId: payment.paymentId,
      reference: payment.reference,
      amountCents: payment.amountCents,
      currency: payment.currency,
      attempt,
    });
  } catch (error) {
    if (error instanceof PaymentProviderError) await abandonRefundAttempt(db, payment.paymentId, attempt);
    throw error;
  }
}
