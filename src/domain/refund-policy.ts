import type { OperatorRole } from "../types/domain";

// Who may refund a POS deduction from a till, and when. Pure: the route supplies the facts.

export interface RefundPolicy {
  /** A deduction older than this is refunded by an admin adjustment, not from a till. */
  windowSeconds: number;
  /** A refund above this needs role `supervisor` or `admin`. */
  approvalCents: number;
}

export interface RefundRequestFacts {
  deductionCreatedAt: string;
  /**
   * What the refund may move: the amount asked for, or, when none was named, the whole deduction (what is
   * left of it can only be smaller, so this never lets a large refund through unapproved).
   */
  amountCents: number;
  roles: readonly OperatorRole[];
  now: Date;
}

export type RefundPolicyDecision =
  | { ok: true }
  | { ok: false; code: "refund_window_closed" | "approval_required" };

/** Roles that approve refunds above the limit and may refund from a POS session of any event. */
export const canApproveRefunds = (roles: readonly OperatorRole[]) =>
  roles.includes("supervisor") || roles.includes("admin");

/**
 * Whether a refund needs approval, counted over the whole deduction: what earlier refunds of it returned
 * plus this one. So a large refund split into small ones never passes a till unapproved. `limitCents` is
 * null for a caller who approves refunds. Judged by the wallet's object, in the transaction that records
 * the refund, so two refunds racing under different keys are counted together.
 */
export function refundNeedsApproval(
  limitCents: number | null,
  refundedCents: number,
  amountCents: number,
): boolean {
  return limitCents !== null && refundedCents + amountCents > limitCents;
}

/**
 * The route's early check, before the wallet's object is asked: the window, and approval for the amount
 * asked alone (the object then counts earlier refunds too: refundNeedsApproval).
 */
export function decideRefundPolicy(policy: RefundPolicy, facts: RefundRequestFacts): RefundPolicyDecision {
  const ageMs = facts.now.getTime() - Date.parse(facts.deductionCreatedAt);
  if (ageMs > policy.windowSeconds * 1000) return { ok: false, code: "refund_window_closed" };
  if (facts.amountCents > policy.approvalCents && !canApproveRefunds(facts.roles)) {
    return { ok: false, code: "approval_required" };
  }
  return { ok: true };
}
