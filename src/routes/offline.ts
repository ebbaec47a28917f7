import { createRoute, z } from "@hono/zod-openapi";
import { MAX_OFFLINE_SCAN_SIGNATURE_LENGTH } from "../auth/device-proof";
import { MAX_QR_TOKEN_LENGTH } from "../auth/ticket-qr-claims";
import { getDb } from "../db/client";
import { findDevice } from "../db/devices";
import { OFFLINE_KIT_MAX_ENTRIES } from "../db/offline-kit";
import { ApiError } from "../errors";
import { requireOperator } from "../http/auth";
import { createRouter } from "../http/context";
import { requireOpenSession } from "../http/refusals";
import { BODY_PROBLEMS, IsoTimestamp, json, jsonBody, problems } from "../http/schemas";
import { buildOfflineKit, OFFLINE_KIT_DELTA_OVERLAP_SECONDS } from "../services/offline-kit";
import { MAX_OFFLINE_SCANS_PER_UPLOAD, reconcileOfflineUpload } from "../services/offline-upload";
import { DeviceId } from "./devices";

/** A gate's id for one scan: a UUID fits with room to spare. */
const MAX_SCAN_ID_LENGTH = 64;

const DeviceParam = z.object({ device_id: DeviceId.openapi({ param: { name: "device_id", in: "path" } }) });

const OfflineKitSchema = z
  .object({
    issued_at: IsoTimestamp,
    valid_until: IsoTimestamp.openapi({
      description: "`issued_at` + `max_offline_seconds`: after this the gate stops accepting alone",
    }),
    issuer: z.string().openapi({ description: "The tokens' `iss`, pinned when verifying offline" }),
    jwks: z
      .object({ keys: z.array(z.record(z.string(), z.unknown())) })
      .openapi({ description: "The QR signing keys, as at `/.well-known/jwks.json`" }),
    functions: z.array(z.string()).nullable().openapi({ description: "The device's functions; `null`: all" }),
    blocked: z
      .array(z.object({ code: z.string(), functions: z.array(z.string()).optional() }))
      .openapi({ description: "Used up for these functions (of the device's): never accepted offline" }),
    scarce: z
      .array(z.object({ code: z.string(), function: z.string(), remaining_uses: z.number().int() }))
      .openapi({
        description:
          "Fewer uses left than `accepts_per_ticket_function` (so empty when it is 1): a gate accepts " +
          "such a ticket+function at most that many times offline",
      }),
    complete: z.boolean().openapi({
      description: `false when the lists were cut at ${OFFLINE_KIT_MAX_ENTRIES} entries (the most recent changes are kept)`,
    }),
    budget: z.object({
      max_offline_seconds: z.number().int(),
      accepts_per_ticket_function: z.number().int(),
    }),
  })
  .openapi("OfflineKit");

const OfflineScanSchema = z
  .object({
    scan_id: z.string().min(1).max(MAX_SCAN_ID_LENGTH),
    qr_token: z.string().min(1).max(MAX_QR_TOKEN_LENGTH),
    function: z.string().min(1).max(32),
    scanned_at: z.iso
      .datetime({ offset: true })
      .openapi({ description: "When the gate decided, by its clock" }),
    decision: z.enum(["accepted", "refused"]),
    session_id: z
      .string()
      .min(1)
      .max(64)
      .optional()
      .openapi({
        description:
          "The gate session the decision was made in, when not the uploading one (a later shift): the scan " +
          "is recorded under that session and its operator. It must be a session of the same device.",
      }),
    device_signature: z
      .string()
      .min(1)
      .max(MAX_OFFLINE_SCAN_SIGNATURE_LENGTH)
      .optional()
      .openapi({
        description:
          'Compact JWS by the device\'s enrolled key, `typ: "offline-scan+jwt"`, claims `sub` (device id), ' +
          '`aud: "offline-scans"`, `jti` (= `scan_id`), `qr_jti`, `fn`, `scanned_at`, `decision`. Optional ' +
          "in the schema (a scan without it is still answered), but a scan without a matching one is " +
          "`invalid`: only the device itself can vouch for what it decided offline.",
      }),
  })
  .strict();

const OfflineUploadSchema = z
  .object({
    session_id: z.string().min(1).max(64),
    scans: z.array(OfflineScanSchema).min(1).max(MAX_OFFLINE_SCANS_PER_UPLOAD),
  })
  .strict()
  .openapi("OfflineScanUpload");

const OfflineResultsSchema = z
  .object({
    results: z.array(
      z.object({
        scan_id: z.string(),
        outcome: z.enum(["applied", "duplicate", "conflict", "invalid", "recorded"]),
        redemption_id: z.string().optional(),
        remaining_uses: z.number().int().optional().openapi({
          description: "Uses of the scan's function left after it: the gate lowers what it knows to this",
        }),
        over_budget: z
          .boolean()
          .optional()
          .openapi({
            description:
              "The device accepted beyond its budget (more in flight than `accepts_per_ticket_function`, " +
              "or a token not good at `scanned_at`)",
          }),
      }),
    ),
  })
  .openapi("OfflineScanResults");

