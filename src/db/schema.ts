import { sql } from "drizzle-orm";
import { check, index, integer, primaryKey, sqliteTable, text, unique } from "drizzle-orm/sqlite-core";
import type { DevicePublicJwk } from "../auth/device-proof";
import { DO_LOCATION_HINTS } from "../domain/placement";
import { MAIL_PROVIDERS } from "../mail/mailer";
import { PAYMENT_PROVIDERS } from "../payments/provider";
import type { ProductFunction } from "../types/domain";

// Mirrors migrations/*.sql, which are the source of truth for the database (they carry the CHECKs
// and partial indexes). Keep both in step in the same commit.

export const products = sqliteTable(
  "products",
  {
    id: text("id").primaryKey(),
    name: text("name").notNull(),
    description: text("description").notNull().default(""),
    priceCents: integer("price_cents").notNull(),
    currency: text("currency").notNull(),
    functions: text("functions", { mode: "json" }).$type<ProductFunction[]>().notNull(),
    sellable: integer("sellable").notNull(),
    reserved: integer("reserved").notNull().default(0),
    sold: integer("sold").notNull().default(0),
    active: integer("active", { mode: "boolean" }).notNull().default(true),
    createdAt: text("created_at").notNull(),
    updatedAt: text("updated_at").notNull(),
    /** migrations/0016: the venue's region, where its tickets' objects are created. */
    venueRegion: text("venue_region", { enum: DO_LOCATION_HINTS }),
  },
  (t) => [check("inventory_within_sellable", sql`${t.reserved} + ${t.sold} <= ${t.sellable}`)],
);

export const orders = sqliteTable(
  "orders",
  {
    id: text("id").primaryKey(),
    userId: text("user_id").notNull(),
    status: text("status", { enum: ["PENDING_PAYMENT", "PAID", "PAYMENT_FAILED", "EXPIRED"] }).notNull(),
    totalCents: integer("total_cents").notNull(),
    creditsAppliedCents: integer("credits_applied_cents").notNull().default(0),
    amountDueCents: integer("amount_due_cents").notNull(),
    currency: text("currency").notNull(),
    createdAt: text("created_at").notNull(),
    expiresAt: text("expires_at").notNull(),
    updatedAt: text("updated_at").notNull(),
    idempotencyKey: text("idempotency_key").notNull(),
  },
  (t) => [index("orders_by_user").on(t.userId, t.createdAt), unique().on(t.userId, t.idempotencyKey)],
);

export const orderItems = sqliteTable(
  "order_items",
  {
    orderId: text("order_id").notNull(),
    productId: text("product_id").notNull(),
    quantity: integer("quantity").notNull(),
    unitPriceCents: integer("unit_price_cents").notNull(),
  },
  (t) => [primaryKey({ columns: [t.orderId, t.productId] })],
);

export const orderSettlements = sqliteTable("order_settlements", {
  orderId: text("order_id").primaryKey(),
  outcome: text("outcome", { enum: ["PAID", "PAYMENT_FAILED", "EXPIRED"] }).notNull(),
  settledAt: text("settled_at").notNull(),
});

/** Units each buyer holds in PENDING_PAYMENT orders; the CHECK caps them (migrations/0008). */
export const buyerPendingUnits = sqliteTable(
  "buyer_pending_units",
  {
    userId: text("user_id").primaryKey(),
    units: integer("units").notNull(),
    /** The cap in force at the buyer's latest order. */
    maxUnits: integer("max_units").notNull(),
    updatedAt: text("updated_at").notNull(),
  },
  (t) => [
    check("pending_units_not_negative", sql`${t.units} >= 0`),
    check("pending_units_within_cap", sql`${t.units} <= ${t.maxUnits}`),
  ],
);

