import { errors, importJWK, type JWK, type JWTPayload, jwtVerify, SignJWT } from "jose";
import type { DoLocationHint } from "../domain/placement";
import type { Config } from "../env";
import {
  MAX_QR_TOKEN_LENGTH,
  QR_ALGORITHM,
  QR_CLOCK_TOLERANCE_SECONDS,
  TICKET_FUNCTIONS_CLAIM,
  TICKET_QR_AUDIENCE,
  TICKET_QR_MAX_AGE_SECONDS,
  TICKET_QR_TYP,
  TICKET_REGION_CLAIM,
  TICKET_USED_UP_CLAIM,
} from "./ticket-qr-claims";

// QR tokens are short-lived JWS signed with an Ed25519 key from the QR_SIGNING_JWK secret. The public
// halves of the current and previous keys are published at /.well-known/jwks.json, so a gate or a third
// party verifies them with any JOSE library; keeping the previous key there lets tokens signed just before
// a rotation still verify.

/** Short enough that a screenshot is useless within a minute; at most TICKET_QR_MAX_AGE_SECONDS. */
export const TICKET_QR_TTL_SECONDS = 30;
export const WALLET_QR_TYP = "wallet-qr+jwt";
export const WALLET_QR_AUDIENCE = "pos";
/** The contract's cap on a wallet token's life (`expires_in ≤ 120`), enforced when verifying. */
export const WALLET_QR_MAX_AGE_SECONDS = 120;
/** Long enough to walk up to a till after opening the app, short enough that a screenshot soon dies. */
export const WALLET_QR_TTL_SECONDS = 90;

/**
 * The age bound of each token kind, measured from `iat` (jose's `maxTokenAge`, as any JOSE library can
 * check it). A token signed ahead for a later window must therefore carry its window's start as `iat`.
 */
const MAX_AGE_SECONDS_BY_TYP: Readonly<Record<string, number>> = {
  [TICKET_QR_TYP]: TICKET_QR_MAX_AGE_SECONDS,
  [WALLET_QR_TYP]: WALLET_QR_MAX_AGE_SECONDS,
};

function maxAgeSeconds(typ: string): number {
  const max = MAX_AGE_SECONDS_BY_TYP[typ];
  if (max === undefined) throw new Error(`QR token kind ${typ} has no age bound`);
  return max;
}

// A lifetime beyond its kind's age bound would sign tokens that verification refuses before their exp.
if (TICKET_QR_TTL_SECONDS > TICKET_QR_MAX_AGE_SECONDS || WALLET_QR_TTL_SECONDS > WALLET_QR_MAX_AGE_SECONDS) {
  throw new Error("invariant: a QR token's TTL is within its kind's age bound");
}

export { TICKET_QR_AUDIENCE, TICKET_QR_MAX_AGE_SECONDS, TICKET_QR_TYP };

/** A published verification key: the private `d` is never part of it. */
export interface PublicJwk {
  kty: "OKP";
  crv: "Ed25519";
  x: string;
  kid: string;
  alg: typeof QR_ALGORITHM;
  use: "sig";
}

interface QrSigningKey {
  kid: string;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  publicJwk: PublicJwk;
}

// Imported once per isolate, keyed by the secret's text: a rotated secret is a new entry.
const importedKeys = new Map<string, Promise<QrSigningKey>>();

function asCryptoKey(key: CryptoKey | Uint8Array): CryptoKey {
  if (key instanceof Uint8Array) throw new Error("QR signing key must be asymmetric");
  return key;
}

async function importSigningKey(secret: string): Promise<QrSigningKey> {
  let jwk: JWK;
  try {
    jwk = JSON.parse(secret) as JWK;
  } catch {
    throw new Error("QR signing key is not a JSON JWK");
  }
  const { kty, crv, x, d, kid } = jwk;
  if (kty !== "OKP" || crv !== "Ed25519" || !x || !d || !kid) {
    throw new Error("QR signing key must be an Ed25519 private JWK (kty OKP, crv Ed25519, x, d, kid)");
  }
  const publicJwk: PublicJwk = { kty: "OKP", crv: "Ed25519", x, kid, alg: QR_ALGORITHM, use: "sig" };
  const [privateKey, publicKey] = await Promise.all([
    importJWK({ kty, crv, x, d, alg: QR_ALGORITHM }, QR_ALGORITHM),
    importJWK({ ...publicJwk }, QR_ALGORITHM),
  ]);
  return { kid, privateKey: asCryptoKey(privateKey), publicKey: asCryptoKey(publicKey), publicJwk };
}

