import { eq } from "drizzle-orm";
import { ApiError } from "../errors";
import type { Device, DeviceKind } from "../types/domain";
import { appendAudit } from "./audit";
import { type Db, isConstraintError } from "./client";
import { devices } from "./schema";

export type DeviceRow = typeof devices.$inferSelect;

export function toDevice(row: DeviceRow): Device {
  return {
    device_id: row.id,
    kind: row.kind,
    location_id: row.locationId,
    event_id: row.eventId,
    functions: row.functions ?? null,
    active: row.active,
    created_at: row.createdAt,
    updated_at: row.updatedAt,
  };
}

export async function findDevice(db: Db, id: string): Promise<DeviceRow | undefined> {
  return db.query.devices.findFirst({ where: eq(devices.id, id) });
}

export interface NewDevice {
  device_id: string;
  kind: DeviceKind;
  location_id?: string;
  event_id?: string;
  functions?: string[];
}

/** Registers a device and its audit entry in one batch; an id already registered → `device_exists`. */
export async function registerDevice(db: Db, input: NewDevice, actor: string, now: Date): Promise<Device> {
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
  };
  const device = toDevice(row);
  try {
    await appendAudit(db, { actor, action: "device.register", target: row.id, details: { ...device } }, now, [
      db.insert(devices).values(row),
    ]);
  } catch (error) {
    if (isConstraintError(error, /UNIQUE.*devices\.id|PRIMARY KEY.*devices/i)) {
      throw new ApiError("device_exists", `Device ${row.id} is already registered`, { device_id: row.id });
    }
    throw error;
  }
  return device;
}

/** Activates or deactivates a device; the change and its audit entry commit together. */
export async function setDeviceActive(
  db: Db,
  id: string,
  active: boolean,
  actor: string,
  now: Date,
): Promise<Device> {
  const current = await findDevice(db, id);
  // Devices are never deleted, so one that exists now still exists when the batch runs.
  if (!current) throw new ApiError("not_found", "No such device");
  const timestamp = now.toISOString();
  await appendAudit(
    db,
    { actor, action: "device.update", target: id, details: { active: { from: current.active, to: active } } },
    now,
    [db.update(devices).set({ active, updatedAt: timestamp }).where(eq(devices.id, id))],
  );
  return toDevice({ ...current, active, updatedAt: timestamp });
}
