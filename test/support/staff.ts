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

/** Registers a device through the API and returns its id. */
export async function registeredDevice(spec: DeviceSpec): Promise<string> {
  const deviceId = uniqueDeviceId(spec.kind);
  const created = await callJson("POST", "/admin/devices", {
    token: (await adminOperator()).token,
    body: { device_id: deviceId, ...spec },
  });
  if (created.status !== 201) throw new Error(`device registration failed: ${created.status}`);
  return deviceId;
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

export function openSession(
  token: string,
  body: { device_id: string; location_id?: string; event_id?: string },
) {
  return callJson<SessionBody & { code?: string }>("POST", "/validators/sessions", { token, body });
}
