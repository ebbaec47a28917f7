import { asc, eq, gt, inArray, sql } from "drizzle-orm";
import type { DoLocationHint } from "../domain/placement";
import { newId } from "../ids";
import type { EventMessage } from "../queues/messages";
import type { AdminProduct, Product, ProductFunction } from "../types/domain";
import { commitAudited } from "./audit";
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
    venue_region: row.venueRegion,
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

/** The most products one page of the admin listing returns. */
export const PRODUCT_PAGE_MAX = 200;

/** One page of every product, active or not, in id order; `after` is the last id of the previous page. */
export async function listProducts(
  db: Db,
  page: { after?: string; limit: number },
): Promise<{ products: AdminProduct[]; next: string | null }> {
  const rows = await db
    .select()
    .from(products)
    .where(page.after === undefined ? undefined : gt(products.id, page.after))
    .orderBy(asc(products.id))
    .limit(page.limit + 1);
  const shown = rows.slice(0, page.limit);
  return {
    products: shown.map(toAdminProduct),
    next: rows.length > page.limit ? (shown.at(-1)?.id ?? null) : null,
  };
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
  venue_region?: DoLocationHint | null;
}

/** The actor recorded for products created outside a request (test and demo seeds). */
export const SEED_ACTOR = "system:seed";

/** Creates a product; the request for its `product.create` audit entry commits in the same batch. */
export async function createProduct(
  db: Db,
  events: Queue<EventMessage>,
  input: NewProduct,
  currency: string,
  now: Date,
  actor: string = SEED_ACTOR,
): Promise<AdminProduct> {
  const timestamp = now.toISOString();
  const row: ProductRow = {
    id: newId("prd"),
    name: input.name,
    description: input.description,
    priceCents: input.price_cents,
    currency,
    functions: input.functions,
    sellable: input.sellable,
    reserved: 0,
    sold: 0,
    active: true,
    createdAt: timestamp,
    updatedAt: timestamp,
    venueRegion: input.venue_region ?? null,
  };
  await commitAudited(
    db,
    events,
    { actor, action: "product.create", target: row.id, details: { ...input } },
    now,
    [db.insert(products).values(row)],
  );
  return toAdminProduct(row);
}

export interface ProductChanges {
  name?: string;
  description?: string;
  price_cents?: number;
  sellable?: number;
  active?: boolean;
  /** null takes the venue away: new objects are then created near their first caller. */
  venue_region?: DoLocationHint | null;
}

/**
 * Changes a product; the change and the request for its `product.update` audit entry commit in one
 * batch. `sellable` below `reserved + sold` is refused by the table's CHECK, atomically with concurrent
 * reservations: there is no window in which a read says "fine" and a reservation slips in, and the CHECK
 * failing rolls the audit request back with the change. A refusal says what is committed when it was refused.
 */
export async function updateProduct(
  db: Db,
  events: Queue<EventMessage>,
  id: string,
  changes: ProductChanges,
  actor: string,
  now: Date,
): Promise<
  | { ok: true; product: AdminProduct }
  | { ok: false; code: "not_found" }
  | { ok: false; code: "sellable_below_committed"; committed: number | undefined }
> {
  // Products are never deleted, so one that exists now still exists when the batch runs (an UPDATE
  // matching no row would not abort the batch, and the entry would record a change that never was).
  const current = await findProduct(db, id);
  if (!current) return { ok: false, code: "not_found" };
  const update = db
    .update(products)
    .set({
      name: changes.name,
      description: changes.description,
      priceCents: changes.price_cents,
      sellable: changes.sellable,
      active: changes.active,
      venueRegion: changes.venue_region,
      updatedAt: now.toISOString(),
    })
    .where(eq(products.id, id));
  try {
    await commitAudited(
      db,
      events,
      { actor, action: "product.update", target: id, details: { ...changes } },
      now,
      [update],
    );
  } catch (error) {
    if (isConstraintError(error, /inventory_within_sellable/i)) {
      const latest = await findProduct(db, id);
      return {
        ok: false,
        code: "sellable_below_committed",
        committed: latest ? latest.reserved + latest.sold : undefined,
      };
    }
    throw error;
  }
  // Read back rather than merge: reserved and sold may have moved since `current` was read.
  const updated = await findProduct(db, id);
  if (!updated) throw new Error("invariant: products are never deleted");
  return { ok: true, product: toAdminProduct(updated) };
}

async function findProduct(db: Db, id: string): Promise<ProductRow | undefined> {
  return db.query.products.findFirst({ where: eq(products.id, id) });
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
