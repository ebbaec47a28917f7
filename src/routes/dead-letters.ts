import { createRoute, z } from "@hono/zod-openapi";
import { getDb } from "../db/client";
import {
  DEAD_LETTER_PAGE_MAX,
  decodeDeadLetterCursor,
  listDeadLetters,
  replayDeadLetter,
  UNKNOWN_ERROR,
} from "../db/dead-letters";
import { ApiError } from "../errors";
import { requireOperator } from "../http/auth";
import { createRouter } from "../http/context";
import { IsoTimestamp, idPageQuery, json, NextCursor, problems } from "../http/schemas";

const DeadLetterIdParam = z.object({
  id: z
    .string()
    .min(1)
    .max(128)
    .openapi({ param: { name: "id", in: "path" }, example: "dlt_6f1d0c5e2b7a49c1a3e8d4f2b6c0a9e7" }),
});

const DeadLetterSchema = z
  .object({
    id: z.string(),
    queue: z.string().openapi({ description: "The queue the event gave up on", example: "passes-events" }),
    body: z.unknown().openapi({ description: "The message as it was sent: what a replay sends again" }),
    error: z.string().openapi({
      description: `The last error the consumer recorded for it (name and message, no stack), or \`${UNKNOWN_ERROR}\``,
    }),
    attempts: z
      .number()
      .int()
      .nullable()
      .openapi({ description: "Deliveries it failed, as of the last recorded error; `null` when none was" }),
    sent_at: IsoTimestamp.nullable().openapi({ description: "When the event was first sent" }),
    received_at: IsoTimestamp.openapi({ description: "When it reached the dead-letter queue's consumer" }),
    replayed_at: IsoTimestamp.nullable().openapi({ description: "The first replay; `null` until then" }),
  })
  .openapi("DeadLetter");

const DeadLetterListSchema = z
  .object({ dead_letters: z.array(DeadLetterSchema), next_cursor: NextCursor })
  .openapi("DeadLetterList");

const ReplaySchema = z.object({ id: z.string(), replayed_at: IsoTimestamp }).openapi("DeadLetterReplay");

export const deadLetterRoutes = createRouter()
  .openapi(
    createRoute({
      method: "get",
      path: "/admin/dead-letters",
      operationId: "listDeadLetters",
      tags: ["Admin"],
      summary: "Events that exhausted their retries",
      description:
        "Role `admin`. Events the queue consumer failed on every delivery (the queue's `max_retries`), as " +
        "the dead-letter queue's consumer stored them, newest first, up to `limit` (max " +
        `${DEAD_LETTER_PAGE_MAX}) per page. A stored dead letter stays listed after its replay, with ` +
        "`replayed_at` set.",
      security: [{ operatorToken: [] }],
      middleware: [requireOperator("admin")] as const,
      request: { query: idPageQuery(DEAD_LETTER_PAGE_MAX) },
      responses: {
        200: json(DeadLetterListSchema, "A page of dead letters"),
        ...problems("validation_failed", "unauthenticated", "forbidden"),
      },
    }),
    async (c) => {
      const query = c.req.valid("query");
      const before = query.cursor === undefined ? undefined : decodeDeadLetterCursor(query.cursor);
      if (query.cursor !== undefined && before === undefined) {
        throw new ApiError("validation_failed", "cursor is not one this API issued", {
          errors: [{ path: "cursor", message: "Not a cursor from a previous page" }],
        });
      }
      const page = await listDeadLetters(getDb(c.env.DB), { before, limit: query.limit });
      return c.json({ dead_letters: page.deadLetters, next_cursor: page.next }, 200, {
        "cache-control": "no-store",
      });
    },
  )
  .openapi(
    createRoute({
      method: "post",
      path: "/admin/dead-letters/{id}/replay",
      operationId: "replayDeadLetter",
      tags: ["Admin"],
      summary: "Send a dead letter's event to the queue again",
      description:
        "Role `admin`. Sends the stored body to the EVENTS queue once and sets `replayed_at`; the consumers " +
        "are idempotent, so an event that was partly handled is completed, never doubled. A second replay " +
        "answers 200 with the first `replayed_at` and sends nothing (safe to retry after a lost answer). " +
        "An event that fails again on every delivery comes back as a new dead letter. Audited " +
        "(`dead_letter.replay`).",
      security: [{ operatorToken: [] }],
      middleware: [requireOperator("admin")] as const,
      request: { params: DeadLetterIdParam },
      responses: {
        200: json(ReplaySchema, "Replayed now, or earlier (then nothing was sent again)"),
        ...problems("validation_failed", "unauthenticated", "forbidden", "not_found"),
      },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const outcome = await replayDeadLetter(
        getDb(c.env.DB),
        c.env.EVENTS,
        id,
        c.get("operator").operatorId,
        new Date(),
      );
      if (outcome.kind === "not_found") throw new ApiError("not_found", "No such dead letter");
      return c.json({ id, replayed_at: outcome.replayedAt }, 200);
    },
  );
