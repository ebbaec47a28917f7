import { and, eq, inArray, isNull, ne, sql } from "drizzle-orm";
import type { Db } from "./client";
import { checkoutAttempts, checkoutSessions, orders } from "./schema";

export type CheckoutSessionRow = typeof checkoutSessions.$inferSelect;

export async function findCheckoutSession(
  db: Db,
  reference: string,
): Promise<CheckoutSessionRow | undefined> {
  const [row] = await db.select().from(checkoutSessions).where(eq(checkoutSessions.reference, reference));
  return row;
}

/**
 * Keeps the session opened for a reference, unless one is kept already, and answers the one kept: two
 * requests that raced to the provider (and got the same session from its idempotency key) store it once.
 */
export async function keepCheckoutSession(
  db: Db,
  row: Omit<CheckoutSessionRow, "closedAt">,
): Promise<CheckoutSessionRow> {
  const [, stored] = await db.batch([
    db.insert(checkoutSessions).values(row).onConflictDoNothing(),
    db.select().from(checkoutSessions).where(eq(checkoutSessions.reference, row.reference)),
  ]);
  const kept = stored[0];
  if (!kept) throw new Error(`invariant: checkout session of ${row.reference} not stored`);
  return kept;
}

/**
 * Open pages of orders that can no longer be paid (expired, failed or paid): the ones to close at the
 * provider. Top-ups have no hold to lose, so their pages stay open until they lapse.
 */
export async function lapsedOrderCheckouts(
  db: Db,
  limit: number,
): Promise<{ reference: string; sessionId: string; orderStatus: string }[]> {
  return (
    db
      .select({
        reference: checkoutSessions.reference,
        sessionId: checkoutSessions.sessionId,
        orderStatus: orders.status,
      })
      .from(checkoutSessions)
      .innerJoin(orders, eq(orders.id, checkoutSessions.reference))
      // The same predicate as the partial index checkout_sessions_open_orders, so SQLite uses it.
      .where(
        and(
          isNull(checkoutSessions.closedAt),
          sql`substr(${checkoutSessions.reference}, 1, 4) = 'ord_'`,
          ne(orders.status, "PENDING_PAYMENT"),
        ),
      )
      .orderBy(checkoutSessions.createdAt)
      .limit(limit)
  );
}

export async function markCheckoutsClosed(db: Db, references: string[], now: Date): Promise<void> {
  if (references.length === 0) return;
  await db
    .update(checkoutSessions)
    .set({ closedAt: now.toISOString() })
    .where(and(inArray(checkoutSessions.reference, references), isNull(checkoutSessions.closedAt)))
    .run();
}

/** The current attempt at opening a reference's page: 1 until one failed. */
export async function currentCheckoutAttempt(db: Db, reference: string): Promise<number> {
  const [row] = await db.select().from(checkoutAttempts).where(eq(checkoutAttempts.reference, reference));
  return row?.attempt ?? 1;
}

/**
 * Moves a reference past a failed attempt. Conditional on the attempt that failed, so that racing
 * requests which failed together move it on once.
 */
export async function abandonCheckoutAttempt(db: Db, reference: string, failed: number): Promise<void> {
  await db
    .insert(checkoutAttempts)
    .values({ reference, attempt: failed + 1 })
    .onConflictDoUpdate({
      target: checkoutAttempts.reference,
      set: { attempt: failed + 1 },
      setWhere: eq(checkoutAttempts.attempt, failed),
    })
    .run();
}
