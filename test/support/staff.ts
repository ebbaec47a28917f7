import { type DeviceKeyAlg, signDeviceProof } from "../../src/auth/device-proof-token";
import { operatorToken } from "./fixtures";
import { callJson } from "./http";

export const uniqueDeviceId = (prefix = "dev") => `${prefix}-${crypto.randomUUID().slice(0, 12)}`;

let admin: Promise<{ token: string; operatorId: string }> | undefined;
/** One admin per test file (storage is per file), created on first use. */
export function adminOperator() {
  admin ??= operatorToken(["admin"]);
  return admin;
}

export interface DeviceSpec {
  kind: "gate" | "pos";
  location_id?: string;
  event_id?: string;
  functions?: string[];
}

export interface DeviceKey {
  privateKey: CryptoKey;
  publicJwk: JsonWebKey;
  alg: DeviceKeyAlg;
}

/** The private keys of the devices this test file enrolled, as a gate or till would keep them. */
const deviceKeys = new Map<string, DeviceKey>();

export async function newDeviceKey(alg: DeviceKeyAlg = "ES256"): Promise<DeviceKey> {
  const pair = (await crypto.subtle.generateKey(
    alg === "ES256" ? { name: "ECDSA", namedCurve: "P-256" } : { name: "Ed25519" },
    false,
    ["sign", "verify"],
  )) as CryptoKeyPair;
  const publicJwk = (await crypto.subtle.exportKey("jwk", pair.publicKey)) as JsonWebKey;
  return { privateKey: pair.privateKey, publicJwk, alg };
}

export function enrollDevice(enrollmentCode: string, publicKey: unknown) {
  return callJson<{ device_id: string; code?: string }>("POST", "/devices/enroll", {
    body: { enrollment_code: enrollmentCode, public_key: publicKey },
  });
}

/** Registers a device through the API without enrolling it; returns its id and first enrollment code. */
export async function registerDeviceOnly(spec: DeviceSpec) {
  const deviceId = uniqueDeviceId(spec.kind);
  const created = await callJson<{ enrollment_code: string; enrollment_expires_at: string }>(
    "POST",
    "/admin/devices",
    { token: (await adminOperator()).token, body: { device_id: deviceId, ...spec } },
  );
  if (created.status !== 201) throw new Error(`device registration failed: ${created.status}`);
  return { deviceId, enrollmentCode: created.body.enrollment_code };
}

/** Registers a device through the API and enrolls a fresh key for it, as the pages do; returns its id. */
export async function registeredDevice(spec: DeviceSpec, alg: DeviceKeyAlg = "ES256"): Promise<string> {
  const { deviceId, enrollmentCode } = await registerDeviceOnly(spec);
  const key = await newDeviceKey(alg);
  const enrolled = await enrollDevice(enrollmentCode, key.publicJwk);
  if (enrolled.status !== 200) throw new Error(`device enrollment failed: ${enrolled.status}`);
  deviceKeys.set(deviceId, key);
  return deviceId;
}

export function deviceKeyOf(deviceId: string): DeviceKey {
  const key = deviceKeys.get(deviceId);
  if (!key) throw new Error(`no key enrolled by this test file for ${deviceId}`);
  return key;
}

/** A fresh proof from the device's enrolled key (options shape the proof for tests that break it). */
export function deviceProof(
  deviceId: string,
  options: { now?: Date; jti?: string; lifetimeSeconds?: number; key?: DeviceKey } = {},
): Promise<string> {
  const key = options.key ?? deviceKeyOf(deviceId);
  return signDeviceProof(key.privateKey, key.alg, deviceId, options.now ?? new Date(), options);
}

export interface SessionBody {
  session_id: string;
  operator_id: string;
  device_id: string;
  kind: "gate" | "pos";
  location_id: string | null;
  event_id: string | null;
  opened_at: string;
  expires_at: string;
  closed_at: string | null;
}

/** Opens a session with a fresh proof from the device's key, unless the body brings its own `device_proof`. */
export async function openSession(
  token: string,
  body: { device_id: string; location_id?: string; event_id?: string; device_proof?: string },
) {
  const proof =
    body.device_proof ?? (deviceKeys.has(body.device_id) ? await deviceProof(body.device_id) : "none");
  return callJson<SessionBody & { code?: string }>("POST", "/validators/sessions", {
    token,
    body: { ...body, device_proof: proof },
  });
}
