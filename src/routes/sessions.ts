import { createRoute, z } from "@hono/zod-openapi";
import { MAX_DEVICE_PROOF_LENGTH } from "../auth/device-proof";
import {
  DEVICE_PROOF_AUDIENCE,
  DEVICE_PROOF_MAX_LIFETIME_SECONDS,
  DEVICE_PROOF_TYP,
} from "../auth/device-proof-token";
import { getDb } from "../db/client";
import { ApiError } from "../errors";
import { requireOperator } from "../http/auth";
import { createRouter } from "../http/context";
import { sessionRefused } from "../http/refusals";
import { BODY_PROBLEMS, IsoTimestamp, json, jsonBody, problems } from "../http/schemas";
import {
  closeValidatorSession,
  openValidatorSession,
  VALIDATOR_SESSION_SECONDS,
} from "../services/validator-sessions";
import { DEVICE_KINDS } from "../types/domain";
import { DeviceId, EventId, LocationId } from "./devices";

const ValidatorSessionSchema = z
  .object({
    session_id: z.string().openapi({ example: "ses_4m6p8r0t2v4x6z8b0d2f" }),
    operator_id: z.string(),
    device_id: z.string(),
    kind: z.enum(DEVICE_KINDS),
    location_id: z.string().nullable(),
    event_id: z.string().nullable(),
    opened_at: IsoTimestamp,
    expires_at: IsoTimestamp,
    closed_at: IsoTimestamp.nullable().openapi({ description: "`null` while the session is open" }),
  })
  .openapi("ValidatorSession");

const OpenedSessionSchema = ValidatorSessionSchema.extend({
  functions: z
    .array(z.string())
    .nullable()
    .openapi({ description: "The device's functions (a gate validates only these); `null`: every function" }),
}).openapi("OpenedValidatorSession");

const NewSessionSchema = z
  .object({
    device_id: DeviceId,
    device_proof: z
      .string()
      .min(1)
      .max(MAX_DEVICE_PROOF_LENGTH)
      .optional()
      .openapi({
        description:
          `Required (missing → 403 \`device_not_authorized\`). A compact JWS signed by the device's enrolled key: header \`typ: "${DEVICE_PROOF_TYP}"\`, ` +
          `claims \`sub\` = the device id, \`aud: "${DEVICE_PROOF_AUDIENCE}"\`, \`iat\`, \`exp\` (at most ` +
          `${DEVICE_PROOF_MAX_LIFETIME_SECONDS} s after \`iat\`) and a single-use \`jti\`.`,
      }),
    location_id: LocationId.optional().openapi({
      description: "Optional; the session always takes the device's. A different value → 422.",
    }),
    event_id: EventId.optional().openapi({
      description: "Optional; the session always takes the device's. A different value → 422.",
    }),
  })
  .strict()
  .openapi("NewValidatorSession");

const SessionIdParam = z.object({
  id: z
    .string()
    .min(1)
    .max(64)
    .openapi({ param: { name: "id", in: "path" }, example: "ses_4m6p8r0t2v4x6z8b0d2f" }),
});

export const sessionRoutes = createRouter()
  .openapi(
    createRoute({
      method: "post",
      path: "/validators/sessions",
      operationId: "openValidatorSession",
      tags: ["Staff"],
      summary: "Open a validator session on a device",
      description:
        "The device must be registered, active and enrolled, and prove it with `device_proof` signed by its " +
        "enrolled key (a proof works once). Missing, bad signature, expired, replayed, not enrolled, revoked " +
        "or inactive → 403 `device_not_authorized`. A gate device needs role `gate`, a POS device role " +
        "`pos` (admin passes both), and a POS session's event must be one of the operator's `event_ids` " +
        "(admin excepted), else 403 `forbidden`. Location and event come from the device record; naming " +
        "others → 422 `device_scope_mismatch`. Sessions expire after " +
        `${VALIDATOR_SESSION_SECONDS} s. Audited.`,
      security: [{ operatorToken: [] }],
      middleware: [requireOperator("gate", "pos")] as const,
      request: { body: jsonBody(NewSessionSchema) },
      responses: {
        201: json(OpenedSessionSchema, "Opened"),
        ...problems(
          ...BODY_PROBLEMS,
          "unauthenticated",
          "forbidden",
          "device_not_authorized",
          "device_scope_mismatch",
        ),
      },
    }),
    async (c) => {
      const body = c.req.valid("json");
      const opened = await openValidatorSession(getDb(c.env.DB), c.env.EVENTS, {
        operator: c.get("operator"),
        deviceId: body.device_id,
        deviceProof: body.device_proof,
        locationId: body.location_id,
        eventId: body.event_id,
        now: new Date(),
      });
      if (!opened.ok) throw sessionRefused(opened);
      return c.json(opened.session, 201);
    },
  )
  .openapi(
    createRoute({
      method: "delete",
      path: "/validators/sessions/{id}",
      operationId: "closeValidatorSession",
      tags: ["Staff"],
      summary: "Close a validator session",
      description:
        "The session's own operator, or an admin; anyone else's session answers 404 like a missing one. " +
        "Answers 200 with the closed session. Idempotent: closing a closed session returns it unchanged. Audited.",
      security: [{ operatorToken: [] }],
      middleware: [requireOperator("gate", "pos")] as const,
      request: { params: SessionIdParam },
      responses: {
        200: json(ValidatorSessionSchema, "Closed"),
        ...problems("validation_failed", "unauthenticated", "forbidden", "not_found"),
      },
    }),
    async (c) => {
      const session = await closeValidatorSession(getDb(c.env.DB), c.env.EVENTS, {
        sessionId: c.req.valid("param").id,
        operator: c.get("operator"),
        now: new Date(),
      });
      if (!session) throw new ApiError("not_found", "No such session");
      return c.json(session, 200);
    },
  );
