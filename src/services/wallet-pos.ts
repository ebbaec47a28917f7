import type { OperatorClaims } from "../auth/operator-token";
import {
  type QrTokenRefusal,
  type QrTokenVerification,
  verifyQrToken,
  WALLET_QR_AUDIENCE,
  WALLET_QR_TYP,
} from "../auth/qr-token";
import { walletRef } from "../auth/wallet-ref";
import { findLedgerEntry } from "../db/ledger";
import { lastPosReceipt } from "../db/receipts";
import { ledgerKeys, receiptIdForTransaction } from "../domain/ledger";
import { canApproveRefunds } from "../domain/refund-policy";
import type { Config } from "../env";
import { walletObjectIdOf } from "../ids";
import type { PosDeductionResult, RefundResult, WalletObject, WalletPosting } from "../objects/wallet";
import { requestAudit } from "../queues/messages";
import type { PosReceipt, WalletTransaction } from "../types/domain";
import type { PosContext, PosSession } from "./pos-session";
import { walletObject } from "./wallet-object";

/** Where a till sends a customer whose wallet is short: the buyer app's wallet page. */
export const TOPUP_PATH = "/#wallet";

/**
 * A wallet QR token: typ, audience, issuer and algorithm pinned, so a ticket's gate token is refused
 * here (`token_invalid`) exactly as a wallet token is refused at the gate.
 */
export async function verifyWalletQrToken(
  config: Config,
  token: string,
  options: { acceptExpired?: boolean } = {},
): Promise<QrTokenVerification> {
  const verified = await verifyQrToken(config, token, {
    typ: WALLET_QR_TYP,
    audience: WALLET_QR_AUDIENCE,
    ...options,
  });
  if (!verified.ok) return verified;
  const { nonce } = verified.token.payload;
  if (typeof nonce !== "string" || nonce.length === 0) {
    return { ok: false, code: "token_invalid", detail: "Token has no nonce" };
  }
  return verified;
}

export interface PosWalletView {
  wallet_ref: string;
  balance_cents: number;
  available_cents: number;
  currency: string;
  last_receipt?: LastReceipt;
}

/** The wallet's latest POS receipt at the till's event: enough to answer "did that go through?". */
export interface LastReceipt {
  id: string;
  transaction_id: string;
  amount_cents: number;
  event_id: string;
  device_id: string | null;
  created_at: string;
}

/**
 * What a till may see of a wallet: an opaque reference, the balance and the last receipt at its own
 * event. Never the history, never the user id. Does not spend the token. Audited. The balance is the
 * wallet object's journal: what a deduction may take now.
 * A token a deduction already spent is refused here (`token_replayed`, audited as rejected), so the
 * till learns it at the scan and not at the charge; the wallet's object is the one that knows.
 */
export async function lookupWallet(
  context: PosContext,
  session: PosSession,
  qrToken: string,
): Promise<{ ok: true; wallet: PosWalletView } | QrTokenRefusal | { ok: false; code: "token_replayed" }> {
  const { db, config, operator, now } = context;
  const verified = await verifyWalletQrToken(config, qrToken);
  if (!verified.ok) return verified;
  const { token } = verified;
  const userId = token.subject;
  const [wallet, receipt, ref] = await Promise.all([
    walletObject(context.env.WALLETS, userId).view(userId, token.jti),
    lastPosReceipt(db, userId, session.eventId),
    walletRef(config, session.eventId, userId),
  ]);
  await requestAudit(context.env.EVENTS, {
    id: `aud_lookup_${crypto.randomUUID()}`,
    actor: operator.operatorId,
    action: "pos.wallet_lookup",
    target: `wallet:${userId}`,
    details: {
      wallet_ref: ref,
      session_id: session.sessionId,
      device_id: session.deviceId,
      event_id: session.eventId,
      ...(wallet.jtiSpent && { result: "rejected", code: "token_replayed" }),
    },
    ts: now.toISOString(),
  });
  if (wallet.jtiSpent) return { ok: false, code: "token_replayed" };
  const view: PosWalletView = {
    wallet_ref: ref,
    balance_cents: wallet.balance_cents,
    available_cents: wallet.available_cents,
    currency: config.currency,
    ...(receipt && {
      last_receipt: {
        id: receipt.id,
        transaction_id: receipt.transactionId,
        amount_cents: receipt.amountCents,
        event_id: session.eventId,
        device_id: receipt.deviceId,
        created_at: receipt.createdAt,
      },
    }),
  };
  return { ok: true, wallet: view };
}

