// The API's shapes as the buyer page reads them (see openapi/openapi.json: Product, Order, OrderPage,
// Ticket, TicketQrSupply, Wallet, WalletTransaction). Only the fields the page uses.

export interface ProductFunction {
  function: string;
  uses: number;
}

export interface Product {
  id: string;
  name: string;
  description: string;
  price_cents: number;
  currency: string;
  functions: ProductFunction[];
  available: number;
}

export type OrderStatus = "PENDING_PAYMENT" | "PAID" | "PAYMENT_FAILED" | "EXPIRED";

export interface OrderLine {
  product_id: string;
  quantity: number;
}

export interface Order {
  order_id: string;
  status: OrderStatus;
  items: (OrderLine & { unit_price_cents?: number })[];
  total_cents: number;
  /** Wallet credit paying part or all of the order: held while it is unpaid, deducted when it is paid. */
  credits_applied_cents: number;
  /** What is left to pay by card. */
  amount_due_cents: number;
  currency: string;
  created_at?: string;
  expires_at: string;
}

export interface OrderPage {
  orders: Order[];
  next_cursor: string | null;
}

export interface Entitlement {
  function: string;
  total_uses: number;
  remaining_uses: number;
}

export interface Ticket {
  code: string;
  product_name: string;
  status: "ACTIVE" | "USED_UP";
  issued_at: string;
  entitlements: Entitlement[];
}

export interface QrToken {
  token: string;
  expires_in: number;
}

/** `POST /tickets/{code}/qr-tokens`: codes for consecutive windows, oldest first. */
export interface QrSupply {
  /** The server's clock when it signed them. */
  issued_at: string;
  tokens: { token: string; not_before: string; expires_at: string }[];
}

export interface Wallet {
  balance_cents: number;
  currency: string;
  updated_at: string | null;
  /** Set aside for unpaid orders. */
  held_cents?: number;
  /** `balance_cents − held_cents`: what can be spent now. */
  available_cents?: number;
}

export interface Transaction {
  id: string;
  type: "PURCHASE" | "DEDUCT" | "REFUND" | "ADJUSTMENT" | string;
  direction?: "credit" | "debit";
  amount_cents: number;
  currency: string;
  reference?: string | null;
  created_at: string;
}
