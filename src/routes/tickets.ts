import { createRoute, z } from "@hono/zod-openapi";
import {
  signTicketQrToken,
  TICKET_QR_AUDIENCE,
  TICKET_QR_TTL_SECONDS,
  TICKET_QR_TYP,
} from "../auth/qr-token";
import { getDb } from "../db/client";
import { findTicketOwner, MAX_TICKETS_LISTED } from "../db/tickets";
import { parseTicketCode } from "../domain/ticket-code";
import { ApiError } from "../errors";
import { requireBuyer } from "../http/auth";
import { createRouter } from "../http/context";
import { IsoTimestamp, json, problems } from "../http/schemas";
import { listTicketsWithLiveUses } from "../services/my-tickets";
import { TICKET_STATUSES } from "../types/domain";

const TICKET_CODE_EXAMPLE = "7KX2M9QD4RT6WJ";

export const EntitlementSchema = z
  .object({
    function: z.string().openapi({ example: "bus" }),
    total_uses: z.number().int(),
    remaining_uses: z.number().int(),
  })
  .openapi("Entitlement");

const TicketSchema = z
  .object({
    code: z.string().openapi({
      example: TICKET_CODE_EXAMPLE,
      description:
        "14 symbols of Crockford base32, the last a mod-37 check symbol (one of `0-9A-Z*~$=U`). Typed input " +
        "may use lower case, `I`/`L` for 1, `O` for 0, and hyphens or spaces between groups.",
    }),
    order_id: z.string(),
    product_id: z.string(),
    product_name: z.string(),
    status: z.enum(TICKET_STATUSES).openapi({ description: "`USED_UP` once no entitlement has a use left" }),
    issued_at: IsoTimestamp,
    entitlements: z.array(EntitlementSchema),
  })
  .openapi("Ticket");

const QrTokenSchema = z
  .object({
    token: z.string().openapi({
      description:
        `Compact JWS (EdDSA) with header \`typ: "${TICKET_QR_TYP}"\` and \`kid\`; claims \`iss\`, ` +
        `\`aud: "${TICKET_QR_AUDIENCE}"\`, \`sub\` (the ticket code), \`jti\`, \`iat\`, \`exp\`. ` +
        "Verify with the keys at `/.well-known/jwks.json`.",
    }),
    expires_in: z.number().int().openapi({ example: TICKET_QR_TTL_SECONDS }),
  })
  .openapi("TicketQrToken");

const TicketCodeParam = z.object({
  code: z.string().openapi({ param: { name: "code", in: "path" }, example: TICKET_CODE_EXAMPLE }),
});

export const ticketRoutes = createRouter()
  .openapi(
    createRoute({
      method: "get",
      path: "/my/tickets",
      operationId: "listMyTickets",
      tags: ["Tickets"],
      summary: "The caller's tickets with their entitlements",
      description:
        `Newest first, at most ${MAX_TICKETS_LISTED}. Tickets of a paid order are listed as soon as the ` +
        "payment webhook that paid it has returned.",
      security: [{ buyerToken: [] }],
      middleware: [requireBuyer] as const,
      responses: {
        200: json(z.object({ tickets: z.array(TicketSchema) }).openapi("MyTickets"), "The caller's tickets"),
        ...problems("unauthenticated"),
      },
    }),
    async (c) => c.json({ tickets: await listTicketsWithLiveUses(c.env, c.get("buyerId")) }, 200),
  )
  .openapi(
    createRoute({
      method: "post",
      path: "/tickets/{code}/qr-token",
      operationId: "createTicketQrToken",
      tags: ["Tickets"],
      summary: "A short-lived QR token for one of the caller's tickets",
      description:
        `Owner only. The token expires after ${TICKET_QR_TTL_SECONDS} s and is single-use at the gate. A ` +
        "mistyped code (bad check symbol) is `invalid_code`; someone else's ticket answers like a missing one.",
      security: [{ buyerToken: [] }],
      middleware: [requireBuyer] as const,
      request: { params: TicketCodeParam },
      responses: {
        200: json(QrTokenSchema, "A fresh token"),
        ...problems("unauthenticated", "not_found", "invalid_code", "service_unavailable"),
      },
    }),
    async (c) => {
      const code = parseTicketCode(c.req.valid("param").code);
      const ticket = await findTicketOwner(getDb(c.env.DB), code);
      if (!ticket || ticket.userId !== c.get("buyerId")) throw new ApiError("not_found", "No such ticket");
      const qr = await signTicketQrToken(c.get("config"), code, new Date());
      return c.json(qr, 200, { "cache-control": "no-store" });
    },
  );
