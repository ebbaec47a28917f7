import { eq } from "drizzle-orm";
import { verifyDeviceProof } from "../auth/device-proof";
import type { OperatorClaims } from "../auth/operator-token";
import { commitAudited, errorMatches } from "../db/audit";
import type { Db } from "../db/client";
import { findDevice, isDeviceProofReplay, spendDeviceProofStatement, toDevice } from "../db/devices";
import { validatorSessions } from "../db/schema";
import {
  findSessionWithDevice,
  findValidatorSession,
  type SessionWithDevice,
  toValidatorSession,
  type ValidatorSessionRow,
} from "../db/validator-sessions";
import { newId } from "../ids";
import type { EventMessage } from "../queues/messages";
import type { Device, DeviceKind, ValidatorSession } from "../types/domain";
import { cachedSession, cacheSession, forgetSession } from "./session-cache";

/** A session covers one shift and a half: long enough never to lapse mid-shift, short enough to go stale. */
export const VALIDATOR_SESSION_SECONDS = 12 * 60 * 60;

const isAdmin = (operator: OperatorClaims) => operator.roles.includes("admin");

export interface OpenSessionRequest {
  operator: OperatorClaims;
  deviceId: string;
  /** A compact JWS signed by the device's enrolled key (see src/auth/device-proof.ts); missing → refused. */
  deviceProof: string | undefined;
  /** Optional: when given, must equal the device's (the session's scope always comes from the device). */
  locationId?: string;
  eventId?: string;
  now: Date;
}

/** Why a session was not opened; the route answers it (403, or 422 `device_scope_mismatch`). */
export type OpenSessionRefusal =
  | { ok: false; code: "device_not_authorized" | "forbidden"; detail: string }
  | {
      ok: false;
      code: "device_scope_mismatch";
      detail: string;
      deviceLocationId: string | null;
      deviceEventId: string | null;
    };

/**
 * Opens a session on a registered, active, enrolled device that proved itself with a fresh device proof
 * (else 403 `device_not_authorized`, the same answer for every reason, so probing learns nothing). The
 * caller needs the role matching the device's kind (admin passes), and a POS session's event must be one
 * of the operator's `event_ids` (admin passes). Location and event come from the device record; a request
 * naming others → 422 `device_scope_mismatch`.
 *
 * The proof's jti is spent in the batch that opens the session: D1 rather than an object, because a
 * session open is rare (one per device per shift), must be seen by every isolate at once, and committing
 * the jti with the session means a proof is used up exactly when it opened one.
 */
export async function openValidatorSession(
  db: Db,
  events: Queue<EventMessage>,
  request: OpenSessionRequest,
): Promise<{ ok: true; session: ValidatorSession & { functions: string[] | null } } | OpenSessionRefusal> {
  const { operator, now } = request;
  // The client learns only that the device is not authorized; the reason goes to the log for the admin.
  const refused = (reason: string): OpenSessionRefusal => {
    console.warn(
      JSON.stringify({ level: "warn", msg: "device refused", device_id: request.deviceId, reason }),
    );
    return {
      ok: false,
      code: "device_not_authorized",
      detail: `Device ${request.deviceId} is not authorized`,
    };
  };
  const device = await findDevice(db, request.deviceId);
  if (!device?.active) return refused("not registered or not active");
  if (!device.publicJwk || !device.keyAlg) return refused("not enrolled");
  if (request.deviceProof === undefined) return refused("no proof");
  const verdict = await verifyDeviceProof(
    request.deviceProof,
    { id: device.id, publicJwk: device.publicJwk, keyAlg: device.keyAlg },
    now,
  );
  if (!verdict.ok) return refused(`proof refused: ${verdict.reason}`);

  if (!isAdmin(operator) && !operator.roles.includes(device.kind)) {
    return { ok: false, code: "forbidden", detail: `A ${device.kind} session requires role ${device.kind}` };
  }
  const mismatched = [
    request.locationId !== undefined && request.locationId !== device.locationId ? "location_id" : undefined,
    request.eventId !== undefined && request.eventId !== device.eventId ? "event_id" : undefined,
  ].filter((field) => field !== undefined);
  if (mismatched.length > 0) {
    return {
      ok: false,
      code: "device_scope_mismatch",
      detail: `Device ${device.id} is bound elsewhere: ${mismatched.join(", ")}`,
      deviceLocationId: device.locationId,
      deviceEventId: device.eventId,
    };
  }
  const eventId = device.eventId;
  if (
    device.kind === "pos" &&
    !isAdmin(operator) &&
    (eventId === null || !operator.eventIds.includes(eventId))
  ) {
    return { ok: false, code: "forbidden", detail: `Operator is not assigned to event ${eventId}` };
  }

  const row: ValidatorSessionRow = {
    id: newId("ses"),
    operatorId: operator.operatorId,
    deviceId: device.id,
    kind: device.kind,
    locationId: device.locationId,
    eventId,
    openedAt: now.toISOString(),
    expiresAt: new Date(now.getTime() + VALIDATOR_SESSION_SECONDS * 1000).toISOString(),
    closedAt: null,
    deviceEnrolledAt: device.enrolledAt,
  };
  const session = toValidatorSession(row);
  try {
    await commitAudited(
      db,
      events,
      {
        actor: operator.operatorId,
        action: "session.open",
        target: row.id,
        details: {
          device_id: session.device_id,
          kind: session.kind,
          location_id: session.location_id,
          event_id: session.event_id,
          expires_at: session.expires_at,
        },
      },
      now,
      [
        spendDeviceProofStatement(db, device.id, verdict.proof.jti, verdict.proof.expiresAt),
        db.insert(validatorSessions).values(row),
      ],
    );
  } catch (error) {
    if (isDeviceProofReplay(error)) return refused("proof replayed");
    // Revoked or re-enrolled between the check above and this batch (migrations/0012's trigger).
    if (errorMatches(error, /validator_session_device_changed/)) return refused("device changed meanwhile");
    throw error;
  }
  return { ok: true, session: { ...session, functions: device.functions ?? null } };
}

