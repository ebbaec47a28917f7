import { atomically, type Db } from "../db/client";
import { recordOfflineFlagStatement } from "../db/offline-conflicts";
import { writeRefundReceipt } from "../db/receipt-mail";
import {
  type NewWalletReceipt,
  writeReceipt,
  writeWalletReceipt,
  writeWalletReceiptsStatement,
} from "../db/receipts";
import { type RedemptionRow, recordAnnulmentStatements, recordRedemptionsStatement } from "../db/redemptions";
import { applyReportedUsesStatement, type ReportedUses } from "../db/tickets";
import { resolveLegacyHoldStatement } from "../db/wallet";
import { receiptIdForTransaction } from "../domain/ledger";
import { appendAudit, appendAuditEntries } from "./audit-chain";
import {
  type AuditRequest,
  type AuditRequested,
  type EventMessage,
  EventMessageSchema,
  type LegacyHoldVoided,
  type OfflineScanFlagged,
  type RedemptionAnnulled,
  type RedemptionRecorded,
  type ScanRejected,
  type WalletPosted,
  type WalletRefunded,
  type WalletTransactionPosted,
} from "./messages";
import {
  mailOrderReceipt,
  mailRefundReceipt,
  mailWalletReceipt,
  mailWalletReceiptsTogether,
  type ReceiptMailing,
} from "./receipt-mail";
import { ledgerCopyStatements, withLedgerOrder } from "./wallet-ledger-copy";

export interface ConsumerDependencies extends ReceiptMailing {
  /** Called before a failed message is retried: keeps the error for the dead letter it may become. */
  onRetry?: (message: Message<unknown>, error: unknown) => Promise<void>;
}

/** A receipt's mailing has ended once it was mailed, or marked as having no address to go to. */
const mailingDone = (receipt: { mailedAt: string | null; mailSkippedAt: string | null }) =>
  receipt.mailedAt !== null || receipt.mailSkippedAt !== null;

/**
 * A failure that says when to try again (a provider's rate limit) is retried after that long, spread a
 * little so a burst does not come back at once; any other is retried at the queue's pace.
 */
function retryOptions(error: unknown): QueueRetryOptions | undefined {
  const after =
    error instanceof Error && "retryAfterSeconds" in error && typeof error.retryAfterSeconds === "number"
      ? error.retryAfterSeconds
      : undefined;
  if (after === undefined) return undefined;
  return { delaySeconds: Math.ceil(after * (1 + Math.random())) };
}

function log(level: "info" | "warn" | "error", msg: string, fields: Record<string, unknown>): void {
  console.log(JSON.stringify({ level, msg, ...fields }));
}

/** `order.paid`: one receipt per order (deterministic id), mailed until the mailer has accepted it once. */
async function onOrderPaid(
  message: Extract<EventMessage, { type: "order.paid" }>,
  dependencies: ConsumerDependencies,
): Promise<void> {
  const { db, now = () => new Date() } = dependencies;
  const receipt = await writeReceipt(db, message.order_id, message.paid_at, now());
  if (!receipt) {
    // Orders are never deleted, so no retry would find it: log it for a look and move on.
    log("error", "order.paid for an unknown order", { order_id: message.order_id });
    return;
  }
  if (mailingDone(receipt)) return;
  await mailOrderReceipt(receipt, dependencies);
}

/**
 * `redemption.recorded`: the redemptions row, the ticket's read model and the scan's audit entry, in one
 * batch. All three are keyed by the redemption id, and the read model takes the newest state the ticket's
 * object reported (see applyReportedUsesStatement), so redelivery and reordering leave the same result.
 */
function redemptionAudit(message: RedemptionRecorded) {
  return {
    record: {
      id: `aud_${message.redemption_id}`,
      actor: message.operator_id,
      action: "ticket.scan",
      target: message.ticket_code,
      details: {
        result: "accepted",
        redemption_id: message.redemption_id,
        function: message.function,
        session_id: message.session_id,
        device_id: message.device_id,
        location_id: message.location_id,
        ...(message.offline ? { offline: true } : {}),
      },
    },
    now: new Date(message.ts),
  };
}