export const idempotencyRecords = sqliteTable(
  "idempotency_records",
  {
    scope: text("scope").notNull(),
    idempotencyKey: text("idempotency_key").notNull(),
    requestHash: text("request_hash").notNull(),
    state: text("state", { enum: ["IN_PROGRESS", "DONE"] }).notNull(),
    responseStatus: integer("response_status"),
    responseBody: text("response_body"),
    createdAt: text("created_at").notNull(),
    lockedUntil: text("locked_until").notNull(),
  },
  (t) => [primaryKey({ columns: [t.scope, t.idempotencyKey] })],
);

export const operators = sqliteTable("operators", {
  id: text("id").primaryKey(),
  username: text("username").notNull().unique(),
  passwordHash: text("password_hash").notNull(),
  roles: text("roles", { mode: "json" }).$type<string[]>().notNull(),
  eventIds: text("event_ids", { mode: "json" }).$type<string[]>().notNull(),
  active: integer("active", { mode: "boolean" }).notNull().default(true),
  createdAt: text("created_at").notNull(),
  /** Tokens carry the version they were issued under; deactivation and a password reset bump it. */
  credentialVersion: integer("credential_version").notNull().default(1),
  updatedAt: text("updated_at"),
});

/** One streak of login attempts per (username, client address); see src/db/login-throttle.ts. */
export const loginAttempts = sqliteTable(
  "login_attempts",
  {
    username: text("username").notNull(),
    clientAddress: text("client_address").notNull(),
    attempts: integer("attempts").notNull(),
    refused: integer("refused").notNull().default(0),
    latestAdmitted: integer("latest_admitted", { mode: "boolean" }).notNull(),
    admittedAtMs: integer("admitted_at_ms").notNull(),
    retryAtMs: integer("retry_at_ms").notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.username, t.clientAddress] }),
    index("login_attempts_by_admitted_at").on(t.admittedAtMs),
  ],
);

export const devices = sqliteTable(
  "devices",
  {
    id: text("id").primaryKey(),
    kind: text("kind", { enum: ["gate", "pos"] }).notNull(),
    locationId: text("location_id"),
    eventId: text("event_id"),
    /** Function names a gate may validate; null means every function. */
    functions: text("functions", { mode: "json" }).$type<string[]>(),
    active: integer("active", { mode: "boolean" }).notNull().default(true),
    createdAt: text("created_at").notNull(),
    updatedAt: text("updated_at").notNull(),
    /** The enrolled public key (a public JWK); null until the device enrolls. */
    publicJwk: text("public_jwk", { mode: "json" }).$type<DevicePublicJwk>(),
    keyAlg: text("key_alg", { enum: ["ES256", "EdDSA"] }),
    enrolledAt: text("enrolled_at"),
  },
  (t) => [check("pos_device_has_event", sql`${t.kind} <> 'pos' OR ${t.eventId} IS NOT NULL`)],
);

/** One-time enrollment codes, stored as their SHA-256 only. */
export const deviceEnrollments = sqliteTable("device_enrollments", {
  codeHash: text("code_hash").primaryKey(),
  deviceId: text("device_id")
    .notNull()
    .references(() => devices.id),
  createdAt: text("created_at").notNull(),
  expiresAt: text("expires_at").notNull(),
  usedAt: text("used_at"),
});

