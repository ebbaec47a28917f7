import { checkTicketQr, MAX_QR_TOKEN_LENGTH } from "../../../src/auth/ticket-qr-claims";
import {
  decideOfflineScan,
  type OfflineRefusal,
  type TicketFunctionKnowledge,
} from "../../../src/domain/offline-rule";
import { signOfflineScanAsDevice } from "../lib/device-key";
import { kitKnowledge, type StoredKit } from "./offline-kit";
import {
  enqueueScan,
  isJtiSpent,
  learnedRemaining,
  MAX_QUEUED_SCANS,
  outstandingFor,
  queuedCount,
} from "./offline-store";

// One scan decided with no server: the token checked against the kit's keys, then the shared offline rule
// (src/domain/offline-rule.ts, the one the Worker's tests hold against the ticket object) on what this
// gate knows; then the decision is signed with the device's key and queued for the server.

/** Why the gate refused alone: the rule's reasons, a code that is no genuine token, or a full queue. */
export type OfflineRefusalCode = OfflineRefusal | "token_invalid" | "offline_queue_full";

export interface OfflineJudgement {
  qrToken: string;
  fn: string;
  /** The decision's time on the server's clock (the kit tells the offset), as the upload dates it. */
  scannedAt: string;
  /** From the verified token; undefined for a code that is no genuine token. */
  ticketCode: string | undefined;
  token: { jti: string; expiresAtMs: number } | undefined;
  refusal: OfflineRefusalCode | undefined;
}

/** The lowest of the counts known; undefined when none is. */
function lowest(...counts: (number | undefined)[]): number | undefined {
  const known = counts.filter((count): count is number => count !== undefined);
  return known.length > 0 ? Math.min(...known) : undefined;
}

async function knowledgeOf(
  deviceId: string,
  stored: StoredKit,
  ticketCode: string,
  fn: string,
  deviceNowMs: number,
): Promise<TicketFunctionKnowledge> {
  const fromKit = kitKnowledge(stored.kit, ticketCode, fn);
  return {
    blocked: fromKit.blocked,
    knownRemaining: lowest(fromKit.remaining, await learnedRemaining(ticketCode, fn, deviceNowMs)),
    outstanding: await outstandingFor(deviceId, ticketCode, fn),
  };
}

/** Decides `qrToken` for `fn` with `stored`'s kit and this device's history, as of `deviceNowMs`. */
export async function judgeOffline(
  deviceId: string,
  stored: StoredKit,
  qrToken: string,
  fn: string,
  deviceNowMs = Date.now(),
): Promise<OfflineJudgement> {
  const { kit } = stored;
  const nowMs = deviceNowMs + stored.clockOffsetMs;
  const unknown = {
    qrToken,
    fn,
    scannedAt: new Date(nowMs).toISOString(),
    ticketCode: undefined,
    token: undefined,
  };
  if ((await queuedCount(deviceId)) >= MAX_QUEUED_SCANS) return { ...unknown, refusal: "offline_queue_full" };
  const check = await checkTicketQr(qrToken, kit.jwks, kit.issuer, nowMs);
  if (!check.ok) return { ...unknown, refusal: "token_invalid" };
  const { token } = check;
  const known = {
    ...unknown,
    ticketCode: token.ticketCode,
    token: { jti: token.jti, expiresAtMs: token.expiresAtSeconds * 1000 },
  };
  if (!check.timely) {
    return { ...known, refusal: token.notBeforeSeconds * 1000 > nowMs ? "not_yet_valid" : "token_expired" };
  }
  const decision = decideOfflineScan({
    token,
    fn,
    jtiSeen: await isJtiSpent(token.jti),
    knowledge: await knowledgeOf(deviceId, stored, token.ticketCode, fn, deviceNowMs),
    budget: kit.budget,
    lastContactMs: Date.parse(kit.issued_at),
    nowMs,
  });
  return { ...known, refusal: decision.ok ? undefined : decision.code };
}

/**
 * Signs and queues `judgement` (accepted or refused), and spends the token's jti here when accepted.
 * Returns the scan id, or undefined for what cannot be uploaded (a full queue, a code too long to be a
 * token, which the server would refuse along with the rest of its upload).
 */
export async function queueOfflineDecision(
  deviceId: string,
  sessionId: string,
  judgement: OfflineJudgement,
): Promise<string | undefined> {
  const { qrToken, refusal, token } = judgement;
  if (refusal === "offline_queue_full" || qrToken.length > MAX_QR_TOKEN_LENGTH) return undefined;
  const record = {
    scan_id: crypto.randomUUID(),
    qr_token: qrToken,
    function: judgement.fn,
    scanned_at: judgement.scannedAt,
    decision: refusal ? ("refused" as const) : ("accepted" as const),
    // Uploaded perhaps in a later session (another operator's shift): the decision names its own.
    session_id: sessionId,
  };
  // A code that is no genuine token has no jti to vouch for. Reading one out of it unverified would let a
  // crafted code make the signature too long to upload (and the whole queue with it).
  const qrJti = token?.jti ?? "";
  const deviceSignature = await signOfflineScanAsDevice(deviceId, record, qrJti);
  await enqueueScan(
    deviceId,
    { upload: { ...record, device_signature: deviceSignature }, ticketCode: judgement.ticketCode },
    refusal ? undefined : token,
  );
  return record.scan_id;
}
