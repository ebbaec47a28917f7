import { createRoute, z } from "@hono/zod-openapi";
import { OPERATOR_TOKEN_TTL_SECONDS, signOperatorToken } from "../auth/operator-token";
import { decoyPasswordHash, verifyPassword } from "../auth/password";
import { commitAudited } from "../db/audit";
import { getDb } from "../db/client";
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
import { ApiError } from "../errors";
import { createRouter } from "../http/context";
import { BODY_PROBLEMS, json, jsonBody, problems } from "../http/schemas";
import { isOperatorRole } from "../types/domain";
import { MAX_PASSWORD_LENGTH } from "./operators";

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

export const staffRoutes = createRouter().openapi(
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
      ...problems(...BODY_PROBLEMS, "invalid_credentials", "too_many_attempts"),
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
      // Refusals are counted in the throttle's row, not audited one by one: only the first of a streak
      // is, so a flood of logins adds one entry.
      if (attempt.refused === 1) {
        await commitAudited(
          db,
          c.env.EVENTS,
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
      await commitAudited(
        db,
        c.env.EVENTS,
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
    await commitAudited(
      db,
      c.env.EVENTS,
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
        roles: operator.roles.filter(isOperatorRole),
        eventIds: operator.eventIds,
        credentialVersion: operator.credentialVersion,
      },
      now,
    );
    return c.json({ operator_token: token, expires_in: OPERATOR_TOKEN_TTL_SECONDS }, 200);
  },
);
