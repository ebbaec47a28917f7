import { createRoute, z } from "@hono/zod-openapi";
import { OPERATOR_TOKEN_TTL_SECONDS, signOperatorToken } from "../auth/operator-token";
import { decoyPasswordHash, hashPassword, verifyPassword } from "../auth/password";
import { appendAudit } from "../db/audit";
import { getDb, isConstraintError } from "../db/client";
import {
  clearLoginAttempts,
  clientAddressFrom,
  LOGIN_BACKOFF_BASE_SECONDS,
  LOGIN_BACKOFF_MAX_SECONDS,
  LOGIN_FREE_ATTEMPTS,
  LOGIN_STREAK_RESET_SECONDS,
  reserveLoginAttempt,
} from "../db/login-throttle";
import { findOperatorByUsername } from "../db/operators";
import { operators } from "../db/schema";
import { ApiError } from "../errors";
import { requireOperator } from "../http/auth";
import { createRouter } from "../http/context";
import { BODY_PROBLEMS, IsoTimestamp, json, jsonBody, problems } from "../http/schemas";
import { newId } from "../ids";
import { OPERATOR_ROLES } from "../types/domain";

const Username = z
  .string()
  .trim()
  .min(3)
  .max(64)
  .regex(/^[A-Za-z0-9._-]+$/);
/** Long passphrases are welcome; the cap only bounds the hashing work an attacker can ask for. */
const MAX_PASSWORD_LENGTH = 256;
const MIN_PASSWORD_LENGTH = 12;

const LoginSchema = z
  .object({ username: z.string().min(1).max(64), password: z.string().min(1).max(MAX_PASSWORD_LENGTH) })
  .strict()
  .openapi("OperatorLogin");

const LoginResultSchema = z
  .object({
    operator_token: z.string().openapi({
      description:
        "JWT (typ `operator+jwt`, aud `staff`) whose claims carry `operator_id`, `roles`, `event_ids`",
    }),
    expires_in: z.number().int().openapi({ example: OPERATOR_TOKEN_TTL_SECONDS }),
  })
  .openapi("OperatorToken");

const EventId = z.string().min(1).max(64);

const NewOperatorSchema = z
  .object({
    username: Username,
    password: z.string().min(MIN_PASSWORD_LENGTH).max(MAX_PASSWORD_LENGTH),
    roles: z.array(z.enum(OPERATOR_ROLES)).min(1).max(OPERATOR_ROLES.length),
    event_ids: z.array(EventId).max(100).default([]),
  })
  .strict()
  .openapi("NewOperator");

const OperatorSchema = z
  .object({
    operator_id: z.string(),
    username: z.string(),
    roles: z.array(z.enum(OPERATOR_ROLES)),
    event_ids: z.array(z.string()),
    created_at: IsoTimestamp,
  })
  .openapi("Operator");

