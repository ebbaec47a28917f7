import { DurableObject } from "cloudflare:workers";
import { getDb } from "../db/client";
import { orderStatusOf } from "../db/orders";
import {
  directionOf,
  isTillSale,
  ledgerActors,
  ledgerKeys,
  refundAmountCents,
  refuseDeduction,
} from "../domain/ledger";
import { refundNeedsApproval } from "../domain/refund-policy";
import type { Env } from "../env";
import { newWalletTransactionId } from "../ids";
import type { AuditRequest } from "../queues/messages";
import type { LedgerDirection, WalletSummary, WalletTransaction } from "../types/domain";
import { bookAlarm, ObjectOutbox } from "./object-outbox";
import {
  type NewTransfer,
  type StoredOutcome,
  type Transfer,
  toTransaction,
  WalletJournal,
} from "./wallet-journal";
import { ORDER_CREDITS_TIMEOUT_MARGIN_MS, openJournal, readWalletHistory } from "./wallet-opening";

/** Results of finished POS requests are kept this long, so a retried RPC or request gets the first answer. */
export const WALLET_OPERATION_RETENTION_MS = 24 * 60 * 60 * 1000;
/**
 * How long posted transfers may gather in the outbox before one alarm forwards them together, as a
 * ticket's scans do: a busy wallet's sales share a queue send. Far inside the ledger's 10 s promise
 * (LEDGER_LAG_BOUND_MS). Measured: 0.5 s cost 1.19–1.36× a scan's CPU per deduction across 100 wallets,
 * 2 s 1.09–1.17× (the sends, one per wallet per window, are the difference).
 */
const OUTBOX_FLUSH_DELAY_MS = 2_000;
/** Back-off before the alarm retries a send, or a pending transfer whose order D1 could not tell. */
const RETRY_MS = 5_000;
/** Pending transfers the alarm resolves per run; the rest follow at once in the next. */
const TIMEOUTS_PER_ALARM = 20;

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

/** A posted transfer, with the wallet right after it. */
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
/** The key already made a different transfer. */
type KeyReused = { ok: false; code: "idempotency_key_reused" };

export type PosDeductionResult =
  | WalletPosting
  | WalletShort
  | KeyReused
  | { ok: false; code: "token_replayed" | "token_expired" }
  /** D1 could not be read while the wallet's journal was being opened; nothing was decided. */
  | { ok: false; code: "unavailable" };

/** The wallet right after a posting. */
type WalletAfter = { balanceCents: number; availableCents: number };

/** What is kept of a deduction's first answer: a refusal whole; of a posting, the wallet right after it. */
type StoredDeduction = Exclude<PosDeductionResult, WalletPosting> | WalletAfter;

/** `replayed`: the stored outcome of an earlier request with the same key and the same request. */
export interface PosDeductionAnswer {
  result: PosDeductionResult;
  replayed: boolean;
}

export interface RefundRequest {
  /** As for `deduction`: known for ids from before the journal, else the object's own. */
  userId?: string;
  deductionId: string;
  /** Omitted: whatever of the deduction is not refunded yet. */
  amountCents?: number;
  ledgerKey: string;
  operatorId: string;
  /** The till the refund is made at: the row's `created_by`. */
  deviceId: string;
  reason: string;
  /** Refunds of one deduction above this add up to one that needs approval; null: the caller approves. */
  approvalLimitCents: number | null;
}

export type RefundResult =
  | WalletPosting
  | KeyReused
  | { ok: false; code: "not_found" | "approval_required" }
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
  postedAt: string;
}

/** An order's credits, set aside as a pending transfer before the order's batch. */
export interface OrderCreditsRequest {
  userId: string;
  orderId: string;
  amountCents: number;
  currency: string;
  /** The order's payment deadline: the transfer is looked at again a margin after it. */
  orderExpiresAt: string;
  /** Who the DEDUCT will say made it: the buyer (credits pay it all) or the payment it waits for. */
  createdBy: string;
}

export type OrderCreditsAction = "post" | "void";

export type OrderCreditsOutcome =
  | { ok: true; status: "pending" | "posted" }
  | WalletShort
  | { ok: false; code: "voided" | "not_found" };

/** What a till or the buyer sees of the wallet, with whether a wallet token's jti is spent. */
export type WalletView = Omit<WalletSummary, "currency"> & { jtiSpent: boolean };

