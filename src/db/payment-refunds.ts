import { and, eq, inArray, sql } from "drizzle-orm";
import type { Db, Statement } from "./client";
import { paymentRefunds, payments } from "./schema";

export type PaymentRefundRow = typeof paymentRefunds.$inferSelect;
export type PaymentRow = typeof payments.$inferSelect;

/** Statuses a refund can still move out of: never refunded, or refused by the provider and retried. */
const UNFINISHED: PaymentRefundRow["status"][] = ["requested", "failed"];

export async function findPayment(db: Db, paymentId: string): Promise<PaymentRow | undefined> {
  const [row] = await db.select().from(payments).where(eq(payments.paymentId, paymentId));
  return row;
}

/**
 * The refund of a payment, started as `requested` unless one exists: the row (keyed by the payment id)
 * is written before the provider is called, so a crash in between leaves a refund the next attempt
 * finishes, under the same provider idempotency key.
 */
export async function startRefund(
  db: Db,
  payment: PaymentRow,
  request: { requestedBy: string; note: string | null; now: Date },
): Promise<PaymentRefundRow> {
  const [, stored] = await db.batch([
    db
      .insert(paymentRefunds)
      .values({
        paymentId: payment.paymentId,
        provider: payment.provider,
        status: "requested",
        amountCents: payment.amountCents,
        currency: payment.currency,
        requestedBy: request.requestedBy,
        note: request.note,
        requestedAt: request.now.toISOString(),
      })
      .onConflictDoNothing(),
    db.select().from(paymentRefunds).where(eq(paymentRefunds.paymentId, payment.paymentId)),
  ]);
  const row = stored[0];
  if (!row) throw new Error(`invariant: refund of ${payment.paymentId} not stored`);
  return row;
}

/**
 * Moves an unfinished refund to where the provider (or the admin, for the standard gateway) put it. A
 * finished refund is never moved again: the guard leaves it as it is.
 */
export function finishRefundStatement(
  db: Db,
  paymentId: string,
  outcome:
    | { status: "issued"; providerRefundId: string }
    | { status: "recorded" }
    | { status: "failed"; failure: string },
  now: Date,
): Statement {
  return db
    .update(paymentRefunds)
    .set({
      status: outcome.status,
      providerRefundId: outcome.status === "issued" ? outcome.providerRefundId : null,
      failure: outcome.status === "failed" ? outcome.failure : null,
      completedAt: outcome.status === "failed" ? null : now.toISOString(),
      // A refused attempt's key would be answered the same refusal: the next one gets its own.
      ...(outcome.status === "failed" ? { attempt: sql`${paymentRefunds.attempt} + 1` } : {}),
    })
    .where(and(eq(paymentRefunds.paymentId, paymentId), inArray(paymentRefunds.status, UNFINISHED)));
}

export async function findRefund(db: Db, paymentId: string): Promise<PaymentRefundRow | undefined> {
  const [row] = await db.select().from(paymentRefunds).where(eq(paymentRefunds.paymentId, paymentId));
  return row;
}

/** Moves an unfinished refund past an attempt the provider could not be reached for (once, if racing). */
export async function abandonRefundAttempt(db: Db, paymentId: string, failed: number): Promise<void> {
  await db
    .update(paymentRefunds)
    .set({ attempt: failed + 1 })
    .where(
      and(
        eq(paymentRefunds.paymentId, paymentId),
        eq(paymentRefunds.attempt, failed),
        inArray(paymentRefunds.status, UNFINISHED),
      ),
    )
    .run();
}
