import { createRoute, z } from "@hono/zod-openapi";
import { getDb } from "../db/client";
import { MAX_ADJUSTMENT_CENTS, MAX_REASON_LENGTH } from "../domain/ledger";
import { requireOperator } from "../http/auth";
import { asRouteResponse, createRouter } from "../http/context";
import { parseIdempotencyKey, runIdempotent } from "../http/idempotency";
import { invalidField } from "../http/refusals";
import {
  BODY_PROBLEMS,
  IDEMPOTENCY_PROBLEMS,
  IdempotencyKeyHeader,
  json,
  jsonBody,
  problems,
} from "../http/schemas";
import { adjustmentRefused } from "../http/wallet-refusals";
import { adjustWallet } from "../services/wallet-adjustments";
import {
  decodeWalletCursor,
  RECONCILIATION_PAGE_SIZE,
  reconcileWalletPage,
} from "../services/wallet-reconciliation";
import { LEDGER_DIRECTIONS } from "../types/domain";
import { WalletTransactionSchema } from "./wallet";

/** Longer than any cursor this API hands out (one user id, base64url). */
const MAX_CURSOR_LENGTH = 512;
/** User ids come from the identity provider; buyer tokens with a longer `sub` are refused too. */
const MAX_USER_ID_LENGTH = 255;

const AdjustmentRequestSchema = z
  .object({
    direction: z.enum(LEDGER_DIRECTIONS),
    amount_cents: z.number().int().min(1).max(MAX_ADJUSTMENT_CENTS).openapi({ example: 1_000 }),
    reason: z
      .string()
      .trim()
      .min(1)
      .max(MAX_REASON_LENGTH)
      .openapi({ example: "Goodwill after a failed gate" }),
  })
  .strict()
  .openapi("WalletAdjustmentRequest");

const UserIdParam = z.object({
  user_id: z
    .string()
    .min(1)
    .max(MAX_USER_ID_LENGTH)
    .openapi({ param: { name: "user_id", in: "path" }, example: "buyer-1" }),
});

const ReconciliationRequestSchema = z
  .object({
    cursor: z
      .string()
      .max(MAX_CURSOR_LENGTH)
      .optional()
      .openapi({ description: "`next_cursor` of the previous page; omitted for the first" }),
    limit: z.number().int().min(1).max(RECONCILIATION_PAGE_SIZE).optional(),
  })
  .strict()
  .openapi("WalletReconciliationRequest");

const ReconciliationPageSchema = z
  .object({
    checked: z.number().int(),
    in_flight: z.number().int().openapi({
      description: "Wallets whose object had a change in flight: compared in D1 only this time",
    }),
    mismatches: z.array(
      z.object({
        user_id: z.string(),
        reason: z.enum(["balance_row_differs", "object_differs"]).openapi({
          description:
            "`balance_row_differs`: D1's balance row is not the signed sum of the ledger; " +
            "`object_differs`: the wallet's object, refreshed and idle, holds another balance than that sum",
        }),
        ledger_sum_cents: z.number().int(),
        balance_row_cents: z.number().int(),
        object_balance_cents: z.number().int().nullable(),
      }),
    ),
    next_cursor: z.string().nullable(),
  })
  .openapi("WalletReconciliationPage");

export const adminWalletRoutes = createRouter()
  .openapi(
    createRoute({
      method: "post",
      path: "/admin/wallets/reconciliation",
      operationId: "reconcileWallets",
      tags: ["Admin"],
      summary: "Check wallets' balances against the ledger, a page at a time",
      description:
        "Role `admin`. For each wallet (user id order: those with a balance row in D1 or a paid top-up), " +
        "compares D1's balance row with the signed sum of its D1 ledger rows, and the wallet's journal " +
        "(its object, the record) with that sum and count. A wallet whose copy may only be behind (a " +
        "posting younger than the ledger's 10 s lag bound, or events not sent yet, for up to 10 minutes) " +
        "is counted in `in_flight`. " +
        "Mismatches are reported and logged, never corrected. The same check runs daily over every " +
        "wallet (cron). A POST because it asks every wallet's object, which may open its journal.",
      security: [{ operatorToken: [] }],
      middleware: [requireOperator("admin")] as const,
      request: { body: jsonBody(ReconciliationRequestSchema) },
      responses: {
        200: json(ReconciliationPageSchema, "One page of wallets checked"),
        ...problems(...BODY_PROBLEMS, "unauthenticated", "forbidden"),
      },
    }),
    async (c) => {
      const body = c.req.valid("json");
      const after = body.cursor === undefined ? undefined : decodeWalletCursor(body.cursor);
      if (body.cursor !== undefined && after === undefined) {
        throw invalidField("cursor", "Not a cursor from a previous page");
      }
      return c.json(await reconcileWalletPage(c.env, { after, limit: body.limit }), 200);
    },
  )
  .openapi(
    createRoute({
      method: "post",
      path: "/admin/wallets/{user_id}/adjustments",
      operationId: "adjustWallet",
      tags: ["Admin"],
      summary: "Credit or debit a wallet by hand (idempotent)",
      description:
        "Role `admin`. Appends one ADJUSTMENT row in the given direction; the reason is kept in the audit " +
        "entry written in the same batch. A debit the available credit does not cover is 402 " +
        "`insufficient_funds` with `balance_cents` and `available_cents`.",
      security: [{ operatorToken: [] }],
      middleware: [requireOperator("admin")] as const,
      request: {
        params: UserIdParam,
        headers: IdempotencyKeyHeader,
        body: jsonBody(AdjustmentRequestSchema),
      },
      responses: {
        201: json(WalletTransactionSchema, "Adjusted (or replayed, with `idempotent-replayed: true`)"),
        ...problems(
          ...BODY_PROBLEMS,
          ...IDEMPOTENCY_PROBLEMS,
          "unauthenticated",
          "insufficient_funds",
          "forbidden",
          "service_unavailable",
        ),
      },
    }),
    async (c) => {
      const key = parseIdempotencyKey(c.req.header("idempotency-key"));
      const { user_id: userId } = c.req.valid("param");
      const body = c.req.valid("json");
      const operator = c.get("operator");
      const response = await runIdempotent(
        {
          db: getDb(c.env.DB),
          scope: `operator:${operator.operatorId}|wallet.adjustments`,
          key,
          request: { user_id: userId, ...body },
          now: new Date(),
        },
        async () => {
          const adjusted = await adjustWallet(c.env, operator, {
            userId,
            direction: body.direction,
            amountCents: body.amount_cents,
            reason: body.reason,
            idempotencyKey: key,
            currency: c.get("config").currency,
          });
          if (!adjusted.ok) throw adjustmentRefused(adjusted);
          return { status: 201, body: adjusted.transaction };
        },
      );
      return asRouteResponse(response);
    },
  );
