import { inventory } from "../db/catalog";
import { atomically, type Statement } from "../db/client";
import {
  expireOrder,
  findOrderWithItems,
  isAlreadySettled,
  settleOrderStatements,
  toOrder,
} from "../db/orders";
import { type OutboxEntry, outboxStatement, publishOutboxEntry } from "../db/outbox";
import {
  isDuplicatePayment,
  type PaymentDelivery,
  recordAmountMismatch,
  recordPaymentStatement,
} from "../db/payments";
import { releasePendingUnitsStatement } from "../db/pending-units";
import { issueTicketsStatements } from "../db/tickets";
import { assertTransition, canTransition, isHoldExpired } from "../domain/orders";
import type { OrderStatus, WebhookOutcome } from "../types/domain";
import { postOrderCredits, releaseOrderCredits } from "./order-credits";
import type { PaymentApplication, PaymentContext } from "./payment-events";

/**
 * Reads of the order before giving up. Every state but PENDING_PAYMENT is terminal, so one lost race
 * (another settlement committed between our read and our batch) is followed by a read that settles it:
 * two reads always suffice, and a third covers expiring a lapsed hold first.
 */
const MAX_ORDER_READS = 3;

type OrderWithItems = NonNullable<Awaited<ReturnType<typeof findOrderWithItems>>>;

/**
 * Applies a gateway event to an order, exactly once however many deliveries arrive, in parallel or not.
 *
 * - SUCCESS for a pending order → PAID, inventory committed, tickets issued, its units off the buyer's
 *   pending count: one atomic batch, together with the payment row whose unique keys make any other
 *   delivery of the payment roll back. Then its credits (if any) are posted by the wallet's object.
 * - SUCCESS whose amount or currency differs from what is due → recorded for review, refused
 *   (`amount_mismatch`), nothing else.
 * - SUCCESS for an order that is no longer pending (expired, failed, paid by another payment) → recorded
 *   as needing a refund, `ignored`.
 * - FAILED for a pending order → PAYMENT_FAILED, the reservation and pending units released, then its
 *   credits; otherwise `ignored`.
 *
 * Only the delivery whose batch settled the order resolves its credits. If it crashed before that call,
 * the transfer's timeout finds the order settled in D1 and resolves them the same way.
 */
export async function settleOrderPayment(
  context: PaymentContext,
  delivery: PaymentDelivery,
): Promise<PaymentApplication> {
  const { db } = context;
  const { event } = delivery;
  const found = await findOrderWithItems(db, event.reference);
  if (!found) return { ok: false, code: "reference_not_found", paying: "order" };

  if (event.status === "SUCCESS") {
    const { amountDueCents, currency } = found.row;
    if (event.amount_cents !== amountDueCents || event.currency !== currency) {
      await recordAmountMismatch(db, delivery, { amountCents: amountDueCents, currency });
      return {
        ok: false,
        code: "amount_mismatch",
        paying: "order",
        expectedAmountCents: amountDueCents,
        expectedCurrency: currency,
      };
    }
  }
  return { ok: true, outcome: await settleFoundOrder(context, delivery, found) };
}

/** Moves a found order to PAID or PAYMENT_FAILED, re-reading it after a lost race (MAX_ORDER_READS). */
async function settleFoundOrder(
  context: PaymentContext,
  delivery: PaymentDelivery,
  first: OrderWithItems,
): Promise<WebhookOutcome> {
  const { db } = context;
  const { event, receivedAt: now } = delivery;
  let found: Awaited<ReturnType<typeof findOrderWithItems>> = first;

  const target: OrderStatus = event.status === "SUCCESS" ? "PAID" : "PAYMENT_FAILED";
  for (let read = 1; read <= MAX_ORDER_READS; read++) {
    if (read > 1) found = await findOrderWithItems(db, event.reference);
    if (!found) throw new Error(`order ${event.reference} disappeared`);
    if (isHoldExpired(toOrder(found.row, found.items), now)) {
      // The sweep has not reached it yet, but the hold has lapsed: the order is expired, not payable. Only
      // the call that expired it releases its credits: if another settlement got there first, it may have
      // paid the order (its own call then posts them, or the transfer's timeout does), and the sweep or
      // cancel that expired it released them already.
      if (await expireOrder(db, found.row.id, found.items, now)) {
        await releaseOrderCredits(context.wallets, found.row);
      }
      continue;
    }
    if (!canTransition(found.row.status, target)) return recordIgnoredPayment(context, delivery);
    const outcome =
      target === "PAID"
        ? await payOrder(context, delivery, found)
        : await failOrder(context, delivery, found);
    if (outcome) return outcome;
  }
  throw new Error(`order ${event.reference} did not settle after ${MAX_ORDER_READS} reads`);
}