/**
 * One object per user: the only writer of the wallet's money.
 *
 * Its SQLite journal (./wallet-journal.ts) is the wallet's record: every change is a transfer whose
 * idempotency key is its identity, decided and written in one `transactionSync` together with the balance
 * it moves and the event that announces it (TigerBeetle's shape: posted transfers are final, a reversal
 * is a new transfer, an order's credits are a pending transfer that is posted or voided). The alarm sends
 * the events to the queue, and the consumer appends each posted transfer to D1's `wallet_ledger` once by
 * its id, for reports and exports. Nothing here waits for D1, and no read asks D1: what a buyer or a till
 * sees is the journal.
 */
export class WalletObject extends DurableObject<Env> {
  private readonly journal: WalletJournal;
  private readonly events: ObjectOutbox;
  private flushScheduled = false;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.events = new ObjectOutbox(ctx.storage.sql, env.EVENTS);
    this.journal = new WalletJournal(ctx.storage.sql);
  }

  /** The wallet now, and with a wallet token's `jti`, whether a deduction already spent it. */
  async view(userId: string, jti?: string): Promise<WalletView> {
    await this.opened(userId);
    const account = this.journal.account();
    return {
      balance_cents: account.balanceCents,
      held_cents: account.heldCents,
      available_cents: account.availableCents,
      updated_at: account.updatedAt,
      jtiSpent: jti !== undefined && this.journal.jtiSpent(jti),
    };
  }

  /** One page of the wallet's posted transfers, newest first. */
  async transactions(
    userId: string,
    before: { createdAt: string; id: string } | undefined,
    limit: number,
  ): Promise<ReturnType<WalletJournal["postedPage"]>> {
    await this.opened(userId);
    return this.journal.postedPage(before, limit);
  }

  /**
   * Deducts at a POS till. Idempotent on `ledgerKey`: the outcome (refusals included) is stored with the
   * deduction, so a retry with the same request gets it again.
   */
  async deduct(request: PosDeductionRequest): Promise<PosDeductionAnswer> {
    try {
      await this.opened(request.userId);
    } catch (error) {
      logWarning("wallet journal could not open", error);
      return { result: { ok: false, code: "unavailable" }, replayed: false };
    }
    // A refusal is stored too, and forgotten after retention: the alarm does that.
    return this.change(request.userId, (): PosDeductionAnswer => {
      const stored = this.journal.posOutcome<StoredDeduction>(request.ledgerKey);
      if (stored) {
        if (stored.requestHash !== request.requestHash) {
          return { result: { ok: false, code: "idempotency_key_reused" }, replayed: false };
        }
        return { result: this.replayedDeduction(stored), replayed: true };
      }
      const nowMs = Date.now();
      const account = this.journal.account();
      const refusal = refuseDeduction({
        amountCents: request.amountCents,
        availableCents: account.availableCents,
        jtiSpent: this.journal.jtiSpent(request.jti),
        tokenExpiresAtSeconds: request.tokenExpiresAt,
        nowMs,
      });
      let result: PosDeductionResult;
      if (refusal === "insufficient_funds") result = short(account);
      else if (refusal !== null) result = { ok: false, code: refusal };
      else {
        const transfer = this.journal.record(
          this.newTransfer({
            userId: request.userId,
            type: "DEDUCT",
            amountCents: request.amountCents,
            currency: request.currency,
            reference: request.reference,
            eventId: request.eventId,
            idempotencyKey: request.ledgerKey,
            createdBy: ledgerActors.device(request.deviceId),
          }),
          "posted",
        );
        this.journal.spendJti(request.jti, request.ledgerKey, request.tokenExpiresAt * 1000);
        this.events.add({
          type: "wallet.deducted",
          ...receiptFields(transfer),
          device_id: request.deviceId,
          ledger: toTransaction(transfer),
          // Tills deduct far faster than one global hash chain takes synchronous appends: the entry
          // travels with the deduction's event and is chained by the consumer, in order.
          audit: auditOf(transfer, request.operatorId, "pos.deduct", {
            result: "accepted",
            user_id: request.userId,
            amount_cents: request.amountCents,
            reference: request.reference,
            event_id: request.eventId,
            session_id: request.sessionId,
            device_id: request.deviceId,
          }),
        });
        result = this.postingOf(transfer);
      }
      // Of a posting only the wallet right after it is stored: the transfer itself is in the journal.
      const kept: StoredDeduction = result.ok
        ? { balanceCents: result.balanceCents, availableCents: result.availableCents }
        : result;
      this.journal.storePosOutcome(
        request.ledgerKey,
        {
          requestHash: request.requestHash,
          transactionId: result.ok ? result.transaction.id : null,
          result: kept,
        },
        nowMs,
      );
      return { result, replayed: false };
    });
  }

  /**
   * A posted till sale of this wallet (isTillSale), for the refund route's permission and policy checks;
   * else undefined.
   * `userId`: known to the caller for ids from before the journal (D1 had their row), whose wallet's
   * object may never have been used; a new id's object made it, so it knows its user.
   */
  async deduction(deductionId: string, userId?: string): Promise<WalletTransaction | undefined> {
    userId ??= this.journal.boundUser();
    if (userId === undefined) return undefined;
    await this.opened(userId);
    const transfer = this.journal.byId(deductionId);
    return transfer?.status === "posted" && isTillSale(transfer) ? toTransaction(transfer) : undefined;
  }

  /** Refunds (part of) a till sale of this wallet: a new REFUND transfer reversing it. Idempotent on the key. */
  async refund(request: RefundRequest): Promise<RefundResult> {
    const userId = request.userId ?? this.journal.boundUser();
    if (userId === undefined) return { ok: false, code: "not_found" };
    return this.change(userId, (): RefundResult => {
      const earlier = this.earlier(
        request.ledgerKey,
        (transfer) =>
          transfer.type === "REFUND" &&
          transfer.reversal_of === request.deductionId &&
          (request.amountCents === undefined || transfer.amount_cents === request.amountCents),
      );
      if (earlier) return earlier;
      const deduction = this.journal.byId(request.deductionId);
      if (deduction?.status !== "posted" || !isTillSale(deduction)) return { ok: false, code: "not_found" };
      const left = deduction.amount_cents - deduction.refundedCents;
      if (
        refundNeedsApproval(request.approvalLimitCents, deduction.refundedCents, request.amountCents ?? left)
      ) {
        return { ok: false, code: "approval_required" };
      }
      const totals = { original_cents: deduction.amount_cents, refunded_cents: deduction.refundedCents };
      const amountCents = refundAmountCents(totals, request.amountCents);
      if (amountCents === null) {
        return {
          ok: false,
          code: "refund_exceeds_original",
          refundableCents: totals.original_cents - totals.refunded_cents,
        };
      }
      const transfer = this.journal.record(
        this.newTransfer({
          userId,
          type: "REFUND",
          amountCents,
          currency: deduction.currency,
          reference: deduction.reference,
          reversalOf: deduction.id,
          eventId: deduction.event_id,
          idempotencyKey: request.ledgerKey,
          createdBy: ledgerActors.device(request.deviceId),
        }),
        "posted",
      );
      this.events.add({
        type: "wallet.refunded",
        ...receiptFields(transfer),
        reversal_of: deduction.id,
        ledger: toTransaction(transfer),
        audit: auditOf(transfer, request.operatorId, "pos.refund", {
          user_id: userId,
          reversal_of: deduction.id,
          amount_cents: amountCents,
          event_id: deduction.event_id,
          reason: request.reason,
        }),
      });
      return this.postingOf(transfer);
    });
  }

  /** An admin's credit or debit. Idempotent on `ledgerKey`. */
  async adjust(request: AdjustmentRequest): Promise<AdjustmentResult> {
    return this.change(request.userId, (): AdjustmentResult => {
      const earlier = this.earlier(
        request.ledgerKey,
        (transfer) =>
          transfer.type === "ADJUSTMENT" &&
          transfer.direction === request.direction &&
          transfer.amount_cents === request.amountCents,
      );
      if (earlier) return earlier;
      const account = this.journal.account();
      if (request.direction === "debit" && account.availableCents < request.amountCents)
        return short(account);
      const transfer = this.journal.record(
        this.newTransfer({
          userId: request.userId,
          type: "ADJUSTMENT",
          direction: request.direction,
          amountCents: request.amountCents,
          currency: request.currency,
          reference: null,
          idempotencyKey: request.ledgerKey,
          createdBy: ledgerActors.operator(request.operatorId),
        }),
        "posted",
      );
      this.events.add({
        type: "wallet.posted",
        ledger: toTransaction(transfer),
        audit: auditOf(transfer, request.operatorId, "wallet.adjust", {
          user_id: request.userId,
          direction: request.direction,
          amount_cents: request.amountCents,
          reason: request.reason,
        }),
      });
      return this.postingOf(transfer);
    });
  }

  /**
   * Posts a paid top-up's PURCHASE, once per top-up (its key is the top-up's). `fresh` is false when an
   * earlier call posted it.
   */
  async postTopup(request: TopupPostingRequest): Promise<{ transaction: WalletTransaction; fresh: boolean }> {
    const key = ledgerKeys.topup(request.topupId);
    return this.change(request.userId, () => {
      const earlier = this.journal.byKey(key);
      if (earlier) return { transaction: toTransaction(earlier), fresh: false };
      const transfer = this.journal.record(
        this.newTransfer({
          userId: request.userId,
          type: "PURCHASE",
          amountCents: request.amountCents,
          currency: request.currency,
          reference: request.topupId,
          idempotencyKey: key,
          createdBy: ledgerActors.payments,
          createdAt: request.postedAt,
        }),
        "posted",
      );
      this.events.add({
        type: "wallet.topped_up",
        ...receiptFields(transfer),
        device_id: null,
        ledger: toTransaction(transfer),
      });
      return { transaction: toTransaction(transfer), fresh: true };
    });
  }

  /**
   * Sets an order's credits aside: a pending transfer keyed by the order, made before the order's batch
   * so no till can spend them meanwhile. Idempotent per order. The order's settlement posts or voids it
   * (resolveOrderCredits); if none ever does, its timeout asks D1 how the order ended.
   */
  async holdOrderCredits(request: OrderCreditsRequest): Promise<OrderCreditsOutcome> {
    return this.change(request.userId, (): OrderCreditsOutcome => {
      const earlier = this.journal.byKey(ledgerKeys.order(request.orderId));
      if (earlier)
        return earlier.status === "voided"
          ? { ok: false, code: "voided" }
          : { ok: true, status: earlier.status };
      const account = this.journal.account();
      if (account.availableCents < request.amountCents) return short(account);
      this.journal.record(
        this.newTransfer({
          userId: request.userId,
          type: "DEDUCT",
          amountCents: request.amountCents,
          currency: request.currency,
          reference: request.orderId,
          idempotencyKey: ledgerKeys.order(request.orderId),
          createdBy: request.createdBy,
        }),
        "pending",
        Date.parse(request.orderExpiresAt) + ORDER_CREDITS_TIMEOUT_MARGIN_MS,
      );
      return { ok: true, status: "pending" };
    });
  }

  /**
   * The order settled: `post` when it was paid (its credits are taken), `void` when it never will be (they
   * come back). Once per order: a second call answers the same, and posted credits stay posted.
   */
  async resolveOrderCredits(
    userId: string,
    orderId: string,
    action: OrderCreditsAction,
  ): Promise<OrderCreditsOutcome> {
    return this.change(userId, () => this.settleOrderCredits(orderId, action));
  }

  /**
   * The wallet as reconciliation compares it with D1: its balance, how many transfers are posted and when
   * the newest was, and whether events are still waiting to be sent (D1 cannot have those yet).
   */
  async reconciliationView(
    userId: string,
  ): Promise<{ balanceCents: number; postedCount: number; newestPostedAt: string | null; unsent: boolean }> {
    await this.opened(userId);
    const totals = this.journal.postedTotals();
    return {
      balanceCents: this.journal.account().balanceCents,
      postedCount: totals.count,
      newestPostedAt: totals.newestAt,
      unsent: !this.events.isEmpty(),
    };
  }

  /** Sends the outbox, resolves pending transfers whose timeout came, forgets what can no longer matter. */
  override async alarm(): Promise<void> {
    this.flushScheduled = false;
    const userId = this.journal.boundUser();
    if (userId !== undefined && !this.journal.isOpen()) {
      // An object last run in the old layout, woken by its old alarm: open now, so the deductions it had
      // not flushed reach D1 without waiting for the wallet's next request.
      try {
        await this.opened(userId);
      } catch (error) {
        logWarning("wallet journal could not open; will retry", error);
        await bookAlarm(this.ctx.storage, Date.now() + RETRY_MS, true);
        return;
      }
    }
    const sent = await this.events.send();
    let retryAtMs = sent ? null : Date.now() + RETRY_MS;
    if (this.journal.isOpen()) {
      if (!(await this.resolveTimedOut())) retryAtMs ??= Date.now() + RETRY_MS;
      this.journal.prune(Date.now(), WALLET_OPERATION_RETENTION_MS);
    }
    if (retryAtMs !== null) await bookAlarm(this.ctx.storage, retryAtMs, true);
    else await this.scheduleAlarm(true);
  }

  /**
   * A pending transfer's timeout: its order neither posted nor voided it in time, so D1 says how the order
   * ended. Paid → post (the credits paid it), still awaiting payment → look again later, anything else
   * (expired, failed, or no order: its batch never committed) → void. So credits are never released for
   * an order that was paid, however the settlement's call to this object was lost. False when D1 could
   * not be read; the alarm then retries.
   */
  private async resolveTimedOut(): Promise<boolean> {
    const due = this.journal.timedOut(Date.now(), TIMEOUTS_PER_ALARM);
    if (due.length === 0) return true;
    let statuses: Map<string, string>;
    try {
      statuses = await orderStatusOf(
        getDb(this.env.DB),
        due.map((transfer) => transfer.reference ?? ""),
      );
    } catch (error) {
      logWarning("pending wallet transfers not resolved; D1 unreadable", error);
      return false;
    }
    this.ctx.storage.transactionSync(() => {
      for (const transfer of due) {
        const status = statuses.get(transfer.reference ?? "");
        if (status === "PAID") this.postOrder(transfer);
        else if (status === "PENDING_PAYMENT")
          this.journal.postpone(transfer, Date.now() + ORDER_CREDITS_TIMEOUT_MARGIN_MS);
        else this.voidOrder(transfer);
      }
    });
    return true;
  }

  private settleOrderCredits(orderId: string, action: OrderCreditsAction): OrderCreditsOutcome {
    const transfer = this.journal.byKey(ledgerKeys.order(orderId));
    if (!transfer) return { ok: false, code: "not_found" };
    if (transfer.status === "pending") {
      if (action === "post") this.postOrder(transfer);
      else this.voidOrder(transfer);
      return action === "post" ? { ok: true, status: "posted" } : { ok: false, code: "voided" };
    }
    return transfer.status === "voided" ? { ok: false, code: "voided" } : { ok: true, status: "posted" };
  }

  private postOrder(transfer: Transfer): void {
    const posted = this.journal.post(transfer, new Date().toISOString());
    this.events.add({
      type: "wallet.posted",
      ledger: toTransaction(posted),
      ...(transfer.legacyHold && { legacy_hold: true }),
    });
  }

  private voidOrder(transfer: Transfer): void {
    this.journal.void(transfer);
    if (transfer.legacyHold && transfer.reference !== null) {
      this.events.add({
        type: "wallet.legacy_hold_voided",
        user_id: transfer.user_id,
        order_id: transfer.reference,
        voided_at: new Date().toISOString(),
      });
    }
  }

  /**
   * Opens the journal on first use (./wallet-opening.ts), with every other request to this object held
   * back meanwhile: the wallet's past is read from D1 once, and no decision is made before it is in.
   */
  private async opened(userId: string): Promise<void> {
    if (this.journal.isOpen()) {
      this.journal.bindTo(userId);
      return;
    }
    await this.ctx.blockConcurrencyWhile(async () => {
      this.journal.bindTo(userId);
      if (this.journal.isOpen()) return;
      const history = await readWalletHistory(getDb(this.env.DB), userId);
      this.ctx.storage.transactionSync(() =>
        openJournal(this.ctx.storage.sql, this.journal, this.events, userId, history, new Date()),
      );
    });
    await this.scheduleAlarm();
  }

  /**
   * One change of the wallet: decided and written in one `transactionSync` (no await between a check and
   * the write it guards), once the journal is open; then the alarm is booked for what the change queued.
   */
  private async change<T>(userId: string, decide: () => T): Promise<T> {
    await this.opened(userId);
    const result = this.ctx.storage.transactionSync(decide);
    await this.scheduleAlarm();
    return result;
  }

  /**
   * What an earlier call with this key made: its posting again when `same` says it was this request,
   * else `idempotency_key_reused`; undefined when the key is new.
   */
  private earlier(key: string, same: (transfer: Transfer) => boolean): WalletPosting | KeyReused | undefined {
    const transfer = this.journal.byKey(key);
    if (!transfer) return undefined;
    return same(transfer) ? this.postingOf(transfer) : { ok: false, code: "idempotency_key_reused" };
  }

  /** A new transfer of this wallet: its id names this object, its direction follows from its type. */
  private newTransfer(
    fields: Omit<NewTransfer, "id" | "createdAt" | "direction"> & {
      direction?: LedgerDirection;
      createdAt?: string;
    },
  ): NewTransfer {
    return {
      ...fields,
      direction: directionOf(fields.type, fields.direction),
      id: newWalletTransactionId(this.ctx.id.toString()),
      createdAt: fields.createdAt ?? new Date().toISOString(),
    };
  }

  /** A transfer's posting, with the wallet as `after` says it was right after it, else as it is now. */
  private postingOf(transfer: Transfer | undefined, after?: WalletAfter | null): WalletPosting {
    if (!transfer) throw new Error("invariant: a stored outcome's transaction is in the journal");
    const wallet = after ?? this.journal.account();
    return {
      ok: true,
      transaction: toTransaction(transfer),
      balanceCents: wallet.balanceCents,
      availableCents: wallet.availableCents,
    };
  }

  /**
   * The first answer to a deduction's key, again: a refusal as stored; a posting from its transfer and the
   * wallet right after it. Past retention only the transaction is kept, and the wallet is as it is now.
   * (Outcomes stored before this layout kept the whole posting; its balances are read the same way.)
   */
  private replayedDeduction(stored: StoredOutcome<StoredDeduction>): PosDeductionResult {
    if (stored.transactionId !== null)
      return this.postingOf(this.journal.byId(stored.transactionId), stored.result as WalletAfter | null);
    if (stored.result === null || !("ok" in stored.result)) {
      throw new Error("invariant: a refusal's stored outcome is kept whole until it is pruned");
    }
    return stored.result;
  }

  /**
   * Books the alarm for the earliest thing it has to do: send events (after a short gathering window),
   * look at a pending transfer, forget a jti or outcome. `replace`: called from the alarm itself.
   */
  private async scheduleAlarm(replace = false): Promise<void> {
    const nowMs = Date.now();
    const pendingEvents = !this.events.isEmpty();
    if (pendingEvents && this.flushScheduled && !replace) return;
    const candidates = [
      pendingEvents ? nowMs + (replace ? 0 : OUTBOX_FLUSH_DELAY_MS) : null,
      this.journal.isOpen() ? this.journal.nextTimeout() : null,
      this.journal.isOpen() ? this.journal.nextPruneAt(WALLET_OPERATION_RETENTION_MS) : null,
    ].filter((at): at is number => at !== null);
    if (candidates.length === 0) return;
    await bookAlarm(this.ctx.storage, Math.min(...candidates), replace);
    if (pendingEvents) this.flushScheduled = true;
  }
}

/** The receipt fields wallet events have always carried, from the transfer. */
function receiptFields(transfer: WalletTransaction) {
  return {
    transaction_id: transfer.id,
    user_id: transfer.user_id,
    amount_cents: transfer.amount_cents,
    currency: transfer.currency,
    reference: transfer.reference,
    event_id: transfer.event_id,
    created_at: transfer.created_at,
  };
}

function auditOf(
  transfer: WalletTransaction,
  actor: string,
  action: string,
  details: Record<string, unknown>,
): AuditRequest {
  return { id: `aud_${transfer.id}`, actor, action, target: transfer.id, details, ts: transfer.created_at };
}

function short(account: { balanceCents: number; availableCents: number }): WalletShort {
  return {
    ok: false,
    code: "insufficient_funds",
    balanceCents: account.balanceCents,
    availableCents: account.availableCents,
  };
}

function logWarning(msg: string, error: unknown): void {
  console.error(JSON.stringify({ level: "warn", msg, error: String(error) }));
}
