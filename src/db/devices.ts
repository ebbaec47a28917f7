import { and, asc, eq, gt, isNull, lt, sql } from "drizzle-orm";
import type { DevicePublicJwk } from "../auth/device-proof";
import { deviceKeyAlg } from "../auth/device-proof";
import { sha256Hex } from "../auth/sha256";
import type { EventMessage } from "../queues/messages";
import type { Device, DeviceEnrollmentCode, DeviceKind } from "../types/domain";
import { commitAudited, errorMatches } from "./audit";
import { type Db, isConstraintError, type Statement } from "./client";
import { deviceEnrollments, deviceProofs, devices, validatorSessions } from "./schema";

export type DeviceRow = typeof devices.$inferSelect;

/** An enrollment code is typed on the device by staff, so it must not outlive a short walk to the gate. */
export const ENROLLMENT_CODE_TTL_SECONDS = 15 * 60;
/** 12 characters of Crockford base32: 60 bits, far beyond guessing within a code's 15 minutes. */
const ENROLLMENT_CODE_LENGTH = 12;
const ENROLLMENT_CODE_GROUP = 4;
const CROCKFORD_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
export const DEVICE_PAGE_MAX = 200;

export function toDevice(row: DeviceRow): Device {
  return {
    device_id: row.id,
    kind: row.kind,
    location_id: row.locationId,
    event_id: row.eventId,
    functions: row.functions ?? null,
    active: row.active,
    enrolled_at: row.enrolledAt ?? null,
    key_alg: row.keyAlg ?? null,
    created_at: row.createdAt,
    updated_at: row.updatedAt,
  };
}

export async function findDevice(db: Db, id: string): Promise<DeviceRow | undefined> {
  return db.query.devices.findFirst({ where: eq(devices.id, id) });
}

/** One page of devices in id order; `after` is the last id of the previous page. */
export async function listDevices(
  db: Db,
  page: { after?: string; limit: number },
): Promise<{ devices: Device[]; next: string | null }> {
  const rows = await db
    .select()
    .from(devices)
    .where(page.after === undefined ? undefined : gt(devices.id, page.after))
    .orderBy(asc(devices.id))
    .limit(page.limit + 1);
  const shown = rows.slice(0, page.limit);
  return {
    devices: shown.map(toDevice),
    next: rows.length > page.limit ? (shown.at(-1)?.id ?? null) : null,
  };
}

/** Codes are compared after this, so a code read aloud and typed with dashes, spaces or in lower case works. */
export function normalizeEnrollmentCode(code: string): string {
  // Crockford's decoding: the letters people type for the digits the alphabet leaves out.
  return code
    .toUpperCase()
    .replace(/[^0-9A-Z]/g, "")
    .replace(/O/g, "0")
    .replace(/[IL]/g, "1");
}

function newEnrollmentCode(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(ENROLLMENT_CODE_LENGTH));
  const characters = [...bytes].map((byte) => CROCKFORD_ALPHABET[byte % CROCKFORD_ALPHABET.length]);
  const groups: string[] = [];
  for (let at = 0; at < characters.length; at += ENROLLMENT_CODE_GROUP) {
    groups.push(characters.slice(at, at + ENROLLMENT_CODE_GROUP).join(""));
  }
  return groups.join("-");
}

/**
 * A fresh code for `deviceId` and the statements that store it: the code's hash, and every earlier unused
 * code of the device marked used, so only the newest code can enroll.
 */
async function enrollmentCodeStatements(
  db: Db,
  deviceId: string,
  now: Date,
): Promise<{ code: DeviceEnrollmentCode; statements: Statement[] }> {
  const code = newEnrollmentCode();
  const createdAt = now.toISOString();
  const expiresAt = new Date(now.getTime() + ENROLLMENT_CODE_TTL_SECONDS * 1000).toISOString();
  return {
    code: { device_id: deviceId, enrollment_code: code, enrollment_expires_at: expiresAt },
    statements: [
      db
        .update(deviceEnrollments)
        .set({ usedAt: createdAt })
        .where(and(eq(deviceEnrollments.deviceId, deviceId), isNull(deviceEnrollments.usedAt))),
      db.insert(deviceEnrollments).values({
        codeHash: await sha256Hex(normalizeEnrollmentCode(code)),
        deviceId,
        createdAt,
        expiresAt,
      }),
    ],
  };
}

export interface NewDevice {
  device_id: string;
  kind: DeviceKind;
  location_id?: string;
  event_id?: string;
  functions?: string[];
}

export type RegisterDeviceResult =
  | { ok: true; device: Device; enrollment: DeviceEnrollmentCode }
  | { ok: false; code: "device_exists" };

/** Registers a device with its first enrollment code and its audit entry's request, in one batch. */
export async function registerDevice(
  db: Db,
  events: Queue<EventMessage>,
  input: NewDevice,
  actor: string,
  now: Date,
): Promise<RegisterDeviceResult> {
  const timestamp = now.toISOString();
  const row: DeviceRow = {
    id: input.device_id,
    kind: input.kind,
    locationId: input.location_id ?? null,
    eventId: input.event_id ?? null,
    functions: input.functions ?? null,
    active: true,
    createdAt: timestamp,
    updatedAt: timestamp,
    publicJwk: null,
    keyAlg: null,
    enrolledAt: null,
  };
  const device = toDevice(row);
  const enrollment = await enrollmentCodeStatements(db, row.id, now);
  try {
    await commitAudited(
      db,
      events,
      { actor, action: "device.register", target: row.id, details: { ...device } },
      now,
      [db.insert(devices).values(row), ...enrollment.statements],
    );
  } catch (error) {
    if (isConstraintError(error, /UNIQUE.*devices\.id|PRIMARY KEY.*devices/i)) {
      return { ok: false, code: "device_exists" };
    }
    throw error;
  }
  return { ok: true, device, enrollment: enrollment.code };
}

