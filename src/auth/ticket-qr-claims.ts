import { createLocalJWKSet, errors, type JSONWebKeySet, type JWTPayload, jwtVerify } from "jose";
import type { OfflineToken } from "../domain/offline-rule";

// A ticket QR token's shape, and its check against a published key set, written once for the Worker (which
// signs, and verifies uploads of offline scans) and the gate page (which verifies offline against its
// kit). Only jose is imported, so the page's bundle stays small.

export const QR_ALGORITHM = "EdDSA" as const;
export const TICKET_QR_TYP = "ticket-qr+jwt";
export const TICKET_QR_AUDIENCE = "gate";
/**
 * The contract's cap on a ticket token's life (`expires_in ≤ 60`), enforced when verifying: a token whose
 * `iat` is older is refused whatever its `exp` says. A token signed ahead for a later window therefore
 * carries its window's start as `iat` (and `nbf`).
 */
export const TICKET_QR_MAX_AGE_SECONDS = 60;
/** Seconds of clock skew tolerated between the signer and a verifying gate. */
export const QR_CLOCK_TOLERANCE_SECONDS = 5;
/** The claim that lists the ticket's functions, so a gate offline knows what the ticket may open. */
export const TICKET_FUNCTIONS_CLAIM = "fns";
/** The claim that lists those of them used up when the token was signed. */
export const TICKET_USED_UP_CLAIM = "used";
/**
 * The claim naming the region of the ticket's venue, when its product has one: the scan that first
 * reaches the ticket's object creates it there (a Durable Objects location hint).
 */
export const TICKET_REGION_CLAIM = "reg";
/**
 * A compact EdDSA JWS with our claims is a few hundred characters; anything far longer is not ours. The
 * one limit for every QR token, ticket or wallet: request fields refuse longer ones (400) and the
 * verifiers before parsing.
 */
export const MAX_QR_TOKEN_LENGTH = 2_048;

export type TicketQrCheck =
  /** `timely`: the token was good at the instant asked about (`nbf`/`iat`/`exp` and the age bound). */
  { ok: true; token: OfflineToken; timely: boolean } | { ok: false };

/**
 * Checks a ticket token against `jwks` as of `atMs`: algorithm, `typ`, issuer, audience and the required
 * claims are pinned; a token that is genuine but not good at `atMs` comes back with `timely: false`
 * (jose checks the signature and every other claim before the times, so its payload is then trusted).
 */
export async function checkTicketQr(
  token: string,
  jwks: JSONWebKeySet,
  issuer: string,
  atMs: number,
): Promise<TicketQrCheck> {
  if (token.length > MAX_QR_TOKEN_LENGTH) return { ok: false };
  try {
    const { payload } = await jwtVerify(token, createLocalJWKSet(jwks), {
      algorithms: [QR_ALGORITHM],
      issuer,
      audience: TICKET_QR_AUDIENCE,
      typ: TICKET_QR_TYP,
      requiredClaims: ["sub", "jti", "iat", "exp"],
      maxTokenAge: TICKET_QR_MAX_AGE_SECONDS,
      clockTolerance: QR_CLOCK_TOLERANCE_SECONDS,
      currentDate: new Date(atMs),
    });
    return toChecked(payload, true);
  } catch (error) {
    const untimely =
      error instanceof errors.JWTExpired ||
      (error instanceof errors.JWTClaimValidationFailed && (error.claim === "nbf" || error.claim === "iat"));
    if (untimely) return toChecked((error as errors.JWTClaimValidationFailed).payload, false);
    if (error instanceof errors.JOSEError || error instanceof TypeError) return { ok: false };
    throw error;
  }
}

function toChecked(payload: JWTPayload, timely: boolean): TicketQrCheck {
  const { sub, jti, iat, exp, nbf } = payload;
  if (
    typeof sub !== "string" ||
    typeof jti !== "string" ||
    typeof iat !== "number" ||
    typeof exp !== "number"
  )
    return { ok: false };
  const functions = stringList(payload[TICKET_FUNCTIONS_CLAIM]);
  return {
    ok: true,
    timely,
    token: {
      ticketCode: sub,
      jti,
      notBeforeSeconds: typeof nbf === "number" ? Math.max(nbf, iat) : iat,
      expiresAtSeconds: Math.min(exp, iat + TICKET_QR_MAX_AGE_SECONDS),
      functions,
      usedUp: stringList(payload[TICKET_USED_UP_CLAIM]) ?? [],
    },
  };
}

function stringList(claim: unknown): string[] | null {
  return Array.isArray(claim) && claim.every((item): item is string => typeof item === "string")
    ? claim
    : null;
}