function reportedUses(message: RedemptionRecorded | RedemptionAnnulled): ReportedUses {
  return {
    code: message.ticket_code,
    fn: message.function,
    remainingUses: message.remaining_uses,
    usesVersion: message.uses_version,
  };
}

function redemptionRow(message: RedemptionRecorded): Omit<RedemptionRow, "annulledAt"> {
  return {
    id: message.redemption_id,
    ticketCode: message.ticket_code,
    function: message.function,
    operatorId: message.operator_id,
    sessionId: message.session_id,
    deviceId: message.device_id,
    locationId: message.location_id,
    ts: message.ts,
    offline: message.offline === true,
  };
}

async function onRedemptionRecorded(
  message: RedemptionRecorded,
  { db, now = () => new Date() }: ConsumerDependencies,
): Promise<void> {
  const audit = redemptionAudit(message);
  await appendAudit(db, audit.record, audit.now, [
    recordRedemptionsStatement(db, [redemptionRow(message)]),
    applyReportedUsesStatement(db, [reportedUses(message)], now()),
  ]);
}

/**
 * `redemption.annulled`: the annulment (kept apart too, for a redemption that has not arrived yet), the
 * ticket's read model and the audit entry, in one batch, each idempotent on the redemption id.
 */
async function onRedemptionAnnulled(
  message: RedemptionAnnulled,
  { db, now = () => new Date() }: ConsumerDependencies,
): Promise<void> {
  await appendAudit(
    db,
    {
      id: `aud_annul_${message.redemption_id}`,
      actor: message.operator_id,
      action: "ticket.scan_annulled",
      target: message.ticket_code,
      details: {
        redemption_id: message.redemption_id,
        function: message.function,
        session_id: message.session_id,
        device_id: message.device_id,
        reason: message.reason,
      },
    },
    new Date(message.ts),
    [
      ...recordAnnulmentStatements(db, {
        redemptionId: message.redemption_id,
        annulledAt: message.ts,
        operatorId: message.operator_id,
        sessionId: message.session_id,
        deviceId: message.device_id,
        reason: message.reason,
      }),
      applyReportedUsesStatement(db, [reportedUses(message)], now()),
    ],
  );
}

/**
 * A whole batch of redemptions in one D1 batch of three statements (the rows, the read model, the chained
 * audit entries, each one set-based statement) and one audit-chain append, instead of statements per
 * scan. If it fails (typically: one of them is a redelivery already recorded), the caller falls back to
 * handling them one by one, where each is idempotent on its own. A queue batch holds at most 100 messages
 * (the platform's cap; wrangler.toml asks for 50), so even the audit rows' JSON (~600 bytes a scan) stays
 * well inside D1's 100 KB per statement.
 */
async function recordRedemptionsTogether(
  messages: RedemptionRecorded[],
  { db, now = () => new Date() }: ConsumerDependencies,
): Promise<boolean> {
  if (messages.length < 2) return false;
  try {
    await appendAuditEntries(db, messages.map(redemptionAudit), [
      recordRedemptionsStatement(db, messages.map(redemptionRow)),
      applyReportedUsesStatement(db, messages.map(reportedUses), now()),
    ]);
    return true;
  } catch (error) {
    log("info", "grouped redemptions fell back to one by one", {
      count: messages.length,
      error: String(error),
    });
    return false;
  }
}

/** A refused scan's audit entry, keyed by the scan: a redelivery finds it. */
function scanRejectedAudit(message: ScanRejected) {
  return {
    record: {
      id: `aud_${message.scan_id}`,
      actor: message.operator_id,
      action: "ticket.scan",
      target: message.ticket_code,
      details: {
        result: "rejected",
        code: message.code,
        function: message.function,
        session_id: message.session_id,
        ...(message.offline ? { offline: true } : {}),
      },
    },
    now: new Date(message.ts),
  };
}

