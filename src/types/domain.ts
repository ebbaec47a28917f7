import type { DoLocationHint } from "../domain/placement";
// The domain types the API speaks. Route schemas (src/http/schemas.ts) describe the same shapes for
// OpenAPI; these are what domain code and stores pass around.

/** `supervisor` approves refunds above the limit and annuls scans outside the window; it implies no other role. */
export const OPERATOR_ROLES = ["gate", "pos", "analyst", "supervisor", "admin"] as const;
export type OperatorRole = (typeof OPERATOR_ROLES)[number];
export const isOperatorRole = (value: unknown): value is OperatorRole =>
  typeof value === "string" && (OPERATOR_ROLES as readonly string[]).includes(value);

/** A staff member as admins see them (never the password). */
export interface Operator {
  operator_id: string;
  username: string;
  roles: OperatorRole[];
  event_ids: string[];
  active: boolean;
  created_at: string;
  updated_at: string;
}

export const ORDER_STATUSES = ["PENDING_PAYMENT", "PAID", "PAYMENT_FAILED", "EXPIRED"] as const;
export type OrderStatus = (typeof ORDER_STATUSES)[number];

/** One entitlement a product grants per ticket: e.g. `{ function: "bus", uses: 10 }`. */
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

export interface AdminProduct extends Product {
  sellable: number;
  reserved: number;
  sold: number;
  active: boolean;
  created_at: string;
  updated_at: string;
  /** Where its tickets' objects are created (a Durable Objects location hint); null: near the first caller. */
  venue_region: DoLocationHint | null;
}

export interface OrderItem {
  product_id: string;
  quantity: number;
  unit_price_cents: number;
}

export interface Order {
  order_id: string;
  status: OrderStatus;
  items: OrderItem[];
  total_cents: number;
  credits_applied_cents: number;
  amount_due_cents: number;
  currency: string;
  created_at: string;
  expires_at: string;
}

export const DEVICE_KINDS = ["gate", "pos"] as const;
export type DeviceKind = (typeof DEVICE_KINDS)[number];

/** A registered gate scanner or POS terminal. `functions: null` lets a gate validate every function. */
export interface Device {
  device_id: string;
  kind: DeviceKind;
  location_id: string | null;
  event_id: string | null;
  functions: string[] | null;
  active: boolean;
  /** When the device last enrolled its key; `null` until it has (it cannot open sessions before). */
  enrolled_at: string | null;
  /** The enrolled key's algorithm, `null` until enrolled. */
  key_alg: "ES256" | "EdDSA" | null;
  created_at: string;
  updated_at: string;
}

/** A one-time code that lets a device enroll its key; only its hash is stored. */
export interface DeviceEnrollmentCode {
  device_id: string;
  enrollment_code: string;
  enrollment_expires_at: string;
}

/** An operator working a device: scans and POS calls name the session they run under. */
export interface ValidatorSession {
  session_id: string;
  operator_id: string;
  device_id: string;
  kind: DeviceKind;
  location_id: string | null;
  event_id: string | null;
  opened_at: string;
  expires_at: string;
  closed_at: string | null;
}

/**
 * One entry of the append-only audit log. `hash` is SHA-256 (hex) over the canonical serialization of
 * (seq, id, ts, actor, action, target, details, prev_hash); `prev_hash` is the previous entry's hash.
 */
export interface AuditEntry {
  seq: number;
  id: string;
  ts: string;
  /** An operator id, or the submitted username for a failed login. */
  actor: string;
  action: string;
  target: string | null;
  details: Record<string, unknown>;
  prev_hash: string;
  hash: string;
}

export const TICKET_STATUSES = ["ACTIVE", "USED_UP"] as const;
/** Derived from the entitlements: a ticket is USED_UP when no function has a use left. */
export type TicketStatus = (typeof TICKET_STATUSES)[number];

/** What one ticket may still open: `remaining_uses` of `total_uses` for one function. */
export interface Entitlement {
  function: string;
  total_uses: number;
  remaining_uses: number;
}

export interface Ticket {
  code: string;
  order_id: string;
  product_id: string;
  product_name: string;
  status: TicketStatus;
  issued_at: string;
  entitlements: Entitlement[];
}

export const PAYMENT_STATUSES = ["SUCCESS", "FAILED"] as const;
export type PaymentStatus = (typeof PAYMENT_STATUSES)[number];

/** A payment gateway's event, as signed in the webhook body. */
export interface PaymentEvent {
  payment_id: string;
  reference: string;
  status: PaymentStatus;
  amount_cents: number;
  currency: string;
}

export const WEBHOOK_OUTCOMES = ["processed", "duplicate", "ignored"] as const;
export type WebhookOutcome = (typeof WEBHOOK_OUTCOMES)[number];

export const LEDGER_TYPES = ["PURCHASE", "DEDUCT", "REFUND", "ADJUSTMENT"] as const;
export type LedgerType = (typeof LEDGER_TYPES)[number];

/** Which way a ledger row moves the balance. PURCHASE and REFUND always credit, DEDUCT always debits. */
export const LEDGER_DIRECTIONS = ["credit", "debit"] as const;
export type LedgerDirection = (typeof LEDGER_DIRECTIONS)[number];

/** One append-only row of the credits ledger. `amount_cents` is always positive; `direction` gives the sign. */
export interface WalletTransaction {
  id: string;
  user_id: string;
  type: LedgerType;
  direction: LedgerDirection;
  amount_cents: number;
  currency: string;
  reference: string | null;
  reversal_of: string | null;
  event_id: string | null;
  /** What made the row exactly once (unique per wallet): see ledgerKeys. */
  idempotency_key: string;
  created_at: string;
  created_by: string;
}

/** A wallet as its owner sees it: `available_cents = balance_cents − held_cents`. */
export interface WalletSummary {
  balance_cents: number;
  held_cents: number;
  available_cents: number;
  currency: string;
  /** null for a wallet that has never moved. */
  updated_at: string | null;
}

export const TOPUP_STATUSES = ["PENDING_PAYMENT", "PAID", "FAILED"] as const;
export type TopupStatus = (typeof TOPUP_STATUSES)[number];

export interface Topup {
  topup_id: string;
  status: TopupStatus;
  amount_cents: number;
  currency: string;
  created_at: string;
}

/** Credit set aside for a pending order paid partly by card. */
export const HOLD_STATUSES = ["PENDING", "POSTED", "VOIDED"] as const;
export type HoldStatus = (typeof HOLD_STATUSES)[number];

/** The receipt a POS deduction produces, as the till shows it. */
export interface PosReceipt {
  id: string;
  event_id: string;
  device_id: string;
  created_at: string;
}
