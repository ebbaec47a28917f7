import { ApiProblem, NetworkError } from "../lib/api";
import { money } from "../lib/format";
import type { OrderLine, Product } from "./types";

// Small pieces the buyer page's features share: per-tab storage, retry rules, waiting for a simulated
// payment, and how an order is named.

/**
 * Demo sign-in and simulated payments call endpoints that exist only when the API runs with
 * ENVIRONMENT=development, which is what `npm run dev` serves on localhost; `?dev` offers them elsewhere.
 */
export const DEV_TOOLS =
  ["localhost", "127.0.0.1", "[::1]"].includes(location.hostname) ||
  new URLSearchParams(location.search).has("dev");

/** Attempts and spacing when waiting for a simulated payment to show up in an order or the balance. */
const SETTLE_POLLS = 20;
const SETTLE_POLL_MS = 500;

/** Every product the catalog has shown, so that orders can be named after what they hold. */
export const knownProducts = new Map<string, Product>();

export function readJson<T>(key: string): T | null {
  try {
    return JSON.parse(sessionStorage.getItem(key) ?? "null") as T | null;
  } catch {
    return null;
  }
}

export function writeJson(key: string, value: unknown): void {
  if (value === null) sessionStorage.removeItem(key);
  else sessionStorage.setItem(key, JSON.stringify(value));
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Retrying with the same key is safe and may succeed: no answer, a server fault, or still running. */
export function retryable(error: unknown): boolean {
  return (
    error instanceof NetworkError ||
    (error instanceof ApiProblem && (error.status >= 500 || error.code === "idempotency_in_progress"))
  );
}

/** Waits until `read` returns a value accepted by `done`, re-reading a few times. */
export async function settle<T>(read: () => Promise<T>, done: (value: T) => boolean): Promise<T> {
  let value = await read();
  for (let poll = 1; poll < SETTLE_POLLS && !done(value); poll += 1) {
    await sleep(SETTLE_POLL_MS);
    value = await read();
  }
  return value;
}

/** "2 × Harbour Pass, 1 × City Card"; a product the catalog no longer lists is named by its id. */
export function orderLabel(items: OrderLine[]): string {
  return items
    .map((item) => `${item.quantity} × ${knownProducts.get(item.product_id)?.name ?? item.product_id}`)
    .join(", ");
}

/** "12:05 left" until `iso`, or "expired". */
export function timeLeft(iso: string, now = Date.now()): string {
  const seconds = Math.max(0, Math.round((Date.parse(iso) - now) / 1000));
  return seconds > 0
    ? `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")} left`
    : "expired";
}

/** How an order is paid, in words: "€39.00 by card", "€10.00 credit + €29.00 by card", "€39.00 credit". */
export function paymentSplit(order: {
  credits_applied_cents: number;
  amount_due_cents: number;
  currency: string;
}): string {
  const credit = money(order.credits_applied_cents, order.currency);
  const card = money(order.amount_due_cents, order.currency);
  if (order.credits_applied_cents === 0) return `${card} by card`;
  if (order.amount_due_cents === 0) return `${credit} credit`;
  return `${credit} credit + ${card} by card`;
}

const orderChangeHandlers: (() => void)[] = [];

/** Something changed the buyer's orders (placed, paid, let go): stock and lists are read again. */
export const onOrdersChanged = (handler: () => void) => orderChangeHandlers.push(handler);

export function ordersChanged(): void {
  for (const handler of orderChangeHandlers) handler();
}
