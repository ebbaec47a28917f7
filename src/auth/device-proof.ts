import { compactVerify, errors, importJWK, jwtVerify } from "jose";
import { LRUCache } from "lru-cache";
import { z } from "zod";

import {
  DEVICE_PROOF_AUDIENCE,
  DEVICE_PROOF_MAX_LIFETIME_SECONDS,
  DEVICE_PROOF_TYP,
  type DeviceKeyAlg,
  OFFLINE_SCAN_AUDIENCE,
  OFFLINE_SCAN_TYP,
  type OfflineScanClaims,
  type OfflineScanRecord,
} from "./device-proof-token";

// A gate or till proves it is the enrolled device by signing a short-lived JWS with a key whose private
// half never leaves it (a non-extractable WebCrypto key in the pages). The Worker keeps only the public
// JWK and checks proofs here.
/** A device's clock may run a little ahead of ours; more than this and its `iat` is refused. */
export const DEVICE_PROOF_CLOCK_TOLERANCE_SECONDS = 30;
/** A jti is a random id; anything this long is not one of ours. */
export const MAX_DEVICE_PROOF_JTI_LENGTH = 128;
/** Far above a real proof (~400 characters); refused before any parsing. */
export const MAX_DEVICE_PROOF_LENGTH = 2_048;
/** Far above a real signature over an offline scan (~600 characters). */
export const MAX_OFFLINE_SCAN_SIGNATURE_LENGTH = 4_096;

/** 32 bytes in unpadded base64url: a P-256 coordinate or an Ed25519 public key. */
const Coordinate = z.string().regex(/^[A-Za-z0-9_-]{43}$/, "32 bytes, base64url without padding");

const EcP256PublicJwk = z.object({
  kty: z.literal("EC"),
  crv: z.literal("P-256"),
  x: Coordinate,
  y: Coordinate,
});
const Ed25519PublicJwk = z.object({ kty: z.literal("OKP"), crv: z.literal("Ed25519"), x: Coordinate });

/**
 * A device's public key as sent at enrollment. Members a browser adds on export (`ext`, `key_ops`, `alg`,
 * `kid`, `use`) are dropped; a private part (`d`) is refused outright, so a page that exported the wrong
 * half learns it at once instead of having its secret stored.
 */
export const DevicePublicJwkSchema = z
  .looseObject({ d: z.unknown().optional() })
  .refine((jwk) => jwk.d === undefined, { message: "A public key must not contain a private part (d)" })
  .pipe(z.discriminatedUnion("kty", [EcP256PublicJwk, Ed25519PublicJwk]));

export type DevicePublicJwk = z.infer<typeof DevicePublicJwkSchema>;

export function deviceKeyAlg(jwk: DevicePublicJwk): DeviceKeyAlg {
  return jwk.kty === "EC" ? "ES256" : "EdDSA";
}

/**
 * Whether the JWK is a usable key of its kind: the schema checks the shape, this asks WebCrypto to import it,
 * which refuses a P-256 point that is not on the curve.
 */
export async function isImportableDeviceKey(jwk: DevicePublicJwk): Promise<boolean> {
  try {
    await importJWK({ ...jwk }, deviceKeyAlg(jwk));
    return true;
  } catch {
    return false;
  }
}

/** Imported keys, by their JWK text: a device's key is imported once per isolate, not once per session. */
const importedKeys = new LRUCache<string, Promise<CryptoKey | Uint8Array>>({ max: 1_000 });

function importDeviceKey(jwk: DevicePublicJwk, alg: DeviceKeyAlg): Promise<CryptoKey | Uint8Array> {
  const cacheKey = `${alg}:${JSON.stringify(jwk)}`;
  let key = importedKeys.get(cacheKey);
  if (!key) {
    key = importJWK({ ...jwk }, alg);
    importedKeys.set(cacheKey, key);
    key.catch(() => importedKeys.delete(cacheKey));
  }
  return key;
}

export interface VerifiedDeviceProof {
  jti: string;
  /** When the proof stops being acceptable: its jti must be remembered at least until then. */
  expiresAt: Date;
}

export type DeviceProofRefusal = "malformed" | "signature" | "claims" | "expired" | "lifetime";

