import { and, count, desc, eq, gte, inArray, sql } from "drizzle-orm";
import { receiptIdForTransaction } from "../domain/ledger";
import { type Db, type Statement, selectJsonRows } from "./client";
import type { LedgerCursor } from "./ledger";
import { orderItems, orders, products, receipts, walletLedger, walletReceipts } from "./schema";

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

// A till's own sales: the deduction receipts written for its device and the refunds of those deductions.
// Read from D1, so they trail the till by the wallet object's flush window and the queue's batch (a few
// seconds): the receipts are written by the consumer of the deductions' events.

/** One line of a till's sales: a deduction made at the device, or a refund of one. */
export interface TillSale {
  type: "DEDUCT" | "REFUND";
  transactionId: string;
  /** The deduction's receipt; for a refund, the receipt of the deduction it reverses. */
  receiptId: string;
  reversalOf: string | null;
  amountCents: number;
  reference: string | null;
  createdAt: string;
}

export interface TillSalesTotals {
  sales: number;
  salesCents: number;
  refunds: number;
  refundsCents: number;
}

export interface TillSalesQuery {
  deviceId: string;
  eventId: string;
  /** Inclusive: deductions and refunds from this time on. */
  since: string;
  /** Refunds count only for deductions from this time on (the refund window before `since`). */
  refundableSince: string;
  before?: LedgerCursor;
  limit: number;
}

/**
 * One page of a till's sales, newest first, and the totals of the whole window (not just the page), read
 * in one batch so that both describe the same moment. Each source is one index range (the device's
 * receipts by time; refunds by the deduction they reverse) and gives at most `limit + 1` rows after the
 * cursor; the page is the newest `limit` of both, so the keyset cursor works across the two.
 */
export async function listTillSales(
  db: Db,
  query: TillSalesQuery,
): Promise<{ sales: TillSale[]; next: LedgerCursor | null; totals: TillSalesTotals }> {
  const statements = tillSalesStatements(db, query);
  const [deductions, refunds, deductionTotals, refundTotals] = await db.batch([
    statements.deductions,
    statements.refunds,
    statements.deductionTotals,
    statements.refundTotals,
  ]);
  const merged: TillSale[] = [
    ...deductions.map(
      (row): TillSale => ({
        type: "DEDUCT",
        transactionId: row.transactionId,
        receiptId: row.id,
        reversalOf: null,
        amountCents: row.amountCents,
        reference: row.reference,
        createdAt: row.createdAt,
      }),
    ),
    ...refunds.map(
      (row): TillSale => ({
        type: "REFUND",
        transactionId: row.id,
        receiptId: receiptIdForTransaction(row.reversalOf ?? ""),
        reversalOf: row.reversalOf,
        amountCents: row.amountCents,
        reference: row.reference,
        createdAt: row.createdAt,
      }),
    ),
  ].sort((a, b) => compareNewestFirst(a, b));
  const page = merged.slice(0, query.limit);
  const last = page.at(-1);
  return {
    sales: page,
    next: merged.length > query.limit && last ? { createdAt: last.createdAt, id: last.transactionId } : null,
    totals: {
      sales: deductionTotals[0]?.count ?? 0,
      salesCents: deductionTotals[0]?.cents ?? 0,
      refunds: refundTotals[0]?.count ?? 0,
      refundsCents: refundTotals[0]?.cents ?? 0,
    },
  };
}

/** (created_at, transaction id) descending: the order of both queries above, and so of the cursor. */
function compareNewestFirst(a: TillSale, b: TillSale): number {
  if (a.createdAt !== b.createdAt) return a.createdAt < b.createdAt ? 1 : -1;
  if (a.transactionId === b.transactionId) return 0;
  return a.transactionId < b.transactionId ? 1 : -1;
}

