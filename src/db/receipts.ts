import { eq } from "drizzle-orm";
import type { Db } from "./client";
import { orderItems, orders, products, receipts } from "./schema";

export type Receipt = typeof receipts.$inferSelect;

/** The receipt's id is derived from its order, so however often `order.paid` arrives there is one receipt. */
export function receiptIdForOrder(orderId: string): string {
  return `rct_${orderId.replace(/^ord_/, "")}`;
}

/**
 * Writes the receipt for a paid order unless it exists, and returns the stored one (undefined when the
 * order does not exist). The order, its lines and their product names are read in one snapshot.
 */
export async function writeReceipt(
  db: Db,
  orderId: string,
  paidAt: string,
  now: Date,
): Promise<Receipt | undefined> {
  const [orderRows, lineRows] = await db.batch([
    db.select().from(orders).where(eq(orders.id, orderId)),
    db
      .select({
        product_id: orderItems.productId,
        product_name: products.name,
        quantity: orderItems.quantity,
        unit_price_cents: orderItems.unitPriceCents,
      })
      .from(orderItems)
      .innerJoin(products, eq(products.id, orderItems.productId))
      .where(eq(orderItems.orderId, orderId))
      .orderBy(orderItems.productId),
  ]);
  const order = orderRows[0];
  if (!order) return undefined;
  const id = receiptIdForOrder(orderId);
  const [, stored] = await db.batch([
    db
      .insert(receipts)
      .values({
        id,
        orderId,
        userId: order.userId,
        totalCents: order.totalCents,
        amountPaidCents: order.amountDueCents,
        currency: order.currency,
        lines: lineRows,
        paidAt,
        createdAt: now.toISOString(),
      })
      .onConflictDoNothing(),
    db.select().from(receipts).where(eq(receipts.id, id)),
  ]);
  return stored[0];
}

export async function markReceiptMailed(db: Db, id: string, now: Date): Promise<void> {
  await db.update(receipts).set({ mailedAt: now.toISOString() }).where(eq(receipts.id, id)).run();
}
