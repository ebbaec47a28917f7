import { createRoute, z } from "@hono/zod-openapi";
import { TICKET_QR_AUDIENCE, TICKET_QR_TYP, verifyQrToken } from "../auth/qr-token";
import { getDb } from "../db/client";
import type { Env } from "../env";
import { ApiError } from "../errors";
import { requireOperator } from "../http/auth";
import { createRouter } from "../http/context";
import { BODY_PROBLEMS, json, jsonBody, problems } from "../http/schemas";
import type { ScanRejected } from "../queues/messages";
import { requireOpenSession } from "../services/validator-sessions";
import { EntitlementSchema } from "./tickets";

const ScanRequestSchema = z
  .object({
    qr_token: z
      .string()
      .min(1)
      .max(4_096)
      .openapi({ description: "The token from `POST /tickets/{code}/qr-token`" }),
    function: z.string().min(1).max(32).openapi({ example: "bus" }),
    session_id: z.string().min(1).max(64).openapi({ example: "ses_4m6p8r0t2v4x6z8b0d2f" }),
  })
  .strict()
  .openapi("ScanRequest");

const ScanAcceptedSchema = z
  .object({
    result: z.literal("accepted"),
    redemption_id: z.string().openapi({ example: "red_7q9s1u3w5y7a9c1e3g5j" }),
    ticket_code: z.string(),
    function: z.string(),
    entitlements: z.array(EntitlementSchema),
  })
  .openapi("ScanAccepted");

/**
 * A refused scan changed nothing, so its audit entry travels off the gate's critical path: queued after
 * the answer is on its way. If the queue refuses it, the failure is logged rather than failing the scan.
 */
function auditRejectedScan(env: Env, ctx: Pick<ExecutionContext, "waitUntil">, message: ScanRejected): void {
  ctx.waitUntil(
    env.EVENTS.send(message).catch((error: unknown) => {
      console.error(
        JSON.stringify({
          level: "error",
          msg: "scan audit not queued",
          scan_id: message.scan_id,
          error: String(error),
        }),
      );
    }),
  );
}

export const scanRoutes = createRouter().openapi(
  createRoute({
    method: "post",
    path: "/tickets/scan",
    operationId: "scanTicket",
    tags: ["Scan"],
    summary: "Redeem one use of a ticket at a gate",
    description:
      "Operator with role `gate` and an open gate session. Each accepted scan spends one use of " +
      "`function` and the token's `jti`; N concurrent scans of a ticket with k uses left accept exactly k. " +
      "Rejections carry `entitlements` whenever the ticket is known.",
    security: [{ operatorToken: [] }],
    middleware: [requireOperator("gate")] as const,
    request: { body: jsonBody(ScanRequestSchema) },
    responses: {
      200: json(ScanAcceptedSchema, "Accepted: one use spent"),
      ...problems(
        ...BODY_PROBLEMS,
        "unauthenticated",
        "forbidden",
        "session_invalid",
        "function_not_allowed",
        "token_invalid",
        "token_expired",
        "token_replayed",
        "no_entitlement",
        "exhausted",
      ),
    },
  }),
  async (c) => {
    const body = c.req.valid("json");
    const config = c.get("config");
    const operator = c.get("operator");
    // The session lookup (one D1 query) and the signature check (local crypto) overlap; the session
    // is judged first, so a device that may not scan learns nothing about the token.
    const [open, token] = await Promise.allSettled([
      requireOpenSession(getDb(c.env.DB), {
        sessionId: body.session_id,
        operatorId: operator.operatorId,
        kind: "gate",
        now: new Date(),
      }),
      verifyQrToken(config, body.qr_token, { typ: TICKET_QR_TYP, audience: TICKET_QR_AUDIENCE }),
    ]);
    if (open.status === "rejected") throw open.reason;
    if (token.status === "rejected") throw token.reason;
    const { session, device } = open.value;
    if (device.functions && !device.functions.includes(body.function)) {
      throw new ApiError("function_not_allowed", `This device validates: ${device.functions.join(", ")}`);
    }

    const ticketCode = token.value.subject;
    const ticket = c.env.TICKETS.get(c.env.TICKETS.idFromName(ticketCode));
    // Fresh per request: the runtime may resend this RPC after a broken connection, never a new scan.
    const scanId = crypto.randomUUID();
    const outcome = await ticket.redeem({
      ticketCode,
      scanId,
      fn: body.function,
      jti: token.value.jti,
      tokenExpiresAt: token.value.expiresAt,
      session: {
        sessionId: session.session_id,
        operatorId: operator.operatorId,
        deviceId: session.device_id,
        locationId: session.location_id,
      },
    });
    if (outcome.result === "rejected") {
      const code = outcome.code === "ticket_not_found" ? "token_invalid" : outcome.code;
      auditRejectedScan(c.env, c.executionCtx, {
        type: "scan.rejected",
        scan_id: scanId,
        code,
        ticket_code: ticketCode,
        function: body.function,
        operator_id: operator.operatorId,
        session_id: session.session_id,
        ts: new Date().toISOString(),
      });
      if ("entitlements" in outcome) {
        throw new ApiError(code, undefined, { ticket_code: ticketCode, entitlements: outcome.entitlements });
      }
      throw new ApiError("token_invalid", "No such ticket");
    }
    return c.json(
      {
        result: "accepted" as const,
        redemption_id: outcome.redemptionId,
        ticket_code: outcome.ticketCode,
        function: outcome.fn,
        entitlements: outcome.entitlements,
      },
      200,
    );
  },
);
