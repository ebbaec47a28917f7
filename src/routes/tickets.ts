import { createRoute, z } from "@hono/zod-openapi";
import {
  OFFLINE_QR_SUPPLY_SECONDS,
  signTicketQrSupply,
  signTicketQrToken,
  TICKET_QR_AUDIENCE,
  TICKET_QR_TTL_SECONDS,
  TICKET_QR_TYP,
} from "../auth/qr-token";
import type { Db } from "../db/client";
import { getDb } from "../db/client";
import { findTicketForQr, MAX_TICKETS_LISTED } from "../db/tickets";
import { normalizeTicketCode } from "../domain/ticket-code";
import { ApiError } from "../errors";
import { requireBuyer } from "../http/auth";
import { createRouter } from "../http/context";
import { qrSigningConfig } from "../http/refusals";
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
        `\`aud: "${TICKET_QR_AUDIENCE}"\`, \`sub\` (the ticket code), \`jti\`, \`iat\`, \`exp\`, \`fns\` ` +
        "(the ticket's function names) and `used` (those with no use left), for a gate deciding offline. " +
        "Verify with the keys at " +
        "`/.well-known/jwks.json`.",
    }),
    expires_in: z.number().int().openapi({ example: TICKET_QR_TTL_SECONDS }),
  })
  .openapi("TicketQrToken");

const QrSupplySchema = z
  .object({
    issued_at: IsoTimestamp.openapi({
      description: "The server's clock when signed: a phone measures its own clock's offset against it",
    }),
    tokens: z.array(
      z.object({
        token: z.string().openapi({
          description: "As from `POST /tickets/{code}/qr-token`, with `iat` = `nbf` = `not_before`",
        }),
        not_before: IsoTimestamp,
        expires_at: IsoTimestamp,
      }),
    ),
  })
  .openapi("TicketQrSupply");

/**
 * The caller's ticket, for signing its codes: a mistyped code is `invalid_code`, someone else's ticket
 * answers like a missing one.
 */
async function ownTicket(db: Db, rawCode: string, buyerId: string) {
  const code = normalizeTicketCode(rawCode);
  if (code === undefined) throw new ApiError("invalid_code", "Not a valid ticket code: check for a typo");
  const ticket = await findTicketForQr(db, code);
  if (!ticket || ticket.userId !== buyerId) throw new ApiError("not_found", "No such ticket");
  return { code, functions: ticket.functions, usedUp: ticket.usedUp, venueRegion: ticket.venueRegion };
}

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
        "payment webhook that paid it has returned, and `remaining_uses` reflects every scan that has " +
        "returned.",
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
      const ticket = await ownTicket(getDb(c.env.DB), c.req.valid("param").code, c.get("buyerId"));
      const qr = await signTicketQrToken(qrSigningConfig(c.get("config")), ticket, new Date());
      return c.json(qr, 200, { "cache-control": "no-store" });
    },
  )
  .openapi(
    createRoute({
      method: "post",
      path: "/tickets/{code}/qr-tokens",
      operationId: "createTicketQrSupply",
      tags: ["Tickets"],
      summary: "Codes for the next 10 minutes, for a phone that may lose its signal",
      description:
        `Owner only. Consecutive windows of ${TICKET_QR_TTL_SECONDS} s covering the next ` +
        `${OFFLINE_QR_SUPPLY_SECONDS / 60} minutes, each a token with its own \`jti\` and \`nbf\`: the buyer ` +
        "page keeps them and shows the one whose window is now, with or without a network. Each is " +
        "single-use at the gate, like any ticket token.",
      security: [{ buyerToken: [] }],
      middleware: [requireBuyer] as const,
      request: { params: TicketCodeParam },
      responses: {
        200: json(QrSupplySchema, "The next 10 minutes of codes, oldest first"),
        ...problems("unauthenticated", "not_found", "invalid_code", "service_unavailable"),
      },
    }),
    async (c) => {
      const ticket = await ownTicket(getDb(c.env.DB), c.req.valid("param").code, c.get("buyerId"));
      const now = new Date();
      const tokens = await signTicketQrSupply(qrSigningConfig(c.get("config")), ticket, now);
      return c.json({ issued_at: now.toISOString(), tokens }, 200, { "cache-control": "no-store" });
    },
  );
