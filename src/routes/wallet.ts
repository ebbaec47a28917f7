import { createRoute, z } from "@hono/zod-openapi";
import {
  signWalletQrToken,
  WALLET_QR_AUDIENCE,
  WALLET_QR_TTL_SECONDS,
  WALLET_QR_TYP,
} from "../auth/qr-token";
import { getDb } from "../db/client";
import { decodeLedgerCursor, encodeLedgerCursor } from "../db/ledger";
import { ApiError } from "../errors";
import { requireBuyer } from "../http/auth";
import { asRouteResponse, createRouter } from "../http/context";
import { parseIdempotencyKey, runIdempotent } from "../http/idempotency";
import { qrSigningConfig } from "../http/refusals";
import {
  BODY_PROBLEMS,
  IDEMPOTENCY_PROBLEMS,
  IdempotencyKeyHeader,
  IsoTimestamp,
  json,
  jsonBody,
  problems,
} from "../http/schemas";
import { topupCheckoutExpiry } from "../services/hosted-checkout";
import { walletObject } from "../services/wallet-object";
import { createTopup } from "../services/wallet-topups";
import { LEDGER_DIRECTIONS, LEDGER_TYPES, TOPUP_STATUSES, type Topup } from "../types/domain";
import { checkoutLinks } from "./checkout";

/** Ledger rows per page of GET /wallet/transactions. */
export const WALLET_TRANSACTIONS_PAGE_SIZE = 50;
/** Longer than any cursor this API hands out; anything longer is refused before decoding. */
const MAX_CURSOR_LENGTH = 512;

const TransactionFields = {
  id: z.string().openapi({ example: "txn_5k7m9p1r3t5v7x9z1b3d" }),
  type: z.enum(LEDGER_TYPES),
  direction: z.enum(LEDGER_DIRECTIONS).openapi({
    description:
      "`credit` adds to the balance, `debit` takes from it (PURCHASE/REFUND credit, DEDUCT debits)",
  }),
  amount_cents: z.number().int().openapi({ description: "Always positive; `direction` gives the sign" }),
  currency: z.string().openapi({ example: "EUR" }),
  reference: z
    .string()
    .nullable()
    .openapi({ description: "The top-up (PURCHASE), order or till reference (DEDUCT), or the deduction's" }),
  reversal_of: z.string().nullable().openapi({ description: "For a REFUND: the DEDUCT it reverses" }),
  event_id: z.string().nullable().openapi({ description: "The event of a POS deduction or its refund" }),
  created_at: IsoTimestamp,
  idempotency_key: z.string().openapi({
    example: "pos.deduct:opr_2b4d6f8h0k2m4p6r8t0v:till-7-sale-0042",
    description:
      "What made the row exactly once, unique per wallet: `topup:<id>`, `order:<id>`, " +
      "`pos.deduct:<operator>:<key>`, `pos.refund:<operator>:<key>` or `adjust:<operator>:<key>`, " +
      "where `<key>` is the client's Idempotency-Key",
  }),
  created_by: z.string().openapi({
    example: "device:till-7",
    description:
      "`user:<id>` (credits on an order), `device:<id>` (the till of a POS sale or refund), " +
      "`operator:<id>` (an admin's adjustment) or `system:payments` (a top-up)",
  }),
};

/** Fields shared with the POS refund answer, which leaves out the user id. */
export const TransactionWithoutUser = TransactionFields;

export const WalletTransactionSchema = z
  .object({ ...TransactionFields, user_id: z.string() })
  .openapi("WalletTransaction", { description: "One append-only row of the credits ledger" });

const WalletSchema = z
  .object({
    balance_cents: z.number().int().openapi({ description: "The signed sum of the wallet's ledger" }),
    currency: z.string().openapi({ example: "EUR" }),
    updated_at: IsoTimestamp.nullable().openapi({ description: "`null` for a wallet that never moved" }),
    held_cents: z.number().int().openapi({ description: "Set aside for orders awaiting their card payment" }),
    available_cents: z
      .number()
      .int()
      .openapi({ description: "`balance_cents − held_cents`: what can be spent" }),
  })
  .openapi("Wallet");