function signingKey(secret: string): Promise<QrSigningKey> {
  let key = importedKeys.get(secret);
  if (!key) {
    key = importSigningKey(secret);
    importedKeys.set(secret, key);
    // A failed import is not cached: the next request reports the misconfiguration again.
    key.catch(() => importedKeys.delete(secret));
  }
  return key;
}

/** The current key, then the previous one when a rotation is in progress. */
async function configuredKeys(config: Config): Promise<QrSigningKey[]> {
  const secrets = [config.qrSigningJwk, config.qrSigningJwkPrevious].filter(
    (secret): secret is string => secret !== undefined,
  );
  return Promise.all(secrets.map(signingKey));
}

/** The JWKS document: public keys only, current first. */
export async function publicJwks(config: Config): Promise<{ keys: PublicJwk[] }> {
  return { keys: (await configuredKeys(config)).map((key) => key.publicJwk) };
}

export interface QrTokenRequest {
  typ: string;
  audience: string;
  subject: string;
  ttlSeconds: number;
  /** Extra claims for a token kind that needs them (e.g. a wallet token's nonce). */
  claims?: JWTPayload;
  /**
   * A token for a later window (a phone's offline supply): good from then on, with `iat = nbf` = the
   * window's start, so the age bound counts from the window and not from the signing.
   */
  notBefore?: Date;
}

/** A configuration with a QR signing key: callers ask `canSignQrTokens` (and answer 503 without one). */
export type QrSigningConfig = Config & { qrSigningJwk: string };

export function canSignQrTokens(config: Config): config is QrSigningConfig {
  return config.qrSigningJwk !== undefined;
}

/** Signs a QR token with the current key; every token gets a fresh random `jti`. */
export async function signQrToken(
  config: QrSigningConfig,
  request: QrTokenRequest,
  now: Date,
): Promise<{ token: string; expires_in: number }> {
  if (request.ttlSeconds > maxAgeSeconds(request.typ)) {
    throw new Error(`invariant: a ${request.typ} lives at most ${maxAgeSeconds(request.typ)} s`);
  }
  const key = await signingKey(config.qrSigningJwk);
  const iat = Math.floor((request.notBefore ?? now).getTime() / 1000);
  const jwt = new SignJWT({ ...request.claims })
    .setProtectedHeader({ alg: QR_ALGORITHM, typ: request.typ, kid: key.kid })
    .setIssuer(config.serviceIssuer)
    .setAudience(request.audience)
    .setSubject(request.subject)
    .setJti(crypto.randomUUID())
    .setIssuedAt(iat)
    .setExpirationTime(iat + request.ttlSeconds);
  if (request.notBefore) jwt.setNotBefore(iat);
  const token = await jwt.sign(key.privateKey);
  return { token, expires_in: request.ttlSeconds };
}

/** What a ticket token says of its ticket besides its code. */
export interface TicketForQr {
  code: string;
  functions: readonly string[];
  /** Functions with no use left now: a gate without a network refuses them by the token alone. */
  usedUp: readonly string[];
  /** Where the ticket's venue is: the gate's scan creates the ticket's object there. */
  venueRegion?: DoLocationHint | null;
}

/**
 * A QR token for one ticket, for the gate: `sub` is the ticket code, `fns` its functions and `used` those
 * used up, so a gate without a network knows what the ticket may open (src/domain/offline-rule.ts), and
 * `reg` its venue's region when it has one.
 */
export function signTicketQrToken(config: QrSigningConfig, ticket: TicketForQr, now: Date, notBefore?: Date) {
  return signQrToken(
    config,
    {
      typ: TICKET_QR_TYP,
      audience: TICKET_QR_AUDIENCE,
      subject: ticket.code,
      ttlSeconds: TICKET_QR_TTL_SECONDS,
      claims: {
        [TICKET_FUNCTIONS_CLAIM]: [...ticket.functions],
        [TICKET_USED_UP_CLAIM]: [...ticket.usedUp],
        ...(ticket.venueRegion ? { [TICKET_REGION_CLAIM]: ticket.venueRegion } : {}),
      },
      notBefore,
    },
    now,
  );
}

/** How far ahead a phone's offline supply of codes reaches (the contract's 10 minutes). */
export const OFFLINE_QR_SUPPLY_SECONDS = 10 * 60;

/**
 * Consecutive tokens covering the next OFFLINE_QR_SUPPLY_SECONDS, one per TICKET_QR_TTL_SECONDS window,
 * each with its own jti and `nbf`: a phone without signal still shows a valid code that changes.
 */
