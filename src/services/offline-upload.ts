import pMap from "p-map";
import { verifyOfflineScanSignature } from "../auth/device-proof";
import type { OfflineScanRecord } from "../auth/device-proof-token";
import { publicJwks } from "../auth/qr-token";
import { checkTicketQr } from "../auth/ticket-qr-claims";
import { type Db, getDb } from "../db/client";
import type { DeviceRow } from "../db/devices";
import { findValidatorSession } from "../db/validator-sessions";
import { OFFLINE_SCAN_RETENTION_MS, offlineFlagId } from "../domain/offline-reconciliation";
import type { Config, Env } from "../env";
import type { OfflineScan, OfflineScanResult, ScanSession } from "../objects/ticket";
import type { OfflineScanFlagged } from "../queues/messages";

/** The contract's cap on one upload. */
export const MAX_OFFLINE_SCANS_PER_UPLOAD = 500;
/** Ticket objects asked at once for one upload: enough to overlap round trips, few enough to be polite. */
const RECONCILE_CONCURRENCY = 16;
/** A gate's clock may run this far ahead of ours; a scan dated further ahead was not made by a gate's clock. */
const MAX_SCANNED_AT_AHEAD_MS = 5 * 60 * 1000;
/**
 * Scans older than this are refused (`too_old`): the ticket objects forget reconciled scan ids after
 * OFFLINE_SCAN_RETENTION_MS, so a scan that old could no longer be told from a duplicate.
 */
const MAX_SCAN_AGE_MS = OFFLINE_SCAN_RETENTION_MS - 24 * 60 * 60 * 1000;
/** Events per Queue sendBatch (at most 100 messages). */
const SEND_BATCH = 100;

export interface OfflineUploadScan extends OfflineScanRecord {
  device_signature?: string;
}

export interface OfflineUploadResult {
  scan_id: string;
  outcome: OfflineScanResult["outcome"] | "invalid";
  redemption_id?: string;
  remaining_uses?: number;
  over_budget?: boolean;
}

type Invalid = { invalid: string };
/** A refusal of a code that is no genuine token: nobody went in, and nothing is left to reconcile. */
type RefusedJunk = { junk: true };
type Verified = { ticketCode: string; scan: OfflineScan };

/**
 * Reconciles one upload of offline decisions from `device` (CONTRACT Part 2). Each scan's QR token is
 * checked against our keys as of the time the gate gives, and its device signature (when sent) against
 * the device's key; what is not genuine is `invalid` and raises a flag (a refused code that is no token at
 * all is only `recorded`: nobody went in). The rest goes to each ticket's
 * object, which decides once per scan id. The flags of invalid scans are queued before the answer, so an
 * answer the gate acts on (dropping the scans from its queue) never loses one.
 */
export async function reconcileOfflineUpload(
  env: Env,
  config: Config,
  upload: {
    device: DeviceRow & {
      publicJwk: NonNullable<DeviceRow["publicJwk"]>;
      keyAlg: NonNullable<DeviceRow["keyAlg"]>;
    };
    session: ScanSession;
    scans: OfflineUploadScan[];
    now: Date;
  },
): Promise<OfflineUploadResult[]> {
  const jwks = await publicJwks(config);
  const verified = await Promise.all(
    upload.scans.map((scan) => verifyUploadedScan(scan, upload, jwks, config.serviceIssuer)),
  );

  const results: (OfflineUploadResult | undefined)[] = new Array(upload.scans.length);
  const invalid = new Map<number, string>();
  const sessions = await decisionSessions(
    getDb(env.DB),
    upload,
    verified.map((entry, index) => ("ticketCode" in entry ? upload.scans[index]?.session_id : undefined)),
  );
  // One call per ticket and session the decisions were made in: each is recorded under its own shift.
  const groups = new Map<
    string,
    { ticketCode: string; session: ScanSession; entries: { index: number; scan: OfflineScan }[] }
  >();
  verified.forEach((entry, index) => {
    if (!("ticketCode" in entry)) return;
    const sessionId = upload.scans[index]?.session_id ?? upload.session.sessionId;
    const session = sessions.get(sessionId);
    if (!session) {
      invalid.set(index, "session_not_of_device");
      return;
    }
    const key = `${entry.ticketCode}\n${sessionId}`;
    const group = groups.get(key) ?? { ticketCode: entry.ticketCode, session, entries: [] };
    group.entries.push({ index, scan: entry.scan });
    groups.set(key, group);
  });

  verified.forEach((entry, index) => {
    if ("invalid" in entry) invalid.set(index, entry.invalid);
    if ("junk" in entry)
      results[index] = { scan_id: upload.scans[index]?.scan_id ?? "", outcome: "recorded" };
  });
  await pMap(
    [...groups.values()],
    async ({ ticketCode, session, entries }) => {
      const answer = await env.TICKETS.get(env.TICKETS.idFromName(ticketCode)).reconcileOffline({
        ticketCode,
        session,
        acceptsPerTicketFunction: config.offlineAcceptsPerTicketFunction,
        scans: entries.map((entry) => entry.scan),
      });
      if (answer.result === "ticket_not_found") {
        // Signed by us for a ticket that does not exist: not a code any buyer was given.
        for (const entry of entries) invalid.set(entry.index, "ticket_not_found");
        return;
      }
      answer.scans.forEach((result, i) => {
        const index = entries[i]?.index;
        if (index === undefined) throw new Error("invariant: one result per reconciled scan");
        results[index] = {
          scan_id: result.scanId,
          outcome: result.outcome,
          ...(result.redemptionId ? { redemption_id: result.redemptionId } : {}),
          ...(result.remainingUses !== undefined ? { remaining_uses: result.remainingUses } : {}),
          ...(result.overBudget ? { over_budget: true } : {}),
        };
      });
    },
    { concurrency: RECONCILE_CONCURRENCY },
  );

  const flags: OfflineScanFlagged[] = [];
  for (const [index, reason] of invalid) {
    const scan = upload.scans[index];
    if (!scan) continue;
    results[index] = { scan_id: scan.scan_id, outcome: "invalid" };
    flags.push(invalidFlag(scan, reason, upload));
  }
  for (let start = 0; start < flags.length; start += SEND_BATCH) {
    await env.EVENTS.sendBatch(flags.slice(start, start + SEND_BATCH).map((body) => ({ body })));
  }
  return results.map((result, index) => {
    if (!result) throw new Error(`invariant: scan ${index} of the upload got no result`);
    return result;
  });
}

