import { LRUCache } from "lru-cache";
import { findProductsByIds } from "../db/catalog";
import type { Db } from "../db/client";
import type { products } from "../db/schema";

type ProductRow = typeof products.$inferSelect;

/**
 * How long an isolate prices orders from products it has read. A checkout then needs no catalog read
 * before its batch, which is the one D1 round trip it has left. What the cache holds is only what
 * pricing needs (price, currency, active, functions); stock is never judged from it: the batch's CHECK
 * decides that, so a stale entry can never cause a false `sold_out`. A price or activation change made
 * in this isolate is seen at once (see forgetProduct); one made elsewhere within this many ms.
 */
export const CATALOG_CACHE_MS = 5_000;
const CATALOG_CACHE_MAX_ENTRIES = 1_000;

// Freshness is judged against the caller's clock; the LRU bounds memory.
const entries = new LRUCache<string, { row: ProductRow; cachedAtMs: number }>({
  max: CATALOG_CACHE_MAX_ENTRIES,
});

/** The products with these ids, from the cache where fresh and from D1 for the rest (in one query). */
export async function productsForPricing(db: Db, ids: string[], nowMs: number): Promise<ProductRow[]> {
  const fresh: ProductRow[] = [];
  const missing: string[] = [];
  for (const id of ids) {
    const entry = entries.get(id);
    if (entry && nowMs - entry.cachedAtMs < CATALOG_CACHE_MS && nowMs >= entry.cachedAtMs)
      fresh.push(entry.row);
    else missing.push(id);
  }
  if (missing.length === 0) return fresh;
  const loaded = await findProductsByIds(db, missing);
  for (const row of loaded) entries.set(row.id, { row, cachedAtMs: nowMs });
  return [...fresh, ...loaded];
}

export function forgetProduct(id: string): void {
  entries.delete(id);
}
