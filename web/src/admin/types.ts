// The API's shapes as the admin page reads them (see openapi/openapi.json: AdminProduct, Operator, Device,
// RegisteredDevice, DeviceEnrollmentCode, PaymentReview, AuditVerification, DeadLetter). Only the fields
// the page uses.

export interface ProductFunction {
  function: string;
  uses: number;
}

export interface AdminProduct {
  id: string;
  name: string;
  description: string;
  price_cents: number;
  currency: string;
  functions: ProductFunction[];
  sellable: number;
  reserved: number;
  sold: number;
  available: number;
  active: boolean;
  /** A Durable Objects location hint: the venue's region, where its tickets' objects are created. */
  venue_region: string | null;
}

export const OPERATOR_ROLES = ["gate", "pos", "analyst", "supervisor", "admin"] as const;
export type OperatorRole = (typeof OPERATOR_ROLES)[number];

export interface Operator {
  operator_id: string;
  username: string;
  roles: OperatorRole[];
  event_ids: string[];
  active: boolean;
}

export interface Device {
  device_id: string;
  kind: "gate" | "pos";
  location_id: string | null;
  event_id: string | null;
  functions: string[] | null;
  active: boolean;
  enrolled_at: string | null;
  key_alg: string | null;
}

export interface EnrollmentCode {
  device_id: string;
  enrollment_code: string;
  enrollment_expires_at: string;
}

export interface PaymentReview {
  payment_id: string;
  reference: string;
  reason: "amount_mismatch" | "refund_owed";
  amount_cents: number;
  currency: string;
  expected_amount_cents: number | null;
  expected_currency: string | null;
  received_at: string;
  refund_status: "requested" | "issued" | "failed" | "recorded" | null;
}

export interface PaymentRefund {
  payment_id: string;
  provider: "standard" | "stripe";
  status: "requested" | "issued" | "failed" | "recorded";
  provider_refund_id: string | null;
  failure: string | null;
}

export type AuditVerification =
  | { ok: true; entries: number }
  | {
      ok: false;
      entries_checked: number;
      broken_at: { seq: number; id: string; reason: string };
    };

export interface DeadLetter {
  id: string;
  queue: string;
  body: unknown;
  error: string;
  attempts: number | null;
  received_at: string;
  replayed_at: string | null;
}

/** Every admin list: a page of rows and where the next one starts. */
export interface Page<T> {
  items: T[];
  next: string | null;
}
