import { and, asc, desc, eq, exists, gt, inArray, lte, or, type SQL, sql } from "drizzle-orm";
import { holdDeadline, isHoldExpired, type PricedLine } from "../domain/orders";
import type { Order, OrderStatus } from "../types/domain";
import { inventory } from "./catalog";
import { atomically, type Db, isConstraintError, type Statement } from "./client";
import { releasePendingUnitsStatement } from "./pending-units";
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

/**
 * One buyer's order as it stands now (undefined when missing or someone else's). An unpaid order whose
 * hold has lapsed is expired on read, if the every-minute sweep has not done it yet, so the answer is
 * never stale.
 */
export async function readOwnOrder(
  db: Db,
  orderId: string,
  userId: string,
  now: Date,
): Promise<Order | undefined> {
  const found = await findOrderWithItems(db, orderId);
  if (!found || found.row.userId !== userId) return undefined;
  const order = toOrder(found.row, found.items);
  if (!isHoldExpired(order, now)) return order;
  await expireOrder(db, orderId, found.items, now);
  const refreshed = await findOrderWithItems(db, orderId);
  return refreshed ? toOrder(refreshed.row, refreshed.items) : order;
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
 * What expiring one order writes: its settlement, its released stock and units. Its credits, if any, are
 * the wallet's object's: a pending transfer that the object voids when asked, or at its timeout once D1
 * shows the order expired.
 */
function expiryStatements(
  db: Db,
  orderId: string,
  items: Pick<ItemRow, "productId" | "quantity">[],
  now: Date,
): Statement[] {
  return [
    ...settleOrderStatements(db, orderId, "EXPIRED", now),
    ...items.map((item) => inventory.release(db, item.productId, item.quantity, now)),
    releasePendingUnitsStatement(db, orderId, now),
  ];
}

/**
 * Of these orders, those that ended unpaid (EXPIRED or PAYMENT_FAILED, both terminal) with credits set
 * aside: the ones whose credits may be released.
 */
export async function unpaidCreditedOrders(
  db: Db,
  orderIds: string[],
): Promise<{ id: string; userId: string; creditsAppliedCents: number }[]> {
  if (orderIds.length === 0) return [];
  return db
    .select({ id: orders.id, userId: orders.userId, creditsAppliedCents: orders.creditsAppliedCents })
    .from(orders)
    .where(
      and(
        inArray(orders.id, orderIds),
        inArray(orders.status, ["EXPIRED", "PAYMENT_FAILED"]),
        gt(orders.creditsAppliedCents, 0),
      ),
    );
}

/** How each of these orders stands in D1; an order id D1 does not have is absent from the map. */
export async function orderStatusOf(db: Db, orderIds: string[]): Promise<Map<string, OrderStatus>> {
  if (orderIds.length === 0) return new Map();
  const rows = await db
    .select({ id: orders.id, status: orders.status })
    .from(orders)
    .where(inArray(orders.id, orderIds));
  return new Map(rows.map((row) => [row.id, row.status]));
}

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
): Promise<boolean> {
  try {
    await atomically(db, expiryStatements(db, orderId, items, now));
    return true;
  } catch (error) {
    if (isAlreadySettled(error)) return false;
    throw error;
  }
}

/** What letting go of an order (`cancelOrder`) found and did. */
export type CancelOutcome =
  /** The order is EXPIRED now; `released` says whether this call did it (false: it already was). */
  | { kind: "expired"; order: Order; released: boolean }
  /** Paid, or its payment failed: there is nothing to release. */
  | { kind: "not_pending"; order: Order }
  /** No such order, or someone else's. */
  | { kind: "not_found" };

/**
 * Lets go of one of `userId`'s orders now: a PENDING_PAYMENT order goes exactly the way expiry takes it
 * (`expireOrder`: settlement, stock and pending units in one batch; the caller releases the order's
 * credits, if any), only before its deadline. Idempotent, and safe against a racing payment, expiry or cancel: the
 * settlement key lets exactly one of them move the order, and the loser reads what the winner made of it.
 */
export async function cancelOrder(
  db: Db,
  orderId: string,
  userId: string,
  now: Date,
): Promise<CancelOutcome> {
  const found = await findOrderWithItems(db, orderId);
  if (!found || found.row.userId !== userId) return { kind: "not_found" };
  let row = found.row;
  let released = false;
  if (row.status === "PENDING_PAYMENT") {
    released = await expireOrder(db, orderId, found.items, now);
    if (released) row = { ...row, status: "EXPIRED", updatedAt: now.toISOString() };
    else {
      // Settled by someone else between our read and our batch: the row says how.
      const settled = await findOrderWithItems(db, orderId);
      if (!settled || settled.row.status === "PENDING_PAYMENT")
        throw new Error(`invariant: order ${orderId} lost its settlement race but is not settled`);
      row = settled.row;
    }
  }
  const order = toOrder(row, found.items);
  return order.status === "EXPIRED" ? { kind: "expired", order, released } : { kind: "not_pending", order };
}

