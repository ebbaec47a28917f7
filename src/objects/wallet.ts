import { DurableObject } from "cloudflare:workers";
import { appendAudit } from "../db/audit";
import { atomically, type Db, getDb } from "../db/client";
import { type OutboxEntry, outboxStatement, publishOutboxEntry } from "../db/outbox";
import { isDuplicatePayment, type PaymentDelivery, recordPaymentStatement } from "../db/payments";
import {
  findLedgerEntryByKey,
  findRefundTotals,
  isDuplicateLedgerKey,
  isRefundOverOriginal,
  isTopupAlreadySettled,
  isWalletShort,
  type LedgerRow,
  ledgerEntry,
  readWallet,
  settleTopupStatement,
  toWalletSummary,
  toWalletTransaction,
  walletBalanceQuery,
} from "../db/wallet";
import { ledgerActors, ledgerKeys, refundAmountCents } from "../domain/ledger";
import type { Env } from "../env";
import type { LedgerDirection, WalletSummary, WalletTransaction } from "../types/domain";

/** Results of finished operations are kept this long, so a retried RPC gets exactly the first answer. */
export const WALLET_OPERATION_RETENTION_MS = 24 * 60 * 60 * 1000;

export interface PosDeductionRequest {
  userId: string;
  /** Unique per (operator, Idempotency-Key): a retried RPC or HTTP request carries the same one. */
  ledgerKey: string;
  amountCents: number;
  currency: string;
  reference: string | null;
  jti: string;
  /** The wallet QR token's `exp`, in Unix seconds: its jti is remembered until then. */
  tokenExpiresAt: number;
  operatorId: string;
  sessionId: string;
  deviceId: string;
  eventId: string;
}

/** A committed wallet change, with the balance right after it. */
export interface WalletPosting {
  ok: true;
  transaction: WalletTransaction;
  balanceCents: number;
  availableCents: number;
}

export type WalletShort = {
  ok: false;
  code: "insufficient_funds";
  balanceCents: number;
  availableCents: number;
};
/** The ledger key already posted a different request (its HTTP outcome having been purged). */
type KeyReused = { ok: false; code: "idempotency_key_reused" };

export type PosDeductionResult =
  | WalletPosting
  | WalletShort
  | KeyReused
  | { ok: false; code: "token_replayed" | "token_expired" };

export interface RefundRequest {
  userId: string;
  deductionId: string;
  /** Omitted: whatever of the deduction is not refunded yet. */
  amountCents?: number;
  ledgerKey: string;
  currency: string;
  reference: string | null;
  eventId: string | null;
  operatorId: string;
  reason: string;
}

export type RefundResult =
  | WalletPosting
  | KeyReused
  | { ok: false; code: "refund_exceeds_original"; refundableCents: number };

export interface AdjustmentRequest {
  userId: string;
  ledgerKey: string;
  direction: LedgerDirection;
  amountCents: number;
  currency: string;
  operatorId: string;
  reason: string;
}

export type AdjustmentResult = WalletPosting | WalletShort | KeyReused;

export interface TopupPostingRequest {
  userId: string;
  topupId: string;
  amountCents: number;
  currency: string;
  delivery: PaymentDelivery;
}

/** `already_settled`: the top-up was paid or failed by another payment; the caller records this one. */
export type TopupPostingResult = "processed" | "duplicate" | "already_settled";

interface Completed<T> {
  result: T;
  /** An event committed with the change, sent once the wallet has moved on to its next request. */
  publish?: OutboxEntry;
}

/**
 * One object per user: it runs that user's POS deductions, refunds, adjustments and top-up postings one
 * at a time, in arrival order, and remembers which wallet QR tokens (jtis) have been spent.
 *
 * D1 is the ledger's source of truth and its CHECKs are what keep a balance from going negative; this
 * object adds the order (so concurrent deductions get deterministic, first-come answers instead of racing
 * on a constraint) and the jti set. Each operation awaits D1, and any non-storage await lets the next
 * request into the object, so the operations are chained explicitly: a FIFO of promises.
 */