/** A fresh enrollment code for an existing device (enrolling with it replaces the device's key). */
export async function issueEnrollmentCode(
  db: Db,
  events: Queue<EventMessage>,
  deviceId: string,
  actor: string,
  now: Date,
): Promise<DeviceEnrollmentCode | undefined> {
  // Devices are never deleted, so one that exists now still exists when the batch runs.
  if (!(await findDevice(db, deviceId))) return undefined;
  const enrollment = await enrollmentCodeStatements(db, deviceId, now);
  await commitAudited(
    db,
    events,
    {
      actor,
      action: "device.enrollment_code",
      target: deviceId,
      details: { expires_at: enrollment.code.enrollment_expires_at },
    },
    now,
    enrollment.statements,
  );
  return enrollment.code;
}

/** Closes the open sessions of a device in the batch that changes what the device may do. */
function closeDeviceSessions(db: Db, deviceId: string, now: Date): Statement {
  return db
    .update(validatorSessions)
    .set({ closedAt: sql`max(${now.toISOString()}, ${validatorSessions.openedAt})` })
    .where(and(eq(validatorSessions.deviceId, deviceId), isNull(validatorSessions.closedAt)));
}

export type EnrollResult = { ok: true; device: DeviceRow } | { ok: false; code: "enrollment_invalid" };

/**
 * Enrolls a device's public key with a one-time code: the code is used, the key replaces any earlier one,
 * the device's open sessions (opened with the old key) are closed, and the audit entry is requested, in one
 * batch. Unknown, used and expired codes answer alike; a code raced by two enrollments serves one (the
 * use-once trigger rolls the other's batch back).
 */
export async function enrollDevice(
  db: Db,
  events: Queue<EventMessage>,
  input: { enrollmentCode: string; publicJwk: DevicePublicJwk },
  now: Date,
): Promise<EnrollResult> {
  const codeHash = await sha256Hex(normalizeEnrollmentCode(input.enrollmentCode));
  const enrollment = await db.query.deviceEnrollments.findFirst({
    where: eq(deviceEnrollments.codeHash, codeHash),
  });
  if (!enrollment || enrollment.usedAt !== null || enrollment.expiresAt <= now.toISOString()) {
    return { ok: false, code: "enrollment_invalid" };
  }
  const device = await findDevice(db, enrollment.deviceId);
  if (!device) return { ok: false, code: "enrollment_invalid" };
  const timestamp = now.toISOString();
  const keyAlg = deviceKeyAlg(input.publicJwk);
  try {
    await commitAudited(
      db,
      events,
      {
        actor: `device:${device.id}`,
        action: "device.enroll",
        target: device.id,
        details: { key_alg: keyAlg, replaced_key: device.publicJwk !== null },
      },
      now,
      [
        db
          .update(deviceEnrollments)
          .set({ usedAt: timestamp })
          .where(eq(deviceEnrollments.codeHash, codeHash)),
        db
          .update(devices)
          .set({ publicJwk: input.publicJwk, keyAlg, enrolledAt: timestamp, updatedAt: timestamp })
          .where(eq(devices.id, device.id)),
        closeDeviceSessions(db, device.id, now),
      ],
    );
  } catch (error) {
    if (errorMatches(error, /device_enrollment_already_used/))
      return { ok: false, code: "enrollment_invalid" };
    throw error;
  }
  return { ok: true, device: { ...device, publicJwk: input.publicJwk, keyAlg, enrolledAt: timestamp } };
}

/**
 * Activates or deactivates a device; the change, the closing of its open sessions (on deactivation) and
 * the audit entry's request commit together. Returns undefined for an unknown device.
 */
export async function setDeviceActive(
  db: Db,
  events: Queue<EventMessage>,
  id: string,
  active: boolean,
  actor: string,
  now: Date,
): Promise<Device | undefined> {
  const current = await findDevice(db, id);
  // Devices are never deleted, so one that exists now still exists when the batch runs.
  if (!current) return undefined;
  const timestamp = now.toISOString();
  const statements: Statement[] = [
    db.update(devices).set({ active, updatedAt: timestamp }).where(eq(devices.id, id)),
  ];
  if (!active) statements.push(closeDeviceSessions(db, id, now));
  await commitAudited(
    db,
    events,
    { actor, action: "device.update", target: id, details: { active: { from: current.active, to: active } } },
    now,
    statements,
  );
  return toDevice({ ...current, active, updatedAt: timestamp });
}

/** Spends a device proof's jti: in the batch that opens the session the proof was made for. */
export function spendDeviceProofStatement(db: Db, deviceId: string, jti: string, expiresAt: Date): Statement {
  return db.insert(deviceProofs).values({ deviceId, jti, expiresAt: expiresAt.toISOString() });
}

export const isDeviceProofReplay = (error: unknown) =>
  isConstraintError(error, /UNIQUE.*device_proofs|PRIMARY KEY.*device_proofs/i);

/** Drops spent jtis whose proofs have expired (a replay of one is refused for its `exp` anyway). */
export async function pruneDeviceProofs(db: Db, now: Date): Promise<void> {
  await db.delete(deviceProofs).where(lt(deviceProofs.expiresAt, now.toISOString())).run();
}
