// What the till reads from the API (see openapi/openapi.json: PosWallet, PosDeduction, PosRefund,
// PosTillSales). Only the fields the page uses.

export interface WalletView {
  wallet_ref: string;
  balance_cents: number;
  currency: string;
  last_receipt?: { id: string; created_at: string } | null;
}

export interface Deduction {
  transaction_id: string;
  amount_cents: number;
  balance_cents: number;
  currency: string;
  receipt: { id: string; event_id: string; device_id: string; created_at: string };
}

export interface Refund {
  id: string;
  amount_cents: number;
  reversal_of: string | null;
  created_at: string;
  balance_cents: number;
}

export interface TillSale {
  type: "DEDUCT" | "REFUND";
  transaction_id: string;
  receipt_id: string;
  reversal_of: string | null;
  amount_cents: number;
  reference: string | null;
  created_at: string;
}

export interface TillSales {
  session_id: string;
  from: string;
  as_of: string;
  currency: string;
  totals: { sales: number; sales_cents: number; refunds: number; refunds_cents: number; net_cents: number };
  entries: TillSale[];
  next_cursor: string | null;
}