export const staffRoutes = createRouter()
  .openapi(
    createRoute({
      method: "post",
      path: "/operators/login",
      operationId: "loginOperator",
      tags: ["Staff"],
      summary: "Exchange staff credentials for an operator token",
      description:
        "A wrong username and a wrong password get the same answer in similar time. Attempts are " +
        "throttled per (username, client address from `CF-Connecting-IP`), so failures from one " +
        `address never lock the username out at another. The first ${LOGIN_FREE_ATTEMPTS} attempts go ` +
        `straight to the password check; after them each attempt must wait ${LOGIN_BACKOFF_BASE_SECONDS} s, ` +
        `doubling up to ${LOGIN_BACKOFF_MAX_SECONDS / 60} minutes, and meanwhile is refused with 429 ` +
        "`too_many_attempts`, a `Retry-After` header and `retry_after` (seconds). A success, or " +
        `${LOGIN_STREAK_RESET_SECONDS / 60} minutes without an admitted attempt, starts afresh.`,
      request: { body: jsonBody(LoginSchema) },
      responses: {
        200: json(LoginResultSchema, "Logged in"),
        ...problems(...BODY_PROBLEMS, "invalid_credentials", "too_many_attempts", "service_unavailable"),
      },
    }),
    async (c) => {
      const { username, password } = c.req.valid("json");
      const db = getDb(c.env.DB);
      const now = new Date();
      const clientAddress = clientAddressFrom(c.req.header("cf-connecting-ip"));
      // Reserved before the password is checked, so parallel guesses cannot all reach the check.
      const attempt = await reserveLoginAttempt(db, username, clientAddress, now);
      if (!attempt.admitted) {
        // Refusals are counted in the throttle's row, not appended to the chain one by one: only the
        // first of a streak is audited, so a flood of logins adds one entry and never contends for the tail.
        if (attempt.refused === 1) {
          await appendAudit(
            db,
            {
              actor: username,
              action: "operator.login_throttled",
              details: { client_address: clientAddress, retry_after_seconds: attempt.retryAfterSeconds },
            },
            now,
          );
        }
        throw new ApiError(
          "too_many_attempts",
          "Too many failed logins; try again later",
          { retry_after: attempt.retryAfterSeconds },
          { "retry-after": String(attempt.retryAfterSeconds) },
        );
      }
      const operator = await findOperatorByUsername(db, username);
      // Always run the hash, against a decoy when the user is unknown, so timing does not reveal usernames.
      const valid = await verifyPassword(password, operator?.passwordHash ?? (await decoyPasswordHash()));
      if (!operator || !valid || !operator.active) {
        // The reservation already counted this attempt; admitted failures are bounded, so each is audited.
        const reason = !operator ? "unknown_username" : !valid ? "wrong_password" : "operator_inactive";
        await appendAudit(
          db,
          {
            actor: username,
            action: "operator.login_failed",
            target: operator?.id ?? null,
            details: { reason },
          },
          now,
        );
        throw new ApiError("invalid_credentials");
      }
      await appendAudit(
        db,
        {
          actor: operator.id,
          action: "operator.login",
          target: operator.id,
          details: { username: operator.username },
        },
        now,
        [clearLoginAttempts(db, username, clientAddress)],
      );
      const token = await signOperatorToken(
        c.get("config"),
        {
          operatorId: operator.id,
          roles: operator.roles.filter((role): role is (typeof OPERATOR_ROLES)[number] =>
            (OPERATOR_ROLES as readonly string[]).includes(role),
          ),
          eventIds: operator.eventIds,
        },
        now,
      );
      return c.json({ operator_token: token, expires_in: OPERATOR_TOKEN_TTL_SECONDS }, 200);
    },
  )
  .openapi(
    createRoute({
      method: "post",
      path: "/admin/operators",
      operationId: "createOperator",
      tags: ["Admin"],
      summary: "Create a staff operator",
      description: "Role `admin`. Passwords are stored as PBKDF2-SHA256 hashes and never returned.",
      security: [{ operatorToken: [] }],
      middleware: [requireOperator("admin")] as const,
      request: { body: jsonBody(NewOperatorSchema) },
      responses: {
        201: json(OperatorSchema, "Created"),
        ...problems(
          ...BODY_PROBLEMS,
          "unauthenticated",
          "forbidden",
          "username_taken",
          "service_unavailable",
        ),
      },
    }),
    async (c) => {
      const input = c.req.valid("json");
      const db = getDb(c.env.DB);
      const now = new Date();
      const created = {
        id: newId("opr"),
        username: input.username,
        passwordHash: await hashPassword(input.password),
        roles: [...new Set(input.roles)],
        eventIds: [...new Set(input.event_ids)],
        createdAt: now.toISOString(),
      } satisfies typeof operators.$inferInsert;
      try {
        // The operator and its entry commit in one batch: there is no operator without its entry. The
        // password stays out of the details: the log is kept forever.
        await appendAudit(
          db,
          {
            actor: c.get("operator").operatorId,
            action: "operator.create",
            target: created.id,
            details: { username: created.username, roles: created.roles, event_ids: created.eventIds },
          },
          now,
          [db.insert(operators).values(created)],
        );
      } catch (error) {
        if (isConstraintError(error, /UNIQUE.*operators\.username/i)) throw new ApiError("username_taken");
        throw error;
      }
      return c.json(
        {
          operator_id: created.id,
          username: created.username,
          roles: created.roles,
          event_ids: created.eventIds,
          created_at: created.createdAt,
        },
        201,
      );
    },
  );
