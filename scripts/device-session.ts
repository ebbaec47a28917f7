// Opens a validator session from a Node script (bench, soak) the way a gate page does: an admin's
// enrollment code, a fresh non-extractable key enrolled with it, and a signed device proof. Enrolling
// replaces the device's key, so a page that enrolled the same device earlier enrolls again by itself.
import { signDeviceProof } from "../src/auth/device-proof-token";

/** POST `body` as JSON to `path` with an optional bearer token; resolves to status and parsed body. */
export type PostJson = (
  path: string,
  body: unknown,
  token?: string,
) => Promise<{ status: number; body: Record<string, unknown> }>;

export function fetchPoster(baseUrl: string): PostJson {
  return async (path, body, token) => {
    const response = await fetch(`${baseUrl}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(body),
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };
}

export async function openDeviceSession(
  post: PostJson,
  { adminToken, operatorToken, deviceId }: { adminToken: string; operatorToken: string; deviceId: string },
): Promise<string> {
  const code = await post(`/admin/devices/${encodeURIComponent(deviceId)}/enrollment`, {}, adminToken);
  if (code.status !== 201) throw new Error(`enrollment code for ${deviceId}: ${code.status}`);
  const pair = (await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, [
    "sign",
    "verify",
  ])) as CryptoKeyPair;
  const jwk = (await crypto.subtle.exportKey("jwk", pair.publicKey)) as JsonWebKey;
  const enrolled = await post("/devices/enroll", {
    enrollment_code: code.body.enrollment_code,
    public_key: { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y },
  });
  if (enrolled.status !== 200) throw new Error(`enrolling ${deviceId}: ${enrolled.status}`);
  const session = await post(
    "/validators/sessions",
    {
      device_id: deviceId,
      device_proof: await signDeviceProof(pair.privateKey, "ES256", deviceId, new Date()),
    },
    operatorToken,
  );
  if (session.status !== 201)
    throw new Error(`session on ${deviceId}: ${session.status} ${JSON.stringify(session.body)}`);
  return String(session.body.session_id);
}