const TransactionPageSchema = z
  .object({
    transactions: z.array(WalletTransactionSchema),
    next_cursor: z
      .string()
      .nullable()
      .openapi({ description: "Pass as `cursor` for the next page; `null` at the end" }),
  })
  .openapi("WalletTransactionPage");

const NewTopupSchema = z
  .object({
    amount_cents: z.number().int().min(1).openapi({
      description: "Within `TOPUP_MIN_CENTS`..`TOPUP_MAX_CENTS` (defaults 500..50000)",
      example: 2_000,
    }),
  })
  .strict()
  .openapi("NewTopup");

const TopupSchema = z
  .object({
    topup_id: z.string().openapi({
      example: "top_8r0t2v4x6z8b0d2f4h6k",
      description: "Hand to the payment gateway as the payment's `reference`",
    }),
    status: z.enum(TOPUP_STATUSES),
    amount_cents: z.number().int(),
    currency: z.string(),
    created_at: IsoTimestamp,
    checkout_url: z
      .url()
      .nullable()
      .openapi({
        description:
          "Where to send the buyer to pay (with `PAYMENT_PROVIDER=stripe`, a Stripe Checkout Session with " +
          "`client_reference_id` = `topup_id`, one per top-up). `null` with the `standard` gateway, which " +
          "takes `topup_id` as the payment's `reference`.",
      }),
    checkout_expires_at: IsoTimestamp.nullable().openapi({
      description: "When the hosted page stops taking payment; `null` without one",
    }),
  })
  .openapi("Topup");

const WalletQrTokenSchema = z
  .object({
    token: z.string().openapi({
      description:
        `Compact JWS (EdDSA) with header \`typ: "${WALLET_QR_TYP}"\` and \`kid\`; claims \`iss\`, ` +
        `\`aud: "${WALLET_QR_AUDIENCE}"\`, \`sub\` (the user id), \`jti\`, \`nonce\`, \`iat\`, \`exp\`. ` +
        "Verify with the keys at `/.well-known/jwks.json`.",
    }),
    expires_in: z.number().int().openapi({ example: WALLET_QR_TTL_SECONDS }),
  })
  .openapi("WalletQrToken");

