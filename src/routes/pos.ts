import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { MAX_QR_TOKEN_LENGTH } from "../auth/ticket-qr-claims";
import { getDb } from "../db/client";
import { decodeLedgerCursor, encodeLedgerCursor } from "../db/ledger";
import { MAX_POS_DEDUCTION_CENTS, MAX_POS_REFERENCE_LENGTH, MAX_REASON_LENGTH } from "../domain/ledger";
import { canApproveRefunds, decideRefundPolicy } from "../domain/refund-policy";
import { publicBaseUrl } from "../env";
import { ApiError } from "../errors";
import { requireOperator } from "../http/auth";
import { type AppEnv, asRouteResponse, createRouter } from "../http/context";
import { hashRequest, parseIdempotencyKey, REPLAYED_HEADER, runIdempotent } from "../http/idempotency";
import { qrTokenRefused, requireOpenSession } from "../http/refusals";
import {
  BODY_PROBLEMS,
  IDEMPOTENCY_PROBLEMS,
  IdempotencyKeyHeader,
  IsoTimestamp,
  json,
  jsonBody,
  OpaqueCursor,
  PageLimit,
  problems,
} from "../http/schemas";
import { deductionRefused, refundRefused } from "../http/wallet-refusals";
import { meter } from "../observability/metrics";
import { type PosContext, type PosSession, posSessionOf } from "../services/pos-session";
import { listSessionSales } from "../services/till-sales";
import {
  deductAtPos,
  findRefundableDeduction,
  lookupWallet,
  refundDeduction,
  TOPUP_PATH,
} from "../services/wallet-pos";
import { TransactionWithoutUser } from "./wallet";

/** Ids this API hands out are well inside this (a wallet transaction's names its wallet: 89 characters). */
const MAX_ID_LENGTH = 128;

const refundPolicyDetail = {
  refund_window_closed:
    "The deduction is older than the refund window; an admin adjustment can still credit it",
  approval_required: "A refund this large needs a supervisor",
} as const;

const QrTokenField = z
  .string()
  .min(1)
  .max(MAX_QR_TOKEN_LENGTH)
  .openapi({ description: "The token from the buyer's `POST /wallet/qr-token`" });
const SessionIdField = z.string().min(1).max(MAX_ID_LENGTH).openapi({ example: "ses_4m6p8r0t2v4x6z8b0d2f" });
const WalletRefField = z.string().openapi({
  example: "wal_3f7k9m1p5r7t9v1x3z5b7d9g",
  description: "Opaque and stable per wallet and event; never the user id",
});

const WalletLookupSchema = z
  .object({ qr_token: QrTokenField, session_id: SessionIdField })
  .strict()
  .openapi("PosWalletLookupRequest");

const PosWalletSchema = z
  .object({
    wallet_ref: WalletRefField,
    balance_cents: z.number().int(),
    available_cents: z.number().int().openapi({ description: "What a deduction may take now" }),
    currency: z.string().openapi({ example: "EUR" }),
    last_receipt: z
      .object({
        id: z.string().openapi({ example: "rct_5k7m9p1r3t5v7x9z1b3d" }),
        transaction_id: z.string(),
        amount_cents: z.number().int(),
        event_id: z.string(),
        device_id: z.string().nullable(),
        created_at: IsoTimestamp,
      })
      .optional()
      .openapi({ description: "The wallet's latest POS receipt at this till's event, when there is one" }),
  })
  .openapi("PosWallet");

const DeductionRequestSchema = z
  .object({
    qr_token: QrTokenField,
    amount_cents: z.number().int().min(1).max(MAX_POS_DEDUCTION_CENTS).openapi({ example: 450 }),
    reference: z
      .string()
      .min(1)
      .max(MAX_POS_REFERENCE_LENGTH)
      .optional()
      .openapi({ description: "The till's own sale reference", example: "till-7/sale-1042" }),
    session_id: SessionIdField,
  })
  .strict()
  .openapi("PosDeductionRequest");

