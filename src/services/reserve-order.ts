import { availableUnits, findProductsByIds } from "../db/catalog";
import type { Db } from "../db/client";
import { atomically } from "../db/client";
import {
  createOrderStatements,
  findOrderByIdempotencyKey,
  findOrderWithItems,
  isDuplicateOrderKey,
  isInventoryExceeded,
  toOrder,
} from "../db/orders";
import { orderTotalCents, type PricedLine, type RequestedItem } from "../domain/orders";
import { ApiError } from "../errors";
import type { IdempotencyClaim } from "../http/idempotency";
import { newId } from "../ids";
import type { Order } from "../types/domain";

export interface ReserveOrderInput {
  userId: string;
  idempotencyKey: string;
  items: RequestedItem[];
  currency: string;
  holdSeconds: number;
  claim: IdempotencyClaim;
}

/**
 * Prices the items at current catalog prices and creates a pending order with its inventory reserved,
 * in one batch that also stores the idempotent response. Not enough stock → `sold_out` naming the first
 * product that is short, with what is left of it.
 */
export async function reserveOrder(db: Db, input: ReserveOrderInput): Promise<Order> {
  const rows = await findProductsByIds(
    db,
    input.items.map((item) => item.product_id),
  );
  const byId = new Map(rows.map((row) => [row.id, row]));
  const lines: PricedLine[] = input.items.map((item) => {
    const product = byId.get(item.product_id);
    if (!product)
      throw new ApiError("unknown_product", `No product ${item.product_id}`, { product_id: item.product_id });
    if (!product.active) {
      throw new ApiError("product_inactive", `Product ${item.product_id} is not for sale`, {
        product_id: item.product_id,
      });
    }
    if (product.currency !== input.currency)
      throw new Error(`Product ${product.id} is priced in ${product.currency}`);
    return { product_id: item.product_id, quantity: item.quantity, unit_price_cents: product.priceCents };
  });

  // Fail fast without a write when the catalog already shows too little; the CHECK below is what
  // actually guarantees the invariant under concurrency.
  for (const line of lines) {
    const product = byId.get(line.product_id);
    if (product && availableUnits(product) < line.quantity)
      throw soldOut(line.product_id, availableUnits(product));
  }

  const now = new Date();
  const totalCents = orderTotalCents(lines);
  const { row, statements } = createOrderStatements(db, {
    id: newId("ord"),
    userId: input.userId,
    idempotencyKey: input.idempotencyKey,
    lines,
    totalCents,
    creditsAppliedCents: 0,
    currency: input.currency,
    now,
    holdSeconds: input.holdSeconds,
  });
  const order = toOrder(
    row,
    lines.map((line) => ({
      orderId: row.id,
      productId: line.product_id,
      quantity: line.quantity,
      unitPriceCents: line.unit_price_cents,
    })),
  );

  try {
    await atomically(db, [...statements, input.claim.complete({ status: 201, body: order })]);
    return order;
  } catch (error) {
    if (isInventoryExceeded(error)) throw await soldOutAfterRace(db, lines);
    if (isDuplicateOrderKey(error)) {
      // The key already made an order (its stored response may have been purged): answer with that order.
      const existing = await findOrderByIdempotencyKey(db, input.userId, input.idempotencyKey);
      const found = existing && (await findOrderWithItems(db, existing.id));
      if (found) return toOrder(found.row, found.items);
      throw new ApiError("idempotency_in_progress");
    }
    throw error;
  }
}

function soldOut(productId: string, available: number): ApiError {
  return new ApiError("sold_out", `Not enough of ${productId} left`, {
    product_id: productId,
    available: Math.max(0, available),
  });
}

/** Re-reads availability to name the product that ran short while the batch was in flight. */
async function soldOutAfterRace(db: Db, lines: PricedLine[]): Promise<ApiError> {
  const rows = await findProductsByIds(
    db,
    lines.map((line) => line.product_id),
  );
  const byId = new Map(rows.map((row) => [row.id, row]));
  for (const line of lines) {
    const product = byId.get(line.product_id);
    if (product && availableUnits(product) < line.quantity)
      return soldOut(line.product_id, availableUnits(product));
  }
  const first = lines[0];
  const product = first && byId.get(first.product_id);
  return soldOut(first?.product_id ?? "", product ? availableUnits(product) : 0);
}
