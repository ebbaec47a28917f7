import type { Config } from "../env";

/** The payment providers a deployment can choose with PAYMENT_PROVIDER. */
export const PAYMENT_PROVIDERS = ["standard", "stripe"] as const;
export type PaymentProviderName = (typeof PAYMENT_PROVIDERS)[number];

/** What a buyer is sent to pay: an order's amount due or a top-up's amount. */
export interface CheckoutRequest {
  /** The order (`ord_…`) or top-up (`top_…`) paid for: the provider hands it back in its webhook. */
  reference: string;
  amountCents: number;
  currency: string;
  /** One line the provider's page shows, e.g. "Order ord_… — 2 items". */
  description: string;
  /** Where the provider sends the buyer back: after paying, and when they give up. */
  successUrl: string;
  cancelUrl: string;
  /** When the provider's page stops taking payment. */
  expiresAt: Date;
  /** Which attempt this is (1, then one more after each failure): part of the idempotency key. */
  attempt: number;
  /**
   * Only methods that confirm at once (cards and card wallets). An order's hold lasts minutes; a bank
   * debit or transfer confirms days later, after the stock was released, and would become a refund owed.
   */
  immediateOnly: boolean;
}

/** A provider's hosted payment page for one reference. */
export interface HostedCheckout {
  sessionId: string;
  url: string;
  expiresAt: string;
}

/** A payment to give back: the provider's payment id, as its webhook named it. */
export interface RefundRequest {
  paymentId: string;
  reference: string;
  amountCents: number;
  currency: string;
  /** Which attempt this is (1, then one more after each failure): part of the idempotency key. */
  attempt: number;
}

/** The provider accepted the refund (it may still settle at the bank later) or refused it. */
export type RefundResult = { ok: true; providerRefundId: string } | { ok: false; failure: string };

/**
 * A provider that hosts its own payment page and can give money back through its API. The Standard
 * Webhooks gateway has neither: the venue integrates it, and refunds are made in its dashboard.
 */
export interface HostedPaymentProvider {
  readonly name: Exclude<PaymentProviderName, "standard">;
  /**
   * Opens (or, for a reference seen before, finds again) the hosted page. Calls with the same reference
   * and request yield the same session: the provider's idempotency key is derived from the reference.
   * Throws PaymentProviderError when the provider cannot be reached or refuses.
   */
  createCheckout(request: CheckoutRequest): Promise<HostedCheckout>;
  /**
   * Gives a payment back. Calls with the same payment id and attempt make one refund; an attempt after a
   * failed one must first ask `existingRefund`, since the failed one may have made it after all.
   */
  refund(request: RefundRequest): Promise<RefundResult>;
  /** A refund of the payment the provider made and has not failed or cancelled, if any. */
  existingRefund(paymentId: string): Promise<string | null>;
  /**
   * Closes a hosted page so that it takes no more money. `not_open` when it had already completed or
   * lapsed: either way it is closed now.
   */
  closeCheckout(sessionId: string): Promise<"closed" | "not_open">;
}

/** The provider could not be reached, or refused a request we built: the caller answers 502. */
export class PaymentProviderError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "PaymentProviderError";
  }
}

/**
 * The provider's idempotency key for an attempt at an operation on one of our ids. Racing calls of one
 * attempt share it (and so one effect); a failed attempt's successor gets a new one, since Stripe replays
 * a key's first answer, a failure included, for 24 hours.
 */
export const providerIdempotencyKey = (operation: "checkout" | "refund", id: string, attempt: number) =>
  `${operation}:${id}:${attempt}`;

/** Chosen by PAYMENT_PROVIDER; `undefined` for the standard gateway, which hosts nothing of ours. */
export async function hostedPaymentProvider(config: Config): Promise<HostedPaymentProvider | undefined> {
  if (config.paymentProvider !== "stripe") return undefined;
  // Loaded only where Stripe is configured: the SDK is the largest module of the Worker.
  const { stripeProvider } = await import("./stripe");
  return stripeProvider(config);
}
