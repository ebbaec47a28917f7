import { createRoute, z } from "@hono/zod-openapi";
import { getDb } from "../db/client";
import {
  decodeLedgerCursor,
  encodeLedgerCursor,
  observedLedgerLagMs,
  pageLedger,
  toWalletTransaction,
} from "../db/ledger";
import { pageOfflineConflicts, toOfflineConflict } from "../db/offline-conflicts";
import { aggregateRedemptions } from "../db/redemptions";
import { LEDGER_LAG_BOUND_MS } from "../domain/ledger";
import { ApiError } from "../errors";
import { requireOperator } from "../http/auth";
import { createRouter } from "../http/context";
import { requestedRange } from "../http/refusals";
import { IsoTimestamp, json, problems } from "../http/schemas";
import {
  CSV_CONTENT_TYPE,
  EXPORT_NAME_PATTERN,
  offlineConflictsCsv,
  redemptionsCsv,
  transactionsCsv,
} from "../reports/daily-export";
import { LEDGER_TYPES } from "../types/domain";
import { WalletTransactionSchema } from "./wallet";

/** `ledger_lag.observed_max_ms` looks at the rows that arrived within this long. */
const LEDGER_LAG_WINDOW_MS = 60 * 60 * 1000;

/** Aggregate rows per JSON report; a range with more groups than this says so with `truncated`. */
export const MAX_REPORT_ROWS = 5_000;
/** Exports listed per page. */
const EXPORTS_PAGE_SIZE = 100;
/** Ledger rows per JSON page of the transactions report (CSV streams every row, a page at a time). */
export const TRANSACTIONS_REPORT_PAGE_SIZE = 500;
/** Longer than any cursor this API hands out. */
const MAX_CURSOR_LENGTH = 512;

const RangeQuery = {
  from: z
    .string()
    .min(10)
    .max(40)
    .openapi({ example: "2026-11-01", description: "Inclusive: date or RFC 3339" }),
  to: z.string().min(10).max(40).openapi({
    example: "2026-11-30",
    description: "Exclusive timestamp, or a date whose whole day is included",
  }),
  format: z
    .enum(["json", "csv"])
    .optional()
    .openapi({ description: "`csv` (or `Accept: text/csv`) streams raw events" }),
};

const RedemptionReportSchema = z
  .object({
    from: IsoTimestamp,
    to: IsoTimestamp,
    rows: z.array(
      z.object({
        day: z.string().openapi({ example: "2026-11-21" }),
        function: z.string(),
        location_id: z.string().nullable(),
        redemptions: z.number().int(),
      }),
    ),
    total: z.number().int(),
    truncated: z.boolean().openapi({ description: `true when more than ${MAX_REPORT_ROWS} groups matched` }),
  })
  .openapi("RedemptionReport");

const TransactionReportSchema = z
  .object({
    from: IsoTimestamp,
    to: IsoTimestamp,
    transactions: z.array(WalletTransactionSchema),
    next_cursor: z
      .string()
      .nullable()
      .openapi({ description: "Pass as `cursor` for the next page; `null` at the end" }),
    ledger_lag: z
      .object({
        bound_ms: z.number().int().openapi({ description: "How far this copy may trail the wallets (10 s)" }),
        observed_max_ms: z.number().int().nullable().openapi({
          description: "The longest any row took to arrive in the last hour; `null` if none arrived",
        }),
      })
      .openapi({
        description:
          "The ledger is each wallet's own journal; these rows are its global copy, appended from the " +
          "journals' events. A transaction younger than `bound_ms` may not be listed yet.",
      }),
  })
  .openapi("TransactionReport");

const OfflineConflictReportSchema = z
  .object({
    from: IsoTimestamp,
    to: IsoTimestamp,
    conflicts: z.array(
      z
        .object({
          id: z.string(),
          outcome: z.enum(["conflict", "over_budget", "invalid"]),
          reason: z.string().openapi({
            description:
              "`exhausted` or `no_entitlement` for a conflict; `in_flight` or `token_not_good_at_scan` for " +
              "`over_budget`; for `invalid`: `token_signature`, " +
              "`device_signature`, `ticket_not_found`, `function_not_allowed` or `scanned_at_ahead`",
          }),
          scan_id: z.string(),
          ticket_code: z.string().nullable(),
          function: z.string(),
          device_id: z.string(),
          operator_id: z.string(),
          session_id: z.string(),
          location_id: z.string().nullable(),
          scanned_at: IsoTimestamp,
          recorded_at: IsoTimestamp,
          over_budget: z.boolean(),
          other_redemption_id: z.string().nullable().openapi({
            description: "The other side: the redemption that took the last use",
          }),
          other_device_id: z.string().nullable(),
          other_scanned_at: IsoTimestamp.nullable(),
          other_offline: z.boolean().nullable(),
        })
        .openapi("OfflineConflict"),
    ),
    truncated: z
      .boolean()
      .openapi({ description: `true when more than ${MAX_REPORT_ROWS} matched (CSV has all)` }),
  })
  .openapi("OfflineConflictReport");