async function onScanRejected(message: ScanRejected, { db }: ConsumerDependencies): Promise<void> {
  const { record, now } = scanRejectedAudit(message);
  await appendAudit(db, record, now);
}

/**
 * The batch's messages that are an audit entry and nothing else (refused scans, requested entries such
 * as a till's lookup or any staff action's), chained in one append instead of racing for the chain's tail
 * once each: a flood of refusals then costs one append per batch, like accepted scans. If the group cannot be written
 * (typically: it repeats a redelivered entry), the caller handles them one by one, each idempotent on its
 * id.
 */
async function recordAuditsTogether(
  events: (ScanRejected | AuditRequested)[],
  { db }: ConsumerDependencies,
): Promise<boolean> {
  if (events.length < 2) return false;
  try {
    await appendAuditEntries(
      db,
      events.map((event) =>
        event.type === "scan.rejected" ? scanRejectedAudit(event) : auditEntryOf(event.audit),
      ),
    );
    return true;
  } catch (error) {
    log("info", "grouped audit entries fell back to one by one", {
      count: events.length,
      error: String(error),
    });
    return false;
  }
}

/**
 * `offline.flagged`: the conflict (or forgery) for the report, and its audit entry, in one batch keyed by
 * the flag's id. A forgery is also logged at error level: it is the alert an operator must look at.
 */
async function onOfflineScanFlagged(
  message: OfflineScanFlagged,
  { db }: ConsumerDependencies,
): Promise<void> {
  if (message.outcome === "invalid") {
    log("error", "offline scan with a forged signature", {
      scan_id: message.scan_id,
      device_id: message.device_id,
      reason: message.reason,
    });
  }
  await appendAudit(
    db,
    {
      id: `aud_${message.id}`,
      actor: message.operator_id,
      action: `ticket.offline_${message.outcome}`,
      target: message.ticket_code,
      details: {
        scan_id: message.scan_id,
        reason: message.reason,
        function: message.function,
        device_id: message.device_id,
        session_id: message.session_id,
        scanned_at: message.scanned_at,
        over_budget: message.over_budget,
        other: message.other,
      },
    },
    new Date(message.recorded_at),
    [recordOfflineFlagStatement(db, message)],
  );
}

function walletReceiptOf(message: WalletTransactionPosted): NewWalletReceipt {
  return {
    transactionId: message.transaction_id,
    userId: message.user_id,
    kind: message.type === "wallet.topped_up" ? "TOPUP" : "DEDUCTION",
    amountCents: message.amount_cents,
    currency: message.currency,
    reference: message.reference,
    eventId: message.event_id,
    deviceId: message.device_id,
    createdAt: message.created_at,
  };
}

/**
 * `wallet.topped_up` / `wallet.deducted`: one receipt per transaction (id derived from it), mailed until the
 * mailer has accepted it once. The message carries everything the receipt holds, so no read of the ledger.
 */
async function onWalletTransactionPosted(
  message: WalletTransactionPosted,
  dependencies: ConsumerDependencies,
): Promise<void> {
  const { db, now = () => new Date() } = dependencies;
  await copyLedgerRows(db, message, now());
  if (message.audit) await appendRequestedAudit(db, message.audit);
  const receipt = await writeWalletReceipt(db, walletReceiptOf(message), now());
  if (!receipt || mailingDone(receipt)) return;
  await mailWalletReceipt(receipt, dependencies);
}

/**
 * `wallet.refunded`: one receipt per POS refund (id derived from its transaction, in refund_receipts),
 * mailed like the others, after its row and audit entry.
 */
async function onWalletRefunded(message: WalletRefunded, dependencies: ConsumerDependencies): Promise<void> {
  const { db, now = () => new Date() } = dependencies;
  await copyLedgerRows(db, message, now());
  if (message.audit) await appendRequestedAudit(db, message.audit);
  const { receipt, sale } = await writeRefundReceipt(
    db,
    {
      transactionId: message.transaction_id,
      userId: message.user_id,
      reversalOf: message.reversal_of,
      amountCents: message.amount_cents,
      currency: message.currency,
      reference: message.reference,
      eventId: message.event_id,
      createdAt: message.created_at,
    },
    now(),
  );
  if (!receipt || mailingDone(receipt)) return;
  await mailRefundReceipt(receipt, sale, dependencies);
}

