import { env } from "cloudflare:workers";
import Stripe from "stripe";
import { vi } from "vitest";
import { buildApp } from "../../src/app";
import type { Env } from "../../src/env";

// Stripe's API as this Worker uses it, behind an interception of outbound fetch: Checkout Sessions and
// Refunds, with Stripe's idempotency-key semantics (the same key and parameters answer the first result;
// the same key with other parameters is refused). Webhooks are signed with the `stripe` package's own
// test signer, so the Worker's verifier is checked against Stripe's code, not against itself.

export const STRIPE_TEST_SECRET_KEY = "sk_test_passesFakeKey0123456789";
export const STRIPE_TEST_WEBHOOK_SECRET = "whsec_passesFakeWebhookSecret0123456789";

/** The Worker's env with Stripe as the payment provider; one object, so its parsed config is reused. */
export const stripeEnv: Env = {
  ...(env as Env),
  PAYMENT_PROVIDER: "stripe",
  STRIPE_SECRET_KEY: STRIPE_TEST_SECRET_KEY,
  STRIPE_WEBHOOK_SECRET: STRIPE_TEST_WEBHOOK_SECRET,
};

const app = buildApp();

/** One request to the app configured for Stripe. */
export async function callStripeApp<T = Record<string, unknown>>(
  method: string,
  path: string,
  options: {
    token?: string;
    body?: unknown;
    rawBody?: string;
    headers?: Record<string, string>;
    idempotencyKey?: string;
  } = {},
): Promise<{ status: number; body: T; headers: Headers }> {
  const headers = new Headers(options.headers);
  if (options.token) headers.set("authorization", `Bearer ${options.token}`);
  if (options.idempotencyKey) headers.set("idempotency-key", options.idempotencyKey);
  let body: string | undefined = options.rawBody;
  if (options.body !== undefined) {
    body = JSON.stringify(options.body);
    headers.set("content-type", "application/json");
  }
  const ctx = { waitUntil: () => undefined, passThroughOnException: () => undefined, props: {} };
  const response = await app.fetch(
    new Request(`https://passes.test${path}`, { method, headers, body }),
    stripeEnv,
    ctx as unknown as ExecutionContext,
  );
  const text = await response.text();
  return { status: response.status, body: (text ? JSON.parse(text) : null) as T, headers: response.headers };
}

export interface FakeSession {
  id: string;
  object: "checkout.session";
  client_reference_id: string;
  amount_total: number;
  currency: string;
  expires_at: number;
  payment_intent: string;
  payment_status: "unpaid" | "paid";
  status: "open" | "complete" | "expired";
  url: string;
  success_url: string;
  cancel_url: string;
  metadata: Record<string, string>;
  /** `null`: the account's own choice of methods (which may include ones that confirm days later). */
  payment_method_types: string[] | null;
}

interface StoredAnswer {
  params: string;
  status: number;
  body: unknown;
}

export class FakeStripe {
  readonly sessions = new Map<string, FakeSession>();
  readonly refunds = new Map<string, { id: string; payment_intent: string; amount: number }>();
  /** Every request that reached the fake, in order. */
  readonly requests: { method: string; path: string; idempotencyKey: string | null; auth: string | null }[] =
    [];
  /** Answer the next N requests with a 500 (Stripe's SDK retries these itself). */
  failNext = 0;
  /** Refuse the next refund with this code, as Stripe does when it cannot refund (e.g. balance_insufficient). */
  refuseNextRefund: string | null = null;
  private readonly answered = new Map<string, StoredAnswer>();
  private counter = 0;

  private nextId(prefix: string) {
    this.counter += 1;
    return `${prefix}_test_${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}${this.counter}`;
  }

  /** Routes api.stripe.com to this fake until the test's mocks are restored; anything else goes out. */
  install() {
    const original = globalThis.fetch;
    vi.spyOn(globalThis, "fetch").mockImplementation(async (input, init) => {
      const request = new Request(input, init);
      const url = new URL(request.url);
      if (url.hostname !== "api.stripe.com") return original(input, init);
      return this.handle(request, url);
    });
    return this;
  }

  private async handle(request: Request, url: URL): Promise<Response> {
    const idempotencyKey = request.headers.get("idempotency-key");
    this.requests.push({
      method: request.method,
      path: url.pathname,
      idempotencyKey,
      auth: request.headers.get("authorization"),
    });
    const params = await request.text();
    if (idempotencyKey) {
      const stored = this.answered.get(idempotencyKey);
      if (stored) {
        if (stored.params !== params) {
          return Response.json(
            {
              error: {
                type: "idempotency_error",
                message: "Keys for idempotent requests can only be used with the same parameters",
              },
            },
            { status: 400 },
          );
        }
        return Response.json(stored.body, {
          status: stored.status,
          headers: { "idempotent-replayed": "true" },
        });
      }
    }
    // Like Stripe, a failure once the endpoint ran is stored under the key too, and replayed for it.
    const answer =
      this.failNext > 0
        ? { status: 500, body: { error: { type: "api_error", message: "injected outage" } } }
        : this.apply(
            request.method,
            url.pathname,
            request.method === "GET" ? url.searchParams : new URLSearchParams(params),
          );
    if (this.failNext > 0) this.failNext -= 1;
    if (idempotencyKey) this.answered.set(idempotencyKey, { params, ...answer });
    return Response.json(answer.body, { status: answer.status });
  }

