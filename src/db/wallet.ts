import { and, asc, eq, sql } from "drizzle-orm";
import type { Db, Statement } from "./client";
import type { LedgerCursor, LedgerRow } from "./ledger";
import { orders, walletHolds, walletLedger } from "./schema";

// What a wallet's object reads of D1 when it opens its journal (src/objects/wallet-opening.ts): the
// wallet's ledger rows and the credit holds D1 placed before the object owned the wallet, which it then
// resolves here as its journal resolves them.

/**
 * Resolves a credit hold D1 placed before the wallet's journal, as the journal resolved it. Guarded by
 * PENDING, so a redelivery matches nothing (the hold's trigger would throw on a second resolution).
 */
export function resolveLegacyHoldStatement(
  db: Db,
  orderId: string,
  status: "POSTED" | "VOIDED",
  at: string,
): Statement {
  return db
    .update(walletHolds)
    .set({ status, resolvedAt: at })
    .where(and(eq(walletHolds.orderId, orderId), eq(walletHolds.status, "PENDING")));
}

/**
 * One page of a wallet's D1 ledger, oldest first: what the wallet's object copies when it opens its
 * journal (src/objects/wallet-opening.ts).
 */
export async function walletHistoryPage(
  db: Db,
  userId: string,
  after: LedgerCursor | undefined,
  limit: number,
): Promise<LedgerRow[]> {
  return db
    .select()
    .from(walletLedger)
    .where(
      and(
        eq(walletLedger.userId, userId),
        after
          ? sql`(${walletLedger.createdAt}, ${walletLedger.id}) > (${after.createdAt}, ${after.id})`
          : undefined,
      ),
    )
    .orderBy(asc(walletLedger.createdAt), asc(walletLedger.id))
    .limit(limit);
}

/** Credit holds D1 placed for a wallet's orders before the wallet's object owned them, still PENDING. */
export async function pendingHoldsOf(
  db: Db,
  userId: string,
): Promise<
  { orderId: string; amountCents: number; currency: string; createdAt: string; expiresAt: string }[]
> {
  return db
    .select({
      orderId: walletHolds.orderId,
      amountCents: walletHolds.amountCents,
      currency: walletHolds.currency,
      createdAt: walletHolds.createdAt,
      expiresAt: orders.expiresAt,
    })
    .from(walletHolds)
    .innerJoin(orders, eq(orders.id, walletHolds.orderId))
    .where(and(eq(walletHolds.userId, userId), eq(walletHolds.status, "PENDING")));
}