export interface DeductionRequest {
  qrToken: string;
  amountCents: number;
  reference: string | null;
  idempotencyKey: string;
  /** hashRequest of the HTTP body: what "the same request" means under one key. */
  requestHash: string;
}

export interface PosDeduction {
  transaction_id: string;
  amount_cents: number;
  balance_cents: number;
  available_cents: number;
  currency: string;
  receipt: PosReceipt;
}

/** Why a till's deduction was refused: the token, or the wallet's object's own refusal. */
export type PosDeductionRefusal = QrTokenRefusal | Exclude<PosDeductionResult, WalletPosting>;

/** `replayed`: the stored outcome of an earlier request with the same key, success or refusal. */
export type PosDeductionOutcome =
  | { ok: true; deduction: PosDeduction; replayed: boolean }
  | { ok: false; refusal: PosDeductionRefusal; replayed: boolean };

/**
 * Deducts at a till through the wallet's object, which decides alone and stores the outcome under the
 * (operator, key) pair, so the Idempotency-Key is held by the wallet and a retry never touches D1. A
 * refusal (bad, spent or expired token, too little credit, the key reused) is audited the first time and
 * answered as replayed after; `unavailable` decided nothing and is not audited.
 *
 * The token is verified even when expired: a retry after `exp` must still reach its stored outcome. The
 * object refuses an expired token for anything new.
 */
export async function deductAtPos(
  context: PosContext,
  session: PosSession,
  request: DeductionRequest,
): Promise<PosDeductionOutcome> {
  const { env, config, operator } = context;
  const verified = await verifyWalletQrToken(config, request.qrToken, { acceptExpired: true });
  if (!verified.ok) return refuseDeduction(context, session, request, null, verified, false);
  const { token } = verified;
  const userId = token.subject;
  const { result, replayed } = await walletObject(env.WALLETS, userId).deduct({
    userId,
    ledgerKey: ledgerKeys.posDeduction(operator.operatorId, request.idempotencyKey),
    requestHash: request.requestHash,
    amountCents: request.amountCents,
    currency: config.currency,
    reference: request.reference,
    jti: token.jti,
    tokenExpiresAt: token.expiresAt,
    operatorId: operator.operatorId,
    sessionId: session.sessionId,
    deviceId: session.deviceId,
    eventId: session.eventId,
  });
  if (!result.ok) return refuseDeduction(context, session, request, userId, result, replayed);
  const { transaction } = result;
  const deduction: PosDeduction = {
    transaction_id: transaction.id,
    amount_cents: transaction.amount_cents,
    balance_cents: result.balanceCents,
    available_cents: result.availableCents,
    currency: transaction.currency,
    receipt: {
      id: receiptIdForTransaction(transaction.id),
      event_id: session.eventId,
      device_id: session.deviceId,
      created_at: transaction.created_at,
    },
  };
  return { ok: true, deduction, replayed };
}

/** Audits a refusal the first time it is made (a replay was audited then), and answers it. */
async function refuseDeduction(
  context: PosContext,
  session: PosSession,
  request: DeductionRequest,
  userId: string | null,
  refusal: PosDeductionRefusal,
  replayed: boolean,
): Promise<PosDeductionOutcome> {
  if (!replayed && refusal.code !== "unavailable") {
    await requestAudit(context.env.EVENTS, {
      id: `aud_refused_${crypto.randomUUID()}`,
      actor: context.operator.operatorId,
      action: "pos.deduct",
      target: userId === null ? null : `wallet:${userId}`,
      details: {
        result: "rejected",
        // The refusals' codes are the contract's own (`unavailable` aside, never audited).
        code: refusal.code,
        amount_cents: request.amountCents,
        session_id: session.sessionId,
        device_id: session.deviceId,
        event_id: session.eventId,
      },
      ts: context.now.toISOString(),
    });
  }
  return { ok: false, refusal, replayed };
}

