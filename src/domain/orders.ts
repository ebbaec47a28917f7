import type { OrderStatus } from "../types/domain";

export const MAX_ITEMS_PER_ORDER = 10;
export const MAX_QUANTITY_PER_ITEM = 20;

export interface RequestedItem {
  product_id: string;
  quantity: number;
}

/**
 * Merges duplicate lines of one product, keeping first-seen order. The per-item limit applies to the
 * merged quantity: two lines of 15 are one line of 30, which is over the limit; the refusal names the
 * merged line's index.
 */
export function mergeOrderItems(
  items: readonly RequestedItem[],
): { ok: true; items: RequestedItem[] } | { ok: false; overLimitIndex: number } {
  const merged = new Map<string, number>();
  for (const item of items) merged.set(item.product_id, (merged.get(item.product_id) ?? 0) + item.quantity);
  const result = [...merged].map(([product_id, quantity]) => ({ product_id, quantity }));
  const overLimitIndex = result.findIndex((item) => item.quantity > MAX_QUANTITY_PER_ITEM);
  return overLimitIndex === -1 ? { ok: true, items: result } : { ok: false, overLimitIndex };
}

export interface PricedLine {
  product_id: string;
  quantity: number;
  unit_price_cents: number;
}

/**
 * The order's total. Quantities and prices are bounded where they enter (request schema, product admin),
 * so the sum is far inside a safe integer; asserted, since money must never be a rounded float.
 */
export function orderTotalCents(lines: readonly PricedLine[]): number {
  const total = lines.reduce((sum, line) => sum + line.quantity * line.unit_price_cents, 0);
  if (!Number.isSafeInteger(total)) throw new Error("invariant: an order total is a safe integer");
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
