import { createRoute, z } from "@hono/zod-openapi";
import { getDb } from "../db/client";
import { registerDevice, setDeviceActive } from "../db/devices";
import { requireOperator } from "../http/auth";
import { createRouter } from "../http/context";
import { BODY_PROBLEMS, IsoTimestamp, json, jsonBody, problems } from "../http/schemas";
import { forgetDeviceSessions } from "../services/session-cache";
import { DEVICE_KINDS } from "../types/domain";
import { ProductFunctionSchema } from "./catalog";

/** Ids are chosen by the admin (printed on the device) and travel in paths, so they stay URL-safe. */
export const DeviceId = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/, "1–64 letters, digits, '.', '_', ':' or '-'")
  .openapi({ example: "dev-gate-1" });
export const LocationId = z.string().min(1).max(64).openapi({ example: "loc-pier-1" });
export const EventId = z.string().min(1).max(64).openapi({ example: "evt-demo" });
const MAX_DEVICE_FUNCTIONS = 20;

const DeviceSchema = z
  .object({
    device_id: DeviceId,
    kind: z.enum(DEVICE_KINDS),
    location_id: z.string().nullable(),
    event_id: z.string().nullable(),
    functions: z
      .array(z.string())
      .nullable()
      .openapi({ description: "Functions this gate may validate; `null` means every function." }),
    active: z.boolean(),
    created_at: IsoTimestamp,
    updated_at: IsoTimestamp,
  })
  .openapi("Device");

const NewDeviceSchema = z
  .object({
    device_id: DeviceId,
    kind: z.enum(DEVICE_KINDS),
    location_id: LocationId.optional(),
    event_id: EventId.optional().openapi({ description: "Required for a `pos` device." }),
    functions: z
      .array(ProductFunctionSchema.shape.function)
      .min(1)
      .max(MAX_DEVICE_FUNCTIONS)
      .refine((list) => new Set(list).size === list.length, "Function names must be unique")
      .optional()
      .openapi({ description: "Gate devices only: restrict the device to these functions. Omit for all." }),
  })
  .strict()
  .superRefine((device, context) => {
    if (device.kind === "pos" && device.event_id === undefined) {
      context.addIssue({ code: "custom", path: ["event_id"], message: "A pos device needs an event_id" });
    }
    if (device.kind === "pos" && device.functions !== undefined) {
      context.addIssue({ code: "custom", path: ["functions"], message: "Only gate devices take functions" });
    }
  })
  .openapi("NewDevice");

const DevicePatchSchema = z.object({ active: z.boolean() }).strict().openapi("DevicePatch");

const DeviceIdParam = z.object({
  id: DeviceId.openapi({ param: { name: "id", in: "path" }, example: "dev-gate-1" }),
});

export const deviceRoutes = createRouter()
  .openapi(
    createRoute({
      method: "post",
      path: "/admin/devices",
      operationId: "registerDevice",
      tags: ["Admin"],
      summary: "Register a gate or POS device",
      description:
        "Role `admin`. The id is the admin's choice (what is printed on the device). A `pos` device must " +
        "name its `event_id`; a `gate` device may be restricted to some `functions`. Audited.",
      security: [{ operatorToken: [] }],
      middleware: [requireOperator("admin")] as const,
      request: { body: jsonBody(NewDeviceSchema) },
      responses: {
        201: json(DeviceSchema, "Registered"),
        ...problems(...BODY_PROBLEMS, "unauthenticated", "forbidden", "device_exists", "service_unavailable"),
      },
    }),
    async (c) => {
      const device = await registerDevice(
        getDb(c.env.DB),
        c.req.valid("json"),
        c.get("operator").operatorId,
        new Date(),
      );
      return c.json(device, 201);
    },
  )
  .openapi(
    createRoute({
      method: "patch",
      path: "/admin/devices/{id}",
      operationId: "updateDevice",
      tags: ["Admin"],
      summary: "Activate or deactivate a device",
      description:
        "Role `admin`. A deactivated device cannot open sessions, and its open sessions stop working at " +
        "once (`session_invalid`). Audited.",
      security: [{ operatorToken: [] }],
      middleware: [requireOperator("admin")] as const,
      request: { params: DeviceIdParam, body: jsonBody(DevicePatchSchema) },
      responses: {
        200: json(DeviceSchema, "Updated"),
        ...problems(...BODY_PROBLEMS, "unauthenticated", "forbidden", "not_found", "service_unavailable"),
      },
    }),
    async (c) => {
      const device = await setDeviceActive(
        getDb(c.env.DB),
        c.req.valid("param").id,
        c.req.valid("json").active,
        c.get("operator").operatorId,
        new Date(),
      );
      // Sessions on this device that this isolate cached are judged afresh from D1 on their next use.
      forgetDeviceSessions(device.device_id);
      return c.json(device, 200);
    },
  );
