import { randomUUID } from "node:crypto";
import { signDeviceProof } from "../../../src/auth/device-proof-token";

// Setting the scene from Node through the same public API (and the dev-only helpers) the pages use.

export const DEMO_PASSWORD = "demo-password-123";
export const HARBOUR_PASS = "prd_seed_harbour_pass";

export async function call<T = Record<string, unknown>>(
  base: string,
  method: string,
  path: string,
  options: { token?: string; body?: unknown; idempotencyKey?: string } = {},
): Promise<{ status: number; body: T }> {
  const headers: Record<string, string> = {};
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  if (options.idempotencyKey) headers["idempotency-key"] = options.idempotencyKey;
  if (options.body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(`${base}${path}`, {
    method,
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  const text = await response.text();
  return { status: response.status, body: (text ? JSON.parse(text) : null) as T };
}

function expectStatus(result: { status: number; body: unknown }, status: number, what: string): void {
  if (result.status !== status) {
    throw new Error(`${what}: expected ${status}, got ${result.status} ${JSON.stringify(result.body)}`);
  }
}

export async function demoBuyer(base: string): Promise<string> {
  const result = await call<{ token: string }>(base, "POST", "/dev/buyer-token", { body: {} });
  expectStatus(result, 201, "demo buyer token");
  return result.body.token;
}

export interface Ticket {
  code: string;
  entitlements: { function: string; total_uses: number; remaining_uses: number }[];
}

/** Buys one Harbour Pass for `token`, pays it with a signed (simulated) webhook, returns the ticket. */
export async function paidTicket(base: string, token: string): Promise<Ticket> {
  const order = await call<{ order_id: string }>(base, "POST", "/orders", {
    token,
    idempotencyKey: randomUUID(),
    body: { items: [{ product_id: HARBOUR_PASS, quantity: 1 }] },
  });
  expectStatus(order, 201, "order");
  const paid = await call(base, "POST", "/dev/simulate-payment", {
    token,
    body: { order_id: order.body.order_id },
  });
  expectStatus(paid, 200, "simulated payment");
  const tickets = await call<{ tickets: (Ticket & { order_id: string })[] }>(base, "GET", "/my/tickets", {
    token,
  });
  const ticket = tickets.body.tickets.find((candidate) => candidate.order_id === order.body.order_id);
  if (!ticket) throw new Error("the paid order has no ticket");
  return ticket;
}

export async function staffToken(base: string, username: string): Promise<string> {
  const result = await call<{ operator_token: string }>(base, "POST", "/operators/login", {
    body: { username, password: DEMO_PASSWORD },
  });
  expectStatus(result, 200, `login ${username}`);
  return result.body.operator_token;
}

/** Enrolls a fresh key for `deviceId` with `enrollmentCode` and opens a session for `token` with a proof. */
async function enrollAndOpen(base: string, token: string, deviceId: string, enrollmentCode: string) {
  const pair = (await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, [
    "sign",
    "verify",
  ])) as CryptoKeyPair;
  const jwk = (await crypto.subtle.exportKey("jwk", pair.publicKey)) as JsonWebKey;
  const enrolled = await call(base, "POST", "/devices/enroll", {
    body: { enrollment_code: enrollmentCode, public_key: { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y } },
  });
  if (enrolled.status !== 200) throw new Error(`enrollment failed: ${enrolled.status}`);
  const session = await call<{ session_id: string }>(base, "POST", "/validators/sessions", {
    token,
    body: {
      device_id: deviceId,
      device_proof: await signDeviceProof(pair.privateKey, "ES256", deviceId, new Date()),
    },
  });
  if (session.status !== 201)
    throw new Error(`session failed: ${session.status} ${JSON.stringify(session.body)}`);
  return session.body.session_id;
}

/**
 * Opens a session on a seeded device the way a page does: a development enrollment code, a fresh key
 * enrolled with it (this replaces the device's key, so a page enrolled earlier enrolls again), a proof.
 */
export async function deviceSession(base: string, token: string, deviceId: string): Promise<string> {
  const code = await call<{ enrollment_code: string }>(
    base,
    "POST",
    `/dev/devices/${encodeURIComponent(deviceId)}/enrollment`,
  );
  return enrollAndOpen(base, token, deviceId, code.body.enrollment_code);
}

/** Registers a gate device of its own at `locationId` (as `admin-demo`); answers its first enrollment code. */
export async function registerGateDevice(base: string, locationId: string) {
  const deviceId = `e2e-gate-${crypto.randomUUID().slice(0, 8)}`;
  const registered = await call<{ enrollment_code: string }>(base, "POST", "/admin/devices", {
    token: await staffToken(base, "admin-demo"),
    body: { device_id: deviceId, kind: "gate", location_id: locationId },
  });
  if (registered.status !== 201) throw new Error(`device registration failed: ${registered.status}`);
  return { deviceId, enrollmentCode: registered.body.enrollment_code };
}

/** A gate device of its own at `locationId`, with a session for `token`. */
export async function newGateDevice(base: string, token: string, locationId: string) {
  const { deviceId, enrollmentCode } = await registerGateDevice(base, locationId);
  return { deviceId, sessionId: await enrollAndOpen(base, token, deviceId, enrollmentCode) };
}

/** A gate device of its own at `locationId`, registered by `admin-demo`, with a session for `token`. */
export async function newGateSession(base: string, token: string, locationId: string): Promise<string> {
  return (await newGateDevice(base, token, locationId)).sessionId;
}
