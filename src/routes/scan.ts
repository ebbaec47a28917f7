import { createRoute, z } from "@hono/zod-openapi";
import { TICKET_QR_AUDIENCE, TICKET_QR_TYP, verifyQrToken } from "../auth/qr-token";
import { MAX_QR_TOKEN_LENGTH, TICKET_REGION_CLAIM } from "../auth/ticket-qr-claims";
import { atomically, getDb } from "../db/client";
import { findRecordedRedemption } from "../db/redemptions";
import { applyReportedUsesStatement } from "../db/tickets";
import { locationHint, placedNear } from "../domain/placement";
import { ticketCodeOfRedemption } from "../domain/redemption-id";
import type { Env } from "../env";
import { ApiError } from "../errors";
import { requireOperator } from "../http/auth";
import { createRouter } from "../http/context";
import { REPLAYED_HEADER } from "../http/idempotency";
import { qrTokenRefused, requireOpenSession } from "../http/refusals";
import { BODY_PROBLEMS, IsoTimestamp, json, jsonBody, problems } from "../http/schemas";
import type { ScanKey } from "../objects/ticket";
import { meter } from "../observability/metrics";
import type { ScanRejected } from "../queues/messages";
import { EntitlementSchema } from "./tickets";

/** An annulment's reason is a short note for the audit log. */
const MAX_ANNUL_REASON_LENGTH = 200;

const ScanRequestSchema = z
  .object({
    qr_token: z
      .string()
      .min(1)
      .max(MAX_QR_TOKEN_LENGTH)
      .openapi({ description: "The token from `POST /tickets/{code}/qr-token`" }),
    function: z.string().min(1).max(32).openapi({ example: "bus" }),
    session_id: z.string().min(1).max(64).openapi({ example: "ses_4m6p8r0t2v4x6z8b0d2f" }),
  })
  .strict()
  .openapi("ScanRequest");

const ScanAcceptedSchema = z
  .object({
    result: z.literal("accepted"),
    redemption_id: z.string().openapi({ example: "red_7q9s1u3w5y7a9c1e3g5j8k0m2p4r6" }),
    ticket_code: z.string(),
    function: z.string(),
    scanned_at: IsoTimestamp,
    entitlements: z.array(EntitlementSchema),
  })
  .openapi("ScanAccepted");

/** The gate's own id for one scan attempt: a UUID fits with room to spare. */
export const MAX_SCAN_KEY_LENGTH = 64;

const ScanKeyHeader = z.object({
  "idempotency-key": z
    .string()
    .optional()
    .openapi({
      description:
        `Optional, 1–${MAX_SCAN_KEY_LENGTH} characters: the gate's id for this scan attempt. The same key and ` +
        "body again → the first answer again (accepted or refused), with `idempotent-replayed: true`, even " +
        "after the token expired; the same key with another body → 422 `idempotency_key_reused`.",
      example: "3f1c6b0e-2a7d-4c8e-9d1b-5e0f7a9c2b11",
    }),
});

const RedemptionIdParam = z.object({
  redemption_id: z
    .string()
    .min(1)
    .max(64)
    .openapi({ param: { name: "redemption_id", in: "path" }, example: "red_7q9s1u3w5y7a9c1e3g5j8k0m2p4r6" }),
});

const AnnulRequestSchema = z
  .object({
    session_id: z.string().min(1).max(64).openapi({ description: "The caller's open gate session" }),
    reason: z.string().trim().min(1).max(MAX_ANNUL_REASON_LENGTH).optional().openapi({
      description: "Required when a supervisor or admin annuls outside the window or another device's scan",
      example: "Scanned twice by mistake",
    }),
  })
  .strict()
  .openapi("AnnulRequest");

const AnnulledSchema = z
  .object({
    redemption_id: z.string(),
    annulled_at: IsoTimestamp,
    ticket_code: z.string(),
    function: z.string(),
    entitlements: z.array(EntitlementSchema),
  })
  .openapi("RedemptionAnnulled");

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

/** The gate's key for this scan attempt (1–64 characters, quoted or bare), or undefined without the header. */
function parseScanKey(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const key = header.trim().replace(/^"(.*)"$/, "$1");
  if (key.length === 0 || key.length > MAX_SCAN_KEY_LENGTH) {
    throw new ApiError(
      "idempotency_key_invalid",
      `Idempotency-Key must be 1–${MAX_SCAN_KEY_LENGTH} characters`,
    );
  }
  return key;
}

/**
 * The key as the ticket's object keeps it: scoped to the operator, with the request's identity. A verified
 * token is named by its jti (our signer never reuses one), so (jti, function, session) identifies the body
 * exactly, without hashing it on every keyed scan.
 */