/** Spent device-proof jtis, kept until the proof would have expired anyway. */
export const deviceProofs = sqliteTable(
  "device_proofs",
  {
    deviceId: text("device_id").notNull(),
    jti: text("jti").notNull(),
    expiresAt: text("expires_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.deviceId, t.jti] })],
);

export const validatorSessions = sqliteTable(
  "validator_sessions",
  {
    id: text("id").primaryKey(),
    operatorId: text("operator_id")
      .notNull()
      .references(() => operators.id),
    deviceId: text("device_id")
      .notNull()
      .references(() => devices.id),
    kind: text("kind", { enum: ["gate", "pos"] }).notNull(),
    locationId: text("location_id"),
    eventId: text("event_id"),
    openedAt: text("opened_at").notNull(),
    expiresAt: text("expires_at").notNull(),
    closedAt: text("closed_at"),
    /** The device's `enrolled_at` when the session's proof was checked (migrations/0012's trigger). */
    deviceEnrolledAt: text("device_enrolled_at"),
  },
  (t) => [
    index("validator_sessions_by_operator").on(t.operatorId, t.openedAt),
    index("validator_sessions_by_device").on(t.deviceId, t.openedAt),
  ],
);

export const auditLog = sqliteTable(
  "audit_log",
  {
    seq: integer("seq").primaryKey(),
    id: text("id").notNull().unique(),
    ts: text("ts").notNull(),
    actor: text("actor").notNull(),
    action: text("action").notNull(),
    target: text("target"),
    // Plain text, not json mode: the hash covers the stored bytes, so they are read back untouched.
    details: text("details").notNull(),
    prevHash: text("prev_hash").notNull().unique(),
    hash: text("hash").notNull().unique(),
  },
  (t) => [
    index("audit_log_by_ts").on(t.ts),
    // migrations/0009: GET /admin/audit filtered by action or actor, in (ts, seq) keyset order.
    index("audit_log_by_action").on(t.action, t.ts, t.seq),
    index("audit_log_by_actor").on(t.actor, t.ts, t.seq),
  ],
);

export const payments = sqliteTable(
  "payments",
  {
    paymentId: text("payment_id").primaryKey(),
    webhookId: text("webhook_id").notNull().unique(),
    reference: text("reference").notNull(),
    status: text("status", { enum: ["SUCCESS", "FAILED"] }).notNull(),
    amountCents: integer("amount_cents").notNull(),
    currency: text("currency").notNull(),
    outcome: text("outcome", { enum: ["processed", "ignored"] }).notNull(),
    needsRefund: integer("needs_refund", { mode: "boolean" }).notNull(),
    receivedAt: text("received_at").notNull(),
    /** migrations/0014: who took it, so that a refund goes back through the same provider. */
    provider: text("provider", { enum: PAYMENT_PROVIDERS }).notNull().default("standard"),
  },
  (t) => [index("payments_by_reference").on(t.reference)],
);

/** migrations/0014: the hosted checkout session of an order or top-up, one per reference. */
export const checkoutSessions = sqliteTable("checkout_sessions", {
  reference: text("reference").primaryKey(),
  provider: text("provider", { enum: ["stripe"] }).notNull(),
  sessionId: text("session_id").notNull().unique(),
  url: text("url").notNull(),
  amountCents: integer("amount_cents").notNull(),
  currency: text("currency").notNull(),
  expiresAt: text("expires_at").notNull(),
  createdAt: text("created_at").notNull(),
  closedAt: text("closed_at"),
});

/** migrations/0014: the current attempt at opening a reference's page (the provider key's suffix). */
export const checkoutAttempts = sqliteTable("checkout_attempts", {
  reference: text("reference").primaryKey(),
  attempt: integer("attempt").notNull(),
});

/** migrations/0014: the refund of a payment owed one, at most one per payment. */
export const paymentRefunds = sqliteTable("payment_refunds", {
  paymentId: text("payment_id").primaryKey(),
  provider: text("provider", { enum: PAYMENT_PROVIDERS }).notNull(),
  status: text("status", { enum: ["requested", "issued", "failed", "recorded"] }).notNull(),
  amountCents: integer("amount_cents").notNull(),
  currency: text("currency").notNull(),
  providerRefundId: text("provider_refund_id"),
  failure: text("failure"),
  attempt: integer("attempt").notNull().default(1),
  requestedBy: text("requested_by").notNull(),
  note: text("note"),
  requestedAt: text("requested_at").notNull(),
  completedAt: text("completed_at"),
});

export const paymentReviews = sqliteTable("payment_reviews", {
  paymentId: text("payment_id").primaryKey(),
  webhookId: text("webhook_id").notNull(),
  reference: text("reference").notNull(),
  reason: text("reason", { enum: ["amount_mismatch"] }).notNull(),
  amountCents: integer("amount_cents").notNull(),
  currency: text("currency").notNull(),
  expectedAmountCents: integer("expected_amount_cents").notNull(),
  expectedCurrency: text("expected_currency").notNull(),
  receivedAt: text("received_at").notNull(),
});

export const tickets = sqliteTable(
  "tickets",
  {
    code: text("code").primaryKey(),
    orderId: text("order_id").notNull(),
    seq: integer("seq").notNull(),
    productId: text("product_id").notNull(),
    userId: text("user_id").notNull(),
    issuedAt: text("issued_at").notNull(),
  },
  (t) => [unique().on(t.orderId, t.seq), index("tickets_by_user").on(t.userId, t.issuedAt)],
);

export const ticketEntitlements = sqliteTable(
  "ticket_entitlements",
  {
    ticketCode: text("ticket_code").notNull(),
    function: text("function").notNull(),
    totalUses: integer("total_uses").notNull(),
    remainingUses: integer("remaining_uses").notNull(),
    /** The ticket object's change count for this function; the read model takes only newer states. */
    usesVersion: integer("uses_version").notNull().default(0),
    /** When the read model last moved the count (migrations/0013): offline kits send deltas from it. */
    usesChangedAt: text("uses_changed_at"),
  },
  (t) => [
    primaryKey({ columns: [t.ticketCode, t.function] }),
    index("ticket_entitlements_by_remaining_changed").on(t.remainingUses, t.usesChangedAt),
  ],
);

export const outbox = sqliteTable("outbox", {
  id: text("id").primaryKey(),
  payload: text("payload").notNull(),
  createdAt: text("created_at").notNull(),
  sentAt: text("sent_at"),
});

export interface ReceiptLine {
  product_id: string;
  product_name: string;
  quantity: number;
  unit_price_cents: number;
}

export const receipts = sqliteTable("receipts", {
  id: text("id").primaryKey(),
  orderId: text("order_id").notNull().unique(),
  userId: text("user_id").notNull(),
  totalCents: integer("total_cents").notNull(),
  amountPaidCents: integer("amount_paid_cents").notNull(),
  currency: text("currency").notNull(),
  lines: text("lines", { mode: "json" }).$type<ReceiptLine[]>().notNull(),
  paidAt: text("paid_at").notNull(),
  createdAt: text("created_at").notNull(),
  mailedAt: text("mailed_at"),
  /** migrations/0015: set instead of `mailedAt` when the buyer has no known address. */
  mailSkippedAt: text("mail_skipped_at"),
});

export const redemptions = sqliteTable("redemptions", {
  id: text("id").primaryKey(),
  ticketCode: text("ticket_code").notNull(),
  function: text("function").notNull(),
  operatorId: text("operator_id").notNull(),
  sessionId: text("session_id").notNull(),
  deviceId: text("device_id").notNull(),
  locationId: text("location_id"),
  ts: text("ts").notNull(),
  /** Set when the scan was given back; reports count only redemptions without it. */
  annulledAt: text("annulled_at"),
  /** Decided by a gate without the network, uploaded later; `ts` is when the gate let the holder in. */
  offline: integer("offline", { mode: "boolean" }).notNull().default(false),
});

/** Offline scans reconciliation could not simply apply (migrations/0013). */
export const offlineConflicts = sqliteTable(
  "offline_conflicts",
  {
    id: text("id").primaryKey(),
    outcome: text("outcome", { enum: ["conflict", "over_budget", "invalid"] }).notNull(),
    reason: text("reason").notNull(),
    scanId: text("scan_id").notNull(),
    ticketCode: text("ticket_code"),
    function: text("function").notNull(),
    deviceId: text("device_id").notNull(),
    operatorId: text("operator_id").notNull(),
    sessionId: text("session_id").notNull(),
    locationId: text("location_id"),
    scannedAt: text("scanned_at").notNull(),
    recordedAt: text("recorded_at").notNull(),
    overBudget: integer("over_budget", { mode: "boolean" }).notNull().default(false),
    otherRedemptionId: text("other_redemption_id"),
    otherDeviceId: text("other_device_id"),
    otherScannedAt: text("other_scanned_at"),
    otherOffline: integer("other_offline", { mode: "boolean" }),
  },
  (t) => [index("offline_conflicts_by_scanned_at").on(t.scannedAt, t.id)],
);

export const redemptionAnnulments = sqliteTable("redemption_annulments", {
  redemptionId: text("redemption_id").primaryKey(),
  annulledAt: text("annulled_at").notNull(),
  operatorId: text("operator_id").notNull(),
  sessionId: text("session_id").notNull(),
  deviceId: text("device_id").notNull(),
  reason: text("reason"),
});

// The credits wallet (migrations/0005). The balance, refund totals and held amounts are maintained by
// triggers on the ledger and holds, never written from code.

export const walletLedger = sqliteTable(
  "wallet_ledger",
  {
    id: text("id").primaryKey(),
    userId: text("user_id").notNull(),
    type: text("type", { enum: ["PURCHASE", "DEDUCT", "REFUND", "ADJUSTMENT"] }).notNull(),
    direction: text("direction", { enum: ["credit", "debit"] }).notNull(),
    amountCents: integer("amount_cents").notNull(),
    currency: text("currency").notNull(),
    reference: text("reference"),
    idempotencyKey: text("idempotency_key").notNull(),
    reversalOf: text("reversal_of"),
    eventId: text("event_id"),
    createdAt: text("created_at").notNull(),
    createdBy: text("created_by").notNull(),
    /** When the consumer appended the row from the wallet's journal (migrations/0017); null before. */
    projectedAt: text("projected_at"),
  },
  (t) => [
    unique().on(t.userId, t.idempotencyKey),
    index("wallet_ledger_by_user").on(t.userId, t.createdAt, t.id),
    index("wallet_ledger_by_time").on(t.createdAt, t.id),
    // migrations/0009: the refunds of a till's deductions (GET /pos/sessions/{id}/sales).
    index("wallet_ledger_by_reversal").on(t.reversalOf).where(sql`${t.reversalOf} IS NOT NULL`),
    // migrations/0017: the copy's lag behind the wallets' journals.
    index("wallet_ledger_by_projection").on(t.projectedAt).where(sql`${t.projectedAt} IS NOT NULL`),
  ],
);

export const walletBalances = sqliteTable(
  "wallet_balances",
  {
    userId: text("user_id").primaryKey(),
    balanceCents: integer("balance_cents").notNull().default(0),
    heldCents: integer("held_cents").notNull().default(0),
    currency: text("currency").notNull(),
    updatedAt: text("updated_at").notNull(),
  },
  (t) => [
    check("wallet_balance_not_negative", sql`${t.balanceCents} >= 0`),
    check("wallet_holds_within_balance", sql`${t.heldCents} >= 0 AND ${t.heldCents} <= ${t.balanceCents}`),
  ],
);

export const walletRefundTotals = sqliteTable(
  "wallet_refund_totals",
  {
    deductId: text("deduct_id").primaryKey(),
    originalCents: integer("original_cents").notNull(),
    refundedCents: integer("refunded_cents").notNull().default(0),
  },
  (t) => [check("wallet_refund_within_original", sql`${t.refundedCents} <= ${t.originalCents}`)],
);

export const walletHolds = sqliteTable("wallet_holds", {
  id: text("id").primaryKey(),
  userId: text("user_id").notNull(),
  orderId: text("order_id").notNull().unique(),
  amountCents: integer("amount_cents").notNull(),
  currency: text("currency").notNull(),
  status: text("status", { enum: ["PENDING", "POSTED", "VOIDED"] }).notNull(),
  createdAt: text("created_at").notNull(),
  resolvedAt: text("resolved_at"),
});

export const walletTopups = sqliteTable(
  "wallet_topups",
  {
    id: text("id").primaryKey(),
    userId: text("user_id").notNull(),
    amountCents: integer("amount_cents").notNull(),
    currency: text("currency").notNull(),
    status: text("status", { enum: ["PENDING_PAYMENT", "PAID", "FAILED"] }).notNull(),
    idempotencyKey: text("idempotency_key").notNull(),
    createdAt: text("created_at").notNull(),
    updatedAt: text("updated_at").notNull(),
  },
  (t) => [unique().on(t.userId, t.idempotencyKey)],
);

export const walletReceipts = sqliteTable(
  "wallet_receipts",
  {
    id: text("id").primaryKey(),
    transactionId: text("transaction_id").notNull().unique(),
    userId: text("user_id").notNull(),
    kind: text("kind", { enum: ["TOPUP", "DEDUCTION"] }).notNull(),
    amountCents: integer("amount_cents").notNull(),
    currency: text("currency").notNull(),
    reference: text("reference"),
    eventId: text("event_id"),
    deviceId: text("device_id"),
    createdAt: text("created_at").notNull(),
    writtenAt: text("written_at").notNull(),
    mailedAt: text("mailed_at"),
    /** migrations/0015: set instead of `mailedAt` when the buyer has no known address. */
    mailSkippedAt: text("mail_skipped_at"),
  },
  (t) => [
    index("wallet_receipts_by_user_event").on(t.userId, t.eventId, t.createdAt),
    // migrations/0009: a till's sales since its session opened.
    index("wallet_receipts_by_device")
      .on(t.deviceId, t.createdAt, t.transactionId)
      .where(sql`${t.deviceId} IS NOT NULL`),
  ],
);

/** migrations/0011: events that exhausted their retries, as the dead-letter consumer stored them. */
export const deadLetters = sqliteTable("dead_letters", {
  seq: integer("seq").primaryKey({ autoIncrement: true }),
  id: text("id").notNull().unique(),
  queue: text("queue").notNull(),
  body: text("body").notNull(),
  error: text("error").notNull(),
  attempts: integer("attempts"),
  sentAt: text("sent_at"),
  receivedAt: text("received_at").notNull(),
  replayedAt: text("replayed_at"),
});

/** migrations/0011: the main consumer's last failure per message, read when the message is dead-lettered. */
export const eventFailures = sqliteTable(
  "event_failures",
  {
    messageId: text("message_id").primaryKey(),
    queue: text("queue").notNull(),
    bodyHash: text("body_hash").notNull(),
    attempts: integer("attempts").notNull(),
    error: text("error").notNull(),
    failedAt: text("failed_at").notNull(),
  },
  (t) => [
    index("event_failures_by_body_hash").on(t.bodyHash),
    index("event_failures_by_failed_at").on(t.failedAt),
  ],
);

/** migrations/0015: the buyer's address as their identity provider last gave it. */
export const buyerContacts = sqliteTable("buyer_contacts", {
  userId: text("user_id").primaryKey(),
  email: text("email").notNull(),
  updatedAt: text("updated_at").notNull(),
});

/** migrations/0015: every email a mailer handed over, keyed by the receipt's id. */
export const emailMessages = sqliteTable(
  "email_messages",
  {
    id: text("id").primaryKey(),
    recipient: text("recipient").notNull(),
    subject: text("subject").notNull(),
    text: text("text").notNull(),
    html: text("html").notNull(),
    provider: text("provider", { enum: MAIL_PROVIDERS }).notNull(),
    providerMessageId: text("provider_message_id"),
    sentAt: text("sent_at").notNull(),
  },
  (t) => [index("email_messages_by_sent_at").on(t.sentAt)],
);

/** migrations/0015: receipts of POS refunds (kept apart from wallet_receipts, whose kind CHECK is fixed). */
export const refundReceipts = sqliteTable("refund_receipts", {
  id: text("id").primaryKey(),
  transactionId: text("transaction_id").notNull().unique(),
  userId: text("user_id").notNull(),
  reversalOf: text("reversal_of").notNull(),
  amountCents: integer("amount_cents").notNull(),
  currency: text("currency").notNull(),
  reference: text("reference"),
  eventId: text("event_id"),
  createdAt: text("created_at").notNull(),
  writtenAt: text("written_at").notNull(),
  mailedAt: text("mailed_at"),
  mailSkippedAt: text("mail_skipped_at"),
});
