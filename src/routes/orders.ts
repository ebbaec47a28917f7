import { createRoute, z } from "@hono/zod-openapi";
import { getDb } from "../db/client";
import { expireOrder, findOrderWithItems, toOrder } from "../db/orders";
import { MAX_ORDER_CREDITS_CENTS } from "../domain/ledger";
import { isHoldExpired, MAX_ITEMS_PER_ORDER, MAX_QUANTITY_PER_ITEM, mergeOrderItems } from "../domain/orders";
import { ApiError } from "../errors";
import { requireBuyer } from "../http/auth";
import { asRouteResponse, createRouter } from "../http/context";
import { parseIdempotencyKey, runIdempotentInBatch } from "../http/idempotency";
import {
  BODY_PROBLEMS,
  IDEMPOTENCY_PROBLEMS,
  IdempotencyKeyHeader,
  IsoTimestamp,
  json,
  jsonBody,
  problems,
} from "../http/schemas";
import { reserveOrder } from "../services/reserve-order";
import { ORDER_EXPIRY_EXTENSIONS } from "../services/wallet-holds";
import { ORDER_STATUSES, type Order } from "../types/domain";

const OrderItemSchema = z.object({
  product_id: z.string(),
  quantity: z.number().int(),
  unit_price_cents: z.number().int(),
});

const OrderSchema = z
  .object({
    order_id: z.string().openapi({ example: "ord_3n5p7r9t1v3x5z7b9d1f" }),
    status: z.enum(ORDER_STATUSES),
    items: z.array(OrderItemSchema),
    total_cents: z.number().int(),
    credits_applied_cents: z.number().int(),
    amount_due_cents: z.number().int(),
    currency: z.string(),
    created_at: IsoTimestamp,
    expires_at: IsoTimestamp.openapi({
      description: "When an unpaid order expires and releases its reservation",
    }),
  })
  .openapi("Order");

const NewOrderSchema = z
  .object({
    items: z
      .array(
        z
          .object({
            product_id: z.string().min(1).max(64),
            quantity: z.number().int().min(1).max(MAX_QUANTITY_PER_ITEM),
          })
          .strict(),
      )
      .min(1)
      .max(MAX_ITEMS_PER_ORDER),
    credits_cents: z
      .number()
      .int()
      .min(1)
      .max(MAX_ORDER_CREDITS_CENTS)
      .optional()
      .openapi({
        description:
          "Wallet credit to pay with, at most the order total. Part of the total: held now (the order's " +
          "`amount_due_cents` is the rest, paid by card) and posted when the card payment succeeds, released " +
          "if it fails or the order expires. The whole total: the order is PAID at once, tickets issued.",
      }),
  })
  .strict()
  .openapi("NewOrder", { description: "Duplicate lines of one product are merged." });

const OrderIdParam = z.object({
  id: z
    .string()
    .min(1)
    .max(64)
    .openapi({ param: { name: "id", in: "path" }, example: "ord_3n5p7r9t1v3x5z7b9d1f" }),
});

export const orderRoutes = createRouter()
  .openapi(
    createRoute({
      method: "post",
      path: "/orders",
      operationId: "createOrder",
      tags: ["Orders"],
      summary: "Create an order and reserve its inventory (idempotent)",
      description:
        "Reserves inventory atomically (`reserved + sold ≤ sellable` holds under any concurrency) for " +
        "`ORDER_HOLD_SECONDS`; an unpaid order then becomes `EXPIRED` and releases its reservation. " +
        "Lapsed orders release their stock within a minute of their deadline, and at once when a new " +
        "order needs that stock. " +
        "A buyer's units in unpaid (`PENDING_PAYMENT`, not lapsed) orders are capped at " +
        "`MAX_PENDING_UNITS_PER_BUYER` (default 40), under any concurrency: an order that would take them " +
        "above it is 409 `too_many_pending` with `pending_units`, `requested_units` and `max_pending_units`; " +
        "paying an order, a failed payment or expiry frees its units. An order paid in full with credits " +
        "is never pending and does not count. " +
        "`credits_cents` pays part or all of it from the caller's wallet: more than the available credit " +
        "(balance minus what pending orders hold) is 402 `insufficient_funds` with `balance_cents` and " +
        "`available_cents`. Both are stored as the key's outcome like any other business failure.",
      security: [{ buyerToken: [] }],
      middleware: [requireBuyer] as const,
      request: { headers: IdempotencyKeyHeader, body: jsonBody(NewOrderSchema) },
      responses: {
        201: json(OrderSchema, "Order created (or replayed, with `idempotent-replayed: true`)"),
        ...problems(
          ...BODY_PROBLEMS,
          ...IDEMPOTENCY_PROBLEMS,
          "unauthenticated",
          "sold_out",
          "too_many_pending",
          "product_inactive",
          "insufficient_funds",
          "unknown_product",
        ),
      },
    }),
    async (c) => {
      const key = parseIdempotencyKey(c.req.header("idempotency-key"));
      const userId = c.get("buyerId");
      const body = c.req.valid("json");
      const db = getDb(c.env.DB);
      const config = c.get("config");
      const response = await runIdempotentInBatch(
        { db, scope: `buyer:${userId}|orders.create`, key, request: body, now: new Date() },
        async (claim) => {
          const order = await reserveOrder(db, {
            userId,
            idempotencyKey: key,
            items: mergeOrderItems(body.items),
            creditsCents: body.credits_cents,
            currency: config.currency,
            holdSeconds: config.orderHoldSeconds,
            maxPendingUnits: config.maxPendingUnitsPerBuyer,
            claim,
            events: c.env.EVENTS,
            wallets: c.env.WALLETS,
          });
          return { status: 201, body: order };
        },
      );
      return asRouteResponse(response);
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/orders/{id}",
      operationId: "getOrder",
      tags: ["Orders"],
      summary: "One of the caller's orders",
      description: "Owner only: someone else's order answers exactly like a missing one (404).",
      security: [{ buyerToken: [] }],
      middleware: [requireBuyer] as const,
      request: { params: OrderIdParam },
      responses: {
        200: json(OrderSchema, "The order"),
        ...problems("validation_failed", "unauthenticated", "not_found"),
      },
    }),
    async (c) => {
      const db = getDb(c.env.DB);
      const orderId = c.req.valid("param").id;
      const found = await findOrderWithItems(db, orderId);
      // Someone else's order answers exactly like a missing one.
      if (!found || found.row.userId !== c.get("buyerId")) throw new ApiError("not_found", "No such order");
      let order: Order = toOrder(found.row, found.items);
      const now = new Date();
      if (isHoldExpired(order, now)) {
        // The sweep may not have run yet: settle the expiry now so the answer is never stale.
        await expireOrder(db, orderId, found.items, now, ORDER_EXPIRY_EXTENSIONS);
        const refreshed = await findOrderWithItems(db, orderId);
        if (refreshed) order = toOrder(refreshed.row, refreshed.items);
      }
      return c.json(order, 200);
    },
  );