export async function signTicketQrSupply(
  config: QrSigningConfig,
  ticket: TicketForQr,
  now: Date,
): Promise<{ token: string; not_before: string; expires_at: string }[]> {
  const startSeconds = Math.floor(now.getTime() / 1000);
  const windows = Math.ceil(OFFLINE_QR_SUPPLY_SECONDS / TICKET_QR_TTL_SECONDS);
  return Promise.all(
    Array.from({ length: windows }, async (_, index) => {
      const from = new Date((startSeconds + index * TICKET_QR_TTL_SECONDS) * 1000);
      const { token } = await signTicketQrToken(config, ticket, now, from);
      return {
        token,
        not_before: from.toISOString(),
        expires_at: new Date(from.getTime() + TICKET_QR_TTL_SECONDS * 1000).toISOString(),
      };
    }),
  );
}

/** A QR token for the caller's wallet, for a POS till: `sub` is the user id, plus a random `nonce`. */
export function signWalletQrToken(config: QrSigningConfig, userId: string, now: Date) {
  const nonce = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))))
    .replaceAll("+", "-")
    .replaceAll("/", "_")
    .replace(/=+$/, "");
  return signQrToken(
    config,
    {
      typ: WALLET_QR_TYP,
      audience: WALLET_QR_AUDIENCE,
      subject: userId,
      ttlSeconds: WALLET_QR_TTL_SECONDS,
      claims: { nonce },
    },
    now,
  );
}

export interface VerifiedQrToken {
  subject: string;
  jti: string;
  issuedAt: number;
  /**
   * When the token stops being good, in Unix seconds: the earlier of its `exp` and `iat` plus its kind's
   * age bound. The objects that judge expiry themselves (and keep a jti until then) are given this.
   */
  expiresAt: number;
  payload: JWTPayload;
}

/** Why a QR token was refused; `detail` says which check failed when that helps its holder. */
export interface QrTokenRefusal {
  ok: false;
  code: "token_invalid" | "token_expired";
  detail?: string;
}

export type QrTokenVerification = { ok: true; token: VerifiedQrToken } | QrTokenRefusal;

/**
 * Verifies a QR token of one kind: the algorithm, issuer, audience and `typ` are all pinned, so a wallet
 * token never passes for a ticket token or the reverse. The key is chosen by `kid` among the current and
 * previous keys. A token past its `exp`, or older than its kind's age bound, is `token_expired` (a real
 * token of ours whose time is up: the holder needs a fresh one, as for any expired code); anything else
 * wrong is `token_invalid`.
 *
 * `acceptExpired`: an expired token whose signature and every other claim are good is returned instead
 * (with `expiresAt` in the past), for a caller that must still find a stored answer for it and judges
 * `expiresAt` itself. jose checks `exp` and the age last, after the signature, `typ`, `iss`, `aud` and
 * required claims.
 */
export async function verifyQrToken(
  config: Config,
  token: string,
  expected: { typ: string; audience: string; acceptExpired?: boolean },
): Promise<QrTokenVerification> {
  if (token.length > MAX_QR_TOKEN_LENGTH)
    return { ok: false, code: "token_invalid", detail: "Token is too long" };
  const maxAge = maxAgeSeconds(expected.typ);
  const keys = await configuredKeys(config);
  try {
    const { payload } = await jwtVerify(
      token,
      (header) => {
        const key = keys.find((candidate) => candidate.kid === header.kid);
        if (!key) throw new errors.JWKSNoMatchingKey();
        return key.publicKey;
      },
      {
        algorithms: [QR_ALGORITHM],
        issuer: config.serviceIssuer,
        audience: expected.audience,
        typ: expected.typ,
        requiredClaims: ["sub", "jti", "iat", "exp"],
        maxTokenAge: maxAge,
        clockTolerance: QR_CLOCK_TOLERANCE_SECONDS,
      },
    );
    return verifiedClaims(payload, maxAge);
  } catch (error) {
    // jose throws JWTExpired for an `exp` in the past (claim "exp") and for an `iat` older than
    // maxTokenAge (claim "iat"); an `iat` in the future is a JWTClaimValidationFailed: token_invalid.
    if (error instanceof errors.JWTExpired) {
      const timeIsUp = error.claim === "exp" || error.claim === "iat";
      if (expected.acceptExpired && timeIsUp) return verifiedClaims(error.payload, maxAge);
      return { ok: false, code: "token_expired" };
    }
    if (error instanceof errors.JOSEError) return { ok: false, code: "token_invalid" };
    throw error;
  }
}

function verifiedClaims(payload: JWTPayload, maxAge: number): QrTokenVerification {
  const { sub, jti, iat, exp } = payload;
  if (typeof sub !== "string" || typeof jti !== "string" || iat === undefined || exp === undefined) {
    return { ok: false, code: "token_invalid", detail: "Token claims are incomplete" };
  }
  const token = { subject: sub, jti, issuedAt: iat, expiresAt: Math.min(exp, iat + maxAge), payload };
  return { ok: true, token };
}
