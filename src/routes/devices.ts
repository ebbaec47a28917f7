import { createRoute, z } from "@hono/zod-openapi";
import { DevicePublicJwkSchema, isImportableDeviceKey } from "../auth/device-proof";
import { DEVICE_KEY_ALGS } from "../auth/device-proof-token";
import { getDb } from "../db/client";
import {
  DEVICE_PAGE_MAX,
  ENROLLMENT_CODE_TTL_SECONDS,
  enrollDevice,
  issueEnrollmentCode,
  listDevices,
  registerDevice,
  setDeviceActive,
} from "../db/devices";
import { ApiError } from "../errors";
import { requireOperator } from "../http/auth";
import { createRouter } from "../http/context";
import {
  BODY_PROBLEMS,
  IsoTimestamp,
  idPageQuery,
  json,
  jsonBody,
  NextCursor,
  problems,
} from "../http/schemas";
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
/** An answer carrying an enrollment code is a credential: no cache may keep it. */
const NO_STORE = { "cache-control": "no-store" };

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
    enrolled_at: IsoTimestamp.nullable().openapi({
      description: "When the device last enrolled its key; `null` until it has (no sessions before)",
    }),
    key_alg: z.enum(DEVICE_KEY_ALGS).nullable(),
    created_at: IsoTimestamp,
    updated_at: IsoTimestamp,
  })
  .openapi("Device");

const EnrollmentCodeFields = {
  enrollment_code: z.string().openapi({
    example: "7KQ2-M9XA-4RTB",
    description: "One-time; typed on the device. Dashes, spaces and case do not matter.",
  }),
  enrollment_expires_at: IsoTimestamp.openapi({
    description: `At most ${ENROLLMENT_CODE_TTL_SECONDS / 60} minutes ahead`,
  }),
};

const RegisteredDeviceSchema = DeviceSchema.extend(EnrollmentCodeFields).openapi("RegisteredDevice");

const EnrollmentCodeSchema = z
  .object({ device_id: DeviceId, ...EnrollmentCodeFields })
  .openapi("DeviceEnrollmentCode");

const EnrollRequestSchema = z
  .object({
    enrollment_code: z.string().min(1).max(64),
    public_key: DevicePublicJwkSchema.openapi({
      type: "object",
      description:
        "The device's public JWK: EC P-256 (`{kty:'EC',crv:'P-256',x,y}`, signs ES256) or OKP Ed25519 " +
        "(`{kty:'OKP',crv:'Ed25519',x}`, signs EdDSA). A private part (`d`) → 400.",
    }),
  })
  .strict()
  .openapi("DeviceEnrollment");

const EnrolledDeviceSchema = z
  .object({
    device_id: DeviceId,
    kind: z.enum(DEVICE_KINDS),
    location_id: z.string().nullable(),
    event_id: z.string().nullable(),
    functions: z.array(z.string()).nullable(),
  })
  .openapi("EnrolledDevice");

const DeviceListSchema = z
  .object({
    devices: z.array(DeviceSchema),
    next_cursor: NextCursor,
  })
  .openapi("DeviceList");

