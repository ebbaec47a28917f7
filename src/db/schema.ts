import { sql } from "drizzle-orm";
import { check, index, integer, primaryKey, sqliteTable, text, unique } from "drizzle-orm/sqlite-core";
import type { ProductFunction } from "../types/domain";

// Mirrors migrations/*.sql, which are the source of truth for the database (they carry the CHECKs
// and partial indexes). Keep both in step in the same commit.

export const products = sqliteTable(
  "products",
  {
    id: text("id").primaryKey(),
    name: text("name").notNull(),
    description: text("description").notNull().default(""),
    priceCents: integer("price_cents").notNull(),
    currency: text("currency").notNull(),
    functions: text("functions", { mode: "json" }).$type<ProductFunction[]>().notNull(),
    sellable: integer("sellable").notNull(),
    reserved: integer("reserved").notNull().default(0),
    sold: integer("sold").notNull().default(0),
    active: integer("active", { mode: "boolean" }).notNull().default(true),
    createdAt: text("created_at").notNull(),
    updatedAt: text("updated_at").notNull(),
  },
  (t) => [check("inventory_within_sellable", sql`${t.reserved} + ${t.sold} <= ${t.sellable}`)],
);

export const orders = sqliteTable(
  "orders",
  {
    id: text("id").primaryKey(),
    userId: text("user_id").notNull(),
    status: text("status", { enum: ["PENDING_PAYMENT", "PAID", "PAYMENT_FAILED", "EXPIRED"] }).notNull(),
    totalCents: integer("total_cents").notNull(),
    creditsAppliedCents: integer("credits_applied_cents").notNull().default(0),
    amountDueCents: integer("amount_due_cents").notNull(),
    currency: text("currency").notNull(),
    createdAt: text("created_at").notNull(),
    expiresAt: text("expires_at").notNull(),
    updatedAt: text("updated_at").notNull(),
    idempotencyKey: text("idempotency_key").notNull(),
  },
  (t) => [index("orders_by_user").on(t.userId, t.createdAt), unique().on(t.userId, t.idempotencyKey)],
);

export const orderItems = sqliteTable(
  "order_items",
  {
    orderId: text("order_id").notNull(),
    productId: text("product_id").notNull(),
    quantity: integer("quantity").notNull(),
    unitPriceCents: integer("unit_price_cents").notNull(),
  },
  (t) => [primaryKey({ columns: [t.orderId, t.productId] })],
);

export const orderSettlements = sqliteTable("order_settlements", {
  orderId: text("order_id").primaryKey(),
  outcome: text("outcome", { enum: ["PAID", "PAYMENT_FAILED", "EXPIRED"] }).notNull(),
  settledAt: text("settled_at").notNull(),
});

export const idempotencyRecords = sqliteTable(
  "idempotency_records",
  {
    scope: text("scope").notNull(),
    idempotencyKey: text("idempotency_key").notNull(),
    requestHash: text("request_hash").notNull(),
    state: text("state", { enum: ["IN_PROGRESS", "DONE"] }).notNull(),
    responseStatus: integer("response_status"),
    responseBody: text("response_body"),
    createdAt: text("created_at").notNull(),
    lockedUntil: text("locked_until").notNull(),
  },
  (t) => [primaryKey({ columns: [t.scope, t.idempotencyKey] })],
);

export const operators = sqliteTable("operators", {
  id: text("id").primaryKey(),
  username: text("username").notNull().unique(),
  passwordHash: text("password_hash").notNull(),
  roles: text("roles", { mode: "json" }).$type<string[]>().notNull(),
  eventIds: text("event_ids", { mode: "json" }).$type<string[]>().notNull(),
  active: integer("active", { mode: "boolean" }).notNull().default(true),
  createdAt: text("created_at").notNull(),
});

export const loginThrottle = sqliteTable("login_throttle", {
  username: text("username").primaryKey(),
  failures: integer("failures").notNull(),
  windowStartedAt: text("window_started_at").notNull(),
});