const ReceiptSchema = z
  .object({
    id: z.string().openapi({ example: "rct_5k7m9p1r3t5v7x9z1b3d" }),
    event_id: z.string(),
    device_id: z.string(),
    created_at: IsoTimestamp,
  })
  .openapi("PosReceipt");

const DeductionSchema = z
  .object({
    transaction_id: z.string().openapi({ example: "txn_5k7m9p1r3t5v7x9z1b3d" }),
    amount_cents: z.number().int(),
    balance_cents: z
      .number()
      .int()
      .openapi({ description: "The wallet's balance right after this deduction" }),
    available_cents: z.number().int(),
    currency: z.string(),
    receipt: ReceiptSchema,
  })
  .openapi("PosDeduction");

const RefundRequestSchema = z
  .object({
    amount_cents: z.number().int().min(1).max(MAX_POS_DEDUCTION_CENTS).optional().openapi({
      description: "Defaults to whatever of the deduction is not refunded yet",
    }),
    reason: z.string().trim().min(1).max(MAX_REASON_LENGTH).openapi({ example: "Drink spilled" }),
    session_id: SessionIdField.optional().openapi({
      description:
        "Required (missing → 403 `session_invalid`): the caller's open POS session, at the deduction's event " +
        "(`admin` and `supervisor`: any POS session)",
    }),
  })
  .strict()
  .openapi("PosRefundRequest");

const RefundSchema = z
  .object({
    ...TransactionWithoutUser,
    wallet_ref: WalletRefField.nullable(),
    balance_cents: z.number().int().openapi({
      description: "The wallet's balance right after this refund (as a deduction's answer has it)",
    }),
    available_cents: z.number().int(),
  })
  .openapi("PosRefund", { description: "The REFUND ledger row, with `reversal_of` naming the deduction" });

const TransactionIdParam = z.object({
  transaction_id: z
    .string()
    .min(1)
    .max(MAX_ID_LENGTH)
    .openapi({ param: { name: "transaction_id", in: "path" }, example: "txn_5k7m9p1r3t5v7x9z1b3d" }),
});

/** Sales per page of a till's listing: a shift's worth fits in a few pages, each one small response. */
export const POS_SALES_DEFAULT_PAGE_SIZE = 50;
export const POS_SALES_MAX_PAGE_SIZE = 200;
/** Longer than any cursor this API hands out. */
const MAX_CURSOR_LENGTH = 512;

const SessionIdParam = z.object({
  session_id: SessionIdField.openapi({ param: { name: "session_id", in: "path" } }),
});

const SalesQuerySchema = z.object({
  cursor: OpaqueCursor((value) => decodeLedgerCursor(value) !== undefined, MAX_CURSOR_LENGTH),
  limit: PageLimit(POS_SALES_MAX_PAGE_SIZE, POS_SALES_DEFAULT_PAGE_SIZE),
});

const TillSaleSchema = z
  .object({
    type: z.enum(["DEDUCT", "REFUND"]),
    transaction_id: z.string().openapi({ example: "txn_5k7m9p1r3t5v7x9z1b3d" }),
    receipt_id: z.string().openapi({
      example: "rct_5k7m9p1r3t5v7x9z1b3d",
      description: "The sale's receipt; for a refund, the receipt of the sale it reverses",
    }),
    reversal_of: z.string().nullable().openapi({ description: "For a refund: the deduction it reverses" }),
    amount_cents: z.number().int().openapi({ description: "Always positive; `type` says which way" }),
    reference: z
      .string()
      .nullable()
      .openapi({ description: "The till's own sale reference, if it gave one" }),
    created_at: IsoTimestamp,
  })
  .openapi("PosTillSale");

