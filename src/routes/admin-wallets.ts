import { createRoute, z } from "@hono/zod-openapi";
import { getDb } from "../db/client";
import { MAX_ADJUSTMENT_CENTS, MAX_REASON_LENGTH } from "../domain/ledger";
import { requireOperator } from "../http/auth";
import { asRouteResponse, createRouter } from "../http/context";
import { parseIdempotencyKey, runIdempotent } from "../http/idempotency";
import {
  BODY_PROBLEMS,
  IDEMPOTENCY_PROBLEMS,
  IdempotencyKeyHeader,
  json,
  jsonBody,
  problems,
} from "../http/schemas";
import { adjustWallet } from "../services/wallet-adjustments";
import { LEDGER_DIRECTIONS } from "../types/domain";
import { WalletTransactionSchema } from "./wallet";

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

export const adminWalletRoutes = createRouter().openapi(
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
    request: { params: UserIdParam, headers: IdempotencyKeyHeader, body: jsonBody(AdjustmentRequestSchema) },
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
        const transaction = await adjustWallet(c.env, operator, {
          userId,
          direction: body.direction,
          amountCents: body.amount_cents,
          reason: body.reason,
          idempotencyKey: key,
          currency: c.get("config").currency,
        });
        return { status: 201, body: transaction };
      },
    );
    return asRouteResponse(response);
  },
);