/**
 * Runs a settlement batch led by the payment row. Returns undefined when another settlement of the order
 * won the race, so the caller re-reads the (now terminal) order.
 */
async function settle(
  context: PaymentContext,
  statements: Statement[],
): Promise<Extract<WebhookOutcome, "processed" | "duplicate"> | undefined> {
  try {
    await atomically(context.db, statements);
    return "processed";
  } catch (error) {
    // The payment row comes first in the batch, so a duplicate delivery is recognised as such even when
    // its own order has meanwhile been settled by the first delivery.
    if (isDuplicatePayment(error)) return "duplicate";
    if (isAlreadySettled(error)) return undefined;
    throw error;
  }
}

async function payOrder(context: PaymentContext, delivery: PaymentDelivery, found: OrderWithItems) {
  const { db } = context;
  const now = delivery.receivedAt;
  const { row: order, items } = found;
  assertTransition(order.status, "PAID");
  const tickets = issueTicketsStatements(db, {
    orderId: order.id,
    userId: order.userId,
    lines: items.map((item) => ({ productId: item.productId, quantity: item.quantity })),
    now,
  });
  const paid: OutboxEntry = {
    id: `order.paid:${order.id}`,
    message: { type: "order.paid", order_id: order.id, user_id: order.userId, paid_at: now.toISOString() },
  };
  const outcome = await settle(context, [
    recordPaymentStatement(db, delivery, "processed", false),
    ...settleOrderStatements(db, order.id, "PAID", now),
    ...items.map((item) => inventory.commit(db, item.productId, item.quantity, now)),
    releasePendingUnitsStatement(db, order.id, now),
    ...tickets.statements,
    outboxStatement(db, paid, now),
  ]);
  if (outcome === "processed") await postOrderCredits(context.wallets, order);
  // Issuance has committed; what follows it (the receipt) fans out through the queue.
  if (outcome === "processed") await publishOutboxEntry(db, context.events, paid, now);
  return outcome;
}

async function failOrder(context: PaymentContext, delivery: PaymentDelivery, found: OrderWithItems) {
  const { db } = context;
  const now = delivery.receivedAt;
  const { row: order, items } = found;
  assertTransition(order.status, "PAYMENT_FAILED");
  const outcome = await settle(context, [
    recordPaymentStatement(db, delivery, "processed", false),
    ...settleOrderStatements(db, order.id, "PAYMENT_FAILED", now),
    ...items.map((item) => inventory.release(db, item.productId, item.quantity, now)),
    releasePendingUnitsStatement(db, order.id, now),
  ]);
  if (outcome === "processed") await releaseOrderCredits(context.wallets, order);
  return outcome;
}

/**
 * The order is already settled: record the payment (so that it is deduplicated and, for money received,
 * flagged for a refund) and change nothing else.
 */
async function recordIgnoredPayment(
  context: PaymentContext,
  delivery: PaymentDelivery,
): Promise<WebhookOutcome> {
  const needsRefund = delivery.event.status === "SUCCESS";
  try {
    await recordPaymentStatement(context.db, delivery, "ignored", needsRefund).run();
    return "ignored";
  } catch (error) {
    if (isDuplicatePayment(error)) return "duplicate";
    throw error;
  }
}