/**
 * The sessions the upload's decisions were made in: the uploading one, and any earlier one they name,
 * which must be a session of this same device (its operator is who let the holder in). A session that is
 * not is left out, and its decisions are `invalid`.
 */
async function decisionSessions(
  db: Db,
  upload: Parameters<typeof reconcileOfflineUpload>[2],
  sessionIds: Iterable<string | undefined>,
): Promise<Map<string, ScanSession>> {
  const sessions = new Map<string, ScanSession>([[upload.session.sessionId, upload.session]]);
  const named = new Set([...sessionIds].filter((id): id is string => id !== undefined));
  named.delete(upload.session.sessionId);
  for (const sessionId of named) {
    const row = await findValidatorSession(db, sessionId);
    if (row?.deviceId !== upload.device.id || row.kind !== "gate") continue;
    sessions.set(sessionId, {
      sessionId,
      operatorId: row.operatorId,
      deviceId: row.deviceId,
      locationId: row.locationId,
    });
  }
  return sessions;
}

async function verifyUploadedScan(
  scan: OfflineUploadScan,
  upload: Parameters<typeof reconcileOfflineUpload>[2],
  jwks: Awaited<ReturnType<typeof publicJwks>>,
  issuer: string,
): Promise<Verified | Invalid | RefusedJunk> {
  const scannedAtMs = Date.parse(scan.scanned_at);
  if (scannedAtMs > upload.now.getTime() + MAX_SCANNED_AT_AHEAD_MS) return { invalid: "scanned_at_ahead" };
  if (scannedAtMs < upload.now.getTime() - MAX_SCAN_AGE_MS) return { invalid: "too_old" };
  const checked = await checkTicketQr(scan.qr_token, jwks, issuer, scannedAtMs);
  // A gate that refused a stray code (a wallet QR, a poster) did its job; only an accept is an alert.
  if (!checked.ok) return scan.decision === "refused" ? { junk: true } : { invalid: "token_signature" };
  // Every enrolled device has a key: an upload without the device's signature over each decision could
  // come from anyone holding a session id, backdating scans of tokens they once saw.
  if (scan.device_signature === undefined) return { invalid: "device_signature" };
  if (
    !(await verifyOfflineScanSignature(
      scan.device_signature,
      { id: upload.device.id, publicJwk: upload.device.publicJwk, keyAlg: upload.device.keyAlg },
      scan,
      checked.token.jti,
    ))
  ) {
    return { invalid: "device_signature" };
  }
  const functions = upload.device.functions;
  if (functions && !functions.includes(scan.function)) return { invalid: "function_not_allowed" };
  return {
    ticketCode: checked.token.ticketCode,
    scan: {
      scanId: scan.scan_id,
      fn: scan.function,
      decision: scan.decision,
      jti: checked.token.jti,
      tokenExpiresAt: checked.token.expiresAtSeconds,
      tokenGoodAtScan: checked.timely,
      scannedAtMs,
    },
  };
}

function invalidFlag(
  scan: OfflineUploadScan,
  reason: string,
  upload: Parameters<typeof reconcileOfflineUpload>[2],
): OfflineScanFlagged {
  const { session } = upload;
  const scannedAtMs = Date.parse(scan.scanned_at);
  return {
    type: "offline.flagged",
    id: offlineFlagId(null, session.deviceId, scan.scan_id),
    outcome: "invalid",
    reason,
    scan_id: scan.scan_id,
    ticket_code: null,
    function: scan.function,
    device_id: session.deviceId,
    operator_id: session.operatorId,
    session_id: session.sessionId,
    location_id: session.locationId,
    // A date far ahead is itself the reason; it is kept as the upload's time so the report can range it.
    scanned_at: new Date(Math.min(scannedAtMs, upload.now.getTime())).toISOString(),
    recorded_at: upload.now.toISOString(),
    over_budget: false,
    other: null,
  };
}
