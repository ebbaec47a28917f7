import { SignJWT } from "jose";

// The device proof's shape, written down once for everyone who makes or checks one: the Worker verifies
// (device-proof.ts), the gate and till pages and the scripts sign. Only jose is imported here, so the
// pages' bundle stays small.

export const DEVICE_PROOF_TYP = "device-proof+jwt";
export const DEVICE_PROOF_AUDIENCE = "sessions";
/** The contract's bound: a proof lives at most this long after its `iat`. */
export const DEVICE_PROOF_MAX_LIFETIME_SECONDS = 120;
/** What the pages sign: well inside the bound, long enough for one slow request. */
export const DEVICE_PROOF_LIFETIME_SECONDS = 60;

export const DEVICE_KEY_ALGS = ["ES256", "EdDSA"] as const;
export type DeviceKeyAlg = (typeof DEVICE_KEY_ALGS)[number];

/**
 * Signs a device proof with the device's private key (a non-extractable CryptoKey in the pages, any key in
 * scripts and tests). `jti` defaults to a random UUID.
 */
export function signDeviceProof(
  privateKey: CryptoKey,
  alg: DeviceKeyAlg,
  deviceId: string,
  now: Date,
  options: { jti?: string; lifetimeSeconds?: number } = {},
): Promise<string> {
  const iat = Math.floor(now.getTime() / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg, typ: DEVICE_PROOF_TYP })
    .setSubject(deviceId)
    .setAudience(DEVICE_PROOF_AUDIENCE)
    .setIssuedAt(iat)
    .setExpirationTime(iat + (options.lifetimeSeconds ?? DEVICE_PROOF_LIFETIME_SECONDS))
    .setJti(options.jti ?? crypto.randomUUID())
    .sign(privateKey);
}

export const OFFLINE_SCAN_TYP = "offline-scan+jwt";
export const OFFLINE_SCAN_AUDIENCE = "offline-scans";

/** One decision a gate made offline, as it queues and uploads it. */
export interface OfflineScanRecord {
  scan_id: string;
  qr_token: string;
  function: string;
  scanned_at: string;
  decision: "accepted" | "refused";
  /** The gate session the decision was made in, when it differs from the one uploading it (a later shift). */
  session_id?: string;
}

/** The claims a device signs over one offline decision: the upload is checked against them field by field. */
export interface OfflineScanClaims {
  sub: string;
  aud: typeof OFFLINE_SCAN_AUDIENCE;
  /** The scan id. */
  jti: string;
  /** The QR token's own jti (read from its payload; the server checks it against the verified token). */
  qr_jti: string;
  fn: string;
  scanned_at: string;
  decision: "accepted" | "refused";
  /** The session the decision was made in (absent in decisions signed before it was). */
  sid?: string;
}

/**
 * Signs a queued offline decision with the device's key, so an upload proves which device made it and
 * that nobody changed it on the way (the time, the function, accepted or refused).
 */
export function signOfflineScan(
  privateKey: CryptoKey,
  alg: DeviceKeyAlg,
  deviceId: string,
  scan: OfflineScanRecord,
  qrJti: string,
): Promise<string> {
  return new SignJWT({
    qr_jti: qrJti,
    fn: scan.function,
    scanned_at: scan.scanned_at,
    decision: scan.decision,
    ...(scan.session_id === undefined ? {} : { sid: scan.session_id }),
  })
    .setProtectedHeader({ alg, typ: OFFLINE_SCAN_TYP })
    .setSubject(deviceId)
    .setAudience(OFFLINE_SCAN_AUDIENCE)
    .setJti(scan.scan_id)
    .setIssuedAt(Math.floor(Date.parse(scan.scanned_at) / 1000))
    .sign(privateKey);
}