/** The listing's four queries, each one index range (tests read their plans). */
export function tillSalesStatements(db: Db, query: TillSalesQuery) {
  const deductionsOfTill = and(
    eq(walletReceipts.deviceId, query.deviceId),
    eq(walletReceipts.kind, "DEDUCTION"),
    eq(walletReceipts.eventId, query.eventId),
  );
  const tillDeductionIds = db
    .select({ id: walletReceipts.transactionId })
    .from(walletReceipts)
    .where(and(deductionsOfTill, gte(walletReceipts.createdAt, query.refundableSince)));
  const refundsOfTill = and(
    inArray(walletLedger.reversalOf, tillDeductionIds),
    eq(walletLedger.type, "REFUND"),
    gte(walletLedger.createdAt, query.since),
  );
  const before = query.before;
  return {
    deductions: db
      .select()
      .from(walletReceipts)
      .where(
        and(
          deductionsOfTill,
          gte(walletReceipts.createdAt, query.since),
          before
            ? sql`(${walletReceipts.createdAt}, ${walletReceipts.transactionId}) < (${before.createdAt}, ${before.id})`
            : undefined,
        ),
      )
      .orderBy(desc(walletReceipts.createdAt), desc(walletReceipts.transactionId))
      .limit(query.limit + 1),
    refunds: db
      .select()
      .from(walletLedger)
      .where(
        and(
          refundsOfTill,
          before
            ? sql`(${walletLedger.createdAt}, ${walletLedger.id}) < (${before.createdAt}, ${before.id})`
            : undefined,
        ),
      )
      .orderBy(desc(walletLedger.createdAt), desc(walletLedger.id))
      .limit(query.limit + 1),
    deductionTotals: db
      .select({ count: count(), cents: sql<number>`coalesce(sum(${walletReceipts.amountCents}), 0)` })
      .from(walletReceipts)
      .where(and(deductionsOfTill, gte(walletReceipts.createdAt, query.since))),
    refundTotals: db
      .select({ count: count(), cents: sql<number>`coalesce(sum(${walletLedger.amountCents}), 0)` })
      .from(walletLedger)
      .where(refundsOfTill),
  };
}

// Wallet receipts (top-ups and POS deductions), written by the queue consumer.

export type WalletReceiptRow = typeof walletReceipts.$inferSelect;

export interface NewWalletReceipt {
  transactionId: string;
  userId: string;
  kind: WalletReceiptRow["kind"];
  amountCents: number;
  currency: string;
  reference: string | null;
  eventId: string | null;
  deviceId: string | null;
  createdAt: string;
}

/** Writes the transaction's receipt unless it exists, and returns the stored one. */
export async function writeWalletReceipt(
  db: Db,
  receipt: NewWalletReceipt,
  now: Date,
): Promise<WalletReceiptRow | undefined> {
  const id = receiptIdForTransaction(receipt.transactionId);
  const [, stored] = await db.batch([
    db
      .insert(walletReceipts)
      .values({ id, ...receipt, writtenAt: now.toISOString(), mailedAt: null })
      .onConflictDoNothing(),
    db.select().from(walletReceipts).where(eq(walletReceipts.id, id)),
  ]);
  return stored[0];
}

/**
 * The set form of writeWalletReceipt for a queue batch: every receipt in one statement (one JSON
 * parameter), each written unless its transaction's receipt exists.
 */
export function writeWalletReceiptsStatement(db: Db, receipts: NewWalletReceipt[], now: Date): Statement {
  const rows = receipts.map((receipt) => ({
    id: receiptIdForTransaction(receipt.transactionId),
    ...receipt,
  }));
  return db
    .insert(walletReceipts)
    .select(
      selectJsonRows(rows, [
        "id",
        "transactionId",
        "userId",
        "kind",
        "amountCents",
        "currency",
        "reference",
        "eventId",
        "deviceId",
        "createdAt",
        sql`${now.toISOString()}`,
        // mailed_at, mail_skipped_at: not mailed yet.
        sql`NULL`,
        sql`NULL`,
      ]),
    )
    .onConflictDoNothing();
}

/** Ids travel as one JSON parameter: D1 allows 100 bound parameters per statement, a batch may hold 100. */
const idIn = (ids: string[]) =>
  sql`${walletReceipts.id} IN (SELECT value FROM json_each(${JSON.stringify(ids)}))`;

export async function markWalletReceiptsMailed(db: Db, ids: string[], now: Date): Promise<void> {
  if (ids.length === 0) return;
  await db.update(walletReceipts).set({ mailedAt: now.toISOString() }).where(idIn(ids)).run();
}

export async function markWalletReceiptMailed(db: Db, id: string, now: Date): Promise<void> {
  await db.update(walletReceipts).set({ mailedAt: now.toISOString() }).where(eq(walletReceipts.id, id)).run();
}

/** The wallet's latest POS receipt at one event: all a till may see of the wallet's past. */
export async function lastPosReceipt(
  db: Db,
  userId: string,
  eventId: string,
): Promise<WalletReceiptRow | undefined> {
  const [row] = await db
    .select()
    .from(walletReceipts)
    .where(
      and(
        eq(walletReceipts.userId, userId),
        eq(walletReceipts.eventId, eventId),
        eq(walletReceipts.kind, "DEDUCTION"),
      ),
    )
    .orderBy(desc(walletReceipts.createdAt))
    .limit(1);
  return row;
}
