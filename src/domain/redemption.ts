// Pure rules of a scan, shared by the ticket's Durable Object and its tests.

export interface EntitlementState {
  function: string;
  total_uses: number;
  remaining_uses: number;
}

export type RedemptionRejection = "token_replayed" | "token_expired" | "no_entitlement" | "exhausted";

/**
 * Decides one scan against the ticket's current state. The order of checks is the contract's: a spent
 * token is refused as replayed before anything about the entitlement is revealed.
 */
export function decideRedemption(input: {
  entitlements: readonly EntitlementState[];
  fn: string;
  jtiSpent: boolean;
  tokenExpiresAtSeconds: number;
  nowMs: number;
}): { ok: true; entitlement: EntitlementState } | { ok: false; code: RedemptionRejection } {
  if (input.tokenExpiresAtSeconds * 1000 <= input.nowMs) return { ok: false, code: "token_expired" };
  if (input.jtiSpent) return { ok: false, code: "token_replayed" };
  const entitlement = input.entitlements.find((e) => e.function === input.fn);
  if (!entitlement) return { ok: false, code: "no_entitlement" };
  if (entitlement.remaining_uses <= 0) return { ok: false, code: "exhausted" };
  return { ok: true, entitlement };
}
