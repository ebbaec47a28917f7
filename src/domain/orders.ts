import { ApiError } from "../errors";
import type { OrderStatus } from "../types/domain";

export const MAX_ITEMS_PER_ORDER = 10;
export const MAX_QUANTITY_PER_ITEM = 20;

export interface RequestedItem {
  product_id: string;
  quantity: number;
}

/**
 * Merges duplicate lines of one product, keeping first-seen order. The per-item limit applies to the
 * merged quantity: two lines of 15 are one line of 30, which is over the limit.
 */
export function mergeOrderItems(items: readonly RequestedItem[]): RequestedItem[] {
  const merged = new Map<string, number>();
  for (const item of items) merged.set(item.product_id, (merged.get(item.product_id) ?? 0) + item.quantity);
  const result = [...merged].map(([product_id, quantity]) => ({ product_id, quantity }));
  result.forEach((item, index) => {
    if (item.quantity > MAX_QUANTITY_PER_ITEM) {
      throw new ApiError("validation_failed", "Merged quantity exceeds the per-item limit", {
        errors: [
          { path: `items.${index}.quantity`, message: `At most ${MAX_QUANTITY_PER_ITEM} per product` },
        ],
      });
    }
  });
  return result;
}

export interface PricedLine {
  product_id: string;
  quantity: number;
  unit_price_cents: number;
}

export function orderTotalCents(lines: readonly PricedLine[]): number {
  const total = lines.reduce((sum, line) => sum + line.quantity * line.unit_price_cents, 0);
  if (!Number.isSafeInteger(total)) throw new ApiError("validation_failed", "Order total is out of range");
  return total;
}

/** The order state machine: every transition out of PENDING_PAYMENT is terminal. */
const TRANSITIONS: Record<OrderStatus, readonly OrderStatus[]> = {
  PENDING_PAYMENT: ["PAID", "PAYMENT_FAILED", "EXPIRED"],
  PAID: [],
  PAYMENT_FAILED: [],
  EXPIRED: [],
};

export function canTransition(from: OrderStatus, to: OrderStatus): boolean {
  return TRANSITIONS[from].includes(to);
}

export function assertTransition(from: OrderStatus, to: OrderStatus): void {
  if (!canTransition(from, to)) throw new Error(`Invalid order transition ${from} → ${to}`);
}

export function holdDeadline(now: Date, holdSeconds: number): Date {
  return new Date(now.getTime() + holdSeconds * 1000);
}

/** A pending order whose hold has lapsed is expired, whether or not the sweep has recorded it yet. */
export function isHoldExpired(order: { status: OrderStatus; expires_at: string }, now: Date): boolean {
  return order.status === "PENDING_PAYMENT" && Date.parse(order.expires_at) <= now.getTime();
}
