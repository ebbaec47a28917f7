import { rememberBuyerEmailStatement } from "../db/buyer-contacts";
import { atomically, type Db } from "../db/client";
import {
  isDuplicatePayment,
  type PaymentDelivery,
  recordAmountMismatch,
  recordPaymentStatement,
} from "../db/payments";
import {
  findTopup,
  findTopupByKey,
  insertTopupStatement,
  isDuplicateTopupKey,
  isTopupAlreadySettled,
  settleTopupStatement,
  type TopupRow,
  toTopup,
} from "../db/topups";
import type { IdempotencyClaim } from "../http/idempotency";
import type { Topup, WebhookOutcome } from "../types/domain";
import type { PaymentApplication, PaymentContext } from "./payment-events";
import { walletObject } from "./wallet-object";

export interface CreateTopupInput {
  userId: string;
  amountCents: number;
  currency: string;
  idempotencyKey: string;
  claim: IdempotencyClaim;
  now: Date;
  /** The address the buyer's token carried: remembered with the top-up, for its receipt. */
  buyerEmail?: string;
}

/**
 * Records a buyer's request for credit, pending its payment, in one batch with the stored 201 (and the
 * buyer's address, when the token gave one). The gateway is then handed `topup_id` as the payment's
 * reference. `idempotency_in_progress`: the key made a top-up that cannot be read back yet.
 */
export async function createTopup(
  db: Db,
  input: CreateTopupInput,
): Promise<{ ok: true; topup: Topup } | { ok: false; code: "idempotency_in_progress" }> {
  const { row, statement } = insertTopupStatement(db, input);
  const topup = toTopup(row);
  const contact = input.buyerEmail
    ? [rememberBuyerEmailStatement(db, input.userId, input.buyerEmail, input.now)]
    : [];
  try {
    await atomically(db, [input.claim.complete({ status: 201, body: topup }), statement, ...contact]);
    return { ok: true, topup };
  } catch (error) {
    if (!isDuplicateTopupKey(error)) throw error;
    // The key already made a top-up (its stored response may have been purged): answer with that one.
    const existing = await findTopupByKey(db, input.userId, input.idempotencyKey);
    if (existing) return { ok: true, topup: toTopup(existing) };
    return { ok: false, code: "idempotency_in_progress" };
  }
}

/**
 * Applies a gateway event to a top-up, exactly once however many deliveries arrive:
 *
 * - SUCCESS for a pending top-up → the top-up PAID in one batch with the payment row (whose unique keys
 *   turn any other delivery into `duplicate`), then its PURCHASE posted by the user's wallet object under
 *   the top-up's key. A delivery that finds the top-up PAID posts it again, which the key makes a no-op:
 *   so a crash between the batch and the posting is repaired by the gateway's next delivery.
 * - SUCCESS with another amount or currency → recorded for review, refused (`amount_mismatch`), nothing
 *   else.
 * - FAILED for a pending top-up → FAILED.
 * - Anything for a settled top-up → recorded and `ignored` (a SUCCESS flagged as needing a refund).
 */
export async function settleTopupPayment(
  context: PaymentContext,
  delivery: PaymentDelivery,
): Promise<PaymentApplication> {
  const { db } = context;
  const { event } = delivery;
  const topup = await findTopup(db, event.reference);
  if (!topup) return { ok: false, code: "reference_not_found", paying: "topup" };

  if (
    event.status === "SUCCESS" &&
    (event.amount_cents !== topup.amountCents || event.currency !== topup.currency)
  ) {
    await recordAmountMismatch(db, delivery, { amountCents: topup.amountCents, currency: topup.currency });
    return {
      ok: false,
      code: "amount_mismatch",
      paying: "topup",
      expectedAmountCents: topup.amountCents,
      expectedCurrency: topup.currency,
    };
  }
  return { ok: true, outcome: await settleFoundTopup(context, delivery, topup) };
}

/** Settles a top-up whose payment matches it (or that failed), or records the payment as ignored. */
async function settleFoundTopup(
  context: PaymentContext,
  delivery: PaymentDelivery,
  topup: TopupRow,
): Promise<WebhookOutcome> {
  const { db } = context;
  const { event, receivedAt: now } = delivery;
  const post = () =>
    walletObject(context.wallets, topup.userId).postTopup({
      userId: topup.userId,
      topupId: topup.id,
      amountCents: topup.amountCents,
      currency: topup.currency,
      postedAt: now.toISOString(),
    });
  if (topup.status === "PAID") await post();
  if (topup.status !== "PENDING_PAYMENT") return recordIgnoredPayment(db, delivery);

  const status = event.status === "SUCCESS" ? "PAID" : "FAILED";
  try {
    await atomically(db, [
      recordPaymentStatement(db, delivery, "processed", false),
      settleTopupStatement(db, topup.id, status, now),
    ]);
  } catch (error) {
    if (isDuplicatePayment(error) || isTopupAlreadySettled(error)) {
      // Settled meanwhile, by this payment or another: post it if that made it PAID, and record this one.
      const settled = await findTopup(db, topup.id);
      if (settled?.status === "PAID") await post();
      return isDuplicatePayment(error) ? "duplicate" : recordIgnoredPayment(db, delivery);
    }
    throw error;
  }
  if (status === "PAID") await post();
  return "processed";
}

/** The top-up is already settled: keep the payment (deduplicated; money received is flagged for refund). */
async function recordIgnoredPayment(db: Db, delivery: PaymentDelivery): Promise<WebhookOutcome> {
  try {
    await recordPaymentStatement(db, delivery, "ignored", delivery.event.status === "SUCCESS").run();
    return "ignored";
  } catch (error) {
    if (isDuplicatePayment(error)) return "duplicate";
    throw error;
  }
}
