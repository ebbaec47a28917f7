import { z } from "@hono/zod-openapi";
import { ERROR_CODES, type ErrorCode, PROBLEM_CONTENT_TYPE } from "../errors";

// Schemas shared by several routers. Route-specific schemas live beside their routes.

export const ProblemSchema = z
  .object({
    type: z.string().openapi({ example: "https://passes.dev/problems/sold-out" }),
    title: z.string(),
    status: z.number().int(),
    detail: z.string(),
    code: z.enum(Object.keys(ERROR_CODES) as [ErrorCode, ...ErrorCode[]]),
    errors: z
      .array(z.object({ path: z.string(), message: z.string() }))
      .optional()
      .openapi({ description: "Per-field failures, with `validation_failed`." }),
  })
  .catchall(z.unknown())
  .openapi("Problem", { description: "RFC 9457 problem details. Clients branch on `code`." });

/**
 * OpenAPI response entries for the problem codes a route can return, grouped by status, so each route
 * lists exactly what it may answer.
 */
export function problems(...codes: ErrorCode[]) {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of codes) {
    const status = ERROR_CODES[code].status;
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  const responses: Record<
    number,
    { description: string; content: Record<string, { schema: typeof ProblemSchema }> }
  > = {};
  for (const [status, statusCodes] of byStatus) {
    responses[status] = {
      description: statusCodes.map((code) => `\`${code}\`: ${ERROR_CODES[code].title}`).join("; "),
      content: { [PROBLEM_CONTENT_TYPE]: { schema: ProblemSchema } },
    };
  }
  return responses;
}

/** Errors any JSON-body route can produce before its handler runs. */
export const BODY_PROBLEMS: ErrorCode[] = ["validation_failed", "invalid_json", "payload_too_large"];

/** Errors every route that takes an Idempotency-Key can produce (see src/http/idempotency.ts). */
export const IDEMPOTENCY_PROBLEMS: ErrorCode[] = [
  "idempotency_key_missing",
  "idempotency_key_invalid",
  "idempotency_in_progress",
  "idempotency_key_reused",
];

export const IdempotencyKeyHeader = z.object({
  "idempotency-key": z
    .string()
    .optional()
    .openapi({
      description:
        "Required. 1–255 characters, quoted or bare. Same key + same body replays the stored outcome " +
        "(header `idempotent-replayed: true`); same key + another body → 422 `idempotency_key_reused`.",
      example: "3f1c6b0e-2a7d-4c8e-9d1b-5e0f7a9c2b11",
    }),
});

export const json = <T extends z.ZodType>(schema: T, description: string) => ({
  description,
  content: { "application/json": { schema } },
});

export const jsonBody = <T extends z.ZodType>(schema: T) => ({
  required: true,
  content: { "application/json": { schema } },
});

export const IsoTimestamp = z.string().openapi({ example: "2026-11-21T10:00:00Z", format: "date-time" });

/** `next_cursor` of a keyset-paged list. */
export const NextCursor = z
  .string()
  .nullable()
  .openapi({ description: "Pass as `cursor` for the next page; `null` at the end" });

/** A page size: 1 to `max`, `fallback` when absent. */
export function PageLimit(max: number, fallback: number) {
  return z.coerce
    .number()
    .int()
    .min(1)
    .max(max)
    .default(fallback)
    .openapi({ param: { name: "limit", in: "query" }, example: fallback });
}

/** A keyset cursor this API handed out, checked by its own decoder before the handler sees it. */
export function OpaqueCursor(isCursor: (text: string) => boolean, maxLength: number) {
  return z
    .string()
    .min(1)
    .max(maxLength)
    .refine(isCursor, "Not a cursor from a previous page")
    .optional()
    .openapi({ param: { name: "cursor", in: "query" }, description: "`next_cursor` of the previous page" });
}

/** The query of a keyset-paged admin list: `cursor` (an id from the previous page) and `limit`. */
export function idPageQuery(maxLimit: number, defaultLimit = 50) {
  return z.object({
    cursor: z
      .string()
      .min(1)
      .max(64)
      .optional()
      .openapi({ param: { name: "cursor", in: "query" }, description: "`next_cursor` of the previous page" }),
    limit: PageLimit(maxLimit, defaultLimit),
  });
}
