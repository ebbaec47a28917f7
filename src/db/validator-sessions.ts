import { eq } from "drizzle-orm";
import type { ValidatorSession } from "../types/domain";
import type { Db } from "./client";
import type { DeviceRow } from "./devices";
import { devices, operators, validatorSessions } from "./schema";

export type ValidatorSessionRow = typeof validatorSessions.$inferSelect;

export function toValidatorSession(row: ValidatorSessionRow): ValidatorSession {
  return {
    session_id: row.id,
    operator_id: row.operatorId,
    device_id: row.deviceId,
    kind: row.kind,
    location_id: row.locationId,
    event_id: row.eventId,
    opened_at: row.openedAt,
    expires_at: row.expiresAt,
    closed_at: row.closedAt,
  };
}

export async function findValidatorSession(db: Db, id: string): Promise<ValidatorSessionRow | undefined> {
  return db.query.validatorSessions.findFirst({ where: eq(validatorSessions.id, id) });
}

export interface SessionWithDevice {
  session: ValidatorSessionRow;
  device: DeviceRow;
  operatorActive: boolean;
}

/**
 * A session with its device and whether its operator is still active, in one SELECT: the scan and POS
 * paths check a session on every request, so this must stay a single round trip.
 */
export async function findSessionWithDevice(
  db: Db,
  sessionId: string,
): Promise<SessionWithDevice | undefined> {
  const [found] = await db
    .select({ session: validatorSessions, device: devices, operatorActive: operators.active })
    .from(validatorSessions)
    .innerJoin(devices, eq(devices.id, validatorSessions.deviceId))
    .innerJoin(operators, eq(operators.id, validatorSessions.operatorId))
    .where(eq(validatorSessions.id, sessionId))
    .limit(1);
  return found;
}