const TillSalesSchema = z
  .object({
    session_id: z.string(),
    device_id: z.string(),
    event_id: z.string(),
    from: IsoTimestamp.openapi({ description: "The session's `opened_at`: the shift's start" }),
    as_of: IsoTimestamp,
    currency: z.string().openapi({ example: "EUR" }),
    totals: z
      .object({
        sales: z.number().int().openapi({ description: "Deductions since `from`" }),
        sales_cents: z.number().int(),
        refunds: z.number().int().openapi({ description: "Refunds since `from` of this till's deductions" }),
        refunds_cents: z.number().int(),
        net_cents: z
          .number()
          .int()
          .openapi({ description: "`sales_cents - refunds_cents`: the shift total" }),
      })
      .openapi({ description: "Over the whole shift, whichever page this is" }),
    entries: z.array(TillSaleSchema).openapi({ description: "Newest first" }),
    next_cursor: z.string().nullable().openapi({ description: "`null` on the last page" }),
  })
  .openapi("PosTillSales");

function posContext(c: Context<AppEnv>): PosContext {
  return {
    env: c.env,
    db: getDb(c.env.DB),
    config: c.get("config"),
    operator: c.get("operator"),
    now: new Date(),
    origin: new URL(c.req.url).origin,
  };
}

/** 403 `session_invalid` unless `sessionId` is the caller's open POS session, at one of their events. */
async function requirePosSession(context: PosContext, sessionId: string): Promise<PosSession> {
  const { session } = await requireOpenSession(context.db, {
    sessionId,
    operatorId: context.operator.operatorId,
    kind: "pos",
    now: context.now,
  });
  const pos = posSessionOf(session, context.operator);
  if (!pos.ok) throw new ApiError("session_invalid", pos.detail);
  return pos.session;
}

