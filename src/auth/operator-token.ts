import { errors, jwtVerify, SignJWT } from "jose";
import type { Config } from "../env";
import { OPERATOR_ROLES, type OperatorRole } from "../types/domain";
import { VerifiedTokens } from "./verified-tokens";

/** Operator tokens have their own typ and audience, so they can never pass for a buyer's or a QR token. */
export const OPERATOR_TOKEN_TYP = "operator+jwt";
export const OPERATOR_TOKEN_AUDIENCE = "staff";
/** One shift. */
export const OPERATOR_TOKEN_TTL_SECONDS = 8 * 60 * 60;

/**
 * The operator a request acts as. Roles and event ids come from the operator record (never older than
 * OPERATOR_RECORD_CACHE_MS, see src/services/current-operator.ts), not from the token: a token's claims
 * are only a snapshot of login time.
 */
export interface OperatorClaims {
  operatorId: string;
  roles: OperatorRole[];
  eventIds: string[];
}

/** What a token itself proves: who logged in, and under which credential version. */
export interface OperatorTokenClaims extends OperatorClaims {
  /** The operator's `credential_version` at login; a deactivation or password reset moves it on. */
  credentialVersion: number;
}

const keys = new Map<string, Uint8Array>();
function operatorKey(secret: string): Uint8Array {
  let key = keys.get(secret);
  if (!key) {
    key = new TextEncoder().encode(secret);
    keys.set(secret, key);
  }
  return key;
}

export async function signOperatorToken(
  config: Config,
  claims: OperatorTokenClaims,
  now: Date,
): Promise<string> {
  const iat = Math.floor(now.getTime() / 1000);
  return new SignJWT({
    operator_id: claims.operatorId,
    roles: claims.roles,
    event_ids: claims.eventIds,
    cv: claims.credentialVersion,
  })
    .setProtectedHeader({ alg: "HS256", typ: OPERATOR_TOKEN_TYP })
    .setSubject(claims.operatorId)
    .setIssuer(config.serviceIssuer)
    .setAudience(OPERATOR_TOKEN_AUDIENCE)
    .setIssuedAt(iat)
    .setExpirationTime(iat + OPERATOR_TOKEN_TTL_SECONDS)
    .sign(operatorKey(config.operatorJwtSecret));
}

function isRole(value: unknown): value is OperatorRole {
  return typeof value === "string" && (OPERATOR_ROLES as readonly string[]).includes(value);
}

const verified = new VerifiedTokens<OperatorTokenClaims>();

/**
 * Why a token was refused: `token_invalid` when the signature, a pinned header or claim, or the expiry
 * fails; `claims_invalid` when a well-signed token carries claims of the wrong shape.
 */
export type OperatorTokenVerification =
  | { ok: true; claims: OperatorTokenClaims }
  | { ok: false; code: "token_invalid" | "claims_invalid" };

/**
 * The claims of a validly signed, unexpired token, or why not (the routes answer 401 `unauthenticated`).
 * A token this isolate verified recently is accepted again without the signature check, until its `exp`
 * (see verified-tokens.ts). Whether the operator may still use it is the operator record's to say.
 */
export async function verifyOperatorToken(
  config: Config,
  token: string,
  now = new Date(),
): Promise<OperatorTokenVerification> {
  const nowMs = now.getTime();
  const known = verified.get(config, token, nowMs);
  if (known) return { ok: true, claims: known };
  try {
    const { payload } = await jwtVerify(token, operatorKey(config.operatorJwtSecret), {
      algorithms: ["HS256"],
      issuer: config.serviceIssuer,
      audience: OPERATOR_TOKEN_AUDIENCE,
      typ: OPERATOR_TOKEN_TYP,
      requiredClaims: ["sub", "exp", "operator_id", "roles"],
      currentDate: now,
    });
    const roles = Array.isArray(payload.roles) ? payload.roles.filter(isRole) : [];
    const eventIds = Array.isArray(payload.event_ids)
      ? payload.event_ids.filter((id): id is string => typeof id === "string")
      : [];
    if (typeof payload.operator_id !== "string") return { ok: false, code: "claims_invalid" };
    // Tokens signed before credential versions existed carry none: they were issued under the first one.
    const credentialVersion = payload.cv === undefined ? 1 : payload.cv;
    if (!Number.isSafeInteger(credentialVersion)) return { ok: false, code: "claims_invalid" };
    const claims = {
      operatorId: payload.operator_id,
      roles,
      eventIds,
      credentialVersion: credentialVersion as number,
    };
    // `exp` is required above; jose refuses the token from the second `exp` on (no clock tolerance here).
    verified.remember(config, token, claims, (payload.exp ?? 0) * 1000, nowMs);
    return { ok: true, claims };
  } catch (error) {
    if (error instanceof errors.JOSEError) return { ok: false, code: "token_invalid" };
    throw error;
  }
}