/**
 * The order as the settle-on-read rule reports it at `now`: a PENDING_PAYMENT order whose hold has lapsed
 * is EXPIRED, whether or not the sweep has recorded that yet (no payment can succeed for it any more).
 */
export function orderAsOf(order: Order, now: Date): Order {
  return isHoldExpired(order, now) ? { ...order, status: "EXPIRED" } : order;
}

/** Where the next page of a buyer's orders starts: the last order of this page, newest first. */
export interface OrderPosition {
  createdAt: string;
  id: string;
}

/** The SQL form of `orderAsOf`'s status, so that a filtered page agrees with what it reports. */
function reportedStatusIs(status: OrderStatus, now: Date): SQL | undefined {
  const nowIso = now.toISOString();
  const pending = eq(orders.status, "PENDING_PAYMENT");
  switch (status) {
    case "PENDING_PAYMENT":
      return and(pending, gt(orders.expiresAt, nowIso));
    case "EXPIRED":
      return or(eq(orders.status, "EXPIRED"), and(pending, lte(orders.expiresAt, nowIso)));
    default:
      return eq(orders.status, status);
  }
}

export interface BuyerOrdersQuery {
  userId: string;
  /** Only orders reported (by `orderAsOf`) with this status. */
  status?: OrderStatus;
  before?: OrderPosition;
  limit: number;
  now: Date;
}

/**
 * One page of a buyer's orders, newest first (created_at, then id), with their items: one keyset range of
 * the orders_by_user index, so pages neither skip nor repeat an order however many are created meanwhile
 * (new ones sort before the first page). Statuses are as `orderAsOf` reports them at `now`; `lapsed`
 * names the page's orders reported EXPIRED whose expiry is not recorded yet, for the caller to settle.
 */
export async function listBuyerOrders(
  db: Db,
  query: BuyerOrdersQuery,
): Promise<{ orders: Order[]; lapsed: string[]; next: OrderPosition | null }> {
  const rows = await db
    .select()
    .from(orders)
    .where(
      and(
        eq(orders.userId, query.userId),
        query.status === undefined ? undefined : reportedStatusIs(query.status, query.now),
        query.before
          ? sql`(${orders.createdAt}, ${orders.id}) < (${query.before.createdAt}, ${query.before.id})`
          : undefined,
      ),
    )
    .orderBy(desc(orders.createdAt), desc(orders.id))
    .limit(query.limit + 1);
  const page = rows.slice(0, query.limit);
  const items =
    page.length === 0
      ? []
      : await db
          .select()
          .from(orderItems)
          .where(
            inArray(
              orderItems.orderId,
              page.map((row) => row.id),
            ),
          )
          .orderBy(asc(orderItems.orderId), asc(orderItems.productId));
  const last = page.at(-1);
  return {
    lapsed: page
      .filter((row) => isHoldExpired({ status: row.status, expires_at: row.expiresAt }, query.now))
      .map((row) => row.id),
    orders: page.map((row) =>
      orderAsOf(
        toOrder(
          row,
          items.filter((item) => item.orderId === row.id),
        ),
        query.now,
      ),
    ),
    next: rows.length > query.limit && last ? { createdAt: last.createdAt, id: last.id } : null,
  };
}

/**
 * Orders expired per batch, by the sweep and by the reserve path: inside D1's 100-parameter limit for the
 * item lookup, and a batch of a few hundred short statements.
 */
export const EXPIRY_SWEEP_BATCH = 50;
/**
 * Batches one sweep run may expire: 5 000 orders a minute. A batch costs three D1 queries (five after a
 * lost race), so a run stays far inside the 1 000 queries a paid Worker invocation may make.
 */
export const EXPIRY_SWEEP_MAX_BATCHES = 100;
/**
 * Wall time one sweep run may start new batches in. Well inside the minute between runs, so that a run
 * never overlaps the next one by much; what is left waits at most one minute.
 */
export const EXPIRY_SWEEP_BUDGET_MS = 20_000;

/**
 * Expires lapsed pending orders, as read by the caller, in one batch. If any of them was settled meanwhile
 * (paid, failed, expired by someone else), its settlement key rolls the batch back: the ones still pending
 * are then tried once more together, and only if that fails too one at a time, so a lost race costs two
 * queries, not one batch per order. Returns how many this call expired.
 */
