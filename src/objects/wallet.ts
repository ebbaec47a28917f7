import { DurableObject } from "cloudflare:workers";
import { appendAudit } from "../db/audit";
import { atomically, batchResults, type Db, getDb, type Statement } from "../db/client";
import { type OutboxEntry, outboxStatement, publishOutboxEntry } from "../db/outbox";
import { isDuplicatePayment, type PaymentDelivery, recordPaymentStatement } from "../db/payments";
import {
  appendLedgerRowsStatement,
  findLedgerEntry,
  findLedgerEntryByKey,
  findRefundTotals,
  isDuplicateLedgerKey,
  isRefundOverOriginal,
  isTopupAlreadySettled,
  isWalletShort,
  type LedgerRow,
  ledgerEntry,
  settleTopupStatement,
  toWalletTransaction,
  walletBalanceQuery,
} from "../db/wallet";
import {
  ledgerActors,
  ledgerKeys,
  refundAmountCents,
  refuseDeduction,
  WALLET_FLUSH_WINDOW_MS,
} from "../domain/ledger";
import type { Env } from "../env";
import { type WalletTransactionPosted, walletRefundedEntry } from "../queues/messages";
import type { LedgerDirection, WalletTransaction } from "../types/domain";
import { bookAlarm, ObjectOutbox } from "./object-outbox";
import { WalletState, type WalletView } from "./wallet-state";

/** Results of finished operations are kept this long, so a retried RPC or request gets the first answer. */
export const WALLET_OPERATION_RETENTION_MS = 24 * 60 * 60 * 1000;
/** Ledger rows per INSERT: one JSON parameter of ~400 bytes a row, well inside D1's 100 KB per statement. */
const LEDGER_ROWS_PER_STATEMENT = 100;
/**
 * Ledger rows per flush (one D1 batch). A wallet deducting faster than this per window flushes again at
 * once instead of waiting for the next window, so its backlog cannot grow.
 */
const FLUSH_MAX_ROWS = 10 * LEDGER_ROWS_PER_STATEMENT;
/** Back-off before the alarm retries a flush or an event send that failed. */
const RETRY_MS = 5_000;
/**
 * A reservation whose confirmation never came (its caller crashed) is dropped this long after the batch
 * it waited for was due, by a flush whose snapshot then shows whether that batch committed. Far longer
 * than any D1 batch takes.
 */
const SLOW_DEBIT_RESERVATION_MS = 5 * 60 * 1000;

export interface PosDeductionRequest {
  userId: string;
  /** Unique per (operator, Idempotency-Key): a retried RPC or HTTP request carries the same one. */
  ledgerKey: string;
  /** Hash of the HTTP request: the same key with another request is `idempotency_key_reused`. */
  requestHash: string;
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
  | { ok: false; code: "token_replayed" | "token_expired" }
  /** D1 could not be read when the decision needed it; nothing was decided or stored. */
  | { ok: false; code: "unavailable" };

/** `replayed`: the stored outcome of an earlier request with the same key and the same request. */
export interface PosDeductionAnswer {
  result: PosDeductionResult;
  replayed: boolean;
}

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
  /** The till the refund is made at: the row's `created_by`. */
  deviceId: string;
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

/** An order's credits: held until its card part is paid, or deducted with the order (credits pay it all). */
export interface OrderCreditsReservation {
  userId: string;
  orderId: string;
  kind: "hold" | "deduct";
  amountCents: number;
  /** The order's batch commits within moments or never; after this the reservation is dropped. */
  expiresAtMs: number;
}

/** What `sync` answers: the wallet as the object sees it, which is what a deduction may take now. */
export type WalletBalance = WalletView;

interface Completed<T> {
  result: T;
  /** An event committed with the change, sent once the wallet has moved on to its next request. */
  publish?: OutboxEntry;
}

/**
 * One object per user: the authority on what the wallet can spend right now.
 *
 * D1 holds the ledger and its CHECKs; this object holds a snapshot of D1's balance row plus every change
 * D1 has not seen yet (./wallet-state.ts), and that view is never more generous than the truth: everything
 * that lowers the available credit passes through here first. A POS deduction is therefore decided here
 * alone, synchronously, in one storage transaction (outcome, jti and ledger row together), and reaches D1
 * with the next flush, which also announces it on the queue. No await separates the check from the change.
 *
 * Everything that writes to D1 (flushes, refunds, adjustments, top-up postings) runs in a FIFO of promises,
 * one at a time: any non-storage await lets the next request in, and two D1 writers at once would make the
 * snapshot's meaning ambiguous.
 */
export class WalletObject extends DurableObject<Env> {
  private readonly state: WalletState;
  /** Events of flushed deductions, forwarded to the queue by the alarm. */
  private readonly events: ObjectOutbox;
  private readonly db: Db;
  private tail: Promise<unknown> = Promise.resolve();
  private flushScheduled = false;
  private lastFlushAtMs = 0;
  /** The last flush carried all it could: what is left goes at once, not at the end of a window. */
  private backlogged = false;
  private readonly deductionsInFlight = new Map<string, Promise<PosDeductionAnswer>>();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.events = new ObjectOutbox(ctx.storage.sql, env.EVENTS);
    this.state = new WalletState(ctx.storage.sql, this.events);
    this.db = getDb(env.DB);
  }

