import { createRoute, z } from "@hono/zod-openapi";
import { decodeAuditCursor, encodeAuditCursor, listAuditEntries, verifyAuditChain } from "../db/audit";
import { getDb } from "../db/client";
import { requireOperator } from "../http/auth";
import { createRouter } from "../http/context";
import { requestedRange } from "../http/refusals";
import { IsoTimestamp, json, OpaqueCursor, PageLimit, problems } from "../http/schemas";

export const AUDIT_DEFAULT_PAGE_SIZE = 100;
export const AUDIT_MAX_PAGE_SIZE = 500;
const MAX_CURSOR_LENGTH = 200;

const AuditEntrySchema = z
  .object({
    seq: z.number().int().openapi({ description: "Position in the chain, from 1" }),
    id: z.string().openapi({ example: "aud_6p8r0t2v4x6z8b0d2f4h" }),
    ts: IsoTimestamp,
    actor: z.string().openapi({ description: "Operator id; the submitted username for a failed login" }),
    action: z.string().openapi({ example: "session.open" }),
    target: z.string().nullable(),
    details: z.record(z.string(), z.unknown()),
    prev_hash: z.string().openapi({ description: "The previous entry's hash; 64 zeros for the first" }),
    hash: z.string().openapi({
      description:
        "SHA-256 (hex) of the UTF-8 JSON array [seq, id, ts, actor, action, target, details, prev_hash], " +
        "where details is its canonical JSON text (keys sorted)",
    }),
  })
  .openapi("AuditEntry");

/** Action names are short dotted words (`pos.refund`); actors are operator ids or a submitted username. */
export const MAX_AUDIT_FILTER_LENGTH = 128;
/** A date-time with fractional seconds and an offset is under 40 characters. */
const MAX_BOUND_LENGTH = 40;

const AuditQuerySchema = z.object({
  from: z
    .string()
    .min(1)
    .max(MAX_BOUND_LENGTH)
    .openapi({
      param: { name: "from", in: "query" },
      description: "Inclusive: a date (`YYYY-MM-DD`, from 00:00 UTC) or an RFC 3339 date-time",
      example: "2026-11-21",
    }),
  to: z
    .string()
    .min(1)
    .max(MAX_BOUND_LENGTH)
    .openapi({
      param: { name: "to", in: "query" },
      description: "Exclusive RFC 3339 date-time, or a date whose whole day is included (as in `/reports/*`)",
      example: "2026-11-21",
    }),
  action: z
    .string()
    .min(1)
    .max(MAX_AUDIT_FILTER_LENGTH)
    .optional()
    .openapi({
      param: { name: "action", in: "query" },
      description: "Only entries with exactly this action",
      example: "pos.refund",
    }),
  actor: z
    .string()
    .min(1)
    .max(MAX_AUDIT_FILTER_LENGTH)
    .optional()
    .openapi({
      param: { name: "actor", in: "query" },
      description: "Only entries by exactly this actor (an operator id)",
      example: "opr_2b4d6f8h0k2m4p6r8t0v",
    }),
  cursor: OpaqueCursor((value) => decodeAuditCursor(value) !== undefined, MAX_CURSOR_LENGTH),
  limit: PageLimit(AUDIT_MAX_PAGE_SIZE, AUDIT_DEFAULT_PAGE_SIZE),
});

const AuditPageSchema = z
  .object({
    entries: z.array(AuditEntrySchema),
    next_cursor: z.string().nullable().openapi({ description: "`null` on the last page" }),
  })
  .openapi("AuditPage");

const AuditVerificationSchema = z
  .union([
    z.object({ ok: z.literal(true), entries: z.number().int() }),
    z.object({
      ok: z.literal(false),
      entries_checked: z.number().int().openapi({ description: "Entries before the break that verified" }),
      broken_at: z.object({
        seq: z.number().int(),
        id: z.string(),
        reason: z.enum(["seq_gap", "prev_hash_mismatch", "hash_mismatch", "ts_regressed"]),
      }),
    }),
  ])
  .openapi("AuditVerification");

export const auditRoutes = createRouter()
  .openapi(
    createRoute({
      method: "get",
      path: "/admin/audit",
      operationId: "listAudit",
      tags: ["Admin"],
      summary: "Audit entries in a time range, in chain order",
      description:
        `Role \`admin\`. Entries with \`from ≤ ts < to\`, oldest first, at most \`limit\` ` +
        `(default ${AUDIT_DEFAULT_PAGE_SIZE}, max ${AUDIT_MAX_PAGE_SIZE}) per page; pass \`next_cursor\` ` +
        "back as `cursor` (with the same filters) for the next page. Timestamps never decrease along the " +
        "chain. `from` and `to` take dates or date-times exactly as `/reports/*` do: `from=2026-11-21&" +
        "to=2026-11-21` is that whole UTC day. There is no bound on the span (the listing is paged). " +
        "`action` and `actor` narrow the listing to exact matches, each served by its own index. A range " +
        "that is not one answers 400 `validation_failed` whose `errors[].message` says what is wrong.",
      security: [{ operatorToken: [] }],
      middleware: [requireOperator("admin")] as const,
      request: { query: AuditQuerySchema },
      responses: {
        200: json(AuditPageSchema, "One page of entries"),
        ...problems("validation_failed", "unauthenticated", "forbidden"),
      },
    }),
    async (c) => {
      const query = c.req.valid("query");
      // The audit listing is paged, so unlike a report its range has no length bound.
      const range = requestedRange(query.from, query.to, { maxDays: Number.POSITIVE_INFINITY });
      const page = await listAuditEntries(getDb(c.env.DB), {
        from: range.fromIso,
        to: range.toIso,
        action: query.action,
        actor: query.actor,
        after: query.cursor === undefined ? undefined : decodeAuditCursor(query.cursor),
        limit: query.limit,
      });
      return c.json({ entries: page.entries, next_cursor: page.next && encodeAuditCursor(page.next) }, 200);
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/admin/audit/verify",
      operationId: "verifyAudit",
      tags: ["Admin"],
      summary: "Verify the audit hash chain",
      description:
        "Role `admin`. Walks the chain from the first entry and answers 200 either way: " +
        "`{ ok: true, entries }`, or `ok: false` with the first broken link (`seq_gap`, " +
        "`prev_hash_mismatch`, `hash_mismatch` or `ts_regressed`).",
      security: [{ operatorToken: [] }],
      middleware: [requireOperator("admin")] as const,
      responses: {
        200: json(AuditVerificationSchema, "The verification result"),
        ...problems("unauthenticated", "forbidden"),
      },
    }),
    async (c) => c.json(await verifyAuditChain(getDb(c.env.DB)), 200),
  );