  private apply(method: string, path: string, form: URLSearchParams): { status: number; body: unknown } {
    if (method === "POST" && path === "/v1/checkout/sessions") {
      const id = this.nextId("cs");
      const session: FakeSession = {
        id,
        object: "checkout.session",
        client_reference_id: form.get("client_reference_id") ?? "",
        amount_total: Number(form.get("line_items[0][price_data][unit_amount]")),
        currency: form.get("line_items[0][price_data][currency]") ?? "",
        expires_at: Number(form.get("expires_at")),
        payment_intent: this.nextId("pi"),
        payment_status: "unpaid",
        status: "open",
        url: `https://checkout.stripe.com/c/pay/${id}`,
        success_url: form.get("success_url") ?? "",
        cancel_url: form.get("cancel_url") ?? "",
        metadata: { reference: form.get("metadata[reference]") ?? "" },
        payment_method_types: form.has("payment_method_types[0]")
          ? [...form.entries()]
              .filter(([name]) => name.startsWith("payment_method_types["))
              .map(([, value]) => value)
          : null,
      };
      if (session.expires_at * 1000 < Date.now() + 30 * 60 * 1000) {
        return { status: 400, body: { error: { type: "invalid_request_error", param: "expires_at" } } };
      }
      this.sessions.set(id, session);
      return { status: 200, body: session };
    }
    const expire = /^\/v1\/checkout\/sessions\/([^/]+)\/expire$/.exec(path);
    if (method === "POST" && expire) {
      const session = this.sessions.get(decodeURIComponent(expire[1] ?? ""));
      if (!session)
        return { status: 404, body: { error: { type: "invalid_request_error", code: "resource_missing" } } };
      if (session.status !== "open") {
        return {
          status: 400,
          body: {
            error: {
              type: "invalid_request_error",
              message: 'Only Checkout Sessions with a status in ["open"] can be expired.',
            },
          },
        };
      }
      session.status = "expired";
      return { status: 200, body: session };
    }
    if (method === "GET" && path === "/v1/refunds") {
      const paymentIntent = form.get("payment_intent");
      const data = [...this.refunds.values()].filter((refund) => refund.payment_intent === paymentIntent);
      return { status: 200, body: { object: "list", data, has_more: false, url: "/v1/refunds" } };
    }
    if (method === "POST" && path === "/v1/refunds") {
      const paymentIntent = form.get("payment_intent") ?? "";
      if (this.refuseNextRefund) {
        const code = this.refuseNextRefund;
        this.refuseNextRefund = null;
        return {
          status: 400,
          body: { error: { type: "invalid_request_error", code, message: `Refused: ${code}` } },
        };
      }
      if ([...this.refunds.values()].some((refund) => refund.payment_intent === paymentIntent)) {
        return {
          status: 400,
          body: {
            error: {
              type: "invalid_request_error",
              code: "charge_already_refunded",
              message: "Charge has already been refunded.",
            },
          },
        };
      }
      const refund = {
        id: this.nextId("re"),
        object: "refund",
        payment_intent: paymentIntent,
        amount: Number(form.get("amount")),
        status: "succeeded",
      };
      this.refunds.set(refund.id, refund);
      return { status: 200, body: refund };
    }
    return { status: 404, body: { error: { type: "invalid_request_error", message: `no route ${path}` } } };
  }

  sessionFor(reference: string): FakeSession[] {
    return [...this.sessions.values()].filter((session) => session.client_reference_id === reference);
  }

  /** What Stripe sends when the buyer paid on the session's page (which completes it). */
  completed(session: FakeSession, eventId = newStripeEventId()) {
    const stored = this.sessions.get(session.id);
    if (stored?.status === "open") stored.status = "complete";
    return stripeEvent(eventId, "checkout.session.completed", {
      ...session,
      status: "complete",
      payment_status: "paid",
    });
  }

  expired(session: FakeSession, eventId = newStripeEventId()) {
    return stripeEvent(eventId, "checkout.session.expired", {
      ...session,
      status: "expired",
      payment_status: "unpaid",
    });
  }
}

export const newStripeEventId = () => `evt_test_${crypto.randomUUID().replaceAll("-", "")}`;

export function stripeEvent(id: string, type: string, object: unknown) {
  return {
    id,
    object: "event",
    type,
    api_version: "2025-01-01",
    created: Math.floor(Date.now() / 1000),
    data: { object },
    livemode: false,
    pending_webhooks: 1,
  };
}

const signer = new Stripe(STRIPE_TEST_SECRET_KEY);
const cryptoProvider = Stripe.createSubtleCryptoProvider();

/** POSTs `event` to the Stripe webhook, signed by the stripe package's own test signer. */
export async function deliverStripe<T = { received: boolean; outcome: string; code?: string }>(
  event: unknown,
  options: {
    secret?: string;
    timestamp?: number;
    tamper?: (body: string) => string;
    header?: string | null;
  } = {},
) {
  const payload = JSON.stringify(event);
  const signature = await signer.webhooks.generateTestHeaderStringAsync({
    payload,
    secret: options.secret ?? STRIPE_TEST_WEBHOOK_SECRET,
    timestamp: options.timestamp,
    cryptoProvider,
  });
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (options.header !== null) headers["stripe-signature"] = options.header ?? signature;
  return callStripeApp<T>("POST", "/payments/stripe/webhook", {
    rawBody: options.tamper ? options.tamper(payload) : payload,
    headers,
  });
}
