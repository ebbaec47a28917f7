import pMap from "p-map";
import {
  abandonCheckoutAttempt,
  type CheckoutSessionRow,
  currentCheckoutAttempt,
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
/** The longest Stripe allows is 24 h after the session is created; five minutes under it for the clocks. */
export const MAX_CHECKOUT_LIFETIME_MS = 24 * 60 * 60 * 1000 - 5 * 60 * 1000;
/** A top-up reserves nothing, so its page may stay open for most of the longest Stripe allows (24 h). */
export const TOPUP_CHECKOUT_LIFETIME_MS = 23 * 60 * 60 * 1000;

/** Pages closed per sweep: bounded so a backlog drains over a few minutes without a long cron run. */
export const CHECKOUT_CLOSE_BATCH = 50;
/** Calls to the provider at once while closing them. */
const CHECKOUT_CLOSE_CONCURRENCY = 5;

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
  /** Only payment methods that confirm at once: what holds stock for minutes needs (see CheckoutRequest). */
  immediateOnly: boolean;
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
export const orderCheckoutExpiry = (order: { created_at: string; expires_at: string }) =>
  new Date(
    Math.min(
      Date.parse(order.expires_at) + MIN_CHECKOUT_LIFETIME_MS,
      // Stripe's longest is 24 h from creation: a hold near a day long is cut to that (its last half
      // hour can then open no new page).
      Date.parse(order.created_at) + MAX_CHECKOUT_LIFETIME_MS,
    ),
  );

export const topupCheckoutExpiry = (topupCreatedAt: string) =>
  new Date(Date.parse(topupCreatedAt) + TOPUP_CHECKOUT_LIFETIME_MS);

/**
 * The hosted page for a reference: the one opened before if any (a second click costs one D1 read and
 * no call to the provider), else a new one, kept by reference. Parallel first clicks may both reach the
 * provider; its idempotency key (the reference and the current attempt) gives them the same session,
 * stored once. A failed attempt moves the key on, so the next click is not answered the same failure.
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
  const attempt = await currentCheckoutAttempt(db, target.reference);
  let session: Awaited<ReturnType<HostedPaymentProvider["createCheckout"]>>;
  try {
    session = await provider.createCheckout({
      reference: target.reference,
      amountCents: target.amountCents,
      currency: target.currency,
      description: target.description,
      successUrl: returnUrl(links.returnBase, "success", target.reference),
      cancelUrl: returnUrl(links.returnBase, "cancel", target.reference),
      expiresAt: target.expiresAt,
      attempt,
      immediateOnly: target.immediateOnly,
    });
  } catch (error) {
    // The provider would answer this key's failure again: the next click tries under the next key.
    if (error instanceof PaymentProviderError) await abandonCheckoutAttempt(db, target.reference, attempt);
    throw error;
  }
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
  await pMap(
    lapsed,
    async (session) => {
      // A paid order's page completed with its payment: nothing is left open at the provider.
      if (session.orderStatus !== "PAID") {
        try {
          await provider.closeCheckout(session.sessionId);
        } catch (error) {
          if (!(error instanceof PaymentProviderError)) throw error;
          failed += 1;
          return;
        }
      }
      closed.push(session.reference);
    },
    // A few at a time: a minute's batch finishes well within the minute even with slow answers.
    { concurrency: CHECKOUT_CLOSE_CONCURRENCY },
  );
  await markCheckoutsClosed(db, closed, now);
  return { closed: closed.length, failed };
}
