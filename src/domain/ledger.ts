// Pure rules of the credits ledger, shared by the stores, the wallet's Durable Object and the tests.

import type { LedgerDirection, LedgerType } from "../types/domain";

/**
 * D1's copy of the ledger trails the wallets' journals by at most this much in normal running: the object
 * sends a posting's event within half a second, the queue delivers within its one-second batch window,
 * and the consumer appends it at once. Reports state the lag they observe (GET /reports/transactions);
 * reconciliation compares a wallet only once its newest posting is older than this.
 */
export const LEDGER_LAG_BOUND_MS = 10_000;

/** The largest single POS deduction: a till sells drinks and merchandise, not cars. */
export const MAX_POS_DEDUCTION_CENTS = 100_000;
/** The largest single admin adjustment; larger corrections are split so each is reviewed. */
export const MAX_ADJUSTMENT_CENTS = 1_000_000;
/** Free text a till attaches to a deduction (its own sale id). */
export const MAX_POS_REFERENCE_LENGTH = 128;
/** Why a refund or adjustment was made; kept in the audit log forever. */
export const MAX_REASON_LENGTH = 500;
/** The highest `credits_cents` an order may ask for; the order's total is the real bound. */
export const MAX_ORDER_CREDITS_CENTS = 10_000_000;

/** The direction a row of this type moves the balance; ADJUSTMENT takes the one it was asked for. */
export function directionOf(type: LedgerType, adjustment?: LedgerDirection): LedgerDirection {
  switch (type) {
    case "PURCHASE":
    case "REFUND":
      return "credit";
    case "DEDUCT":
      return "debit";
    case "ADJUSTMENT":
      if (!adjustment) throw new Error("an ADJUSTMENT needs a direction");
      return adjustment;
  }
}

/** What a row adds to the balance: positive for credits, negative for debits. */
export function signedAmountCents(row: { direction: LedgerDirection; amount_cents: number }): number {
  return row.direction === "credit" ? row.amount_cents : -row.amount_cents;
}

/** The balance a ledger adds up to; the database keeps `wallet_balances` equal to this. */
export function ledgerBalanceCents(
  rows: readonly { direction: LedgerDirection; amount_cents: number }[],
): number {
  return rows.reduce((sum, row) => sum + signedAmountCents(row), 0);
}

export function availableCents(wallet: { balance_cents: number; held_cents: number }): number {
  return wallet.balance_cents - wallet.held_cents;
}

/**
 * Whether a ledger row is a sale made at a till: the only thing a POS refund may reverse. A till's DEDUCT
 * always names its session's event; an order's credits (also a DEDUCT) name none, and come back only
 * through the order's own refund or an admin's adjustment, never through a till.
 */
export function isTillSale(row: { type: LedgerType; event_id: string | null }): boolean {
  return row.type === "DEDUCT" && row.event_id !== null;
}

/**
 * The ledger's idempotency keys, one namespace per operation and caller, so that two callers (or one
 * caller's two operations) that happen to pick the same Idempotency-Key never collide on one wallet.
 */
export const ledgerKeys = {
  topup: (topupId: string) => `topup:${topupId}`,
  order: (orderId: string) => `order:${orderId}`,
  posDeduction: (operatorId: string, key: string) => `pos.deduct:${operatorId}:${key}`,
  posRefund: (operatorId: string, key: string) => `pos.refund:${operatorId}:${key}`,
  adjustment: (operatorId: string, key: string) => `adjust:${operatorId}:${key}`,
};

/**
 * Who wrote a row: the buyer, a staff operator (an admin's adjustment), the registered till a POS sale or
 * refund was made at (its operator is in the row's event and audit entry), or the payment system acting
 * on a webhook.
 */
export const ledgerActors = {
  user: (userId: string) => `user:${userId}`,
  operator: (operatorId: string) => `operator:${operatorId}`,
  device: (deviceId: string) => `device:${deviceId}`,
  payments: "system:payments",
};

/** One receipt per transaction: its id is derived from the transaction's, so redelivery writes nothing new. */
export function receiptIdForTransaction(transactionId: string): string {
  return `rct_${transactionId.replace(/^txn_/, "")}`;
}

export type OrderCredits =
  | { kind: "none"; appliedCents: 0 }
  | { kind: "partial"; appliedCents: number }
  | { kind: "full"; appliedCents: number }
  | { kind: "exceeds_total"; totalCents: number };

/**
 * How an order's credits pay for it: not at all, part (a hold now, posted with the card payment), or the
 * whole total (paid at once). Asking for more than the total is a validation failure, not a silent cap:
 * the buyer said how much to spend and we will not spend a different amount.
 */
export function planOrderCredits(totalCents: number, creditsCents: number | undefined): OrderCredits {
  if (creditsCents === undefined || creditsCents === 0) return { kind: "none", appliedCents: 0 };
  if (creditsCents > totalCents) return { kind: "exceeds_total", totalCents };
  return creditsCents === totalCents
    ? { kind: "full", appliedCents: creditsCents }
    : { kind: "partial", appliedCents: creditsCents };
}

/**
 * What a refund of a deduction may still return. `requested` undefined means "whatever is left". Returns
 * the amount to refund, or null when that would exceed the original (including when nothing is left).
 */
export function refundAmountCents(
  totals: { original_cents: number; refunded_cents: number },
  requested: number | undefined,
): number | null {
  const remaining = totals.original_cents - totals.refunded_cents;
  const amount = requested ?? remaining;
  return amount >= 1 && amount <= remaining ? amount : null;
}

export type DeductionRefusal = "token_expired" | "token_replayed" | "insufficient_funds";

/**
 * Whether a till may take `amountCents` now, judged in the contract's order: a token past `exp` is
 * refused outright (the route verified it with some clock tolerance, and its jti is forgotten at `exp`,
 * so inside that tolerance it could otherwise be replayed), then a spent jti, then the available credit.
 */
export function refuseDeduction(input: {
  amountCents: number;
  availableCents: number;
  jtiSpent: boolean;
  tokenExpiresAtSeconds: number;
  nowMs: number;
}): DeductionRefusal | null {
  if (input.tokenExpiresAtSeconds * 1000 <= input.nowMs) return "token_expired";
  if (input.jtiSpent) return "token_replayed";
  if (input.availableCents < input.amountCents) return "insufficient_funds";
  return null;
}