/** Appends the event's transfer to D1's ledger (once per id; see ./wallet-ledger-copy.ts). */
async function copyLedgerRows(
  db: Db,
  message: WalletTransactionPosted | WalletRefunded | WalletPosted,
  now: Date,
): Promise<void> {
  const statements = ledgerCopyStatements(db, [message], now);
  if (statements.length > 0) await withLedgerOrder(() => atomically(db, statements));
}

/** `wallet.posted`: an adjustment or an order's credits, with the adjustment's audit entry. */
async function onWalletPosted(message: WalletPosted, dependencies: ConsumerDependencies): Promise<void> {
  const { db, now = () => new Date() } = dependencies;
  await copyLedgerRows(db, message, now());
  if (message.audit) await appendRequestedAudit(db, message.audit);
}

/** A credit hold D1 placed before the wallet's journal was voided there: D1 releases it too. */
async function onLegacyHoldVoided(
  message: LegacyHoldVoided,
  dependencies: ConsumerDependencies,
): Promise<void> {
  await atomically(dependencies.db, [
    resolveLegacyHoldStatement(dependencies.db, message.order_id, "VOIDED", message.voided_at),
  ]);
}

/**
 * A batch of wallet transactions together: their audit entries (one chained append) and receipts (one
 * statement) in one D1 batch, one read of what is still unmailed (with the buyers' addresses), one mark
 * for what the mailer took and one for what has no address. Answers the messages fully handled. The rest
 * (the group could not be written, typically because it repeats a redelivered entry, or the mailer refused
 * a receipt) go through onWalletTransactionPosted one by one, which is idempotent on every step (a resent
 * email carries the same idempotency key), so nothing is lost or mailed twice.
 */
async function recordWalletTransactionsTogether<M>(
  entries: { message: M; event: WalletTransactionPosted }[],
  dependencies: ConsumerDependencies,
): Promise<Set<M>> {
  const { db, now = () => new Date() } = dependencies;
  if (entries.length < 2) return new Set();
  const receiptIds = entries.map(({ event }) => receiptIdForTransaction(event.transaction_id));
  try {
    const at = now();
    const statements = [
      // The rows first: each receipt refers to its transaction.
      ...ledgerCopyStatements(
        db,
        entries.map(({ event }) => event),
        at,
      ),
      writeWalletReceiptsStatement(
        db,
        entries.map(({ event }) => walletReceiptOf(event)),
        at,
      ),
    ];
    const audits = entries.flatMap(({ event }) => (event.audit ? [auditEntryOf(event.audit)] : []));
    if (audits.length > 0) await appendAuditEntries(db, audits, statements);
    else await atomically(db, statements);
  } catch (error) {
    log("info", "grouped wallet transactions fell back to one by one", {
      count: entries.length,
      error: String(error),
    });
    return new Set();
  }
  let refused: Set<string>;
  try {
    // A refused receipt is left unmailed: its message goes the one-by-one way, which mails it or retries.
    refused = await mailWalletReceiptsTogether(receiptIds, dependencies);
  } catch (error) {
    log("info", "grouped wallet receipts fell back to one by one", { error: String(error) });
    return new Set();
  }
  return new Set(entries.filter((_, i) => !refused.has(receiptIds[i] ?? "")).map(({ message }) => message));
}

/** A requested audit entry as appendAudit takes it: the record, and its `ts` as the append's time. */
function auditEntryOf(audit: AuditRequest) {
  const { ts, ...record } = audit;
  return { record, now: new Date(ts) };
}

function appendRequestedAudit(db: Db, audit: AuditRequest) {
  const { record, now } = auditEntryOf(audit);
  return appendAudit(db, record, now);
}

