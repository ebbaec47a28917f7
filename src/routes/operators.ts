import { createRoute, z } from "@hono/zod-openapi";
import { hashPassword } from "../auth/password";
import { getDb } from "../db/client";
import { changeOperator, createOperator, listOperators, OPERATOR_PAGE_MAX } from "../db/operators";
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
import { forgetOperator, OPERATOR_RECORD_CACHE_MS } from "../services/current-operator";
import { forgetOperatorSessions } from "../services/session-cache";
import { OPERATOR_ROLES } from "../types/domain";

/** Long passphrases are welcome; the cap only bounds the hashing work an attacker can ask for. */
export const MAX_PASSWORD_LENGTH = 256;
export const MIN_PASSWORD_LENGTH = 12;
export const MAX_OPERATOR_EVENT_IDS = 100;
const REVOCATION_SECONDS = Math.ceil((OPERATOR_RECORD_CACHE_MS + 1_000) / 1000);

export const OperatorIdParam = z.object({
  id: z
    .string()
    .min(1)
    .max(64)
    .openapi({ param: { name: "id", in: "path" }, example: "opr_2b4d6f8h0k2m4p6r8t0v" }),
});
export const OperatorEventId = z.string().min(1).max(64);
export const NewPassword = z.string().min(MIN_PASSWORD_LENGTH).max(MAX_PASSWORD_LENGTH);

export const OperatorSchema = z
  .object({
    operator_id: z.string(),
    username: z.string(),
    roles: z.array(z.enum(OPERATOR_ROLES)),
    event_ids: z.array(z.string()),
    active: z.boolean(),
    created_at: IsoTimestamp,
    updated_at: IsoTimestamp,
  })
  .openapi("Operator");

const Username = z
  .string()
  .trim()
  .min(3)
  .max(64)
  .regex(/^[A-Za-z0-9._-]+$/);

const NewOperatorSchema = z
  .object({
    username: Username,
    password: NewPassword,
    roles: z.array(z.enum(OPERATOR_ROLES)).min(1).max(OPERATOR_ROLES.length),
    event_ids: z.array(OperatorEventId).max(MAX_OPERATOR_EVENT_IDS).default([]),
  })
  .strict()
  .openapi("NewOperator");

const OperatorPatchSchema = z
  .object({
    active: z.boolean().optional(),
    roles: z.array(z.enum(OPERATOR_ROLES)).min(1).max(OPERATOR_ROLES.length).optional(),
    event_ids: z.array(OperatorEventId).max(MAX_OPERATOR_EVENT_IDS).optional(),
  })
  .strict()
  .refine((patch) => Object.keys(patch).length > 0, "Name at least one of active, roles, event_ids")
  .openapi("OperatorPatch");

const PasswordResetSchema = z.object({ password: NewPassword }).strict().openapi("OperatorPasswordReset");

const OperatorListSchema = z
  .object({
    operators: z.array(OperatorSchema),
    next_cursor: NextCursor,
  })
  .openapi("OperatorList");

const OperatorPageQuery = idPageQuery(OPERATOR_PAGE_MAX);