/**
 * Checks a device proof against the device's enrolled key: algorithm pinned to the key's, `typ`, `aud`,
 * `sub` = the device, `iat` not ahead of our clock by more than the tolerance, `exp` at most
 * DEVICE_PROOF_MAX_LIFETIME_SECONDS after `iat` and not passed, and a `jti`. Whether the jti is fresh is the
 * caller's to decide (it is spent with the session it opens). Returns why it was refused otherwise.
 */
export async function verifyDeviceProof(
  proof: string,
  device: { id: string; publicJwk: DevicePublicJwk; keyAlg: DeviceKeyAlg },
  now: Date,
): Promise<{ ok: true; proof: VerifiedDeviceProof } | { ok: false; reason: DeviceProofRefusal }> {
  if (proof.length > MAX_DEVICE_PROOF_LENGTH) return { ok: false, reason: "malformed" };
  try {
    const key = await importDeviceKey(device.publicJwk, device.keyAlg);
    const { payload } = await jwtVerify(proof, key, {
      algorithms: [device.keyAlg],
      typ: DEVICE_PROOF_TYP,
      audience: DEVICE_PROOF_AUDIENCE,
      subject: device.id,
      requiredClaims: ["sub", "iat", "exp", "jti"],
      // maxTokenAge also makes jose refuse an `iat` ahead of our clock by more than the tolerance.
      maxTokenAge: DEVICE_PROOF_MAX_LIFETIME_SECONDS,
      clockTolerance: DEVICE_PROOF_CLOCK_TOLERANCE_SECONDS,
      currentDate: now,
    });
    const { iat, exp, jti } = payload;
    if (typeof iat !== "number" || typeof exp !== "number" || typeof jti !== "string") {
      return { ok: false, reason: "claims" };
    }
    if (jti.length === 0 || jti.length > MAX_DEVICE_PROOF_JTI_LENGTH) return { ok: false, reason: "claims" };
    if (exp - iat > DEVICE_PROOF_MAX_LIFETIME_SECONDS || exp <= iat) return { ok: false, reason: "lifetime" };
    return { ok: true, proof: { jti, expiresAt: new Date(exp * 1000) } };
  } catch (error) {
    if (error instanceof errors.JWTExpired) return { ok: false, reason: "expired" };
    if (error instanceof errors.JWSSignatureVerificationFailed) return { ok: false, reason: "signature" };
    if (error instanceof errors.JOSEError) return { ok: false, reason: "malformed" };
    throw error;
  }
}

/**
 * Whether `signature` is the device's own signature over this offline decision (signOfflineScan): the
 * device's enrolled key and algorithm, `typ`, `aud`, `sub` = the device, and every field of the upload as
 * signed. Time is not judged here: a queued decision may be uploaded hours after it was made.
 */
export async function verifyOfflineScanSignature(
  signature: string,
  device: { id: string; publicJwk: DevicePublicJwk; keyAlg: DeviceKeyAlg },
  scan: OfflineScanRecord,
  qrJti: string,
): Promise<boolean> {
  if (signature.length > MAX_OFFLINE_SCAN_SIGNATURE_LENGTH) return false;
  try {
    const key = await importDeviceKey(device.publicJwk, device.keyAlg);
    const { payload, protectedHeader } = await compactVerify(signature, key, { algorithms: [device.keyAlg] });
    if (protectedHeader.typ !== OFFLINE_SCAN_TYP) return false;
    const parsed: unknown = JSON.parse(new TextDecoder().decode(payload));
    if (typeof parsed !== "object" || parsed === null) return false;
    const claims = parsed as Partial<OfflineScanClaims>;
    return (
      claims.sub === device.id &&
      claims.aud === OFFLINE_SCAN_AUDIENCE &&
      claims.jti === scan.scan_id &&
      // A gate that could not verify a code it refused has no jti to name (an empty one).
      (claims.qr_jti === qrJti || (scan.decision === "refused" && claims.qr_jti === "")) &&
      claims.fn === scan.function &&
      claims.scanned_at === scan.scanned_at &&
      claims.decision === scan.decision &&
      claims.sid === scan.session_id
    );
  } catch (error) {
    if (error instanceof errors.JOSEError || error instanceof SyntaxError) return false;
    throw error;
  }
}
