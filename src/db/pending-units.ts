import { eq, sql } from "drizzle-orm";
import { type Db, isConstraintError, type Statement } from "./client";
import { buyerPendingUnits, orderItems, orders } from "./schema";

// The units each buyer holds in unpaid orders. The count moves only inside the batches that create a
// pending order or move one out of PENDING_PAYMENT (each of which claims the order's settlement row, so
// it runs once per order); the table's CHECK is the cap, judged by D1 inside the order's own batch.

export interface PendingUnitsHold {
  userId: string;
  units: number;
  /** The cap in force: written into the row, where the CHECK `units <= max_units` enforces it. */
  maxUnits: number;
  now: Date;
}

/**
 * Adds a new pending order's units to its buyer's count. Past the cap the CHECK throws and the order's
 * whole batch rolls back (`isPendingCapExceeded`).
 */
export function holdPendingUnitsStatement(db: Db, hold: PendingUnitsHold): Statement {
  const updatedAt = hold.now.toISOString();
  return db
    .insert(buyerPendingUnits)
    .values({ userId: hold.userId, units: hold.units, maxUnits: hold.maxUnits, updatedAt })
    .onConflictDoUpdate({
      target: buyerPendingUnits.userId,
      set: {
        units: sql`${buyerPendingUnits.units} + excluded.units`,
        maxUnits: sql`excluded.max_units`,
        updatedAt,
      },
    });
}

/**
 * Takes an order's units off its buyer's count, for a batch that moves the order out of PENDING_PAYMENT.
 * The order's own rows say how many and whose. Clamped at zero: an order created by a release that
 * predates this count (during its deployment) was never added, and no settlement may fail on a counter.
 */
export function releasePendingUnitsStatement(db: Db, orderId: string, now: Date): Statement {
  const units = sql`coalesce((select sum(${orderItems.quantity}) from ${orderItems} where ${orderItems.orderId} = ${orderId}), 0)`;
  return db
    .update(buyerPendingUnits)
    .set({ units: sql`max(${buyerPendingUnits.units} - ${units}, 0)`, updatedAt: now.toISOString() })
    .where(
      eq(
        buyerPendingUnits.userId,
        sql`(select ${orders.userId} from ${orders} where ${orders.id} = ${orderId})`,
      ),
    );
}

export const isPendingCapExceeded = (error: unknown) => isConstraintError(error, /pending_units_within_cap/);

/** The units the buyer's count holds now (lapsed orders not yet expired included). */
export async function pendingUnitsOf(db: Db, userId: string): Promise<number> {
  const row = await db.query.buyerPendingUnits.findFirst({ where: eq(buyerPendingUnits.userId, userId) });
  return row?.units ?? 0;
}