export const walletRoutes = createRouter()
  .openapi(
    createRoute({
      method: "get",
      path: "/wallet",
      operationId: "getWallet",
      tags: ["Wallet"],
      summary: "The caller's credit balance",
      description:
        "Read from the wallet's owner (its Durable Object's journal), like `GET /wallet/transactions`, so " +
        "the two agree after every response: `balance_cents` is always the signed sum of the transactions, " +
        "and `held_cents` what pending orders set aside. A new user has zeros.",
      security: [{ buyerToken: [] }],
      middleware: [requireBuyer] as const,
      responses: {
        200: json(WalletSchema, "The wallet"),
        ...problems("unauthenticated"),
      },
    }),
    async (c) => {
      const userId = c.get("buyerId");
      const { jtiSpent: _, ...wallet } = await walletObject(c.env.WALLETS, userId).view(userId);
      return c.json({ ...wallet, currency: c.get("config").currency }, 200, { "cache-control": "no-store" });
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/wallet/transactions",
      operationId: "listWalletTransactions",
      tags: ["Wallet"],
      summary: "The caller's ledger, newest first",
      description:
        `Keyset-paged, ${WALLET_TRANSACTIONS_PAGE_SIZE} rows per page; follow \`next_cursor\`. Read from the ` +
        "wallet's owner, so a deduction answered to a till is listed at once.",
      security: [{ buyerToken: [] }],
      middleware: [requireBuyer] as const,
      request: {
        query: z.object({
          cursor: z.string().min(1).max(MAX_CURSOR_LENGTH).optional().openapi({
            description: "`next_cursor` from the previous page",
          }),
        }),
      },
      responses: {
        200: json(TransactionPageSchema, "One page of transactions"),
        ...problems("validation_failed", "unauthenticated"),
      },
    }),
    async (c) => {
      const text = c.req.valid("query").cursor;
      const before = text === undefined ? undefined : decodeLedgerCursor(text);
      if (text !== undefined && !before) {
        throw new ApiError("validation_failed", "cursor is not one this API issued", {
          errors: [{ path: "cursor", message: "Not a cursor from a previous page" }],
        });
      }
      const userId = c.get("buyerId");
      const page = await walletObject(c.env.WALLETS, userId).transactions(
        userId,
        before,
        WALLET_TRANSACTIONS_PAGE_SIZE,
      );
      return c.json(
        { transactions: page.transactions, next_cursor: page.next ? encodeLedgerCursor(page.next) : null },
        200,
        { "cache-control": "no-store" },
      );
    },
  )
  .openapi(
    createRoute({
      method: "post",
      path: "/wallet/topups",
      operationId: "createTopup",
      tags: ["Wallet"],
      summary: "Start a top-up (idempotent)",
      description:
        "Creates a top-up awaiting payment. The payment webhook with `reference` = `topup_id` posts exactly " +
        "one PURCHASE to the wallet, however often it is delivered. An amount outside " +
        "`TOPUP_MIN_CENTS`..`TOPUP_MAX_CENTS` is 400 `validation_failed`.",
      security: [{ buyerToken: [] }],
      middleware: [requireBuyer] as const,
      request: { headers: IdempotencyKeyHeader, body: jsonBody(NewTopupSchema) },
      responses: {
        201: json(TopupSchema, "Top-up created (or replayed, with `idempotent-replayed: true`)"),
        ...problems(...BODY_PROBLEMS, ...IDEMPOTENCY_PROBLEMS, "unauthenticated", "payment_provider_error"),
      },
    }),
    async (c) => {
      const key = parseIdempotencyKey(c.req.header("idempotency-key"));
      const body = c.req.valid("json");
      const config = c.get("config");
      if (body.amount_cents < config.topupMinCents || body.amount_cents > config.topupMaxCents) {
        throw new ApiError("validation_failed", "amount_cents is outside the top-up limits", {
          errors: [
            {
              path: "amount_cents",
              message: `Between ${config.topupMinCents} and ${config.topupMaxCents}`,
            },
          ],
        });
      }
      const userId = c.get("buyerId");
      const db = getDb(c.env.DB);
      const now = new Date();
      const response = await runIdempotent(
        { db, scope: `buyer:${userId}|wallet.topups`, key, request: body, now },
        async (claim) => {
          const created = await createTopup(db, {
            userId,
            amountCents: body.amount_cents,
            currency: config.currency,
            idempotencyKey: key,
            claim,
            now,
            buyerEmail: c.get("buyerEmail"),
          });
          if (!created.ok) throw new ApiError(created.code);
          return { status: 201, body: created.topup };
        },
      );
      if (response.status !== 201) return asRouteResponse(response);
      // Outside the stored response, so that a replay (or a retry after the provider failed) opens the
      // same page rather than replaying a missing one: the session is kept by the top-up's id.
      const topup = (await response.json()) as Topup;
      const checkout = await checkoutLinks(
        { db, config, requestOrigin: new URL(c.req.url).origin, now },
        {
          reference: topup.topup_id,
          amountCents: topup.amount_cents,
          currency: topup.currency,
          description: "Wallet top-up",
          expiresAt: topupCheckoutExpiry(topup.created_at),
          // A top-up holds nothing: a bank debit that confirms days later just credits the wallet then.
          immediateOnly: false,
        },
      );
      return asRouteResponse(
        new Response(JSON.stringify({ ...topup, ...checkout }), { status: 201, headers: response.headers }),
      );
    },
  )
  .openapi(
    createRoute({
      method: "post",
      path: "/wallet/qr-token",
      operationId: "createWalletQrToken",
      tags: ["Wallet"],
      summary: "A short-lived QR token for paying at a POS till",
      description:
        `The token expires after ${WALLET_QR_TTL_SECONDS} s and is spent by its first successful deduction; ` +
        "a till may look the wallet up with it any number of times before that. It is refused at the gates, " +
        "as ticket tokens are refused at tills.",
      security: [{ buyerToken: [] }],
      middleware: [requireBuyer] as const,
      responses: {
        200: json(WalletQrTokenSchema, "A fresh token"),
        ...problems("unauthenticated", "service_unavailable"),
      },
    }),
    async (c) => {
      const qr = await signWalletQrToken(qrSigningConfig(c.get("config")), c.get("buyerId"), new Date());
      return c.json(qr, 200, { "cache-control": "no-store" });
    },
  );
