import { createRemoteJWKSet, errors, type JWTPayload, type JWTVerifyGetKey, jwtVerify } from "jose";
import { z } from "zod";
import type { Config } from "../env";
import { VerifiedTokens } from "./verified-tokens";

/** Algorithms accepted from an external identity provider's JWKS. `none` and HMAC are never among them. */
const JWKS_ALGORITHMS = ["RS256", "ES256", "EdDSA"];
/** The only algorithm accepted with the shared-secret configuration. */
const SECRET_ALGORITHMS = ["HS256"];
/** Seconds of clock skew tolerated between us and the identity provider. */
const CLOCK_TOLERANCE_SECONDS = 30;

// Per isolate: the remote key set keeps its own cache and cooldown; the HMAC key is encoded once.
const remoteKeySets = new Map<string, JWTVerifyGetKey>();
const secretKeys = new Map<string, Uint8Array>();

function remoteKeySet(url: string): JWTVerifyGetKey {
  let keySet = remoteKeySets.get(url);
  if (!keySet) {
    keySet = createRemoteJWKSet(new URL(url));
    remoteKeySets.set(url, keySet);
  }
  return keySet;
}

function secretKey(secret: string): Uint8Array {
  let key = secretKeys.get(secret);
  if (!key) {
    key = new TextEncoder().encode(secret);
    secretKeys.set(secret, key);
  }
  return key;
}

/** The longest address SMTP can carry (RFC 5321's path limit less its brackets). */
const MAX_EMAIL_LENGTH = 254;
const EmailClaim = z.email().max(MAX_EMAIL_LENGTH);

/** Who a verified buyer token speaks for. */
export interface VerifiedBuyer {
  userId: string;
  /** The standard OIDC `email` claim, when present, well-formed and not marked unverified. */
  email?: string;
}

const verified = new VerifiedTokens<VerifiedBuyer>();

/**
 * Why a token was refused: `token_invalid` when the signature, issuer, audience, algorithm or expiry
 * fails; `subject_invalid` when a well-signed token names no usable user.
 */
export type BuyerTokenVerification =
  | { ok: true; buyer: VerifiedBuyer }
  | { ok: false; code: "token_invalid" | "subject_invalid" };

/**
 * The address receipts may go to. The claim is optional (an access token often lacks it); a malformed
 * one is ignored rather than refusing the token, and one the provider says is unverified
 * (`email_verified: false`) is ignored too: a receipt must not go to an address nobody proved is theirs.
 */
function emailClaim(payload: JWTPayload): string | undefined {
  // Some providers send the claim as a string.
  if (payload.email_verified === false || payload.email_verified === "false") return undefined;
  const parsed = EmailClaim.safeParse(payload.email);
  return parsed.success ? parsed.data : undefined;
}

/**
 * Verifies a buyer's bearer token and returns its user id (`sub`) and address. Issuer, audience, expiry
 * and the algorithm are all pinned; any failure is a 401 without saying which of them failed. A token
 * this isolate verified recently is accepted again without the signature check, until its `exp` plus the
 * tolerance.
 */
export async function verifyBuyer(
  config: Config,
  token: string,
  now = new Date(),
): Promise<BuyerTokenVerification> {
  const nowMs = now.getTime();
  const known = verified.get(config, token, nowMs);
  if (known) return { ok: true, buyer: known };
  const options = {
    issuer: config.buyerJwtIssuer,
    audience: config.buyerJwtAudience,
    clockTolerance: CLOCK_TOLERANCE_SECONDS,
    requiredClaims: ["sub", "exp"],
    currentDate: now,
  };
  try {
    const { payload } = config.buyerJwksUrl
      ? await jwtVerify(token, remoteKeySet(config.buyerJwksUrl), { ...options, algorithms: JWKS_ALGORITHMS })
      : await jwtVerify(token, secretKey(config.buyerJwtSecret ?? ""), {
          ...options,
          algorithms: SECRET_ALGORITHMS,
        });
    if (typeof payload.sub !== "string" || payload.sub.length === 0 || payload.sub.length > 255) {
      return { ok: false, code: "subject_invalid" };
    }
    // jose refuses the token once `exp` is CLOCK_TOLERANCE_SECONDS behind the clock; so does the cache.
    const expiresAtMs = ((payload.exp ?? 0) + CLOCK_TOLERANCE_SECONDS) * 1000;
    const email = emailClaim(payload);
    const buyer: VerifiedBuyer = email ? { userId: payload.sub, email } : { userId: payload.sub };
    verified.remember(config, token, buyer, expiresAtMs, nowMs);
    return { ok: true, buyer };
  } catch (error) {
    if (error instanceof errors.JOSEError) return { ok: false, code: "token_invalid" };
    throw error;
  }
}
