import type { LedgerCursor } from "../db/ledger";
import { listTillSales, type TillSale } from "../db/receipts";
import type { PosContext, PosSession } from "./pos-session";

/** A till's sales as the API shows them: no user id, no wallet reference, nothing of any wallet's past. */
export interface TillSalesView {
  session_id: string;
  device_id: string;
  event_id: string;
  from: string;
  as_of: string;
  currency: string;
  totals: {
    sales: number;
    sales_cents: number;
    refunds: number;
    refunds_cents: number;
    net_cents: number;
  };
  entries: {
    type: TillSale["type"];
    transaction_id: string;
    receipt_id: string;
    reversal_of: string | null;
    amount_cents: number;
    reference: string | null;
    created_at: string;
  }[];
  next: LedgerCursor | null;
}

/**
 * The sales of the session's device since the session opened (the shift): its deductions, and the
 * refunds made since then of its deductions (wherever the refund was made: a supervisor's refund of this
 * till's sale still comes off this till's takings). Only the caller's own open POS session gets here.
 */
export async function listSessionSales(
  context: PosContext,
  session: PosSession,
  page: { before?: LedgerCursor; limit: number },
): Promise<TillSalesView> {
  const openedMs = Date.parse(session.openedAt);
  const { sales, next, totals } = await listTillSales(context.db, {
    deviceId: session.deviceId,
    eventId: session.eventId,
    since: session.openedAt,
    // Older deductions can no longer be refunded at a till, so their refunds cannot be in this shift.
    refundableSince: new Date(openedMs - context.config.refundWindowSeconds * 1000).toISOString(),
    before: page.before,
    limit: page.limit,
  });
  return {
    session_id: session.sessionId,
    device_id: session.deviceId,
    event_id: session.eventId,
    from: session.openedAt,
    as_of: context.now.toISOString(),
    currency: context.config.currency,
    totals: {
      sales: totals.sales,
      sales_cents: totals.salesCents,
      refunds: totals.refunds,
      refunds_cents: totals.refundsCents,
      net_cents: totals.salesCents - totals.refundsCents,
    },
    entries: sales.map((sale) => ({
      type: sale.type,
      transaction_id: sale.transactionId,
      receipt_id: sale.receiptId,
      reversal_of: sale.reversalOf,
      amount_cents: sale.amountCents,
      reference: sale.reference,
      created_at: sale.createdAt,
    })),
    next,
  };
}
