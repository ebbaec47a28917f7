import { and, eq } from "drizzle-orm";
import { newId } from "../ids";
import type { Topup, TopupStatus } from "../types/domain";
import { errorMatches } from "./audit";
import { type Db, isConstraintError, type Statement } from "./client";
import { walletTopups } from "./schema";

// Top-ups: a pending request for credit that the payment webhook settles exactly once. The credit itself
// is a PURCHASE transfer in the wallet's journal (src/services/wallet-topups.ts).

export type TopupRow = typeof walletTopups.$inferSelect;

export const isTopupAlreadySettled = (error: unknown) => errorMatches(error, /wallet_topup_already_settled/);
export const isDuplicateTopupKey = (error: unknown) =>
  isConstraintError(error, /UNIQUE.*wallet_topups\.(user_id|idempotency_key)/);

export function toTopup(row: TopupRow): Topup {
  return {
    topup_id: row.id,
    status: row.status,
    amount_cents: row.amountCents,
    currency: row.currency,
    created_at: row.createdAt,
  };
}

export function insertTopupStatement(
  db: Db,
  topup: { userId: string; amountCents: number; currency: string; idempotencyKey: string; now: Date },
): { row: TopupRow; statement: Statement } {
  const timestamp = topup.now.toISOString();
  const row: TopupRow = {
    id: newId("top"),
    userId: topup.userId,
    amountCents: topup.amountCents,
    currency: topup.currency,
    status: "PENDING_PAYMENT",
    idempotencyKey: topup.idempotencyKey,
    createdAt: timestamp,
    updatedAt: timestamp,
  };
  return { row, statement: db.insert(walletTopups).values(row) };
}

export async function findTopup(db: Db, id: string): Promise<TopupRow | undefined> {
  const [row] = await db.select().from(walletTopups).where(eq(walletTopups.id, id)).limit(1);
  return row;
}

export async function findTopupByKey(db: Db, userId: string, key: string): Promise<TopupRow | undefined> {
  const [row] = await db
    .select()
    .from(walletTopups)
    .where(and(eq(walletTopups.userId, userId), eq(walletTopups.idempotencyKey, key)))
    .limit(1);
  return row;
}

/** Settles a pending top-up; the trigger makes a second settlement throw and roll back its batch. */
export function settleTopupStatement(
  db: Db,
  id: string,
  status: Exclude<TopupStatus, "PENDING_PAYMENT">,
  now: Date,
): Statement {
  return db.update(walletTopups).set({ status, updatedAt: now.toISOString() }).where(eq(walletTopups.id, id));
}