export async function expireOrders(db: Db, orderIds: string[], now: Date): Promise<number> {
  if (orderIds.length === 0) return 0;
  if (orderIds.length > EXPIRY_SWEEP_BATCH)
    throw new Error(`expireOrders takes at most ${EXPIRY_SWEEP_BATCH}`);
  const items = await db
    .select({ orderId: orderItems.orderId, productId: orderItems.productId, quantity: orderItems.quantity })
    .from(orderItems)
    .where(inArray(orderItems.orderId, orderIds));
  const itemsOf = (orderId: string) => items.filter((item) => item.orderId === orderId);
  const statements = new Map<string, Statement[]>();
  for (const orderId of orderIds)
    statements.set(orderId, expiryStatements(db, orderId, itemsOf(orderId), now));
  const expireTogether = async (ids: string[]) => {
    try {
      await atomically(
        db,
        ids.flatMap((id) => statements.get(id) ?? []),
      );
      return true;
    } catch (error) {
      if (isConstraintError(error)) return false;
      throw error;
    }
  };
  if (await expireTogether(orderIds)) return orderIds.length;
  const pending = await db
    .select({ id: orders.id })
    .from(orders)
    .where(and(inArray(orders.id, orderIds), eq(orders.status, "PENDING_PAYMENT")));
  const stillPending = orderIds.filter((id) => pending.some((row) => row.id === id));
  if (stillPending.length === 0 || (await expireTogether(stillPending))) return stillPending.length;
  let expired = 0;
  for (const orderId of stillPending) {
    if (await expireOrder(db, orderId, itemsOf(orderId), now)) expired++;
  }
  return expired;
}

export interface SweepBudget {
  maxBatches: number;
  budgetMs: number;
}

export const DEFAULT_SWEEP_BUDGET: SweepBudget = {
  maxBatches: EXPIRY_SWEEP_MAX_BATCHES,
  budgetMs: EXPIRY_SWEEP_BUDGET_MS,
};

/**
 * Expires every order lapsed at `now`, oldest deadline first, `batchSize` at a time, until none is left or
 * the budget is spent (the next run goes on from there). Idempotent: running it twice, or twice at once,
 * expires each order once. Returns how many this run expired. `afterBatch` is told each batch's order ids
 * once the batch is settled, whoever settled each of them (the cron releases expired orders' credits).
 */
export async function sweepExpiredOrders(
  db: Db,
  now: Date,
  batchSize = EXPIRY_SWEEP_BATCH,
  budget: SweepBudget = DEFAULT_SWEEP_BUDGET,
  afterBatch?: (orderIds: string[]) => Promise<void>,
): Promise<number> {
  const startedMs = Date.now();
  let expired = 0;
  for (let batch = 0; batch < budget.maxBatches && Date.now() - startedMs < budget.budgetMs; batch++) {
    // Every order read here leaves PENDING_PAYMENT before the next read (by this run or by whoever
    // settled it first), so each read moves on.
    const lapsed = await db
      .select({ id: orders.id })
      .from(orders)
      .where(and(eq(orders.status, "PENDING_PAYMENT"), lte(orders.expiresAt, now.toISOString())))
      .orderBy(asc(orders.expiresAt))
      .limit(batchSize);
    const ids = lapsed.map((order) => order.id);
    expired += await expireOrders(db, ids, now);
    if (afterBatch && ids.length > 0) await afterBatch(ids);
    if (lapsed.length < batchSize) break;
  }
  return expired;
}

/** Whose lapsed orders the reserve path may expire: the buyer's own, and those holding these products. */
export interface LapsedHolders {
  userId: string;
  productIds: string[];
}

/**
 * Pending orders lapsed at `now` that count against the buyer's cap or hold stock of the products, oldest
 * deadline first, at most `limit`. Both reads walk the partial indexes of pending orders (by buyer, by
 * deadline), so they touch lapsed pending orders only, which the sweep keeps few.
 */
export async function findLapsedOrderIds(
  db: Db,
  holders: LapsedHolders,
  now: Date,
  limit: number,
): Promise<string[]> {
  const lapsed = and(eq(orders.status, "PENDING_PAYMENT"), lte(orders.expiresAt, now.toISOString()));
  const [buyers, products] = await db.batch([
    db
      .select({ id: orders.id })
      .from(orders)
      .where(and(eq(orders.userId, holders.userId), lapsed))
      .orderBy(asc(orders.expiresAt))
      .limit(limit),
    db
      .select({ id: orders.id })
      .from(orders)
      .where(
        and(
          lapsed,
          // EXISTS keeps the scan on pending orders; a join could start from order_items, which has no
          // index by product.
          exists(
            db
              .select({ one: sql`1` })
              .from(orderItems)
              .where(
                and(eq(orderItems.orderId, orders.id), inArray(orderItems.productId, holders.productIds)),
              ),
          ),
        ),
      )
      .orderBy(asc(orders.expiresAt))
      .limit(limit),
  ]);
  return [...new Set([...buyers, ...products].map((order) => order.id))].slice(0, limit);
}