/** The caller's open gate session, which must be on the device in the path. */
async function sessionOnDevice(
  c: { env: { DB: D1Database } },
  request: { sessionId: string; operatorId: string; deviceId: string },
) {
  const open = await requireOpenSession(getDb(c.env.DB), {
    sessionId: request.sessionId,
    operatorId: request.operatorId,
    kind: "gate",
    now: new Date(),
  });
  if (open.session.device_id !== request.deviceId) {
    throw new ApiError("session_invalid", "The session is not on this device");
  }
  return open;
}

export const offlineRoutes = createRouter()
  .openapi(
    createRoute({
      method: "get",
      path: "/devices/{device_id}/offline-kit",
      operationId: "getOfflineKit",
      tags: ["Scan"],
      summary: "What a gate needs to decide alone when the network is gone",
      description:
        "Gate staff with an open gate session on this device. With `since` (a previous kit's `issued_at`), " +
        `\`blocked\` and \`scarce\` hold only what changed after it (minus ${OFFLINE_KIT_DELTA_OVERLAP_SECONDS} s ` +
        "of overlap): merge them into the stored kit; a kit without `since` replaces the lists.",
      security: [{ operatorToken: [] }],
      middleware: [requireOperator("gate")] as const,
      request: {
        params: DeviceParam,
        query: z.object({
          session_id: z.string().min(1).max(64),
          since: z.iso.datetime({ offset: true }).optional(),
        }),
      },
      responses: {
        200: json(OfflineKitSchema, "The kit"),
        ...problems("validation_failed", "unauthenticated", "forbidden", "session_invalid"),
      },
    }),
    async (c) => {
      const { device_id: deviceId } = c.req.valid("param");
      const query = c.req.valid("query");
      const { device } = await sessionOnDevice(c, {
        sessionId: query.session_id,
        operatorId: c.get("operator").operatorId,
        deviceId,
      });
      const kit = await buildOfflineKit(getDb(c.env.DB), c.get("config"), device, {
        since: query.since === undefined ? undefined : new Date(query.since),
        now: new Date(),
      });
      return c.json(kit, 200, { "cache-control": "no-store" });
    },
  )
  .openapi(
    createRoute({
      method: "post",
      path: "/devices/{device_id}/offline-scans",
      operationId: "uploadOfflineScans",
      tags: ["Scan"],
      summary: "Reconcile scans a gate decided offline",
      description:
        `Gate staff with an open gate session on this device; 1–${MAX_OFFLINE_SCANS_PER_UPLOAD} scans, results ` +
        "in the same order. Idempotent on (device, `scan_id`), in any order: `applied` spends a use dated " +
        "`scanned_at` (`offline: true`); `conflict` when the ticket had no use left (nothing goes below zero; " +
        "both sides are stored, `GET /reports/offline-conflicts`); `invalid` (an alert) when an accept's QR " +
        "token is not genuine, the device signature is missing or wrong, or the scan is older than 6 days; " +
        "`recorded` for refusals (a refused code that is no token at all included); `duplicate` for a scan " +
        "reconciled before. An accept applied although the device was over its budget is flagged too.",
      security: [{ operatorToken: [] }],
      middleware: [requireOperator("gate")] as const,
      request: { params: DeviceParam, body: jsonBody(OfflineUploadSchema) },
      responses: {
        200: json(OfflineResultsSchema, "One result per scan"),
        ...problems(
          ...BODY_PROBLEMS,
          "unauthenticated",
          "forbidden",
          "session_invalid",
          "service_unavailable",
        ),
      },
    }),
    async (c) => {
      const { device_id: deviceId } = c.req.valid("param");
      const body = c.req.valid("json");
      const operator = c.get("operator");
      const { session } = await sessionOnDevice(c, {
        sessionId: body.session_id,
        operatorId: operator.operatorId,
        deviceId,
      });
      const device = await findDevice(getDb(c.env.DB), deviceId);
      const { publicJwk, keyAlg } = device ?? {};
      if (!device || !publicJwk || !keyAlg)
        throw new ApiError("session_invalid", "The device is not enrolled");
      const results = await reconcileOfflineUpload(c.env, c.get("config"), {
        device: { ...device, publicJwk, keyAlg },
        session: {
          sessionId: session.session_id,
          operatorId: operator.operatorId,
          deviceId: session.device_id,
          locationId: session.location_id,
        },
        scans: body.scans,
        now: new Date(),
      });
      return c.json({ results }, 200);
    },
  );
