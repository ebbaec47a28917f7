import { z } from "zod";

/**
 * Every message on the EVENTS queue. Delivery is at-least-once and unordered: each kind carries the
 * deterministic id its consumer writes under, so a redelivery is a no-op.
 */
const RedemptionRecordedSchema = z.object({
  type: z.literal("redemption.recorded"),
  redemption_id: z.string(),
  ticket_code: z.string(),
  function: z.string(),
  /** Uses of `function` left right after this scan: lets the read model converge in any delivery order. */
  remaining_uses: z.number().int().min(0),
  /**
   * The object's count of changes to this function's uses (scans and annulments), so the read model takes
   * the newest state in any delivery order. Absent from events written before annulments existed.
   */
  uses_version: z.number().int().min(0).optional(),
  operator_id: z.string(),
  session_id: z.string(),
  device_id: z.string(),
  location_id: z.string().nullable(),
  /** When the holder went in: for an offline scan, the time the gate gives (`scanned_at`). */
  ts: z.string(),
  /** Decided by a gate without the network and reconciled later. Absent means online. */
  offline: z.boolean().optional(),
});

/**
 * An offline scan reconciliation flagged: an accept that found no use left (`conflict`, with the
 * redemption that took the last use as `other`), an accept applied although its device was over its
 * budget (`over_budget`), or a forged token or device signature (`invalid`). Keyed by `id`, so a
 * redelivery records it once.
 */
const OfflineScanFlaggedSchema = z.object({
  type: z.literal("offline.flagged"),
  id: z.string(),
  outcome: z.enum(["conflict", "over_budget", "invalid"]),
  reason: z.string(),
  scan_id: z.string(),
  ticket_code: z.string().nullable(),
  function: z.string(),
  device_id: z.string(),
  operator_id: z.string(),
  session_id: z.string(),
  location_id: z.string().nullable(),
  scanned_at: z.string(),
  recorded_at: z.string(),
  over_budget: z.boolean(),
  other: z
    .object({
      redemption_id: z.string(),
      device_id: z.string(),
      scanned_at: z.string(),
      offline: z.boolean(),
    })
    .nullable(),
});

/** A scan given back: its use is returned; the redemption stays, marked annulled. */
const RedemptionAnnulledSchema = z.object({
  type: z.literal("redemption.annulled"),
  redemption_id: z.string(),
  ticket_code: z.string(),
  function: z.string(),
  remaining_uses: z.number().int().min(0),
  uses_version: z.number().int().min(1),
  operator_id: z.string(),
  session_id: z.string(),
  device_id: z.string(),
  reason: z.string().nullable(),
  ts: z.string(),
});

/** A refused scan: nothing changed, but it is a staff action and goes to the audit log. */
const ScanRejectedSchema = z.object({
  type: z.literal("scan.rejected"),
  scan_id: z.string(),
  code: z.string(),
  ticket_code: z.string().nullable(),
  function: z.string(),
  operator_id: z.string(),
  session_id: z.string(),
  ts: z.string(),
  /** A refusal a gate made offline, uploaded later (`code` is then `refused_offline`). */
  offline: z.boolean().optional(),
});

/**
 * A staff action to record in the audit log. Only the consumer appends to the chain: a request commits
 * this with its effect (commitAudited in src/db/audit.ts, a D1 outbox row), a wallet's object in its own
 * outbox. `id` is fixed when the entry is requested, so a redelivery appends nothing.
 */
const AuditRecordSchema = z.object({
  id: z.string(),
  actor: z.string(),
  action: z.string(),
  target: z.string().nullable(),
  details: z.record(z.string(), z.unknown()),
  ts: z.string(),
});

const AuditRequestedSchema = z.object({ type: z.literal("audit.requested"), audit: AuditRecordSchema });

/**
 * A posted transfer as D1's ledger stores it (the API's transaction). Every wallet event carries the one it
 * announces, and the consumer appends it to `wallet_ledger` (once per id) before anything that refers to
 * it. Events from before the wallet's journal lack it: their rows were written to D1 first.
 */