  /**
   * Deducts at a POS till. Idempotent on `ledgerKey`: the outcome (refusals included) is stored with the
   * deduction, so a retry with the same request gets it again, and a retry that arrives while the first
   * is still waiting for a refresh waits for it.
   */
  async deduct(request: PosDeductionRequest): Promise<PosDeductionAnswer> {
    const running = this.deductionsInFlight.get(request.ledgerKey);
    if (running) {
      await running.catch(() => undefined);
      return this.deduct(request);
    }
    const answer = this.deductNow(request);
    this.deductionsInFlight.set(request.ledgerKey, answer);
    try {
      return await answer;
    } finally {
      this.deductionsInFlight.delete(request.ledgerKey);
    }
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

  /**
   * Sets an order's credits aside before the order's batch writes the hold (or the deduction) to D1, so
   * no till can spend them meanwhile. Idempotent per order. Then `settleOrderCredits` says how it went.
   */
  async reserveOrderCredits(request: OrderCreditsReservation): Promise<{ ok: true } | WalletShort> {
    this.state.bindTo(request.userId);
    const key = ledgerKeys.order(request.orderId);
    const change =
      request.kind === "hold"
        ? { balanceDelta: 0, heldDelta: request.amountCents }
        : { balanceDelta: -request.amountCents, heldDelta: 0 };
    const tryReserve = (): { ok: true } | WalletShort =>
      this.ctx.storage.transactionSync(() => {
        if (this.state.findReservation(key)) return { ok: true };
        const view = this.state.view();
        if (view.availableCents < request.amountCents) return short(view);
        this.state.reserve(key, change, request.expiresAtMs, new Date());
        return { ok: true };
      });
    if (!this.state.hasSnapshot()) await this.refresh();
    let answer = tryReserve();
    if (!answer.ok) {
      // Money may have come free since the snapshot (a voided hold, a top-up): look again before refusing.
      await this.refresh();
      answer = tryReserve();
    }
    // The alarm drops the reservation at its expiry if the order never says how its batch went.
    if (answer.ok) await this.scheduleAlarm();
    return answer;
  }

  /** The order's batch committed (`committed`) or certainly did not: confirm or release its reservation. */
  async settleOrderCredits(userId: string, orderId: string, committed: boolean): Promise<void> {
    this.state.bindTo(userId);
    const key = ledgerKeys.order(orderId);
    if (committed) this.state.confirm(key);
    else this.state.release(key);
  }

  /**
   * Brings D1 up to date with this wallet (every decided deduction flushed) and answers the wallet as the
   * object sees it, which is what a deduction may take now. With a wallet token's `jti`, also whether a
   * deduction already spent it (a till's lookup refuses such a token rather than let the charge fail).
   */
  async sync(userId: string, jti?: string): Promise<WalletBalance & { jtiSpent: boolean }> {
    this.state.bindTo(userId);
    await this.refresh();
    return { ...this.state.view(), jtiSpent: jti !== undefined && this.state.jtiSpentBy(jti) !== undefined };
  }

  /**
   * The wallet as this object holds it for reconciliation: refreshed from D1 first, so with no change in
   * flight (`pendingChanges` 0) its balance must equal the signed sum of the wallet's D1 ledger rows; a
   * difference is a bookkeeping fault, reported by the caller and never corrected here.
   */
  async reconciliationView(userId: string): Promise<{ balanceCents: number; pendingChanges: number }> {
    this.state.bindTo(userId);
    await this.refresh();
    return { balanceCents: this.state.view().balanceCents, pendingChanges: this.state.pendingCount() };
  }

  /**
   * Flushes decided deductions and sends their events, drops reservations that expired, and forgets jtis
   * and outcomes that can no longer matter.
   */
  override async alarm(): Promise<void> {
    // Deductions from here on book a flush of their own: this run may already have read its rows.
    this.flushScheduled = false;
    const nowMs = Date.now();
    if (
      this.state.boundUser() !== undefined &&
      (this.state.hasUnflushed() || this.state.expiredReservations(nowMs).length > 0)
    ) {
      try {
        await this.inOrder(() => this.flushNow());
      } catch (error) {
        logWarning("wallet flush failed; will retry", error);
        await this.ctx.storage.setAlarm(Date.now() + RETRY_MS);
        return;
      }
    }
    if (!(await this.events.send())) {
      await this.ctx.storage.setAlarm(Date.now() + RETRY_MS);
      return;
    }
    this.state.prune(Date.now(), WALLET_OPERATION_RETENTION_MS);
    await this.scheduleAlarm(true);
  }

  private async deductNow(request: PosDeductionRequest): Promise<PosDeductionAnswer> {
    this.state.bindTo(request.userId);
    if (!this.state.hasSnapshot() && !(await this.refreshed())) return UNAVAILABLE;
    let decided = this.decideDeduction(request, false);
    if (decided === "refresh") {
      // Too little in the view. Money may have come free since the snapshot (a voided hold, a top-up):
      // look once more before refusing, so "insufficient" is never an artefact of a stale snapshot.
      if (!(await this.refreshed())) return UNAVAILABLE;
      decided = this.decideDeduction(request, true);
    }
    if (decided === "refresh") throw new Error("invariant: a final decision never asks for a refresh");
    if (decided === "from-ledger") return { result: await this.answerFromLedger(request), replayed: true };
    if (!decided.replayed) {
      if (decided.result.ok) await this.scheduleFlush();
      else await this.scheduleAlarm(); // the stored refusal is forgotten after retention
    }
    return decided;
  }

  /**
   * The whole POS decision, in one storage transaction. "refresh": too little credit in the view and
   * `final` is false, nothing written. "from-ledger": the key's outcome is past retention, the ledger
   * still has its transaction.
   */
  private decideDeduction(
    request: PosDeductionRequest,
    final: boolean,
  ): PosDeductionAnswer | "refresh" | "from-ledger" {
    return this.ctx.storage.transactionSync(() => {
      const stored = this.state.posOutcome<PosDeductionResult>(request.ledgerKey);
      if (stored) {
        if (stored.requestHash !== request.requestHash) {
          return { result: { ok: false, code: "idempotency_key_reused" }, replayed: false };
        }
        return stored.result === null ? "from-ledger" : { result: stored.result, replayed: true };
      }
      const nowMs = Date.now();
      const view = this.state.view();
      const refusal = refuseDeduction({
        amountCents: request.amountCents,
        availableCents: view.availableCents,
        jtiSpent: this.state.jtiSpentBy(request.jti) !== undefined,
        tokenExpiresAtSeconds: request.tokenExpiresAt,
        nowMs,
      });
      if (refusal === "insufficient_funds" && !final) return "refresh";
      let result: PosDeductionResult;
      let transactionId: string | null = null;
      if (refusal === "insufficient_funds") {
        result = short(view);
      } else if (refusal !== null) {
        result = { ok: false, code: refusal };
      } else {
        const { row, event } = deductionEntry(this.db, request, new Date(nowMs));
        this.state.appendDeduction(row, event);
        this.state.spendJti(request.jti, request.ledgerKey, request.tokenExpiresAt * 1000);
        // The view moved by exactly this deduction; no need to read it back.
        const availableAfter = view.availableCents - request.amountCents;
        if (availableAfter < 0) throw new Error("invariant: a deduction never overdraws the view");
        transactionId = row.id;
        result = {
          ok: true,
          transaction: toWalletTransaction(row),
          balanceCents: view.balanceCents - request.amountCents,
          availableCents: availableAfter,
        };
      }
      this.state.storePosOutcome(
        request.ledgerKey,
        { requestHash: request.requestHash, transactionId, result },
        nowMs,
      );
      return { result, replayed: false };
    });
  }

  /** A repeat of a request whose stored outcome is past retention: its transaction is in the ledger. */
  private async answerFromLedger(request: PosDeductionRequest): Promise<PosDeductionResult> {
    const stored = this.state.posOutcome(request.ledgerKey);
    const row = stored?.transactionId ? await findLedgerEntry(this.db, stored.transactionId) : undefined;
    if (!row) throw new Error(`invariant: POS key ${request.ledgerKey} made a transaction the ledger lacks`);
    const view = this.state.view();
    return {
      ok: true,
      transaction: toWalletTransaction(row),
      balanceCents: view.balanceCents,
      availableCents: view.availableCents,
    };
  }

  /** refresh() for a decision that can wait for D1 but must not fail on it: false when D1 failed. */
  private async refreshed(): Promise<boolean> {
    try {
      await this.refresh();
      return true;
    } catch (error) {
      logWarning("wallet refresh failed", error);
      return false;
    }
  }

  /**
   * Flushes (in the FIFO) and reads D1's balance row into the snapshot; the alarm then sends the events of
   * what it carried, and flushes what is left.
   */
  private async refresh(): Promise<void> {
    await this.inOrder(() => this.flushNow());
    if (!this.events.isEmpty() || this.state.hasUnflushed()) await this.scheduleAlarm();
  }

  /**
   * One D1 batch: up to FLUSH_MAX_ROWS decided deductions (skipped if already there), then the wallet's
   * balance row, which becomes the snapshot. The carried rows' events move to the object's outbox in
   * the same storage transaction. Runs only in the FIFO, so no other batch of this object is in flight.
   */
  private async flushNow(): Promise<void> {
    const userId = this.state.boundUser();
    if (userId === undefined) throw new Error("invariant: a flush needs a bound wallet");
    const startedAtMs = Date.now();
    const generation = this.state.beginFlush();
    const carried = this.state.unflushed(FLUSH_MAX_ROWS);
    const expired = this.state.expiredReservations(startedAtMs);
    const statements: Statement[] = [];
    for (let i = 0; i < carried.length; i += LEDGER_ROWS_PER_STATEMENT) {
      const rows = carried.slice(i, i + LEDGER_ROWS_PER_STATEMENT).map((entry) => entry.row);
      statements.push(appendLedgerRowsStatement(this.db, rows));
    }
    const balanceQuery = walletBalanceQuery(this.db, userId);
    const results = await batchResults(this.db, [...statements, balanceQuery]);
    const balance = (results.at(-1) as Awaited<typeof balanceQuery>)[0];
    this.ctx.storage.transactionSync(() =>
      this.state.applySnapshot(
        {
          balanceCents: balance?.balanceCents ?? 0,
          heldCents: balance?.heldCents ?? 0,
          updatedAt: balance?.updatedAt ?? null,
        },
        {
          generation,
          carriedSeqs: carried.map((entry) => entry.seq),
          expiredSeqs: expired,
          readAtMs: startedAtMs,
        },
      ),
    );
    this.lastFlushAtMs = Date.now();
    this.backlogged = carried.length === FLUSH_MAX_ROWS;
  }

  /**
   * Books the flush of a just-decided deduction: at once after a quiet spell (so a lone deduction reaches
   * the ledger within one round trip), else at the end of the window (so a busy wallet's deductions share
   * one batch). The output gate holds the till's answer until the alarm is durable too.
   */
  private async scheduleFlush(): Promise<void> {
    if (this.flushScheduled) return;
    await bookAlarm(this.ctx.storage, this.nextFlushAt(Date.now()));
    this.flushScheduled = true;
  }

  /**
   * Books the alarm for the earliest thing it has to do. `replace`: called from the alarm itself, whose
   * own booking is spent.
   */
  private async scheduleAlarm(replace = false): Promise<void> {
    const nowMs = Date.now();
    const candidates = [
      this.events.isEmpty() ? null : nowMs,
      this.state.hasUnflushed() ? this.nextFlushAt(nowMs) : null,
      this.state.nextReservationExpiry(),
      this.state.nextPruneAt(WALLET_OPERATION_RETENTION_MS),
    ].filter((at): at is number => at !== null);
    if (candidates.length === 0) return;
    await bookAlarm(this.ctx.storage, Math.min(...candidates), replace);
    if (this.state.hasUnflushed()) this.flushScheduled = true;
  }

  private nextFlushAt(nowMs: number): number {
    return this.backlogged ? nowMs : Math.max(nowMs, this.lastFlushAtMs + WALLET_FLUSH_WINDOW_MS);
  }

  private inOrder<T>(task: () => Promise<T>): Promise<T> {
    const run = this.tail.then(task);
    // The chain must survive a failed operation: the next one runs whatever happened to this one.
    this.tail = run.catch(() => undefined);
    return run;
  }

  /**
   * Sends the committed event after answering, outside the FIFO: neither the caller nor the wallet's next
   * request waits for the queue. The event's outbox row committed with the ledger row, and
   * publishOutboxEntry never throws (a failed send stays in the outbox), so an event this misses is sent
   * by the every-minute outbox drain instead.
   */
  private finish<T>(completed: Completed<T>): T {
    if (completed.publish) {
      this.ctx.waitUntil(publishOutboxEntry(this.db, this.env.EVENTS, completed.publish, new Date()));
    }
    return completed.result;
  }

  // The slow operations below write to D1 themselves. Each first flushes (so D1's triggers and CHECKs
  // judge the complete ledger, and a refund finds its deduction), then writes, then refreshes the
  // snapshot (so its answer, and the next deduction, see the change). A debit also reserves its amount
  // for the duration, so deductions decided meanwhile cannot spend it.

  private async refundNext(request: RefundRequest): Promise<Completed<RefundResult>> {
    this.state.bindTo(request.userId);
    const previous = this.state.previousResult<RefundResult>(request.ledgerKey);
    if (previous) return { result: previous };
    await this.flushNow();
    const totals = await findRefundTotals(this.db, request.deductionId);
    if (!totals) throw new Error(`invariant: deduction ${request.deductionId} has no refund totals`);
    const amountCents = refundAmountCents(totals, request.amountCents);
    const refundable = totals.original_cents - totals.refunded_cents;
    if (amountCents === null) {
      // Possibly this very request, retried after it committed: then the ledger has it.
      const existing = await findLedgerEntryByKey(this.db, request.userId, request.ledgerKey);
      if (existing) return { result: await this.postedEarlier(request, existing, sameRefund(request)) };
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
      createdBy: ledgerActors.device(request.deviceId),
      now,
    });
    // Its receipt's event commits with it (sent by finish(), or by the outbox drain if that send fails).
    const refunded = walletRefundedEntry(row);
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
        [statement, outboxStatement(this.db, refunded, now)],
      );
    } catch (error) {
      if (isRefundOverOriginal(error)) {
        const latest = await findRefundTotals(this.db, request.deductionId);
        const left = latest ? latest.original_cents - latest.refunded_cents : 0;
        return { result: { ok: false, code: "refund_exceeds_original", refundableCents: left } };
      }
      return { result: await this.afterFailedPosting(error, request, sameRefund(request)) };
    }
    return { result: await this.posted(request.ledgerKey, row), publish: refunded };
  }

  private async adjustNext(request: AdjustmentRequest): Promise<Completed<AdjustmentResult>> {
    this.state.bindTo(request.userId);
    const previous = this.state.previousResult<AdjustmentResult>(request.ledgerKey);
    if (previous) return { result: previous };
    await this.flushNow();
    const isDebit = request.direction === "debit";
    if (isDebit) {
      const reserved = this.ctx.storage.transactionSync((): WalletShort | null => {
        // An attempt of this very request that stopped midway (the object evicted) already set it aside.
        if (this.state.findReservation(request.ledgerKey)) return null;
        const view = this.state.view();
        if (view.availableCents < request.amountCents) return short(view);
        this.state.reserve(
          request.ledgerKey,
          { balanceDelta: -request.amountCents, heldDelta: 0 },
          Date.now() + SLOW_DEBIT_RESERVATION_MS,
          new Date(),
        );
        return null;
      });
      if (reserved) {
        // Perhaps this very request, retried after it committed: then the ledger has it.
        const existing = await findLedgerEntryByKey(this.db, request.userId, request.ledgerKey);
        if (existing) return { result: await this.postedEarlier(request, existing, sameAdjustment(request)) };
        return { result: reserved };
      }
    }
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
      if (isWalletShort(error)) {
        // Certainly not committed: D1 knows of a change this object has not seen yet. Look, and refuse.
        if (isDebit) this.state.release(request.ledgerKey);
        await this.flushNow();
        return { result: short(this.state.view()) };
      }
      // Committed or not is judged by the ledger. If even that read fails, the reservation stays until it
      // expires, and the flush that drops it reads a snapshot that shows which it was.
      const existing = await findLedgerEntryByKey(this.db, request.userId, request.ledgerKey);
      if (!existing || existing.id !== row.id) {
        if (isDebit) this.state.release(request.ledgerKey);
        if (!existing) throw error;
        return { result: await this.postedEarlier(request, existing, sameAdjustment(request)) };
      }
      if (isDebit) this.state.confirm(request.ledgerKey);
      return { result: await this.posted(request.ledgerKey, row) };
    }
    if (isDebit) this.state.confirm(request.ledgerKey);
    return { result: await this.posted(request.ledgerKey, row) };
  }

  private async postTopupNext(request: TopupPostingRequest): Promise<Completed<TopupPostingResult>> {
    this.state.bindTo(request.userId);
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
    // A credit: the view learns of it with the next snapshot, taken now so the till sees it at once. An
    // object that never decided anything has no view yet; its first decision reads the snapshot anyway.
    if (this.state.hasSnapshot()) await this.flushNow();
    return { result: "processed", publish: posted };
  }

  /** Answers a slow operation that committed `row`: the snapshot is refreshed to include it. */
  private async posted(ledgerKey: string, row: LedgerRow): Promise<WalletPosting> {
    await this.flushNow();
    const view = this.state.view();
    const result: WalletPosting = {
      ok: true,
      transaction: toWalletTransaction(row),
      balanceCents: view.balanceCents,
      availableCents: view.availableCents,
    };
    this.state.remember(ledgerKey, result, Date.now());
    await this.scheduleAlarm();
    return result;
  }

  /** The ledger already has a row under the request's key: answer with it, or refuse a different request. */
  private async postedEarlier(
    request: { ledgerKey: string },
    existing: LedgerRow,
    matches: (row: LedgerRow) => boolean,
  ): Promise<WalletPosting | KeyReused> {
    if (!matches(existing)) return { ok: false, code: "idempotency_key_reused" };
    return this.posted(request.ledgerKey, existing);
  }

  /**
   * A posting batch failed for a reason other than the wallet's own rules. If the ledger holds a row under
   * this key, the batch did commit (an earlier attempt, or this one with its answer lost on the way back):
   * answer with that row. Otherwise the failure is real and is thrown.
   */
  private async afterFailedPosting(
    error: unknown,
    request: { userId: string; ledgerKey: string },
    matches: (row: LedgerRow) => boolean,
  ): Promise<WalletPosting | KeyReused> {
    const existing = await findLedgerEntryByKey(this.db, request.userId, request.ledgerKey);
    if (!existing) throw error;
    return this.postedEarlier(request, existing, matches);
  }
}

