import { createRoute, z } from "@hono/zod-openapi";
import { getDb } from "../db/client";
import { requireOperator } from "../http/auth";
import { createRouter } from "../http/context";
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

const NewSessionSchema = z
  .object({
    device_id: DeviceId,
    location_id: LocationId.optional().openapi({ description: "Defaults to the device's location." }),
    event_id: EventId.optional().openapi({ description: "Defaults to the device's event." }),
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
        "The device must be registered and active (403 `device_not_authorized`). A gate device needs role " +
        "`gate`, a POS device role `pos` (admin passes both). A device bound to an event opens sessions " +
        "for that event only, and a POS session's event must be one of the operator's `event_ids` " +
        `(admin excepted), else 403 \`forbidden\`. Sessions expire after ${VALIDATOR_SESSION_SECONDS} s. Audited.`,
      security: [{ operatorToken: [] }],
      middleware: [requireOperator("gate", "pos")] as const,
      request: { body: jsonBody(NewSessionSchema) },
      responses: {
        201: json(ValidatorSessionSchema, "Opened"),
        ...problems(
          ...BODY_PROBLEMS,
          "unauthenticated",
          "forbidden",
          "device_not_authorized",
          "service_unavailable",
        ),
      },
    }),
    async (c) => {
      const body = c.req.valid("json");
      const session = await openValidatorSession(getDb(c.env.DB), {
        operator: c.get("operator"),
        deviceId: body.device_id,
        locationId: body.location_id,
        eventId: body.event_id,
        now: new Date(),
      });
      return c.json(session, 201);
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
        ...problems("validation_failed", "unauthenticated", "forbidden", "not_found", "service_unavailable"),
      },
    }),
    async (c) => {
      const session = await closeValidatorSession(getDb(c.env.DB), {
        sessionId: c.req.valid("param").id,
        operator: c.get("operator"),
        now: new Date(),
      });
      return c.json(session, 200);
    },
  );