export const posRoutes = createRouter()
  .openapi(
    createRoute({
      method: "get",
      path: "/pos/sessions/{session_id}/sales",
      operationId: "listPosSessionSales",
      tags: ["POS"],
      summary: "This till's sales in the current shift, with the shift total",
      description:
        "Role `pos`, and `session_id` must be the caller's own open POS session (someone else's, a closed or " +
        "expired one, or a gate session → 403 `session_invalid`). Lists, newest first, the deductions made " +
        "on the session's device since the session opened (the shift: a session lasts at most 12 h), and " +
        "the refunds made since then of this device's deductions, wherever the refund was made. Another " +
        "till's sales never appear, and nothing identifies a customer: no user id, no wallet reference, " +
        "no wallet's history. `totals` cover the whole shift on every page; `net_cents` is the shift " +
        `total. At most \`limit\` (default ${POS_SALES_DEFAULT_PAGE_SIZE}, max ${POS_SALES_MAX_PAGE_SIZE}) ` +
        "entries per page; pass `next_cursor` back as `cursor`. Read from D1: a deduction appears once its " +
        "wallet's object has flushed it and its receipt is written (the flush window, 2 s, plus the " +
        "queue's batch, about 1 s: a few seconds after the till's 201); a refund appears at once.",
      security: [{ operatorToken: [] }],
      middleware: [requireOperator("pos")] as const,
      request: { params: SessionIdParam, query: SalesQuerySchema },
      responses: {
        200: json(TillSalesSchema, "One page of the shift's sales, with the shift's totals"),
        ...problems("validation_failed", "unauthenticated", "forbidden", "session_invalid"),
      },
    }),
    async (c) => {
      const { session_id: sessionId } = c.req.valid("param");
      const query = c.req.valid("query");
      const context = posContext(c);
      const session = await requirePosSession(context, sessionId);
      const { next, ...sales } = await listSessionSales(context, session, {
        before: query.cursor === undefined ? undefined : decodeLedgerCursor(query.cursor),
        limit: query.limit,
      });
      return c.json({ ...sales, next_cursor: next && encodeLedgerCursor(next) }, 200, {
        "cache-control": "no-store",
      });
    },
  )
  .openapi(
    createRoute({
      method: "post",
      path: "/pos/wallet-lookup",
      operationId: "lookupPosWallet",
      tags: ["POS"],
      summary: "What a till may see of the wallet behind a wallet QR token",
      description:
        "Operator with role `pos` and an open POS session. Answers an opaque `wallet_ref`, the balance and " +
        "the last receipt at the session's event: never the history or the user id. Does not spend the " +
        "token's jti, but refuses one a deduction already spent (409 `token_replayed`), so the till asks " +
        "for a fresh code at the scan rather than at the charge. Audited.",
      security: [{ operatorToken: [] }],
      middleware: [requireOperator("pos")] as const,
      request: { body: jsonBody(WalletLookupSchema) },
      responses: {
        200: json(PosWalletSchema, "The wallet, as a till sees it"),
        ...problems(
          ...BODY_PROBLEMS,
          "unauthenticated",
          "forbidden",
          "session_invalid",
          "token_replayed",
          "token_invalid",
          "token_expired",
          "service_unavailable",
        ),
      },
    }),
    async (c) => {
      const body = c.req.valid("json");
      const context = posContext(c);
      const session = await requirePosSession(context, body.session_id);
      const found = await lookupWallet(context, session, body.qr_token);
      if (!found.ok && found.code === "token_replayed") {
        throw new ApiError("token_replayed", "This wallet code already paid; ask for a fresh one");
      }
      if (!found.ok) throw qrTokenRefused(found);
      return c.json(found.wallet, 200, { "cache-control": "no-store" });
    },
  )
  .openapi(
    createRoute({
      method: "post",
      path: "/pos/deductions",
      operationId: "createPosDeduction",
      tags: ["POS"],
      summary: "Deduct credit from a wallet at a till (idempotent)",
      description:
        "Operator with role `pos` and an open POS session, whose event becomes the deduction's `event_id`. " +
        "Deductions of one wallet run one at a time, in arrival order, and never overdraw it. The first " +
        "success spends the token's jti: the same token under another Idempotency-Key is 409 " +
        "`token_replayed`. Too little credit is 402 `insufficient_funds` with `balance_cents`, " +
        `\`available_cents\` and \`topup_url\` (\`PUBLIC_BASE_URL\`, or this request's own origin when unset, ` +
        `+ \`${TOPUP_PATH}\`). A refusal is stored ` +
        "as the key's outcome: a retry with the same key is refused the same way, even after a top-up. The key " +
        "is held by the wallet with the deduction, so it is scoped per (operator, wallet): the same key with " +
        "another customer's token is that customer's deduction. A retry after the token expired still gets " +
        "its stored answer. 503 `service_unavailable` (nothing stored, retry with the same key) when the " +
        "wallet needed a look at the ledger and could not get one. Audited.",
      security: [{ operatorToken: [] }],
      middleware: [requireOperator("pos"), meter("pos.deduction")] as const,
      request: { headers: IdempotencyKeyHeader, body: jsonBody(DeductionRequestSchema) },
      responses: {
        201: json(DeductionSchema, "Deducted (or replayed, with `idempotent-replayed: true`)"),
        ...problems(
          ...BODY_PROBLEMS,
          ...IDEMPOTENCY_PROBLEMS,
          "unauthenticated",
          "insufficient_funds",
          "forbidden",
          "session_invalid",
          "token_replayed",
          "token_invalid",
          "token_expired",
          "service_unavailable",
        ),
      },
    }),
    async (c) => {
      const key = parseIdempotencyKey(c.req.header("idempotency-key"));
      const body = c.req.valid("json");
      const context = posContext(c);
      const session = await requirePosSession(context, body.session_id);
      // The key is held by the wallet's object with the deduction itself (see deductAtPos): no D1 round
      // trip on the till's path.
      const deducted = await deductAtPos(context, session, {
        qrToken: body.qr_token,
        amountCents: body.amount_cents,
        reference: body.reference ?? null,
        idempotencyKey: key,
        requestHash: await hashRequest(body),
      });
      if (!deducted.ok) {
        const topupUrl = new URL(TOPUP_PATH, publicBaseUrl(context.config, context.origin)).toString();
        throw deductionRefused(deducted.refusal, { replayed: deducted.replayed, topupUrl });
      }
      return c.json(deducted.deduction, 201, deducted.replayed ? { [REPLAYED_HEADER]: "true" } : {});
    },
  )
  .openapi(
    createRoute({
      method: "post",
      path: "/pos/deductions/{transaction_id}/refund",
      operationId: "refundPosDeduction",
      tags: ["POS"],
      summary: "Refund (part of) a POS deduction (idempotent)",
      description:
        "Role `pos` with the deduction's event among the operator's `event_ids`, or `supervisor`/`admin`; a " +
        "deduction at another event answers 404 like a missing one, and so does an order's credits (a DEDUCT " +
        "with no event: it is refunded with its order, or by an admin's adjustment). Needs the caller's open POS session " +
        "(`session_id`) at the deduction's event (`supervisor` and `admin`: any POS session), else 403 " +
        "`session_invalid`. The policy: a deduction older than `REFUND_WINDOW_SECONDS` (default 86400) → 409 " +
        "`refund_window_closed`; a refund that takes the deduction's refunds together above " +
        "`REFUND_APPROVAL_CENTS` (default 5000: earlier refunds of it count, so a split refund needs approval " +
        "like a whole one; without `amount_cents`, the deduction's whole amount counts) needs role " +
        "`supervisor` or `admin`, else 403 `approval_required`. Without `amount_cents`, refunds what is left of the deduction. Refunds of one " +
        "deduction never add up to more than it: 409 `refund_exceeds_original`, with `refundable_cents`. " +
        "Audited with the refund.",
      security: [{ operatorToken: [] }],
      middleware: [requireOperator("pos")] as const,
      request: {
        params: TransactionIdParam,
        headers: IdempotencyKeyHeader,
        body: jsonBody(RefundRequestSchema),
      },
      responses: {
        201: json(RefundSchema, "Refunded (or replayed, with `idempotent-replayed: true`)"),
        ...problems(
          ...BODY_PROBLEMS,
          ...IDEMPOTENCY_PROBLEMS,
          "unauthenticated",
          "forbidden",
          "session_invalid",
          "approval_required",
          "not_found",
          "refund_exceeds_original",
          "refund_window_closed",
          "service_unavailable",
        ),
      },
    }),
    async (c) => {
      const key = parseIdempotencyKey(c.req.header("idempotency-key"));
      const { transaction_id: transactionId } = c.req.valid("param");
      const body = c.req.valid("json");
      const context = posContext(c);
      const refundable = await findRefundableDeduction(context, context.operator, transactionId);
      if (!refundable) throw new ApiError("not_found", "No such deduction");
      const { deduction } = refundable;
      if (body.session_id === undefined)
        throw new ApiError("session_invalid", "A refund needs an open POS session");
      const session = await requirePosSession(context, body.session_id);
      if (session.eventId !== deduction.event_id && !canApproveRefunds(context.operator.roles)) {
        throw new ApiError("session_invalid", "The session is at another event than the deduction");
      }
      const response = await runIdempotent(
        {
          db: context.db,
          scope: `operator:${context.operator.operatorId}|pos.refunds`,
          key,
          request: { transaction_id: transactionId, ...body },
          now: context.now,
        },
        async () => {
          // Inside the key's scope: a retry of a refund that went through replays it even once the window
          // has closed, and a refusal is stored like any other business answer.
          const policy = decideRefundPolicy(
            {
              windowSeconds: context.config.refundWindowSeconds,
              approvalCents: context.config.refundApprovalCents,
            },
            {
              deductionCreatedAt: deduction.created_at,
              amountCents: body.amount_cents ?? deduction.amount_cents,
              roles: context.operator.roles,
              now: context.now,
            },
          );
          if (!policy.ok) throw new ApiError(policy.code, refundPolicyDetail[policy.code]);
          const refunded = await refundDeduction(context, refundable, session, {
            amountCents: body.amount_cents,
            reason: body.reason,
            idempotencyKey: key,
          });
          if (!refunded.ok) throw refundRefused(refunded);
          return { status: 201, body: refunded.refund };
        },
      );
      return asRouteResponse(response);
    },
  );
