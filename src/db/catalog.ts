import { asc, eq, inArray, sql } from "drizzle-orm";
import { ApiError } from "../errors";
import { newId } from "../ids";
import type { AdminProduct, Product, ProductFunction } from "../types/domain";
import { type Db, isConstraintError } from "./client";
import { products } from "./schema";

type ProductRow = typeof products.$inferSelect;

/** Catalog pages are small; the cap keeps a misconfigured catalog from becoming an unbounded read. */
export const MAX_CATALOG_PRODUCTS = 500;

export function availableUnits(row: Pick<ProductRow, "sellable" | "reserved" | "sold">): number {
  return row.sellable - row.reserved - row.sold;
}

export function toProduct(row: ProductRow): Product {
  return {
    id: row.id,
    name: row.name,
    description: row.description,
    price_cents: row.priceCents,
    currency: row.currency,
    functions: row.functions,
    available: availableUnits(row),
  };
}

export function toAdminProduct(row: ProductRow): AdminProduct {
  return {
    ...toProduct(row),
    sellable: row.sellable,
    reserved: row.reserved,
    sold: row.sold,
    active: row.active,
    created_at: row.createdAt,
    updated_at: row.updatedAt,
  };
}

export async function listActiveProducts(db: Db): Promise<Product[]> {
  const rows = await db
    .select()
    .from(products)
    .where(eq(products.active, true))
    .orderBy(asc(products.createdAt), asc(products.id))
    .limit(MAX_CATALOG_PRODUCTS);
  return rows.map(toProduct);
}

export async function findProductsByIds(db: Db, ids: string[]): Promise<ProductRow[]> {
  if (ids.length === 0) return [];
  return db.select().from(products).where(inArray(products.id, ids));
}

export interface NewProduct {
  name: string;
  description: string;
  price_cents: number;
  sellable: number;
  functions: ProductFunction[];
}

export async function createProduct(
  db: Db,
  input: NewProduct,
  currency: string,
  now: Date,
): Promise<AdminProduct> {
  const timestamp = now.toISOString();
  const [row] = await db
    .insert(products)
    .values({
      id: newId("prd"),
      name: input.name,
      description: input.description,
      priceCents: input.price_cents,
      currency,
      functions: input.functions,
      sellable: input.sellable,
      createdAt: timestamp,
      updatedAt: timestamp,
    })
    .returning();
  if (!row) throw new Error("insert returned no row");
  return toAdminProduct(row);
}

export interface ProductChanges {
  name?: string;
  description?: string;
  price_cents?: number;
  sellable?: number;
  active?: boolean;
}

/**
 * `sellable` below `reserved + sold` is refused by the table's CHECK, atomically with concurrent
 * reservations: there is no window in which a read says "fine" and a reservation slips in.
 */
export async function updateProduct(
  db: Db,
  id: string,
  changes: ProductChanges,
  now: Date,
): Promise<AdminProduct> {
  try {
    const [row] = await db
      .update(products)
      .set({
        name: changes.name,
        description: changes.description,
        priceCents: changes.price_cents,
        sellable: changes.sellable,
        active: changes.active,
        updatedAt: now.toISOString(),
      })
      .where(eq(products.id, id))
      .returning();
    if (!row) throw new ApiError("not_found", "No such product");
    return toAdminProduct(row);
  } catch (error) {
    if (isConstraintError(error, /inventory_within_sellable|CHECK/i)) {
      const current = await db.query.products.findFirst({ where: eq(products.id, id) });
      throw new ApiError("sellable_below_committed", "sellable cannot be set below reserved + sold", {
        committed: current ? current.reserved + current.sold : undefined,
      });
    }
    throw error;
  }
}

/** Statement pieces for moving inventory; each is guarded only by the table's CHECK constraints. */
export const inventory = {
  reserve: (db: Db, productId: string, quantity: number, now: Date) =>
    db
      .update(products)
      .set({ reserved: sql`${products.reserved} + ${quantity}`, updatedAt: now.toISOString() })
      .where(eq(products.id, productId)),
  release: (db: Db, productId: string, quantity: number, now: Date) =>
    db
      .update(products)
      .set({ reserved: sql`${products.reserved} - ${quantity}`, updatedAt: now.toISOString() })
      .where(eq(products.id, productId)),
  commit: (db: Db, productId: string, quantity: number, now: Date) =>
    db
      .update(products)
      .set({
        reserved: sql`${products.reserved} - ${quantity}`,
        sold: sql`${products.sold} + ${quantity}`,
        updatedAt: now.toISOString(),
      })
      .where(eq(products.id, productId)),
};
