import { decodeJwt } from "jose";
import { type OfflineScanRecord, signOfflineScan } from "../../src/auth/device-proof-token";
import { callJson } from "./http";
import { deviceKeyOf } from "./staff";
import type { PaidTicket } from "./tickets";

// A gate working offline, as the gate page does it: codes from the buyer's supply, decisions signed by the
// device's enrolled key, uploads to POST /devices/{id}/offline-scans.

export interface Gate {
  token: string;
  operatorId: string;
  sessionId: string;
  deviceId: string;
}

export interface SupplyBody {
  issued_at: string;
  tokens: { token: string; not_before: string; expires_at: string }[];
  code?: string;
}

export function qrSupply(ticket: PaidTicket, token = ticket.buyerToken) {
  return callJson<SupplyBody>("POST", `/tickets/${ticket.code}/qr-tokens`, { token });
}

/** The supply's token for the window that is current now. */
export async function currentSupplyToken(ticket: PaidTicket): Promise<string> {
  const supply = await qrSupply(ticket);
  const now = Date.now();
  const current = supply.body.tokens.find(
    (t) => Date.parse(t.not_before) <= now && now < Date.parse(t.expires_at),
  );
  if (!current) throw new Error(`no current token in the supply (${supply.status})`);
  return current.token;
}

export interface UploadScan extends OfflineScanRecord {
  device_signature?: string;
}

/** One offline decision by `gate`'s device, signed with its key (as the page queues it). */
export async function offlineScan(
  gate: Gate,
  qrToken: string,
  fn: string,
  options: {
    decision?: "accepted" | "refused";
    scannedAt?: Date;
    scanId?: string;
    unsigned?: boolean;
    /** The session the decision was made in, when not the uploading one. */
    sessionId?: string;
  } = {},
): Promise<UploadScan> {
  const record: OfflineScanRecord = {
    scan_id: options.scanId ?? crypto.randomUUID(),
    qr_token: qrToken,
    function: fn,
    scanned_at: (options.scannedAt ?? new Date()).toISOString(),
    decision: options.decision ?? "accepted",
    ...(options.sessionId === undefined ? {} : { session_id: options.sessionId }),
  };
  if (options.unsigned) return record;
  const key = deviceKeyOf(gate.deviceId);
  // As the page does: a code that is no token has no jti to name.
  let qrJti = "";
  try {
    qrJti = String(decodeJwt(qrToken).jti);
  } catch {}
  return {
    ...record,
    device_signature: await signOfflineScan(key.privateKey, key.alg, gate.deviceId, record, qrJti),
  };
}

export interface UploadResult {
  scan_id: string;
  outcome: "applied" | "duplicate" | "conflict" | "invalid" | "recorded";
  redemption_id?: string;
  remaining_uses?: number;
  over_budget?: boolean;
}

export function uploadOffline(gate: Gate, scans: UploadScan[], sessionId = gate.sessionId) {
  return callJson<{ results: UploadResult[]; code?: string }>(
    "POST",
    `/devices/${encodeURIComponent(gate.deviceId)}/offline-scans`,
    { token: gate.token, body: { session_id: sessionId, scans } },
  );
}

export interface KitBody {
  issued_at: string;
  valid_until: string;
  issuer: string;
  jwks: { keys: Record<string, unknown>[] };
  functions: string[] | null;
  blocked: { code: string; functions?: string[] }[];
  scarce: { code: string; function: string; remaining_uses: number }[];
  complete: boolean;
  budget: { max_offline_seconds: number; accepts_per_ticket_function: number };
  code?: string;
}

export function offlineKit(gate: Gate, options: { since?: string; sessionId?: string } = {}) {
  const query = new URLSearchParams({ session_id: options.sessionId ?? gate.sessionId });
  if (options.since) query.set("since", options.since);
  return callJson<KitBody>("GET", `/devices/${encodeURIComponent(gate.deviceId)}/offline-kit?${query}`, {
    token: gate.token,
  });
}