const PageQuery = idPageQuery(DEVICE_PAGE_MAX);

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
        "name its `event_id`; a `gate` device may be restricted to some `functions`. The answer carries a " +
        "one-time `enrollment_code` with which the device enrolls its key (`POST /devices/enroll`). Audited.",
      security: [{ operatorToken: [] }],
      middleware: [requireOperator("admin")] as const,
      request: { body: jsonBody(NewDeviceSchema) },
      responses: {
        201: json(RegisteredDeviceSchema, "Registered"),
        ...problems(...BODY_PROBLEMS, "unauthenticated", "forbidden", "device_exists"),
      },
    }),
    async (c) => {
      const result = await registerDevice(
        getDb(c.env.DB),
        c.env.EVENTS,
        c.req.valid("json"),
        c.get("operator").operatorId,
        new Date(),
      );
      if (!result.ok) {
        const deviceId = c.req.valid("json").device_id;
        throw new ApiError("device_exists", `Device ${deviceId} is already registered`, {
          device_id: deviceId,
        });
      }
      return c.json({ ...result.device, ...result.enrollment }, 201, NO_STORE);
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
        "Role `admin`. A deactivated (revoked) device cannot open sessions, and its open sessions are " +
        "closed: within 5 s every isolate refuses them (`session_invalid`). Audited.",
      security: [{ operatorToken: [] }],
      middleware: [requireOperator("admin")] as const,
      request: { params: DeviceIdParam, body: jsonBody(DevicePatchSchema) },
      responses: {
        200: json(DeviceSchema, "Updated"),
        ...problems(...BODY_PROBLEMS, "unauthenticated", "forbidden", "not_found"),
      },
    }),
    async (c) => {
      const device = await setDeviceActive(
        getDb(c.env.DB),
        c.env.EVENTS,
        c.req.valid("param").id,
        c.req.valid("json").active,
        c.get("operator").operatorId,
        new Date(),
      );
      if (!device) throw new ApiError("not_found", "No such device");
      // Sessions on this device that this isolate cached are judged afresh from D1 on their next use.
      forgetDeviceSessions(device.device_id);
      return c.json(device, 200);
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/admin/devices",
      operationId: "listDevices",
      tags: ["Admin"],
      summary: "List devices",
      description: `Role \`admin\`. In id order, up to \`limit\` (max ${DEVICE_PAGE_MAX}) per page.`,
      security: [{ operatorToken: [] }],
      middleware: [requireOperator("admin")] as const,
      request: { query: PageQuery },
      responses: {
        200: json(DeviceListSchema, "A page of devices"),
        ...problems("validation_failed", "unauthenticated", "forbidden"),
      },
    }),
    async (c) => {
      const query = c.req.valid("query");
      const page = await listDevices(getDb(c.env.DB), { after: query.cursor, limit: query.limit });
      return c.json({ devices: page.devices, next_cursor: page.next }, 200);
    },
  )
  .openapi(
    createRoute({
      method: "post",
      path: "/admin/devices/{id}/enrollment",
      operationId: "issueDeviceEnrollmentCode",
      tags: ["Admin"],
      summary: "Issue a fresh enrollment code for a device",
      description:
        "Role `admin`. Earlier unused codes of the device stop working. Enrolling with the new code " +
        "replaces the device's key and closes the sessions opened with the old one. Audited.",
      security: [{ operatorToken: [] }],
      middleware: [requireOperator("admin")] as const,
      request: { params: DeviceIdParam },
      responses: {
        201: json(EnrollmentCodeSchema, "Issued"),
        ...problems("validation_failed", "unauthenticated", "forbidden", "not_found"),
      },
    }),
    async (c) => {
      const code = await issueEnrollmentCode(
        getDb(c.env.DB),
        c.env.EVENTS,
        c.req.valid("param").id,
        c.get("operator").operatorId,
        new Date(),
      );
      if (!code) throw new ApiError("not_found", "No such device");
      return c.json(code, 201, NO_STORE);
    },
  )
  .openapi(
    createRoute({
      method: "post",
      path: "/devices/enroll",
      operationId: "enrollDevice",
      tags: ["Staff"],
      summary: "Enroll a device's public key with a one-time code",
      description:
        "No bearer token: the code is the credential. It works once; unknown, used or expired → 401 " +
        "`enrollment_invalid`. The private key never leaves the device: the pages create a " +
        "non-extractable WebCrypto key and keep it in IndexedDB. Audited.",
      request: { body: jsonBody(EnrollRequestSchema) },
      responses: {
        200: json(EnrolledDeviceSchema, "Enrolled"),
        ...problems(...BODY_PROBLEMS, "enrollment_invalid"),
      },
    }),
    async (c) => {
      const body = c.req.valid("json");
      if (!(await isImportableDeviceKey(body.public_key))) {
        throw new ApiError("validation_failed", "public_key is not a usable key", {
          errors: [{ path: "public_key", message: "Not a valid key of its curve" }],
        });
      }
      const result = await enrollDevice(
        getDb(c.env.DB),
        c.env.EVENTS,
        { enrollmentCode: body.enrollment_code, publicJwk: body.public_key },
        new Date(),
      );
      if (!result.ok) throw new ApiError("enrollment_invalid");
      forgetDeviceSessions(result.device.id);
      const { device } = result;
      return c.json(
        {
          device_id: device.id,
          kind: device.kind,
          location_id: device.locationId,
          event_id: device.eventId,
          functions: device.functions ?? null,
        },
        200,
      );
    },
  );