export class WalletObject extends DurableObject<Env> {
  private readonly sql: SqlStorage;
  private readonly db: Db;
  private tail: Promise<unknown> = Promise.resolve();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.db = getDb(env.DB);
    this.sql.exec(`
      CREATE TABLE IF NOT EXISTS wallet (user_id TEXT PRIMARY KEY);
      CREATE TABLE IF NOT EXISTS spent_jtis (
        jti TEXT PRIMARY KEY, ledger_key TEXT NOT NULL, expires_at_ms INTEGER NOT NULL);
      CREATE INDEX IF NOT EXISTS spent_jtis_by_expiry ON spent_jtis (expires_at_ms);
      CREATE TABLE IF NOT EXISTS operations (
        ledger_key TEXT PRIMARY KEY, result TEXT NOT NULL, created_at_ms INTEGER NOT NULL);
      CREATE INDEX IF NOT EXISTS operations_by_age ON operations (created_at_ms);
    `);
  }

  /** Deducts at a POS till. Idempotent on `ledgerKey`; the first success spends the token's jti. */
  async deduct(request: PosDeductionRequest): Promise<PosDeductionResult> {
    return this.finish(await this.inOrder(() => this.deductNext(request)));
  }

  /** Refunds (part of) a DEDUCT of this wallet. Idempotent on `ledgerKey`. */
  async refund(request: RefundRequest): Promise<RefundResult> {
    return this.finish(await this.inOrder(() => this.refundNext(request)));
  }

  /** An admin's credit or debit. Idempotent on `ledgerKey`. */
  async adjust(request: AdjustmentRequest): Promise<AdjustmentResult> {
    return this.finish(await this.inOrder(() => this.adjustNext(request)));
  }

  /** Posts a paid top-up's PURCHASE, with the payment row whose unique keys deduplicate deliveries. */
  async postTopup(request: TopupPostingRequest): Promise<TopupPostingResult> {
    return this.finish(await this.inOrder(() => this.postTopupNext(request)));
  }

  /** Forgets jtis whose tokens have expired and operation results past retention. */
  override async alarm(): Promise<void> {
    const nowMs = Date.now();
    this.sql.exec("DELETE FROM spent_jtis WHERE expires_at_ms <= ?", nowMs);
    this.sql.exec("DELETE FROM operations WHERE created_at_ms <= ?", nowMs - WALLET_OPERATION_RETENTION_MS);
    await this.scheduleCleanup(true);
  }

  private inOrder<T>(task: () => Promise<T>): Promise<T> {
    const run = this.tail.then(task);
    // The chain must survive a failed operation: the next one runs whatever happened to this one.
    this.tail = run.catch(() => undefined);
    return run;
  }

  /**
   * Sends the committed event after answering, outside the FIFO: neither the till nor the wallet's next
   * request waits for the queue. The event's outbox row committed with the ledger row, and
   * publishOutboxEntry never throws (a failed send stays in the outbox), so an event this misses (an
   * evicted object, a queue outage) is sent by the every-minute outbox drain instead.
   */
  private finish<T>(completed: Completed<T>): T {
    if (completed.publish) {
      this.ctx.waitUntil(publishOutboxEntry(this.db, this.env.EVENTS, completed.publish, new Date()));
    }
    return completed.result;
  }

  private async deductNext(request: PosDeductionRequest): Promise<Completed<PosDeductionResult>> {
    this.bindTo(request.userId);
    const previous = this.previousResult<PosDeductionResult>(request.ledgerKey);
    if (previous) return { result: previous };
    const nowMs = Date.now();
    // The route verified the token with some clock tolerance; past `exp` here it is refused outright, so a
    // jti pruned at `exp` can never be replayed inside that tolerance.
    if (request.tokenExpiresAt * 1000 <= nowMs) return { result: { ok: false, code: "token_expired" } };
    const spentBy = this.jtiSpentBy(request.jti);
    if (spentBy !== undefined && spentBy !== request.ledgerKey) {
      return { result: { ok: false, code: "token_replayed" } };
    }
    if (spentBy === request.ledgerKey) {
      // This very request committed before (its answer was lost): answer from the ledger.
      return { result: await this.answerFromLedger(request, request.ledgerKey, sameDeduction(request)) };
    }

    const now = new Date(nowMs);
    const { row, statement } = ledgerEntry(this.db, {
      userId: request.userId,
      type: "DEDUCT",
      amountCents: request.amountCents,
      currency: request.currency,
      reference: request.reference,
      idempotencyKey: request.ledgerKey,
      eventId: request.eventId,
      createdBy: ledgerActors.operator(request.operatorId),
      now,
    });
    const posted: OutboxEntry = {
      id: `wallet.deducted:${row.id}`,
      message: {
        type: "wallet.deducted",
        transaction_id: row.id,
        user_id: row.userId,
        amount_cents: row.amountCents,
        currency: row.currency,
        reference: row.reference,
        event_id: row.eventId,
        device_id: request.deviceId,
        created_at: row.createdAt,
        // Tills deduct far faster than one global hash chain takes synchronous appends: the entry is
        // committed here, with the deduction, and chained by the consumer in order.
        audit: {
          id: `aud_${row.id}`,
          actor: request.operatorId,
          action: "pos.deduct",
          target: row.id,
          details: {
            result: "accepted",
            user_id: request.userId,
            amount_cents: request.amountCents,
            reference: request.reference,
            event_id: request.eventId,
            session_id: request.sessionId,
            device_id: request.deviceId,
          },
          ts: row.createdAt,
        },
      },
    };
    let balanceAfter: WalletSummary;
    try {
      // The balance is read in the same batch, so the answer costs no extra round trip and is exactly
      // the state this deduction committed.
      const [, , balance] = await this.db.batch([
        statement,
        outboxStatement(this.db, posted, now),
        walletBalanceQuery(this.db, request.userId),
      ]);
      balanceAfter = toWalletSummary(balance[0], request.currency);
    } catch (error) {
      if (isWalletShort(error)) return { result: await this.short(request) };
      const answer = await this.afterFailedPosting(error, request, sameDeduction(request));
      if (answer.ok) this.spendJti(request.jti, request.ledgerKey, request.tokenExpiresAt);
      // Its event, committed with it, is sent by the outbox drain.
      return { result: answer };
    }
    // Only now, with the deduction committed, is the token spent.
    this.spendJti(request.jti, request.ledgerKey, request.tokenExpiresAt);
    const result: WalletPosting = {
      ok: true,
      transaction: toWalletTransaction(row),
      balanceCents: balanceAfter.balance_cents,
      availableCents: balanceAfter.available_cents,
    };
    this.remember(request.ledgerKey, result);
    await this.scheduleCleanup();
    return { result, publish: posted };
  }

  private async refundNext(request: RefundRequest): Promise<Completed<RefundResult>> {
    this.bindTo(request.userId);
    const previous = this.previousResult<RefundResult>(request.ledgerKey);
    if (previous) return { result: previous };
    const totals = await findRefundTotals(this.db, request.deductionId);
    if (!totals) throw new Error(`invariant: deduction ${request.deductionId} has no refund totals`);
    const amountCents = refundAmountCents(totals, request.amountCents);
    const refundable = totals.original_cents - totals.refunded_cents;
    if (amountCents === null) {
      // Possibly this very request, retried after it committed: then the ledger has it.
      const existing = await findLedgerEntryByKey(this.db, request.userId, request.ledgerKey);
      if (existing)
        return { result: await this.answerFromLedger(request, request.ledgerKey, sameRefund(request)) };
      return { result: { ok: false, code: "refund_exceeds_original", refundableCents: refundable } };
    }

    const now = new Date();
    const { row, statement } = ledgerEntry(this.db, {
      userId: request.userId,
      type: "REFUND",
      amountCents,
      currency: request.currency,
      reference: request.reference,
      idempotencyKey: request.ledgerKey,
      reversalOf: request.deductionId,
      eventId: request.eventId,
      createdBy: ledgerActors.operator(request.operatorId),
      now,
    });
    try {
      await appendAudit(
        this.db,
        {
          actor: request.operatorId,
          action: "pos.refund",
          target: row.id,
          details: {
            user_id: request.userId,
            reversal_of: request.deductionId,
            amount_cents: amountCents,
            event_id: request.eventId,
            reason: request.reason,
          },
        },
        now,
        [statement],
      );
    } catch (error) {
      if (isRefundOverOriginal(error)) {
        const latest = await findRefundTotals(this.db, request.deductionId);
        const left = latest ? latest.original_cents - latest.refunded_cents : 0;
        return { result: { ok: false, code: "refund_exceeds_original", refundableCents: left } };
      }
      return { result: await this.afterFailedPosting(error, request, sameRefund(request)) };
    }
    const result = await this.posting(row, request.currency);
    this.remember(request.ledgerKey, result);
    await this.scheduleCleanup();
    return { result };
  }

  private async adjustNext(request: AdjustmentRequest): Promise<Completed<AdjustmentResult>> {
    this.bindTo(request.userId);
    const previous = this.previousResult<AdjustmentResult>(request.ledgerKey);
    if (previous) return { result: previous };
    const now = new Date();
    const { row, statement } = ledgerEntry(this.db, {
      userId: request.userId,
      type: "ADJUSTMENT",
      direction: request.direction,
      amountCents: request.amountCents,
      currency: request.currency,
      reference: null,
      idempotencyKey: request.ledgerKey,
      createdBy: ledgerActors.operator(request.operatorId),
      now,
    });
    try {
      await appendAudit(
        this.db,
        {
          actor: request.operatorId,
          action: "wallet.adjust",
          target: row.id,
          details: {
            user_id: request.userId,
            direction: request.direction,
            amount_cents: request.amountCents,
            reason: request.reason,
          },
        },
        now,
        [statement],
      );
    } catch (error) {
      if (isWalletShort(error)) return { result: await this.short(request) };
      return { result: await this.afterFailedPosting(error, request, sameAdjustment(request)) };
    }
    const result = await this.posting(row, request.currency);
    this.remember(request.ledgerKey, result);
    await this.scheduleCleanup();
    return { result };
  }

  private async postTopupNext(request: TopupPostingRequest): Promise<Completed<TopupPostingResult>> {
    this.bindTo(request.userId);
    const now = request.delivery.receivedAt;
    const { row, statement } = ledgerEntry(this.db, {
      userId: request.userId,
      type: "PURCHASE",
      amountCents: request.amountCents,
      currency: request.currency,
      reference: request.topupId,
      idempotencyKey: ledgerKeys.topup(request.topupId),
      createdBy: ledgerActors.payments,
      now,
    });
    const posted: OutboxEntry = {
      id: `wallet.topped_up:${row.id}`,
      message: {
        type: "wallet.topped_up",
        transaction_id: row.id,
        user_id: row.userId,
        amount_cents: row.amountCents,
        currency: row.currency,
        reference: row.reference,
        event_id: null,
        device_id: null,
        created_at: row.createdAt,
      },
    };
    try {
      // The payment row leads, so a redelivery is recognised as a duplicate before anything else.
      await atomically(this.db, [
        recordPaymentStatement(this.db, request.delivery, "processed", false),
        settleTopupStatement(this.db, request.topupId, "PAID", now),
        statement,
        outboxStatement(this.db, posted, now),
      ]);
    } catch (error) {
      if (isDuplicatePayment(error)) return { result: "duplicate" };
      if (isTopupAlreadySettled(error) || isDuplicateLedgerKey(error)) return { result: "already_settled" };
      throw error;
    }
    return { result: "processed", publish: posted };
  }

  /** The wallet after a committed posting. Read under the FIFO: no other posting of this object is in between. */
  private async posting(row: LedgerRow, currency: string): Promise<WalletPosting> {
    const wallet = await readWallet(this.db, row.userId, currency);
    return {
      ok: true,
      transaction: toWalletTransaction(row),
      balanceCents: wallet.balance_cents,
      availableCents: wallet.available_cents,
    };
  }

  private async short(request: { userId: string; currency: string }): Promise<WalletShort> {
    const wallet = await readWallet(this.db, request.userId, request.currency);
    return {
      ok: false,
      code: "insufficient_funds",
      balanceCents: wallet.balance_cents,
      availableCents: wallet.available_cents,
    };
  }

  /**
   * A posting batch failed for a reason other than the wallet's own rules. If the ledger holds a row under
   * this key, the batch did commit (an earlier attempt, or this one with its answer lost on the way back):
   * answer with that row. Otherwise the failure is real.
   */
  private async afterFailedPosting(
    error: unknown,
    request: { userId: string; ledgerKey: string; currency: string },
    matches: (row: LedgerRow) => boolean,
  ): Promise<WalletPosting | KeyReused> {
    const existing = await findLedgerEntryByKey(this.db, request.userId, request.ledgerKey);
    if (!existing) throw error;
    return this.answerFromLedger(request, request.ledgerKey, matches);
  }

  private async answerFromLedger(
    request: { userId: string; currency: string },
    ledgerKey: string,
    matches: (row: LedgerRow) => boolean,
  ): Promise<WalletPosting | KeyReused> {
    const existing = await findLedgerEntryByKey(this.db, request.userId, ledgerKey);
    if (!existing) throw new Error(`invariant: ledger key ${ledgerKey} was spent but has no row`);
    if (!matches(existing)) return { ok: false, code: "idempotency_key_reused" };
    const result = await this.posting(existing, request.currency);
    this.remember(ledgerKey, result);
    return result;
  }

  /** A wallet object serves exactly one user; it is addressed by the user id, so this only guards bugs. */
  private bindTo(userId: string): void {
    const bound = this.sql.exec<{ user_id: string }>("SELECT user_id FROM wallet").toArray()[0];
    if (!bound) this.sql.exec("INSERT INTO wallet (user_id) VALUES (?)", userId);
    else if (bound.user_id !== userId) throw new Error("invariant: a wallet object serves exactly one user");
  }

  private previousResult<T>(ledgerKey: string): T | undefined {
    const row = this.sql
      .exec<{ result: string }>("SELECT result FROM operations WHERE ledger_key = ?", ledgerKey)
      .toArray()[0];
    return row ? (JSON.parse(row.result) as T) : undefined;
  }

  private remember(ledgerKey: string, result: WalletPosting): void {
    this.sql.exec(
      "INSERT OR REPLACE INTO operations (ledger_key, result, created_at_ms) VALUES (?, ?, ?)",
      ledgerKey,
      JSON.stringify(result),
      Date.now(),
    );
  }

  private jtiSpentBy(jti: string): string | undefined {
    return this.sql
      .exec<{ ledger_key: string }>("SELECT ledger_key FROM spent_jtis WHERE jti = ?", jti)
      .toArray()[0]?.ledger_key;
  }

  private spendJti(jti: string, ledgerKey: string, expiresAtSeconds: number): void {
    this.sql.exec(
      "INSERT OR IGNORE INTO spent_jtis (jti, ledger_key, expires_at_ms) VALUES (?, ?, ?)",
      jti,
      ledgerKey,
      expiresAtSeconds * 1000,
    );
  }

  /** One alarm, at the earliest moment something can be forgotten. `replace`: the current alarm has fired. */
  private async scheduleCleanup(replace = false): Promise<void> {
    const next = this.sql
      .exec<{ at: number | null }>(
        `SELECT MIN(at) AS at FROM (
           SELECT MIN(expires_at_ms) AS at FROM spent_jtis
           UNION ALL SELECT MIN(created_at_ms) + ${WALLET_OPERATION_RETENTION_MS} FROM operations)`,
      )
      .toArray()[0]?.at;
    if (next == null) return;
    const current = replace ? null : await this.ctx.storage.getAlarm();
    if (current === null || current > next) await this.ctx.storage.setAlarm(next);
  }
}

const sameDeduction = (request: PosDeductionRequest) => (row: LedgerRow) =>
  row.type === "DEDUCT" && row.amountCents === request.amountCents && row.reference === request.reference;

const sameRefund = (request: RefundRequest) => (row: LedgerRow) =>
  row.type === "REFUND" &&
  row.reversalOf === request.deductionId &&
  (request.amountCents === undefined || row.amountCents === request.amountCents);

const sameAdjustment = (request: AdjustmentRequest) => (row: LedgerRow) =>
  row.type === "ADJUSTMENT" && row.direction === request.direction && row.amountCents === request.amountCents;
