import { createRoute, z } from "@hono/zod-openapi";
import { getDb } from "../db/client";
import { decodeLedgerCursor, encodeLedgerCursor } from "../db/ledger";
import { cancelOrder, EXPIRY_SWEEP_BATCH, expireOrders, listBuyerOrders, readOwnOrder } from "../db/orders";
import { MAX_ORDER_CREDITS_CENTS } from "../domain/ledger";
import { MAX_ITEMS_PER_ORDER, MAX_QUANTITY_PER_ITEM, mergeOrderItems } from "../domain/orders";
import { ApiError } from "../errors";
import { requireBuyer } from "../http/auth";
import { asRouteResponse, createRouter } from "../http/context";
import { parseIdempotencyKey, runIdempotentInBatch } from "../http/idempotency";
import { orderRefused } from "../http/order-refusals";
import { invalidField } from "../http/refusals";
import {
  BODY_PROBLEMS,
  IDEMPOTENCY_PROBLEMS,
  IdempotencyKeyHeader,
  IsoTimestamp,
  json,
  jsonBody,
  problems,
} from "../http/schemas";
import { meter } from "../observability/metrics";
import { releaseOrderCredits } from "../services/order-credits";
import { reserveOrder } from "../services/reserve-order";
import { ORDER_STATUSES } from "../types/domain";

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

/** Orders per page of GET /my/orders when the caller does not say. */
export const MY_ORDERS_PAGE_DEFAULT = 20;
/** The most orders one page of GET /my/orders may hold. */
export const MY_ORDERS_PAGE_MAX = 50;
/** Longer than any cursor this API hands out; anything longer is refused before decoding. */
const MAX_ORDER_CURSOR_LENGTH = 512;
// A page's lapsed orders are settled in one expiry batch, which takes at most EXPIRY_SWEEP_BATCH orders.
if (MY_ORDERS_PAGE_MAX > EXPIRY_SWEEP_BATCH) throw new Error("MY_ORDERS_PAGE_MAX exceeds EXPIRY_SWEEP_BATCH");

const MyOrdersQuery = z.object({
  status: z
    .enum(ORDER_STATUSES)
    .optional()
    .openapi({
      param: { name: "status", in: "query" },
      description:
        "Only orders with this status, as reported: a `PENDING_PAYMENT` order whose hold has lapsed counts " +
        "as `EXPIRED`.",
    }),
  cursor: z
    .string()
    .min(1)
    .max(MAX_ORDER_CURSOR_LENGTH)
    .optional()
    .openapi({ param: { name: "cursor", in: "query" }, description: "`next_cursor` of the previous page" }),
  limit: z.coerce
    .number()
    .int()
    .min(1)
    .max(MY_ORDERS_PAGE_MAX)
    .default(MY_ORDERS_PAGE_DEFAULT)
    .openapi({
      param: { name: "limit", in: "query" },
      description: `Orders per page, 1..${MY_ORDERS_PAGE_MAX} (default ${MY_ORDERS_PAGE_DEFAULT})`,
    }),
});

const OrderPageSchema = z
  .object({
    orders: z.array(OrderSchema),
    next_cursor: z
      .string()
      .nullable()
      .openapi({ description: "Pass as `cursor` for the next page; `null` at the end" }),
  })
  .openapi("OrderPage");