/**
 * The deduction a caller may refund, asked of its wallet's object: a DEDUCT at one of the operator's
 * events, or any DEDUCT for a supervisor or an admin. Anything else, including someone else's event,
 * answers exactly like a missing transaction.
 *
 * A transaction id names its wallet's object (ids.ts), so the owner answers at once, however recent the
 * sale. Ids from before the wallet's journal are looked up in D1, which had every row of that time.
 * Undefined when there is none the caller may refund.
 */
export async function findRefundableDeduction(
  context: Pick<PosContext, "env" | "db">,
  operator: OperatorClaims,
  transactionId: string,
): Promise<RefundableDeduction | undefined> {
  const owner = await ownerOf(context, transactionId);
  const wallet = owner?.wallet;
  const deduction = owner && (await owner.wallet.deduction(transactionId, owner.userId));
  const allowed =
    deduction !== undefined &&
    (canApproveRefunds(operator.roles) ||
      (deduction.event_id !== null && operator.eventIds.includes(deduction.event_id)));
  if (!wallet || !deduction || !allowed) return undefined;
  return { wallet, deduction, userId: owner.userId };
}

export interface RefundableDeduction {
  wallet: DurableObjectStub<WalletObject>;
  deduction: WalletTransaction;
  /** Known for ids from before the journal, whose wallet's object may not have opened yet. */
  userId?: string;
}

async function ownerOf(
  context: Pick<PosContext, "env" | "db">,
  transactionId: string,
): Promise<{ wallet: DurableObjectStub<WalletObject>; userId?: string } | undefined> {
  const objectId = walletObjectIdOf(transactionId);
  if (objectId !== undefined) {
    try {
      return { wallet: context.env.WALLETS.get(context.env.WALLETS.idFromString(objectId)) };
    } catch {
      return undefined; // not an id of this namespace
    }
  }
  const row = transactionId.startsWith("txn_") ? await findLedgerEntry(context.db, transactionId) : undefined;
  return row && { wallet: walletObject(context.env.WALLETS, row.userId), userId: row.userId };
}

export type PosRefund = Omit<WalletTransaction, "user_id"> & {
  wallet_ref: string | null;
  /** The wallet right after this refund, as a deduction's answer has it: the till shows it at once. */
  balance_cents: number;
  available_cents: number;
};

/** Why the wallet's object refused a refund (more than is left of the deduction, the key reused, ...). */
export type PosRefundRefusal = Exclude<RefundResult, WalletPosting>;

/**
 * Refunds (part of) a deduction through the wallet's object, which refuses more than is left of it.
 * Audited with the refund.
 */
export async function refundDeduction(
  context: PosContext,
  { wallet, deduction, userId: ownerUserId }: RefundableDeduction,
  session: PosSession,
  request: { amountCents?: number; reason: string; idempotencyKey: string },
): Promise<{ ok: true; refund: PosRefund } | PosRefundRefusal> {
  const { config, operator } = context;
  const result: RefundResult = await wallet.refund({
    userId: ownerUserId,
    deductionId: deduction.id,
    amountCents: request.amountCents,
    ledgerKey: ledgerKeys.posRefund(operator.operatorId, request.idempotencyKey),
    operatorId: operator.operatorId,
    deviceId: session.deviceId,
    reason: request.reason,
    approvalLimitCents: canApproveRefunds(operator.roles) ? null : config.refundApprovalCents,
  });
  if (!result.ok) return result;
  const { user_id: userId, ...row } = result.transaction;
  const refund: PosRefund = {
    ...row,
    wallet_ref: deduction.event_id === null ? null : await walletRef(config, deduction.event_id, userId),
    balance_cents: result.balanceCents,
    available_cents: result.availableCents,
  };
  return { ok: true, refund };
}
