import type { Db, Statement } from "../db/client";
import type { ExpiryExtension } from "../db/orders";
import { ledgerEntry, placeHoldStatement, resolveHoldStatement } from "../db/wallet";
import { ledgerActors, ledgerKeys } from "../domain/ledger";

// The wallet's part of an order's batches. Every statement here runs inside a batch that also claims the
// order's settlement row (or creates the order), so it runs exactly once per order; the wallet's triggers
// and CHECKs make it throw, rolling the whole batch back, if it would overdraw or resolve a hold twice.

interface CreditedOrder {
  id: string;
  userId: string;
  creditsAppliedCents: number;
  currency: string;
}

/** A DEDUCT paying (part of) an order: reference = the order, one per order by its idempotency key. */
function orderDeduction(db: Db, order: CreditedOrder, createdBy: string, now: Date): Statement {
  return ledgerEntry(db, {
    userId: order.userId,
    type: "DEDUCT",
    amountCents: order.creditsAppliedCents,
    currency: order.currency,
    reference: order.id,
    idempotencyKey: ledgerKeys.order(order.id),
    createdBy,
    now,
  }).statement;
}

/** Credits cover the whole order: deduct now, in the batch that creates the order as PAID. */
export function payOrderWithCreditsStatement(db: Db, order: CreditedOrder, now: Date): Statement {
  return orderDeduction(db, order, ledgerActors.user(order.userId), now);
}

/** Credits cover part of the order: hold them (held_cents += x) until the card payment settles it. */
export function holdOrderCreditsStatement(db: Db, order: CreditedOrder, now: Date): Statement {
  return placeHoldStatement(db, {
    userId: order.userId,
    orderId: order.id,
    amountCents: order.creditsAppliedCents,
    currency: order.currency,
    now,
  });
}

/**
 * The card part was paid: post the hold. The hold is released first (held −= x) and then the DEDUCT
 * appended (balance −= x): in the other order the balance would dip below what is still held and the
 * CHECK would refuse a perfectly covered posting.
 */
export function postOrderCreditsStatements(db: Db, order: CreditedOrder, now: Date): Statement[] {
  if (order.creditsAppliedCents === 0) return [];
  return [
    resolveHoldStatement(db, order.id, "POSTED", now),
    orderDeduction(db, order, ledgerActors.payments, now),
  ];
}

/** The order failed or expired: give the held credit back (held −= x). No hold, no effect. */
export function voidOrderCreditsStatements(
  db: Db,
  order: Pick<CreditedOrder, "id" | "creditsAppliedCents">,
  now: Date,
): Statement[] {
  return order.creditsAppliedCents === 0 ? [] : [resolveHoldStatement(db, order.id, "VOIDED", now)];
}

/**
 * For expireOrder / sweepExpiredOrders: voids the order's hold in the expiry's batch. It does not read
 * the order (the sweep expires many); for an order without a hold the UPDATE simply matches nothing.
 */
export const voidCreditHoldOnExpiry: ExpiryExtension = async (db, orderId, now) => [
  resolveHoldStatement(db, orderId, "VOIDED", now),
];

/** What every expiry of an order must undo besides its inventory. Pass to each expireOrder caller. */
export const ORDER_EXPIRY_EXTENSIONS: ExpiryExtension[] = [voidCreditHoldOnExpiry];
