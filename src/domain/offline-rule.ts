// The offline gate's rule: what a gate may decide alone, from (token, function, kit, its own history, now).
// It is bundled into the gate page and into the Worker (the differential and property tests run it against
// the ticket object's own rule), so it imports nothing but the shared scan rule.

import { judgeScan, type RedemptionRejection } from "./redemption";

/** The contract's defaults: one offline accept per ticket and function per device, for half an hour. */
export const DEFAULT_OFFLINE_ACCEPTS_PER_TICKET_FUNCTION = 1;
export const DEFAULT_MAX_OFFLINE_SECONDS = 1_800;

export interface OfflineBudget {
  max_offline_seconds: number;
  accepts_per_ticket_function: number;
}

/** What the gate knows of a ticket token once its signature, issuer, audience and `typ` checked out. */
export interface OfflineToken {
  ticketCode: string;
  jti: string;
  /** `nbf` (or `iat`) in Unix seconds: the token is not good before it. */
  notBeforeSeconds: number;
  /** When the token stops being good (its `exp`, capped by its age bound), in Unix seconds. */
  expiresAtSeconds: number;
  /** The ticket's functions (the token's `fns` claim); null for a token without it (decided online only). */
  functions: readonly string[] | null;
  /**
   * Those of them with no use left when the token was signed (its `used` claim): a gate alone refuses
   * them as exhausted, however old the use-up, without a kit having to list it.
   */
  usedUp?: readonly string[];
}

/**
 * What the gate knows of one ticket+function, merged from its kit and its own scans:
 * - `blocked`: the kit lists it (used up): never accepted offline;
 * - `knownRemaining`: the lowest count of uses left the gate has been told (a kit's `scarce` entry, the
 *   answer to an online scan, a reconciliation result); undefined when it was never told. Uses only go
 *   down (an annulment aside), so the lowest count is also the newest, and a stale kit cannot raise it;
 * - `outstanding`: this gate's own accepts whose result it has not seen: offline accepts not yet
 *   reconciled, and online scans whose answer was lost (they may have spent a use).
 */
export interface TicketFunctionKnowledge {
  blocked: boolean;
  knownRemaining: number | undefined;
  outstanding: number;
}

/**
 * Refusals only a gate offline makes: a token not valid yet by the gate's clock, a token that does not name
 * its ticket's functions (`needs_online`), a ticket+function whose offline allowance is spent, a kit older
 * than the budget allows.
 */
export type OfflineRefusal =
  | RedemptionRejection
  | "not_yet_valid"
  | "needs_online"
  | "offline_limit"
  | "offline_too_long";

export interface OfflineScanInput {
  token: OfflineToken;
  fn: string;
  /** The gate accepted this jti already (a refusal spends nothing, as online). */
  jtiSeen: boolean;
  knowledge: TicketFunctionKnowledge;
  budget: OfflineBudget;
  /** When the gate last heard from the server (its kit's `issued_at`), in ms. */
  lastContactMs: number;
  nowMs: number;
}

export type OfflineDecision = { ok: true } | { ok: false; code: OfflineRefusal };

/**
 * How many more times this gate may accept the ticket+function offline: the budget, never more than the
 * uses it knows are left, minus its own accepts still in flight. Zero when the kit blocks it.
 *
 * This is what bounds the over-spend (README, "Offline risk"): a gate's unreconciled accepts never exceed
 * min(budget, uses it knows are left), so with D gates at most D × budget accepts are in flight, and at
 * least min(budget, uses left) of them find a use.
 */
export function offlineAllowance(knowledge: TicketFunctionKnowledge, budget: OfflineBudget): number {
  if (knowledge.blocked) return 0;
  const cap = Math.min(
    budget.accepts_per_ticket_function,
    knowledge.knownRemaining ?? budget.accepts_per_ticket_function,
  );
  return Math.max(0, cap - knowledge.outstanding);
}

/**
 * Decides one scan with no server to ask. The checks run in the online rule's order (judgeScan): a gate
 * offline refuses everything the ticket object would refuse given the same facts, and then refuses more:
 * a token without its functions, a kit too old, a ticket+function whose offline allowance is spent.
 */
export function decideOfflineScan(input: OfflineScanInput): OfflineDecision {
  const { token, knowledge, budget, nowMs } = input;
  if (nowMs - input.lastContactMs > budget.max_offline_seconds * 1000) {
    return { ok: false, code: "offline_too_long" };
  }
  if (token.notBeforeSeconds * 1000 > nowMs + QR_CLOCK_TOLERANCE_MS) {
    return { ok: false, code: "not_yet_valid" };
  }
  if (token.functions === null) return { ok: false, code: "needs_online" };
  const judged = judgeScan({
    tokenExpiresAtSeconds: token.expiresAtSeconds,
    nowMs,
    jtiSpent: input.jtiSeen,
    hasEntitlement: token.functions.includes(input.fn),
    remainingUses:
      knowledge.blocked || token.usedUp?.includes(input.fn)
        ? 0
        : (knowledge.knownRemaining ?? Number.POSITIVE_INFINITY),
  });
  if (!judged.ok) return judged;
  if (offlineAllowance(knowledge, budget) <= 0) return { ok: false, code: "offline_limit" };
  return { ok: true };
}

/** Skew tolerated between the signer's clock and the gate's for a token's start (as jose's clockTolerance). */
export const QR_CLOCK_TOLERANCE_MS = 5_000;