/** The DEDUCT row a till's request makes, and the event that announces it (with its audit entry). */
function deductionEntry(
  db: Db,
  request: PosDeductionRequest,
  now: Date,
): { row: LedgerRow; event: WalletTransactionPosted } {
  const { row } = ledgerEntry(db, {
    userId: request.userId,
    type: "DEDUCT",
    amountCents: request.amountCents,
    currency: request.currency,
    reference: request.reference,
    idempotencyKey: request.ledgerKey,
    eventId: request.eventId,
    createdBy: ledgerActors.device(request.deviceId),
    now,
  });
  const event: WalletTransactionPosted = {
    type: "wallet.deducted",
    transaction_id: row.id,
    user_id: row.userId,
    amount_cents: row.amountCents,
    currency: row.currency,
    reference: row.reference,
    event_id: row.eventId,
    device_id: request.deviceId,
    created_at: row.createdAt,
    // Tills deduct far faster than one global hash chain takes synchronous appends: the entry travels
    // with the deduction's event and is chained by the consumer, in order.
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
  };
  return { row, event };
}

const UNAVAILABLE: PosDeductionAnswer = { result: { ok: false, code: "unavailable" }, replayed: false };

function short(view: WalletView): WalletShort {
  return {
    ok: false,
    code: "insufficient_funds",
    balanceCents: view.balanceCents,
    availableCents: view.availableCents,
  };
}

function logWarning(msg: string, error: unknown): void {
  console.error(JSON.stringify({ level: "warn", msg, error: String(error) }));
}

const sameRefund = (request: RefundRequest) => (row: LedgerRow) =>
  row.type === "REFUND" &&
  row.reversalOf === request.deductionId &&
  (request.amountCents === undefined || row.amountCents === request.amountCents);

const sameAdjustment = (request: AdjustmentRequest) => (row: LedgerRow) =>
  row.type === "ADJUSTMENT" && row.direction === request.direction && row.amountCents === request.amountCents;