const ExportListSchema = z
  .object({
    exports: z.array(
      z.object({
        name: z.string().openapi({ example: "redemptions-2026-11-20.csv" }),
        size: z.number().int(),
        uploaded_at: IsoTimestamp,
      }),
    ),
    next_cursor: z.string().nullable(),
  })
  .openapi("ExportList");

const csvContent = { "text/csv": { schema: z.string().openapi({ format: "binary" }) } };

function wantsCsv(format: string | undefined, accept: string | undefined): boolean {
  return format === "csv" || (format === undefined && /\btext\/csv\b/.test(accept ?? ""));
}

export const reportRoutes = createRouter()
  .openapi(
    createRoute({
      method: "get",
      path: "/reports/redemptions",
      operationId: "reportRedemptions",
      tags: ["Reports"],
      summary: "Redemptions per day, function and location (or the raw events as CSV)",
      description:
        "Role `analyst` or `admin`. A redemption appears within seconds of its scan. The range spans at most " +
        "366 days; CSV is streamed page by page, never built in memory.",
      security: [{ operatorToken: [] }],
      middleware: [requireOperator("analyst")] as const,
      request: {
        query: z.object({
          ...RangeQuery,
          function: z.string().min(1).max(32).optional(),
          location_id: z.string().min(1).max(64).optional(),
        }),
      },
      responses: {
        200: {
          description: "The report",
          content: { "application/json": { schema: RedemptionReportSchema }, ...csvContent },
        },
        ...problems("validation_failed", "unauthenticated", "forbidden"),
      },
    }),
    async (c) => {
      const query = c.req.valid("query");
      const range = requestedRange(query.from, query.to);
      const filter = { ...range, fn: query.function, locationId: query.location_id };
      const db = getDb(c.env.DB);
      if (wantsCsv(query.format, c.req.header("accept"))) {
        return c.body(redemptionsCsv(db, filter), 200, {
          "content-type": CSV_CONTENT_TYPE,
          "content-disposition": `attachment; filename="redemptions-${range.fromIso.slice(0, 10)}.csv"`,
        });
      }
      const rows = await aggregateRedemptions(db, filter, MAX_REPORT_ROWS + 1);
      const truncated = rows.length > MAX_REPORT_ROWS;
      const shown = truncated ? rows.slice(0, MAX_REPORT_ROWS) : rows;
      return c.json(
        {
          from: range.fromIso,
          to: range.toIso,
          rows: shown,
          total: shown.reduce((sum, row) => sum + row.redemptions, 0),
          truncated,
        },
        200,
      );
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/reports/transactions",
      operationId: "reportTransactions",
      tags: ["Reports"],
      summary: "Wallet ledger rows in a time range (or all of them as CSV)",
      description:
        "Role `analyst` or `admin`. Rows with `from <= created_at < to`, oldest first, optionally of one " +
        "`type` or one POS `event_id`. JSON is keyset-paged " +
        `(${TRANSACTIONS_REPORT_PAGE_SIZE} rows, follow \`next_cursor\`); CSV streams every row page by page, ` +
        "never built in memory. The range spans at most 366 days. The rows are the global copy of the " +
        "wallets' journals and trail them by at most 10 s; `ledger_lag` reports what was observed.",
      security: [{ operatorToken: [] }],
      middleware: [requireOperator("analyst")] as const,
      request: {
        query: z.object({
          ...RangeQuery,
          type: z.enum(LEDGER_TYPES).optional(),
          event_id: z.string().min(1).max(64).optional(),
          cursor: z.string().min(1).max(MAX_CURSOR_LENGTH).optional().openapi({
            description: "JSON only: `next_cursor` from the previous page",
          }),
        }),
      },
      responses: {
        200: {
          description: "The report",
          content: { "application/json": { schema: TransactionReportSchema }, ...csvContent },
        },
        ...problems("validation_failed", "unauthenticated", "forbidden"),
      },
    }),
    async (c) => {
      const query = c.req.valid("query");
      const range = requestedRange(query.from, query.to);
      const filter = { ...range, type: query.type, eventId: query.event_id };
      const db = getDb(c.env.DB);
      if (wantsCsv(query.format, c.req.header("accept"))) {
        return c.body(transactionsCsv(db, filter), 200, {
          "content-type": CSV_CONTENT_TYPE,
          "content-disposition": `attachment; filename="transactions-${range.fromIso.slice(0, 10)}.csv"`,
        });
      }
      const after = query.cursor === undefined ? undefined : decodeLedgerCursor(query.cursor);
      if (query.cursor !== undefined && !after) {
        throw new ApiError("validation_failed", "cursor is not one this API issued", {
          errors: [{ path: "cursor", message: "Not a cursor from a previous page" }],
        });
      }
      const [page, observedMaxMs] = await Promise.all([
        pageLedger(db, filter, after, TRANSACTIONS_REPORT_PAGE_SIZE),
        observedLedgerLagMs(db, new Date(Date.now() - LEDGER_LAG_WINDOW_MS)),
      ]);
      return c.json(
        {
          from: range.fromIso,
          to: range.toIso,
          transactions: page.rows.map(toWalletTransaction),
          next_cursor: page.next ? encodeLedgerCursor(page.next) : null,
          ledger_lag: { bound_ms: LEDGER_LAG_BOUND_MS, observed_max_ms: observedMaxMs },
        },
        200,
      );
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/reports/offline-conflicts",
      operationId: "reportOfflineConflicts",
      tags: ["Reports"],
      summary: "Offline scans reconciliation flagged: over-spends (with both sides) and forgeries",
      description:
        "Role `analyst` or `admin`. Rows with `from <= scanned_at < to`, oldest first. A conflict is stored " +
        "within seconds of the upload that found it. JSON lists the first " +
        `${MAX_REPORT_ROWS}; CSV streams every row.`,
      security: [{ operatorToken: [] }],
      middleware: [requireOperator("analyst")] as const,
      request: { query: z.object(RangeQuery) },
      responses: {
        200: {
          description: "The report",
          content: { "application/json": { schema: OfflineConflictReportSchema }, ...csvContent },
        },
        ...problems("validation_failed", "unauthenticated", "forbidden"),
      },
    }),
    async (c) => {
      const query = c.req.valid("query");
      const range = requestedRange(query.from, query.to);
      const db = getDb(c.env.DB);
      if (wantsCsv(query.format, c.req.header("accept"))) {
        return c.body(offlineConflictsCsv(db, range), 200, {
          "content-type": CSV_CONTENT_TYPE,
          "content-disposition": `attachment; filename="offline-conflicts-${range.fromIso.slice(0, 10)}.csv"`,
        });
      }
      const page = await pageOfflineConflicts(db, range, undefined, MAX_REPORT_ROWS + 1);
      const truncated = page.rows.length > MAX_REPORT_ROWS;
      return c.json(
        {
          from: range.fromIso,
          to: range.toIso,
          conflicts: page.rows.slice(0, MAX_REPORT_ROWS).map(toOfflineConflict),
          truncated,
        },
        200,
      );
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/reports/exports",
      operationId: "listExports",
      tags: ["Reports"],
      summary: "Scheduled CSV exports in the EXPORTS bucket",
      description: "Role `analyst` or `admin`. Newest names sort last; page with `cursor`.",
      security: [{ operatorToken: [] }],
      middleware: [requireOperator("analyst")] as const,
      request: { query: z.object({ cursor: z.string().max(1_024).optional() }) },
      responses: {
        200: json(ExportListSchema, "One page of exports"),
        ...problems("validation_failed", "unauthenticated", "forbidden"),
      },
    }),
    async (c) => {
      const listing = await c.env.EXPORTS.list({
        limit: EXPORTS_PAGE_SIZE,
        cursor: c.req.valid("query").cursor,
      });
      return c.json(
        {
          exports: listing.objects.map((object) => ({
            name: object.key,
            size: object.size,
            uploaded_at: object.uploaded.toISOString(),
          })),
          next_cursor: listing.truncated ? listing.cursor : null,
        },
        200,
      );
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/reports/exports/{name}",
      operationId: "downloadExport",
      tags: ["Reports"],
      summary: "Download one export",
      description: "Role `analyst` or `admin`. Streams the CSV from R2.",
      security: [{ operatorToken: [] }],
      middleware: [requireOperator("analyst")] as const,
      request: {
        params: z.object({
          name: z
            .string()
            .regex(EXPORT_NAME_PATTERN)
            .openapi({ param: { name: "name", in: "path" }, example: "redemptions-2026-11-20.csv" }),
        }),
      },
      responses: {
        200: { description: "The CSV", content: csvContent },
        ...problems("validation_failed", "unauthenticated", "forbidden", "not_found"),
      },
    }),
    async (c) => {
      const name = c.req.valid("param").name;
      const object = await c.env.EXPORTS.get(name);
      if (!object) throw new ApiError("not_found", "No such export");
      return c.body(object.body, 200, {
        "content-type": CSV_CONTENT_TYPE,
        "content-length": String(object.size),
        "content-disposition": `attachment; filename="${name}"`,
        etag: object.httpEtag,
      });
    },
  );