const LedgerRowSchema = z.object({
  id: z.string(),
  user_id: z.string(),
  type: z.enum(["PURCHASE", "DEDUCT", "REFUND", "ADJUSTMENT"]),
  direction: z.enum(["credit", "debit"]),
  amount_cents: z.number().int().min(1),
  currency: z.string(),
  reference: z.string().nullable(),
  reversal_of: z.string().nullable(),
  event_id: z.string().nullable(),
  idempotency_key: z.string(),
  created_at: z.string(),
  created_by: z.string(),
});

/** A committed wallet transaction that gets a receipt: a top-up's PURCHASE or a POS DEDUCT. */
const WalletTransactionPostedSchema = z.object({
  type: z.enum(["wallet.topped_up", "wallet.deducted"]),
  transaction_id: z.string(),
  user_id: z.string(),
  amount_cents: z.number().int().min(1),
  currency: z.string(),
  reference: z.string().nullable(),
  event_id: z.string().nullable(),
  device_id: z.string().nullable(),
  created_at: z.string(),
  /** The staff action that made it, committed with it and appended to the audit log by the consumer. */
  audit: AuditRecordSchema.optional(),
  ledger: LedgerRowSchema.optional(),
});

/** A committed POS refund (a REFUND row reversing a DEDUCT): it gets a receipt too. */
const WalletRefundedSchema = z.object({
  type: z.literal("wallet.refunded"),
  transaction_id: z.string(),
  user_id: z.string(),
  /** The DEDUCT transaction the refund reverses. */
  reversal_of: z.string(),
  amount_cents: z.number().int().min(1),
  currency: z.string(),
  reference: z.string().nullable(),
  event_id: z.string().nullable(),
  created_at: z.string(),
  audit: AuditRecordSchema.optional(),
  ledger: LedgerRowSchema.optional(),
});

/**
 * A posted transfer without a receipt of its own: an admin's adjustment, or an order's credits (the
 * order's receipt covers them). `legacy_hold`: it posts a credit hold D1 placed before the wallet's
 * journal, which D1 then resolves as POSTED.
 */
const WalletPostedSchema = z.object({
  type: z.literal("wallet.posted"),
  ledger: LedgerRowSchema,
  audit: AuditRecordSchema.optional(),
  legacy_hold: z.boolean().optional(),
});

/** A credit hold D1 placed before the wallet's journal was voided by the wallet's object: D1 resolves it. */
const LegacyHoldVoidedSchema = z.object({
  type: z.literal("wallet.legacy_hold_voided"),
  user_id: z.string(),
  order_id: z.string(),
  voided_at: z.string(),
});

export const EventMessageSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("order.paid"), order_id: z.string(), user_id: z.string(), paid_at: z.string() }),
  RedemptionRecordedSchema,
  RedemptionAnnulledSchema,
  ScanRejectedSchema,
  OfflineScanFlaggedSchema,
  WalletTransactionPostedSchema,
  WalletRefundedSchema,
  WalletPostedSchema,
  LegacyHoldVoidedSchema,
  AuditRequestedSchema,
]);

export type EventMessage = z.infer<typeof EventMessageSchema>;
export type RedemptionRecorded = z.infer<typeof RedemptionRecordedSchema>;
export type RedemptionAnnulled = z.infer<typeof RedemptionAnnulledSchema>;
export type ScanRejected = z.infer<typeof ScanRejectedSchema>;
export type OfflineScanFlagged = z.infer<typeof OfflineScanFlaggedSchema>;
export type WalletTransactionPosted = z.infer<typeof WalletTransactionPostedSchema>;
export type AuditRequest = z.infer<typeof AuditRecordSchema>;
export type AuditRequested = z.infer<typeof AuditRequestedSchema>;
export type WalletRefunded = z.infer<typeof WalletRefundedSchema>;
export type WalletPosted = z.infer<typeof WalletPostedSchema>;
export type LegacyHoldVoided = z.infer<typeof LegacyHoldVoidedSchema>;

/** Queues an audit entry; awaited, so a refused send fails the request instead of losing the entry. */
export async function requestAudit(queue: Queue<EventMessage>, audit: AuditRequest): Promise<void> {
  await queue.send({ type: "audit.requested", audit });
}
