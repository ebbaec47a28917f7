import { and, asc, eq, inArray, lte } from "drizzle-orm";
import { holdDeadline, type PricedLine } from "../domain/orders";
import type { Order, OrderStatus } from "../types/domain";
import { inventory } from "./catalog";
import { atomically, type Db, isConstraintError, type Statement } from "./client";
import { orderItems, orderSettlements, orders } from "./schema";

type OrderRow = typeof orders.$inferSelect;
type ItemRow = typeof orderItems.$inferSelect;

export function toOrder(row: OrderRow, items: ItemRow[]): Order {
  return {
    order_id: row.id,
    status: row.status,
    items: items.map((item) => ({
      product_id: item.productId,
      quantity: item.quantity,
      unit_price_cents: item.unitPriceCents,
    })),
    total_cents: row.totalCents,
    credits_applied_cents: row.creditsAppliedCents,
    amount_due_cents: row.amountDueCents,
    currency: row.currency,
    created_at: row.createdAt,
    expires_at: row.expiresAt,
  };
}

export interface NewOrder {
  id: string;
  userId: string;
  idempotencyKey: string;
  lines: PricedLine[];
  totalCents: number;
  creditsAppliedCents: number;
  currency: string;
  now: Date;
  holdSeconds: number;
}

/**
 * The statements that create a pending order and reserve its inventory. Run as one batch: if any
 * product would go over `sellable`, the CHECK throws and nothing of the order exists.
 */
export function createOrderStatements(db: Db, order: NewOrder): { row: OrderRow; statements: Statement[] } {
  const timestamp = order.now.toISOString();
  const row: OrderRow = {
    id: order.id,
    userId: order.userId,
    status: "PENDING_PAYMENT",
    totalCents: order.totalCents,
    creditsAppliedCents: order.creditsAppliedCents,
    amountDueCents: order.totalCents - order.creditsAppliedCents,
    currency: order.currency,
    createdAt: timestamp,
    expiresAt: holdDeadline(order.now, order.holdSeconds).toISOString(),
    updatedAt: timestamp,
    idempotencyKey: order.idempotencyKey,
  };
  const statements: Statement[] = [
    db.insert(orders).values(row),
    db.insert(orderItems).values(
      order.lines.map((line) => ({
        orderId: order.id,
        productId: line.product_id,
        quantity: line.quantity,
        unitPriceCents: line.unit_price_cents,
      })),
    ),
    ...order.lines.map((line) => inventory.reserve(db, line.product_id, line.quantity, order.now)),
  ];
  return { row, statements };
}

export const isInventoryExceeded = (error: unknown) =>
  isConstraintError(error, /inventory_within_sellable|CHECK/i);
export const isDuplicateOrderKey = (error: unknown) =>
  isConstraintError(error, /UNIQUE.*orders\.(user_id|idempotency_key)/i);

export async function findOrderWithItems(
  db: Db,
  orderId: string,
): Promise<{ row: OrderRow; items: ItemRow[] } | undefined> {
  const [row, items] = await db.batch([
    db.select().from(orders).where(eq(orders.id, orderId)),
    db.select().from(orderItems).where(eq(orderItems.orderId, orderId)).orderBy(asc(orderItems.productId)),
  ]);
  const order = row[0];
  return order ? { row: order, items } : undefined;
}

export async function findOrderByIdempotencyKey(
  db: Db,
  userId: string,
  key: string,
): Promise<OrderRow | undefined> {
  return db.query.orders.findFirst({ where: and(eq(orders.userId, userId), eq(orders.idempotencyKey, key)) });
}

/**
 * The statements every terminal transition shares: claim the settlement (the primary key makes a second
 * claim throw, rolling back its batch) and move the order out of PENDING_PAYMENT.
 */
export function settleOrderStatements(
  db: Db,
  orderId: string,
  outcome: Exclude<OrderStatus, "PENDING_PAYMENT">,
  now: Date,
): Statement[] {
  const timestamp = now.toISOString();
  return [
    db.insert(orderSettlements).values({ orderId, outcome, settledAt: timestamp }),
    db
      .update(orders)
      .set({ status: outcome, updatedAt: timestamp })
      .where(and(eq(orders.id, orderId), eq(orders.status, "PENDING_PAYMENT"))),
  ];
}

export const isAlreadySettled = (error: unknown) => isConstraintError(error, /order_settlements\.order_id/i);

/**
 * Hooks for what else an expiry must undo in the same batch (the wallet's credit hold, when one exists).
 * Each returns extra statements for the order being expired.
 */
export type ExpiryExtension = (db: Db, orderId: string, now: Date) => Promise<Statement[]>;

/**
 * Expires one pending order and releases its reservation, exactly once: a concurrent or repeated expiry
 * (or a payment that settled first) fails on the settlement key and changes nothing.
 * Returns whether this call did the expiry.
 */
export async function expireOrder(
  db: Db,
  orderId: string,
  items: Pick<ItemRow, "productId" | "quantity">[],
  now: Date,
  extensions: ExpiryExtension[] = [],
): Promise<boolean> {
  const extra = (await Promise.all(extensions.map((extend) => extend(db, orderId, now)))).flat();
  try {
    await atomically(db, [
      ...settleOrderStatements(db, orderId, "EXPIRED", now),
      ...items.map((item) => inventory.release(db, item.productId, item.quantity, now)),
      ...extra,
    ]);
    return true;
  } catch (error) {
    if (isAlreadySettled(error)) return false;
    throw error;
  }
}

/** Orders expired per sweep run: inside D1's 100-parameter limit for the item lookup, and one cron run's budget. */
export const EXPIRY_SWEEP_BATCH = 50;

/**
 * Expires up to `limit` lapsed orders, oldest deadline first. Idempotent: running it twice, or twice
 * at once, expires each order once. Returns how many this run expired.
 */
export async function sweepExpiredOrders(
  db: Db,
  now: Date,
  limit = EXPIRY_SWEEP_BATCH,
  extensions: ExpiryExtension[] = [],
): Promise<number> {
  const lapsed = await db
    .select({ id: orders.id })
    .from(orders)
    .where(and(eq(orders.status, "PENDING_PAYMENT"), lte(orders.expiresAt, now.toISOString())))
    .orderBy(asc(orders.expiresAt))
    .limit(limit);
  if (lapsed.length === 0) return 0;
  const ids = lapsed.map((order) => order.id);
  const items = await db
    .select({ orderId: orderItems.orderId, productId: orderItems.productId, quantity: orderItems.quantity })
    .from(orderItems)
    .where(inArray(orderItems.orderId, ids));
  let expired = 0;
  for (const id of ids) {
    const done = await expireOrder(
      db,
      id,
      items.filter((item) => item.orderId === id),
      now,
      extensions,
    );
    if (done) expired++;
  }
  return expired;
}