async function handleEvent(message: EventMessage, dependencies: ConsumerDependencies): Promise<void> {
  switch (message.type) {
    case "order.paid":
      return onOrderPaid(message, dependencies);
    case "redemption.recorded":
      return onRedemptionRecorded(message, dependencies);
    case "redemption.annulled":
      return onRedemptionAnnulled(message, dependencies);
    case "scan.rejected":
      return onScanRejected(message, dependencies);
    case "offline.flagged":
      return onOfflineScanFlagged(message, dependencies);
    case "wallet.topped_up":
    case "wallet.deducted":
      return onWalletTransactionPosted(message, dependencies);
    case "wallet.refunded":
      return onWalletRefunded(message, dependencies);
    case "wallet.posted":
      return onWalletPosted(message, dependencies);
    case "wallet.legacy_hold_voided":
      return onLegacyHoldVoided(message, dependencies);
    case "audit.requested":
      await appendRequestedAudit(dependencies.db, message.audit);
      return;
    default: {
      // A new message type without a handler here fails to compile instead of being acked unhandled.
      const unhandled: never = message;
      throw new Error(`no handler for ${JSON.stringify(unhandled)}`);
    }
  }
}

/**
 * Processes a batch from the EVENTS queue. Delivery is at-least-once: every handler is idempotent, each
 * handled message is acked on its own (so a retry of the batch does not redo it), and a failed one is
 * retried alone, up to the queue's max_retries and then to the dead-letter queue. A message that does not
 * parse can never succeed, so it is logged and acked instead of retried.
 */
export async function consumeEvents(
  batch: MessageBatch<unknown>,
  dependencies: ConsumerDependencies,
): Promise<void> {
  // Each body is parsed once, here; both the grouped paths and the one-by-one loop use the result.
  const parsedMessages = batch.messages.map((message) => ({
    message,
    parsed: EventMessageSchema.safeParse(message.body),
  }));
  const redemptions: { message: Message<unknown>; event: RedemptionRecorded }[] = [];
  const auditsOnly: { message: Message<unknown>; event: ScanRejected | AuditRequested }[] = [];
  const walletTransactions: { message: Message<unknown>; event: WalletTransactionPosted }[] = [];
  for (const { message, parsed } of parsedMessages) {
    if (!parsed.success) continue;
    const event = parsed.data;
    if (event.type === "redemption.recorded") redemptions.push({ message, event });
    else if (event.type === "scan.rejected" || event.type === "audit.requested") {
      auditsOnly.push({ message, event });
    } else if (event.type === "wallet.deducted" || event.type === "wallet.topped_up") {
      walletTransactions.push({ message, event });
    }
  }
  const recordedTogether = await recordRedemptionsTogether(
    redemptions.map((r) => r.event),
    dependencies,
  );
  const handled = new Set(recordedTogether ? redemptions.map((r) => r.message) : []);
  if (
    await recordAuditsTogether(
      auditsOnly.map((a) => a.event),
      dependencies,
    )
  ) {
    for (const { message } of auditsOnly) handled.add(message);
  }
  for (const message of await recordWalletTransactionsTogether(walletTransactions, dependencies)) {
    handled.add(message);
  }
  for (const message of handled) message.ack();

  for (const { message, parsed } of parsedMessages) {
    if (handled.has(message)) continue;
    if (!parsed.success) {
      log("error", "invalid event message dropped", {
        queue: batch.queue,
        message_id: message.id,
        issues: parsed.error.issues.map((issue) => `${issue.path.join(".")}: ${issue.message}`),
      });
      message.ack();
      continue;
    }
    try {
      await handleEvent(parsed.data, dependencies);
      message.ack();
    } catch (error) {
      log("warn", "event handling failed; will retry", {
        queue: batch.queue,
        message_id: message.id,
        type: parsed.data.type,
        attempts: message.attempts,
        error: error instanceof Error ? error.message : String(error),
      });
      await dependencies.onRetry?.(message, error);
      message.retry(retryOptions(error));
    }
  }
}