export const OrderIdParam = z.object({
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
      middleware: [requireBuyer, meter("order")] as const,
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
          const merged = mergeOrderItems(body.items);
          if (!merged.ok) {
            throw invalidField(
              `items.${merged.overLimitIndex}.quantity`,
              `At most ${MAX_QUANTITY_PER_ITEM} per product`,
            );
          }
          const reserved = await reserveOrder(db, {
            userId,
            idempotencyKey: key,
            items: merged.items,
            creditsCents: body.credits_cents,
            currency: config.currency,
            holdSeconds: config.orderHoldSeconds,
            maxPendingUnits: config.maxPendingUnitsPerBuyer,
            claim,
            events: c.env.EVENTS,
            wallets: c.env.WALLETS,
            buyerEmail: c.get("buyerEmail"),
          });
          if (!reserved.ok) throw orderRefused(reserved);
          return { status: 201, body: reserved.order };
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
      const orderId = c.req.valid("param").id;
      const order = await readOwnOrder(getDb(c.env.DB), orderId, c.get("buyerId"), new Date());
      // Someone else's order answers exactly like a missing one.
      if (!order) throw new ApiError("not_found", "No such order");
      return c.json(order, 200);
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/my/orders",
      operationId: "listMyOrders",
      tags: ["Orders"],
      summary: "The caller's orders, newest first",
      description:
        "Keyset-paged by creation time; follow `next_cursor` (opaque) with the same `status`. Pages never " +
        "skip or repeat an order; orders created meanwhile appear on a new first page. Statuses follow the " +
        "same settle-on-read rule as `GET /orders/{id}`: an unpaid order whose hold has lapsed is " +
        "`EXPIRED`, and listing it records that expiry (its stock and credit hold are released), if the " +
        "every-minute sweep has not already. Only the caller's own orders are ever listed.",
      security: [{ buyerToken: [] }],
      middleware: [requireBuyer] as const,
      request: { query: MyOrdersQuery },
      responses: {
        200: json(OrderPageSchema, "One page of orders"),
        ...problems("validation_failed", "unauthenticated"),
      },
    }),
    async (c) => {
      const query = c.req.valid("query");
      const before = query.cursor === undefined ? undefined : decodeLedgerCursor(query.cursor);
      if (query.cursor !== undefined && !before) {
        throw new ApiError("validation_failed", "cursor is not one this API issued", {
          errors: [{ path: "cursor", message: "Not a cursor from a previous page" }],
        });
      }
      const db = getDb(c.env.DB);
      const now = new Date();
      const page = await listBuyerOrders(db, {
        userId: c.get("buyerId"),
        status: query.status,
        before,
        limit: query.limit,
        now,
      });
      if (page.lapsed.length > 0) {
        try {
          // The answer already reports them EXPIRED; recording it frees their stock and holds now.
          await expireOrders(db, page.lapsed, now);
        } catch (error) {
          // The sweep meets them within a minute; the listing stays right without this write.
          console.error(
            JSON.stringify({ level: "error", msg: "lapsed orders not expired", error: String(error) }),
          );
        }
      }
      return c.json(
        { orders: page.orders, next_cursor: page.next ? encodeLedgerCursor(page.next) : null },
        200,
        { "cache-control": "no-store" },
      );
    },
  )
  .openapi(
    createRoute({
      method: "post",
      path: "/orders/{id}/cancel",
      operationId: "cancelOrder",
      tags: ["Orders"],
      summary: "Let go of an unpaid order now (idempotent)",
      description:
        "Owner only. A `PENDING_PAYMENT` order is expired at once, exactly as its deadline would: status " +
        "`EXPIRED`, its reserved stock back on sale, its units off the buyer's unpaid count, its credit hold " +
        "(if any) released, all in one atomic step. Cancelling an `EXPIRED` order again answers it " +
        "unchanged (safe to retry; no Idempotency-Key needed). A `PAID` or `PAYMENT_FAILED` order is 409 " +
        "`order_not_pending` with its `order_status`. A payment that arrives after the cancel is not applied: " +
        "the webhook answers `ignored` and records the payment as needing a refund. Someone else's order " +
        "answers exactly like a missing one (404).",
      security: [{ buyerToken: [] }],
      middleware: [requireBuyer] as const,
      request: { params: OrderIdParam },
      responses: {
        200: json(OrderSchema, "The order, now `EXPIRED`"),
        ...problems("validation_failed", "unauthenticated", "not_found", "order_not_pending"),
      },
    }),
    async (c) => {
      const orderId = c.req.valid("param").id;
      const userId = c.get("buyerId");
      const outcome = await cancelOrder(getDb(c.env.DB), orderId, userId, new Date());
      if (outcome.kind === "expired") {
        // The buyer let go: their credits come back now, not at the transfer's timeout.
        await releaseOrderCredits(c.env.WALLETS, {
          id: orderId,
          userId,
          creditsAppliedCents: outcome.order.credits_applied_cents,
        });
      }
      if (outcome.kind === "not_found") throw new ApiError("not_found", "No such order");
      if (outcome.kind === "not_pending") {
        throw new ApiError(
          "order_not_pending",
          `The order is ${outcome.order.status}: there is no reservation to let go`,
          // Not `status`: that member of a problem is its HTTP status.
          { order_id: outcome.order.order_id, order_status: outcome.order.status },
        );
      }
      return c.json(outcome.order, 200);
    },
  );
