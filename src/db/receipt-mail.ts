import { and, asc, eq, isNull, sql } from "drizzle-orm";
import { receiptIdForTransaction } from "../domain/ledger";
import { MAX_ITEMS_PER_ORDER, MAX_QUANTITY_PER_ITEM } from "../domain/orders";
import type { Db } from "./client";
import type { WalletReceiptRow } from "./receipts";
import { buyerContacts, receipts, refundReceipts, tickets, walletReceipts } from "./schema";

// What the queue consumer reads and marks when it mails receipts. Each receipt is marked once: mailed_at
// when the mailer accepted it, mail_skipped_at when its buyer has no known address (no retry would find
// one). Either mark ends its mailing.

export type RefundReceiptRow = typeof refundReceipts.$inferSelect;

/** Every ticket an order can have: the order limits bound the codes a receipt lists. */
const MAX_TICKETS_PER_ORDER = MAX_ITEMS_PER_ORDER * MAX_QUANTITY_PER_ITEM;

export interface OrderReceiptDetails {
  email: string | undefined;
  /** The order's ticket codes, in issue order. */
  tickets: { code: string; productId: string }[];
}

/** The buyer's address and the order's ticket codes, in one batch. */
export async function orderReceiptDetails(
  db: Db,
  userId: string,
  orderId: string,
): Promise<OrderReceiptDetails> {
  const [contacts, codes] = await db.batch([
    db.select({ email: buyerContacts.email }).from(buyerContacts).where(eq(buyerContacts.userId, userId)),
    db
      .select({ code: tickets.code, productId: tickets.productId })
      .from(tickets)
      .where(eq(tickets.orderId, orderId))
      .orderBy(asc(tickets.seq))
      .limit(MAX_TICKETS_PER_ORDER),
  ]);
  return { email: contacts[0]?.email, tickets: codes };
}

export async function markReceiptMailSkipped(db: Db, id: string, now: Date): Promise<void> {
  await db.update(receipts).set({ mailSkippedAt: now.toISOString() }).where(eq(receipts.id, id)).run();
}

const walletReceiptIdIn = (ids: string[]) =>
  sql`${walletReceipts.id} IN (SELECT value FROM json_each(${JSON.stringify(ids)}))`;

/** Which of these wallet receipts are still to be mailed, each with its buyer's address if known. */
export function walletReceiptsToMail(
  db: Db,
  ids: string[],
): Promise<{ receipt: WalletReceiptRow; email: string | null }[]> {
  return db
    .select({ receipt: walletReceipts, email: buyerContacts.email })
    .from(walletReceipts)
    .leftJoin(buyerContacts, eq(buyerContacts.userId, walletReceipts.userId))
    .where(
      and(walletReceiptIdIn(ids), isNull(walletReceipts.mailedAt), isNull(walletReceipts.mailSkippedAt)),
    );
}

export async function markWalletReceiptsMailSkipped(db: Db, ids: string[], now: Date): Promise<void> {
  if (ids.length === 0) return;
  await db
    .update(walletReceipts)
    .set({ mailSkippedAt: now.toISOString() })
    .where(walletReceiptIdIn(ids))
    .run();
}

export interface NewRefundReceipt {
  transactionId: string;
  userId: string;
  reversalOf: string;
  amountCents: number;
  currency: string;
  reference: string | null;
  eventId: string | null;
  createdAt: string;
}

/**
 * Writes the refund's receipt unless it exists, and returns the stored one with the receipt of the sale
 * it reverses (undefined if that one is not written yet: its event may still be on its way).
 */
export async function writeRefundReceipt(
  db: Db,
  refund: NewRefundReceipt,
  now: Date,
): Promise<{ receipt: RefundReceiptRow | undefined; sale: WalletReceiptRow | undefined }> {
  const id = receiptIdForTransaction(refund.transactionId);
  const [, stored, sales] = await db.batch([
    db
      .insert(refundReceipts)
      .values({ id, ...refund, writtenAt: now.toISOString() })
      .onConflictDoNothing(),
    db.select().from(refundReceipts).where(eq(refundReceipts.id, id)),
    db.select().from(walletReceipts).where(eq(walletReceipts.transactionId, refund.reversalOf)),
  ]);
  return { receipt: stored[0], sale: sales[0] };
}

export async function markRefundReceipt(
  db: Db,
  id: string,
  outcome: "mailed" | "skipped",
  now: Date,
): Promise<void> {
  const at = now.toISOString();
  await db
    .update(refundReceipts)
    .set(outcome === "mailed" ? { mailedAt: at } : { mailSkippedAt: at })
    .where(eq(refundReceipts.id, id))
    .run();
}

export async function markWalletReceiptMailSkipped(db: Db, id: string, now: Date): Promise<void> {
  await markWalletReceiptsMailSkipped(db, [id], now);
}
