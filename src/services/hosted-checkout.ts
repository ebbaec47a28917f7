import {
  type CheckoutSessionRow,
  findCheckoutSession,
  keepCheckoutSession,
  lapsedOrderCheckouts,
  markCheckoutsClosed,
} from "../db/checkout-sessions";
import type { Db } from "../db/client";
import { type HostedPaymentProvider, PaymentProviderError } from "../payments/provider";

/**
 * Stripe refuses a session that expires sooner than 30 minutes after it is created; one more minute
 * covers the clocks of both sides.
 */
export const MIN_CHECKOUT_LIFETIME_MS = 31 * 60 * 1000;
/** A top-up reserves nothing, so its page may stay open for most of the longest Stripe allows (24 h). */
export const TOPUP_CHECKOUT_LIFETIME_MS = 23 * 60 * 60 * 1000;

/** Pages closed per sweep: bounded so a backlog drains over a few minutes without a long cron run. */
export const CHECKOUT_CLOSE_BATCH = 50;

/** What is paid for, as the provider's page presents it. */
export interface CheckoutTarget {
  reference: string;
  amountCents: number;
  currency: string;
  description: string;
  /**
   * When the page stops taking money. It must be the same on every call for the reference (the
   * provider compares a retried request with the first), so it is derived from the thing paid for,
   * never from the time of the click.
   */
  expiresAt: Date;
}

/** The page the buyer is sent to, and where they come back to. */
export interface CheckoutLinks {
  /** The buyer page's origin: they come back to `/?checkout=success|cancel&reference=…`. */
  returnBase: string;
}

function returnUrl(base: string, result: "success" | "cancel", reference: string): string {
  const url = new URL("/", base);
  url.searchParams.set("checkout", result);
  url.searchParams.set("reference", reference);
  return url.toString();
}

/**
 * When an order's page stops taking money: its hold's end plus the provider's minimum lifetime, which
 * is later than any moment the order can still be paid at (so always acceptable to the provider), and
 * the same for every click. A payment in the remaining minutes finds the order expired and is recorded
 * as a refund owed.
 */
export const orderCheckoutExpiry = (orderExpiresAt: string) =>
  new Date(Date.parse(orderExpiresAt) + MIN_CHECKOUT_LIFETIME_MS);

export const topupCheckoutExpiry = (topupCreatedAt: string) =>
  new Date(Date.parse(topupCreatedAt) + TOPUP_CHECKOUT_LIFETIME_MS);

/**
 * The hosted page for a reference: the one opened before if any (a second click costs one D1 read and
 * no call to the provider), else a new one, kept by reference. Parallel first clicks may both reach the
 * provider; its idempotency key (derived from the reference) gives them the same session, stored once.
 */
export async function openHostedCheckout(
  db: Db,
  provider: HostedPaymentProvider,
  target: CheckoutTarget,
  links: CheckoutLinks,
  now: Date,
): Promise<CheckoutSessionRow> {
  const existing = await findCheckoutSession(db, target.reference);
  if (existing) return existing;
  const session = await provider.createCheckout({
    reference: target.reference,
    amountCents: target.amountCents,
    currency: target.currency,
    description: target.description,
    successUrl: returnUrl(links.returnBase, "success", target.reference),
    cancelUrl: returnUrl(links.returnBase, "cancel", target.reference),
    expiresAt: target.expiresAt,
  });
  return keepCheckoutSession(db, {
    reference: target.reference,
    provider: provider.name,
    sessionId: session.sessionId,
    url: session.url,
    amountCents: target.amountCents,
    currency: target.currency,
    expiresAt: session.expiresAt,
    createdAt: now.toISOString(),
  });
}

/**
 * Closes at the provider the pages of orders that can no longer be paid, so that a buyer who left a
 * page open cannot pay for an order whose hold has ended (its stock may be sold to someone else). A
 * payment that wins the race anyway finds the order expired and is recorded as a refund owed. A page the
 * provider cannot be reached for stays open and is tried again at the next sweep.
 */
export async function closeLapsedCheckouts(
  db: Db,
  provider: HostedPaymentProvider,
  now: Date,
): Promise<{ closed: number; failed: number }> {
  const lapsed = await lapsedOrderCheckouts(db, CHECKOUT_CLOSE_BATCH);
  const closed: string[] = [];
  let failed = 0;
  for (const session of lapsed) {
    // A paid order's page completed with its payment: nothing is left open at the provider.
    if (session.orderStatus === "PAID") {
      closed.push(session.reference);
      continue;
    }
    try {
      await provider.closeCheckout(session.sessionId);
      closed.push(session.reference);
    } catch (error) {
      if (!(error instanceof PaymentProviderError)) throw error;
      failed += 1;
    }
  }
  await markCheckoutsClosed(db, closed, now);
  return { closed: closed.length, failed };
}
