// Pure rules of a scan, shared by the ticket's Durable Object and its tests.

export interface EntitlementState {
  function: string;
  total_uses: number;
  remaining_uses: number;
}

export type RedemptionRejection = "token_replayed" | "token_expired" | "no_entitlement" | "exhausted";

/**
 * The scan rule itself, on facts alone, shared by the ticket object online (decideRedemption) and the gate
 * offline (offline-rule.ts). The order of checks is the contract's: an expired token first (a spent
 * jti is forgotten once its token has expired, so after `exp` only expiry can be told reliably), then a
 * spent token as replayed, before anything about the entitlement is revealed.
 */
export function judgeScan(facts: {
  tokenExpiresAtSeconds: number;
  nowMs: number;
  jtiSpent: boolean;
  hasEntitlement: boolean;
  remainingUses: number;
}): { ok: true } | { ok: false; code: RedemptionRejection } {
  if (facts.tokenExpiresAtSeconds * 1000 <= facts.nowMs) return { ok: false, code: "token_expired" };
  if (facts.jtiSpent) return { ok: false, code: "token_replayed" };
  if (!facts.hasEntitlement) return { ok: false, code: "no_entitlement" };
  if (facts.remainingUses <= 0) return { ok: false, code: "exhausted" };
  return { ok: true };
}

/** Decides one scan against the ticket's current state (the ticket object's rule). */
export function decideRedemption(input: {
  entitlements: readonly EntitlementState[];
  fn: string;
  jtiSpent: boolean;
  tokenExpiresAtSeconds: number;
  nowMs: number;
}): { ok: true; entitlement: EntitlementState } | { ok: false; code: RedemptionRejection } {
  const entitlement = input.entitlements.find((e) => e.function === input.fn);
  const judged = judgeScan({
    tokenExpiresAtSeconds: input.tokenExpiresAtSeconds,
    nowMs: input.nowMs,
    jtiSpent: input.jtiSpent,
    hasEntitlement: entitlement !== undefined,
    remainingUses: entitlement?.remaining_uses ?? 0,
  });
  if (!judged.ok) return judged;
  if (!entitlement) throw new Error("invariant: a scan is judged good only with its entitlement");
  return { ok: true, entitlement };
}

/** What the ticket's object knows of one accepted scan, for deciding whether it may be annulled. */
export interface RedemptionRecord {
  fn: string;
  deviceId: string;
  scannedAtMs: number;
  annulledAtMs: number | null;
}

export type AnnulmentRefusal = "not_found" | "already_annulled" | "annul_not_allowed" | "reason_required";

/**
 * Whether a scan may be given back. The device that made it may, within the window; a supervisor or admin
 * may at any time, from any device, but then must say why. The use comes back to the function it was
 * spent on, and never beyond the ticket's total (the object's CHECK holds that too).
 */
export function decideAnnulment(input: {
  redemption: RedemptionRecord | undefined;
  deviceId: string;
  canOverride: boolean;
  hasReason: boolean;
  windowSeconds: number;
  nowMs: number;
}): { ok: true } | { ok: false; code: AnnulmentRefusal } {
  const { redemption } = input;
  if (!redemption) return { ok: false, code: "not_found" };
  if (redemption.annulledAtMs !== null) return { ok: false, code: "already_annulled" };
  const ownScanInWindow =
    redemption.deviceId === input.deviceId &&
    input.nowMs - redemption.scannedAtMs <= input.windowSeconds * 1000;
  if (ownScanInWindow) return { ok: true };
  if (!input.canOverride) return { ok: false, code: "annul_not_allowed" };
  return input.hasReason ? { ok: true } : { ok: false, code: "reason_required" };
}