export const operatorRoutes = createRouter()
  .openapi(
    createRoute({
      method: "post",
      path: "/admin/operators",
      operationId: "createOperator",
      tags: ["Admin"],
      summary: "Create a staff operator",
      description:
        "Role `admin`. Passwords are stored as PBKDF2-SHA256 hashes and never returned. The operator and " +
        "its audit entry commit together.",
      security: [{ operatorToken: [] }],
      middleware: [requireOperator("admin")] as const,
      request: { body: jsonBody(NewOperatorSchema) },
      responses: {
        201: json(OperatorSchema, "Created"),
        ...problems(...BODY_PROBLEMS, "unauthenticated", "forbidden", "username_taken"),
      },
    }),
    async (c) => {
      const input = c.req.valid("json");
      const result = await createOperator(
        getDb(c.env.DB),
        c.env.EVENTS,
        {
          username: input.username,
          passwordHash: await hashPassword(input.password),
          roles: input.roles,
          eventIds: input.event_ids,
        },
        c.get("operator").operatorId,
        new Date(),
      );
      if (!result.ok) throw new ApiError("username_taken");
      return c.json(result.operator, 201);
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/admin/operators",
      operationId: "listOperators",
      tags: ["Admin"],
      summary: "List staff operators",
      description: `Role \`admin\`. In id order, up to \`limit\` (max ${OPERATOR_PAGE_MAX}) per page. Never a password.`,
      security: [{ operatorToken: [] }],
      middleware: [requireOperator("admin")] as const,
      request: { query: OperatorPageQuery },
      responses: {
        200: json(OperatorListSchema, "A page of operators"),
        ...problems("validation_failed", "unauthenticated", "forbidden"),
      },
    }),
    async (c) => {
      const query = c.req.valid("query");
      const page = await listOperators(getDb(c.env.DB), { after: query.cursor, limit: query.limit });
      return c.json({ operators: page.operators, next_cursor: page.next }, 200);
    },
  )
  .openapi(
    createRoute({
      method: "patch",
      path: "/admin/operators/{id}",
      operationId: "updateOperator",
      tags: ["Admin"],
      summary: "Deactivate, reactivate or change the roles or events of an operator",
      description:
        "Role `admin`. Deactivation refuses every token of the operator everywhere within " +
        `${REVOCATION_SECONDS} s (401 \`unauthenticated\`) and closes their open sessions; reactivating does ` +
        "not bring old tokens back (sign in again). A change of roles or `event_ids` takes effect within " +
        `${REVOCATION_SECONDS} s: a token's own claims are never trusted longer than that. An admin cannot ` +
        "deactivate themselves or remove their own `admin` role (403 `forbidden`). Audited with the change.",
      security: [{ operatorToken: [] }],
      middleware: [requireOperator("admin")] as const,
      request: { params: OperatorIdParam, body: jsonBody(OperatorPatchSchema) },
      responses: {
        200: json(OperatorSchema, "Updated"),
        ...problems(...BODY_PROBLEMS, "unauthenticated", "forbidden", "not_found"),
      },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const patch = c.req.valid("json");
      const actor = c.get("operator").operatorId;
      if (id === actor && (patch.active === false || (patch.roles && !patch.roles.includes("admin")))) {
        throw new ApiError("forbidden", "An admin cannot revoke their own access; ask another admin");
      }
      const operator = await changeOperator(
        getDb(c.env.DB),
        c.env.EVENTS,
        id,
        {
          active: patch.active,
          roles: patch.roles && [...new Set(patch.roles)],
          eventIds: patch.event_ids && [...new Set(patch.event_ids)],
        },
        actor,
        new Date(),
      );
      if (!operator) throw new ApiError("not_found", "No such operator");
      forgetOperator(id);
      // Sessions this isolate cached are judged afresh: a revocation closed them in the same batch.
      forgetOperatorSessions(id);
      return c.json(operator, 200);
    },
  )
  .openapi(
    createRoute({
      method: "post",
      path: "/admin/operators/{id}/password",
      operationId: "resetOperatorPassword",
      tags: ["Admin"],
      summary: "Set a new password for an operator",
      description:
        "Role `admin`. Every earlier token of the operator is refused everywhere within " +
        `${REVOCATION_SECONDS} s and their open sessions are closed. The password is stored as a PBKDF2 hash ` +
        "and never logged. Audited.",
      security: [{ operatorToken: [] }],
      middleware: [requireOperator("admin")] as const,
      request: { params: OperatorIdParam, body: jsonBody(PasswordResetSchema) },
      responses: {
        200: json(OperatorSchema, "Password replaced"),
        ...problems(...BODY_PROBLEMS, "unauthenticated", "forbidden", "not_found"),
      },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const operator = await changeOperator(
        getDb(c.env.DB),
        c.env.EVENTS,
        id,
        { passwordHash: await hashPassword(c.req.valid("json").password) },
        c.get("operator").operatorId,
        new Date(),
      );
      if (!operator) throw new ApiError("not_found", "No such operator");
      forgetOperator(id);
      // Sessions this isolate cached are judged afresh: a revocation closed them in the same batch.
      forgetOperatorSessions(id);
      return c.json(operator, 200);
    },
  );
