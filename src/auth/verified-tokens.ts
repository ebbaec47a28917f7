import { LRUCache } from "lru-cache";

/**
 * How long an isolate accepts a bearer token it has already verified without checking its signature again.
 * A gate or till sends the same operator token with every request of a shift, and re-verifying it cost
 * more than the rest of the request's token work. The bound keeps a signing key withdrawn from the
 * buyer's JWKS from being honoured much longer than jose's own JWKS cache (10 minutes) already does.
 */
export const VERIFIED_TOKEN_REUSE_MS = 60_000;
/** Far more distinct tokens than one isolate sees in a minute; each entry is the token and its claims. */
const MAX_VERIFIED_TOKENS = 2_000;

interface Entry<T> {
  value: T;
  /** Reuse stops at the earlier of the token's own expiry and the reuse window. */
  reusableUntilMs: number;
}

/**
 * Verified tokens of one kind, per configuration: a new configuration (a rotated secret, another issuer)
 * starts empty, so nothing verified under the old one is accepted under the new. Keyed by the exact token
 * text, so a token differing in a single character (a tampered signature or claim) is verified afresh.
 * Only successes are remembered; the caller judges every time-dependent claim into `expiresAtMs`.
 */
export class VerifiedTokens<T extends object> {
  private readonly byConfig = new WeakMap<object, LRUCache<string, Entry<T>>>();

  get(config: object, token: string, nowMs: number): T | undefined {
    const entries = this.byConfig.get(config);
    const entry = entries?.get(token);
    if (!entry) return undefined;
    if (nowMs >= entry.reusableUntilMs) {
      entries?.delete(token);
      return undefined;
    }
    return entry.value;
  }

  /** `expiresAtMs`: the first instant at which the verifier itself would refuse the token as expired. */
  remember(config: object, token: string, value: T, expiresAtMs: number, nowMs: number): void {
    let entries = this.byConfig.get(config);
    if (!entries) {
      entries = new LRUCache({ max: MAX_VERIFIED_TOKENS });
      this.byConfig.set(config, entries);
    }
    entries.set(token, {
      value,
      reusableUntilMs: Math.min(expiresAtMs, nowMs + VERIFIED_TOKEN_REUSE_MS),
    });
  }
}