function scanKey(
  key: string,
  operatorId: string,
  jti: string,
  body: { function: string; session_id: string },
): ScanKey {
  return {
    scope: `${operatorId}|${key}`,
    requestHash: JSON.stringify([jti, body.function, body.session_id]),
  };
}

export const scanRoutes = createRouter()
  .openapi(
    createRoute({
      method: "post",
      path: "/tickets/scan",
      operationId: "scanTicket",
      tags: ["Scan"],
      summary: "Redeem one use of a ticket at a gate",
      description:
        "Operator with role `gate` and an open gate session. Each accepted scan spends one use of " +
        "`function` and the token's `jti`; N concurrent scans of a ticket with k uses left accept exactly k. " +
        "Rejections carry `entitlements` whenever the ticket is known. With an `Idempotency-Key` (the gate's " +
        "id for this attempt), a retry after a lost answer gets the first answer again instead of " +
        "`token_replayed`. Keys are scoped to the operator and the ticket (the ticket's object keeps them " +
        "with its scans, 24 h), and answers decided before the ticket is reached (session, device, " +
        "signature) are decided again, the same way.",
      security: [{ operatorToken: [] }],
      middleware: [requireOperator("gate"), meter("scan")] as const,
      request: { headers: ScanKeyHeader, body: jsonBody(ScanRequestSchema) },
      responses: {
        200: json(
          ScanAcceptedSchema,
          "Accepted: one use spent (or replayed, with `idempotent-replayed: true`)",
        ),
        ...problems(
          ...BODY_PROBLEMS,
          "idempotency_key_invalid",
          "idempotency_key_reused",
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
      const gateKey = parseScanKey(c.req.header("idempotency-key"));
      // The session lookup (one D1 query) and the signature check (local crypto) overlap; the session
      // is judged first, so a device that may not scan learns nothing about the token. With a key, an
      // expired token still reaches the ticket's object, which answers a retry from what it stored and
      // judges the expiry itself otherwise.
      const [open, token] = await Promise.allSettled([
        requireOpenSession(getDb(c.env.DB), {
          sessionId: body.session_id,
          operatorId: operator.operatorId,
          kind: "gate",
          now: new Date(),
        }),
        verifyQrToken(config, body.qr_token, {
          typ: TICKET_QR_TYP,
          audience: TICKET_QR_AUDIENCE,
          acceptExpired: gateKey !== undefined,
        }),
      ]);
      if (open.status === "rejected") throw open.reason;
      if (token.status === "rejected") throw token.reason;
      if (!token.value.ok) throw qrTokenRefused(token.value);
      const { session, device } = open.value;
      const verified = token.value.token;
      if (device.functions && !device.functions.includes(body.function)) {
        throw new ApiError("function_not_allowed", `This device validates: ${device.functions.join(", ")}`);
      }

      const ticketCode = verified.subject;
      const key =
        gateKey === undefined ? undefined : scanKey(gateKey, operator.operatorId, verified.jti, body);
      // A gate's scan is usually the first call a ticket's object gets: the token's venue region creates
      // it there even when this Worker runs elsewhere (ignored once the object exists).
      const ticket = c.env.TICKETS.get(
        c.env.TICKETS.idFromName(ticketCode),
        placedNear(locationHint(verified.payload[TICKET_REGION_CLAIM])),
      );
      // Fresh per request: the runtime may resend this RPC after a broken connection, never a new scan.
      const scanId = crypto.randomUUID();
      const outcome = await ticket.redeem({
        ticketCode,
        scanId,
        key,
        fn: body.function,
        jti: verified.jti,
        tokenExpiresAt: verified.expiresAt,
        session: {
          sessionId: session.session_id,
          operatorId: operator.operatorId,
          deviceId: session.device_id,
          locationId: session.location_id,
        },
      });
      if (outcome.result === "rejected" && outcome.code === "idempotency_key_reused") {
        throw new ApiError("idempotency_key_reused", "This Idempotency-Key was used for another scan");
      }
      const replayed = "replayed" in outcome && outcome.replayed === true;
      const replayHeaders: Record<string, string> = replayed ? { [REPLAYED_HEADER]: "true" } : {};
      if (outcome.result === "rejected") {
        const code = outcome.code === "ticket_not_found" ? "token_invalid" : outcome.code;
        if (!replayed) {
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
        }
        if ("entitlements" in outcome) {
          throw new ApiError(
            code,
            undefined,
            { ticket_code: ticketCode, entitlements: outcome.entitlements },
            replayHeaders,
          );
        }
        throw new ApiError("token_invalid", "No such ticket");
      }
      return c.json(
        {
          result: "accepted" as const,
          redemption_id: outcome.redemptionId,
          ticket_code: outcome.ticketCode,
          function: outcome.fn,
          scanned_at: outcome.scannedAt,
          entitlements: outcome.entitlements,
        },
        200,
        replayHeaders,
      );
    },
  )
  .openapi(
    createRoute({
      method: "post",
      path: "/redemptions/{redemption_id}/annul",
      operationId: "annulRedemption",
      tags: ["Scan"],
      summary: "Give a scan's use back",
      description:
        "Gate staff with an open gate session. The device that made the scan may annul it within " +
        "`ANNUL_WINDOW_SECONDS` (default 900); a `supervisor` or `admin` may annul any scan at any time, " +
        "and must then give a `reason`. The use comes back atomically in the ticket's object; nothing is " +
        "deleted: the annulment is its own event, audited, and reports stop counting the redemption within " +
        "10 s (the redemptions CSV shows `annulled_at`). A second annulment → 409 `already_annulled`.",
      security: [{ operatorToken: [] }],
      middleware: [requireOperator("gate")] as const,
      request: { params: RedemptionIdParam, body: jsonBody(AnnulRequestSchema) },
      responses: {
        200: json(AnnulledSchema, "Annulled: one use given back"),
        ...problems(
          ...BODY_PROBLEMS,
          "unauthenticated",
          "forbidden",
          "session_invalid",
          "annul_not_allowed",
          "not_found",
          "already_annulled",
          "service_unavailable",
        ),
      },
    }),
    async (c) => {
      const { redemption_id: redemptionId } = c.req.valid("param");
      const body = c.req.valid("json");
      const operator = c.get("operator");
      const db = getDb(c.env.DB);
      const { session } = await requireOpenSession(db, {
        sessionId: body.session_id,
        operatorId: operator.operatorId,
        kind: "gate",
        now: new Date(),
      });
      // Ids name their ticket; one minted before that is found through the read model.
      const named = ticketCodeOfRedemption(redemptionId);
      const recorded = named ? undefined : await findRecordedRedemption(db, redemptionId);
      const ticketCode = named ?? recorded?.ticketCode;
      if (!ticketCode) throw new ApiError("not_found", "No such redemption");
      const outcome = await c.env.TICKETS.get(c.env.TICKETS.idFromName(ticketCode)).annul({
        redemptionId,
        ticketCode,
        session: {
          sessionId: session.session_id,
          operatorId: operator.operatorId,
          deviceId: session.device_id,
          locationId: session.location_id,
        },
        canOverride: operator.roles.includes("supervisor") || operator.roles.includes("admin"),
        reason: body.reason ?? null,
        windowSeconds: c.get("config").annulWindowSeconds,
        recorded,
      });
      if (outcome.result === "refused") {
        switch (outcome.code) {
          case "not_found":
          case "ticket_not_found":
            throw new ApiError("not_found", "No such redemption");
          case "already_annulled":
            throw new ApiError("already_annulled");
          case "annul_not_allowed":
            throw new ApiError(
              "annul_not_allowed",
              "Only the device that made the scan may annul it, within the window",
            );
          case "reason_required":
            throw new ApiError("validation_failed", "A supervisor's annulment needs a reason", {
              errors: [
                { path: "reason", message: "Required outside the window or for another device's scan" },
              ],
            });
        }
      }
      // GET /my/tickets answers a used-up ticket from the read model without asking its object; the
      // annulment's own event brings that up to date within seconds, and an annulment is rare enough to
      // move it now (versioned, so the event's later copy changes nothing). A failure here is only logged.
      const entitlement = outcome.entitlements.find((e) => e.function === outcome.fn);
      if (entitlement) {
        const moved = applyReportedUsesStatement(
          db,
          [
            {
              code: ticketCode,
              fn: outcome.fn,
              remainingUses: entitlement.remaining_uses,
              usesVersion: outcome.usesVersion,
            },
          ],
          new Date(),
        );
        await atomically(db, [moved]).catch((error: unknown) =>
          console.warn(
            JSON.stringify({ level: "warn", msg: "read model not moved after annul", error: String(error) }),
          ),
        );
      }
      return c.json(
        {
          redemption_id: outcome.redemptionId,
          annulled_at: outcome.annulledAt,
          ticket_code: outcome.ticketCode,
          function: outcome.fn,
          entitlements: outcome.entitlements,
        },
        200,
      );
    },
  );
