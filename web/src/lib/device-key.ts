import { createStore, del, get, set } from "idb-keyval";
import {
  type DeviceKeyAlg,
  type OfflineScanRecord,
  signDeviceProof,
  signOfflineScan,
} from "../../../src/auth/device-proof-token";
import { ApiProblem, api } from "./api";

// This phone or scanner's key for one device id. The private key is created non-extractable and kept in
// IndexedDB (a CryptoKey survives structured cloning there), so it can sign device proofs after a reload
// but can never be read out, not even by this page's own script.

const store = createStore("passes-device-keys", "keys");
const ALG: DeviceKeyAlg = "ES256";

interface StoredDeviceKey {
  deviceId: string;
  privateKey: CryptoKey;
  alg: DeviceKeyAlg;
  enrolledAt: string;
}

/** The device id needs an enrollment code typed in (an admin issues one): there is no key, or it was replaced. */
export class EnrollmentNeeded extends Error {
  constructor(readonly deviceId: string) {
    super(`Device ${deviceId} needs an enrollment code`);
    this.name = "EnrollmentNeeded";
  }
}

/** Whether this browser holds an enrolled key for `deviceId`. */
export async function hasDeviceKey(deviceId: string): Promise<boolean> {
  return (await get<StoredDeviceKey>(deviceId, store)) !== undefined;
}

/** Forgets the key (the server refused it: revoked, or replaced by an enrollment elsewhere). */
export async function forgetDeviceKey(deviceId: string): Promise<void> {
  await del(deviceId, store);
}

/**
 * Enrolls a fresh key for `deviceId` with `code`; without a code, asks the development-only shortcut for one
 * (404 outside `npm run dev`, which becomes EnrollmentNeeded). The key is stored only after the server
 * accepted it.
 */
export async function enrollDevice(deviceId: string, code?: string): Promise<void> {
  let enrollmentCode = code;
  if (!enrollmentCode) {
    try {
      const { data } = await api<{ enrollment_code: string }>(
        "POST",
        `/dev/devices/${encodeURIComponent(deviceId)}/enrollment`,
      );
      enrollmentCode = data.enrollment_code;
    } catch (error) {
      if (error instanceof ApiProblem && error.status === 404) throw new EnrollmentNeeded(deviceId);
      throw error;
    }
  }
  const pair = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, [
    "sign",
    "verify",
  ]);
  const publicJwk = await crypto.subtle.exportKey("jwk", pair.publicKey);
  await api("POST", "/devices/enroll", {
    body: {
      enrollment_code: enrollmentCode,
      public_key: { kty: publicJwk.kty, crv: publicJwk.crv, x: publicJwk.x, y: publicJwk.y },
    },
  });
  await set(
    deviceId,
    { deviceId, privateKey: pair.privateKey, alg: ALG, enrolledAt: new Date().toISOString() },
    store,
  );
}

/** A fresh single-use proof that this browser holds `deviceId`'s enrolled key; EnrollmentNeeded without one. */
export async function deviceProof(deviceId: string): Promise<string> {
  const stored = await get<StoredDeviceKey>(deviceId, store);
  if (!stored) throw new EnrollmentNeeded(deviceId);
  return signDeviceProof(stored.privateKey, stored.alg, deviceId, new Date());
}

/**
 * Signs a decision the gate made offline with `deviceId`'s enrolled key, so its upload proves which device
 * made it, unchanged. `qrJti`: the ticket token's jti (empty for a code that is no token). EnrollmentNeeded
 * without a key.
 */
export async function signOfflineScanAsDevice(
  deviceId: string,
  scan: OfflineScanRecord,
  qrJti: string,
): Promise<string> {
  const stored = await get<StoredDeviceKey>(deviceId, store);
  if (!stored) throw new EnrollmentNeeded(deviceId);
  return signOfflineScan(stored.privateKey, stored.alg, deviceId, scan, qrJti);
}