export interface CloseSessionRequest {
  sessionId: string;
  operator: OperatorClaims;
  now: Date;
}

/**
 * Closes a session: its own operator's, or any for an admin; someone else's is undefined like a missing one.
 * Idempotent: closing a closed session returns it unchanged and writes no second audit entry.
 */
export async function closeValidatorSession(
  db: Db,
  events: Queue<EventMessage>,
  request: CloseSessionRequest,
): Promise<ValidatorSession | undefined> {
  const { operator, now } = request;
  const row = await findValidatorSession(db, request.sessionId);
  if (!row || (row.operatorId !== operator.operatorId && !isAdmin(operator))) return undefined;
  forgetSession(row.id);
  if (row.closedAt !== null) return toValidatorSession(row);

  // Never before opened_at (the table's CHECK), even if this isolate's clock trails the one that opened it.
  let closedAt = now.toISOString();
  if (closedAt < row.openedAt) closedAt = row.openedAt;
  try {
    await commitAudited(
      db,
      events,
      {
        actor: operator.operatorId,
        action: "session.close",
        target: row.id,
        details: { device_id: row.deviceId, session_operator_id: row.operatorId },
      },
      now,
      [db.update(validatorSessions).set({ closedAt }).where(eq(validatorSessions.id, row.id))],
    );
  } catch (error) {
    // A concurrent close won: the close-once trigger rolled back our batch, audit request included.
    if (errorMatches(error, /validator_session_already_closed/)) {
      const closed = await findValidatorSession(db, row.id);
      if (closed) return toValidatorSession(closed);
    }
    throw error;
  }
  // Again after the commit: a scan in this isolate may have cached the session while the close ran.
  forgetSession(row.id);
  return toValidatorSession({ ...row, closedAt });
}

/** Why a session cannot be used for this request, or undefined when it can. */
function sessionProblem(
  found: SessionWithDevice | undefined,
  request: RequireOpenSessionRequest,
): string | undefined {
  // Someone else's session answers exactly like a missing one.
  if (!found || found.session.operatorId !== request.operatorId) {
    return "No open session with this id for this operator";
  }
  if (found.session.closedAt !== null) return "Session is closed";
  if (found.session.expiresAt <= request.now.toISOString()) return "Session has expired";
  if (found.session.kind !== request.kind) return `Not a ${request.kind} session`;
  if (!found.device.active) return "The session's device has been deactivated";
  if (!found.operatorActive) return "The session's operator has been deactivated";
  return undefined;
}

export interface OpenSession {
  session: ValidatorSession;
  /** The device the session runs on, with its `functions` restriction (null: every function). */
  device: Device;
}

export interface RequireOpenSessionRequest {
  sessionId: string;
  operatorId: string;
  kind: DeviceKind;
  now: Date;
}

/**
 * The check every scan and POS request makes, in one D1 query (session ⋈ device ⋈ operator), reused for a
 * few seconds per isolate (see session-cache.ts). Refuses (the route answers 403 `session_invalid`) when
 * the session does not exist or is not the caller's (same answer for both), is closed or expired, is of
 * the other kind, or its device or operator has since been deactivated.
 */
export async function findOpenSession(
  db: Db,
  request: RequireOpenSessionRequest,
): Promise<({ ok: true } & OpenSession) | { ok: false; code: "session_invalid"; detail: string }> {
  const nowMs = request.now.getTime();
  let found = cachedSession(request.sessionId, nowMs);
  if (!found) {
    found = await findSessionWithDevice(db, request.sessionId);
    if (found && !sessionProblem(found, request)) cacheSession(found, nowMs);
  }
  const problem = sessionProblem(found, request);
  if (!found || problem) return { ok: false, code: "session_invalid", detail: problem ?? "No open session" };
  return { ok: true, session: toValidatorSession(found.session), device: toDevice(found.device) };
}
