import Stripe from "stripe";
import type { Config } from "../env";
import {
  type CheckoutRequest,
  type HostedCheckout,
  type HostedPaymentProvider,
  PaymentProviderError,
  providerIdempotencyKey,
  type RefundRequest,
  type RefundResult,
} from "./provider";

/** Retries of one API call the SDK makes itself, with the same idempotency key (so never twice applied). */
const STRIPE_NETWORK_RETRIES = 2;
/** A buyer is waiting on the checkout call: give up well before a browser would. */
const STRIPE_TIMEOUT_MS = 10_000;

// The SDK's fetch client keeps the fetch it was given; this one looks `fetch` up on every call, so the
// runtime's (or a test's interception of it) is always the one used.
const httpClient = Stripe.createFetchHttpClient((input, init) => fetch(input, init));
const clients = new Map<string, Stripe>();

/** api.stripe.com, or STRIPE_API_BASE (stripe-mock or a local double; refused in production). */
function apiLocation(apiBase: string | undefined) {
  if (!apiBase) return {};
  const url = new URL(apiBase);
  return {
    host: url.hostname,
    port: url.port || (url.protocol === "http:" ? 80 : 443),
    protocol: url.protocol === "http:" ? ("http" as const) : ("https" as const),
  };
}

function stripeClient(secretKey: string, apiBase?: string): Stripe {
  const cacheKey = `${secretKey} ${apiBase ?? ""}`;
  let client = clients.get(cacheKey);
  if (!client) {
    client = new Stripe(secretKey, {
      httpClient,
      maxNetworkRetries: STRIPE_NETWORK_RETRIES,
      timeout: STRIPE_TIMEOUT_MS,
      ...apiLocation(apiBase),
    });
    clients.set(cacheKey, client);
  }
  return client;
}

const epochSeconds = (date: Date) => Math.floor(date.getTime() / 1000);

/** Stripe names a failure by type and code; the message may quote our own input and is kept short. */
function describeStripeError(error: unknown): string {
  if (error instanceof Stripe.errors.StripeError) {
    return [error.type, error.code, error.message].filter(Boolean).join(": ").slice(0, 500);
  }
  return String(error).slice(0, 500);
}

/** Stripe Checkout: a hosted page per order or top-up, and refunds of the PaymentIntent it created. */
export function stripeProvider(config: Config): HostedPaymentProvider {
  if (!config.stripeSecretKey)
    throw new Error("invariant: PAYMENT_PROVIDER=stripe without STRIPE_SECRET_KEY");
  const client = stripeClient(config.stripeSecretKey, config.stripeApiBase);
  return {
    name: "stripe",

    async createCheckout(request: CheckoutRequest): Promise<HostedCheckout> {
      let session: Stripe.Checkout.Session;
      try {
        session = await client.checkout.sessions.create(
          {
            mode: "payment",
            client_reference_id: request.reference,
            ...(request.immediateOnly ? { payment_method_types: ["card" as const] } : {}),
            line_items: [
              {
                quantity: 1,
                price_data: {
                  currency: request.currency.toLowerCase(),
                  unit_amount: request.amountCents,
                  product_data: { name: request.description },
                },
              },
            ],
            success_url: request.successUrl,
            cancel_url: request.cancelUrl,
            expires_at: epochSeconds(request.expiresAt),
            // The reference also rides on the PaymentIntent, so its own events name what they pay for.
            metadata: { reference: request.reference },
            payment_intent_data: { metadata: { reference: request.reference } },
          },
          { idempotencyKey: providerIdempotencyKey("checkout", request.reference, request.attempt) },
        );
      } catch (error) {
        throw new PaymentProviderError(`Stripe refused the checkout session: ${describeStripeError(error)}`, {
          cause: error,
        });
      }
      if (!session.url) throw new PaymentProviderError("Stripe answered a checkout session without a url");
      return {
        sessionId: session.id,
        url: session.url,
        expiresAt: new Date(session.expires_at * 1000).toISOString(),
      };
    },

    async closeCheckout(sessionId: string): Promise<"closed" | "not_open"> {
      try {
        await client.checkout.sessions.expire(sessionId);
        return "closed";
      } catch (error) {
        // Stripe refuses to expire a session that is complete or expired already.
        if (error instanceof Stripe.errors.StripeInvalidRequestError) return "not_open";
        throw new PaymentProviderError(`Stripe could not close the page: ${describeStripeError(error)}`, {
          cause: error,
        });
      }
    },

    async existingRefund(paymentId: string): Promise<string | null> {
      try {
        const refunds = await client.refunds.list({ payment_intent: paymentId, limit: 10 });
        const standing = refunds.data.find(
          (refund) => refund.status !== "failed" && refund.status !== "canceled",
        );
        return standing?.id ?? null;
      } catch (error) {
        throw new PaymentProviderError(`Stripe could not list refunds: ${describeStripeError(error)}`, {
          cause: error,
        });
      }
    },

    async refund(request: RefundRequest): Promise<RefundResult> {
      try {
        const refund = await client.refunds.create(
          {
            payment_intent: request.paymentId,
            amount: request.amountCents,
            metadata: { reference: request.reference },
          },
          { idempotencyKey: providerIdempotencyKey("refund", request.paymentId, request.attempt) },
        );
        if (refund.status === "failed" || refund.status === "canceled") {
          return { ok: false, failure: `Stripe refund ${refund.id} is ${refund.status}` };
        }
        return { ok: true, providerRefundId: refund.id };
      } catch (error) {
        // A refusal about this payment (already refunded, unknown intent) is an answer, not an outage.
        if (error instanceof Stripe.errors.StripeInvalidRequestError) {
          return { ok: false, failure: describeStripeError(error) };
        }
        throw new PaymentProviderError(`Stripe could not refund: ${describeStripeError(error)}`, {
          cause: error,
        });
      }
    },
  };
}

/** Seconds a Stripe-Signature timestamp may be old (Stripe's own default and the contract's 300 s). */
export const STRIPE_SIGNATURE_TOLERANCE_SECONDS = 300;

const cryptoProvider = Stripe.createSubtleCryptoProvider();

/**
 * Verifies `Stripe-Signature` over the raw body with the SDK's async (Web Crypto) verifier and returns
 * the event; `undefined` when the header is missing, malformed, stale or signed with another secret.
 */
export async function verifyStripeEvent(
  config: Config,
  body: Uint8Array,
  signature: string | undefined,
  now: Date,
): Promise<Stripe.Event | undefined> {
  if (!config.stripeWebhookSecret || !signature) return undefined;
  try {
    // The verifier needs no API key: the class's own, not a client's.
    return await Stripe.webhooks.constructEventAsync(
      body,
      signature,
      config.stripeWebhookSecret,
      STRIPE_SIGNATURE_TOLERANCE_SECONDS,
      cryptoProvider,
      now.getTime(),
    );
  } catch (error) {
    if (error instanceof Stripe.errors.StripeSignatureVerificationError) return undefined;
    throw error;
  }
}
