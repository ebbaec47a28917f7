import { afterEach, beforeEach, describe, it, vi } from "vitest";
import { loadConfig } from "../../src/env";
import { hostedPaymentProvider } from "../../src/payments/provider";
import { closeLapsedCheckouts, orderCheckoutExpiry } from "../../src/services/hosted-checkout";
import {
  callStripeApp,
  deliverStripe,
  FakeStripe,
  newStripeEventId,
  STRIPE_TEST_SECRET_KEY,
  stripeEnv,
  stripeEvent,
} from "../support/fake-stripe";
import { db, operatorToken, seedProduct } from "../support/fixtures";
import { callJson } from "../support/http";
import { buyerToken, uniqueUser } from "../support/tokens";
import type { Problem } from "../support/wallet";
import { pendingOrder } from "../support/webhooks";

// Stripe Checkout end to end inside workerd, with outbound fetch to api.stripe.com answered by a fake that
// keeps Stripe's idempotency rules, and webhooks signed by the stripe package's own signer.

interface CheckoutBody extends Problem {
  order_id: string;
  provider: string;
  checkout_url: string | null;
  checkout_expires_at: string | null;
  amount_due_cents: number;
  currency: string;
}

let stripe: FakeStripe;
beforeEach(() => {
  stripe = new FakeStripe().install();
});
afterEach(() => {
  vi.restoreAllMocks();
});

async function orderWithCheckout(quantity = 2, price = 1_500) {
  const product = await seedProduct({ sellable: 50, price_cents: price });
  const order = await pendingOrder(uniqueUser("stripe"), [{ product_id: product.id, quantity }]);
  const checkout = await callStripeApp<CheckoutBody>("POST", `/orders/${order.order_id}/checkout`, {
    token: order.token,
  });
  if (checkout.status !== 200)
    throw new Error(`checkout: ${checkout.status} ${JSON.stringify(checkout.body)}`);
  const [session] = stripe.sessionFor(order.order_id);
  if (!session) throw new Error("no session at the fake");
  return { order, checkout: checkout.body, session };
}

const orderStatus = async (order: { order_id: string; token: string }) =>
  (await callStripeApp<{ status: string }>("GET", `/orders/${order.order_id}`, { token: order.token })).body
    .status;

describe("POST /orders/{id}/checkout", () => {
  it("with the standard gateway answers no hosted page and calls nobody", async ({ expect }) => {
    const product = await seedProduct({ price_cents: 900 });
    const order = await pendingOrder(uniqueUser(), [{ product_id: product.id, quantity: 1 }]);
    const answer = await callJson<CheckoutBody>("POST", `/orders/${order.order_id}/checkout`, {
      token: order.token,
    });
    expect(answer.status).toBe(200);
    expect(answer.body).toEqual({
      order_id: order.order_id,
      provider: "standard",
      checkout_url: null,
      checkout_expires_at: null,
      amount_due_cents: 900,
      currency: "EUR",
    });
    expect(stripe.requests).toEqual([]);
  });

  it("opens a Checkout Session for the amount due, named by the order, with a key derived from it", async ({
    expect,
  }) => {
    const { order, checkout, session } = await orderWithCheckout(2, 1_500);
    expect(checkout).toMatchObject({
      order_id: order.order_id,
      provider: "stripe",
      checkout_url: session.url,
      amount_due_cents: 3_000,
      currency: "EUR",
    });
    expect(session).toMatchObject({
      client_reference_id: order.order_id,
      amount_total: 3_000,
      currency: "eur",
    });
    // A hold of minutes takes only methods that confirm at once.
    expect(session.payment_method_types).toEqual(["card"]);
    expect(new URL(session.success_url).searchParams.get("reference")).toBe(order.order_id);
    expect(new URL(session.success_url).searchParams.get("checkout")).toBe("success");
    expect(new URL(session.cancel_url).searchParams.get("checkout")).toBe("cancel");
    // Stripe's minimum is 30 minutes: the page outlives the hold by that, and no more.
    expect(session.expires_at).toBe(Math.floor((Date.parse(order.expires_at) + 31 * 60 * 1000) / 1000));
    expect(stripe.requests).toEqual([
      {
        method: "POST",
        path: "/v1/checkout/sessions",
        idempotencyKey: `checkout:${order.order_id}:1`,
        auth: `Bearer ${STRIPE_TEST_SECRET_KEY}`,
      },
    ]);
  });

  it("a second click, and ten at once, answer the same session: one is created per order", async ({
    expect,
  }) => {
    const { order, checkout } = await orderWithCheckout();
    const again = await callStripeApp<CheckoutBody>("POST", `/orders/${order.order_id}/checkout`, {
      token: order.token,
    });
    expect(again.body.checkout_url).toBe(checkout.checkout_url);
    expect(stripe.requests).toHaveLength(1);

    const product = await seedProduct({ sellable: 50, price_cents: 700 });
    const racing = await pendingOrder(uniqueUser(), [{ product_id: product.id, quantity: 1 }]);
    const clicks = await Promise.all(
      Array.from({ length: 10 }, () =>
        callStripeApp<CheckoutBody>("POST", `/orders/${racing.order_id}/checkout`, { token: racing.token }),
      ),
    );
    expect(clicks.map((click) => click.status)).toEqual(Array(10).fill(200));
    expect(new Set(clicks.map((click) => click.body.checkout_url)).size).toBe(1);
    expect(stripe.sessionFor(racing.order_id)).toHaveLength(1);
  });

  it("someone else's order is a 404 and reaches no provider", async ({ expect }) => {
    const { order } = await orderWithCheckout();
    const other = await callStripeApp<Problem>("POST", `/orders/${order.order_id}/checkout`, {
      token: await buyerToken(uniqueUser()),
    });
    expect(other.status).toBe(404);
    expect(other.body.code).toBe("not_found");
    expect(stripe.requests).toHaveLength(1);
  });

  it("an order no longer awaiting payment is 409 order_not_pending with its status", async ({ expect }) => {
    const { order, session } = await orderWithCheckout();
    expect((await deliverStripe(stripe.completed(session))).body.outcome).toBe("processed");
    const late = await callStripeApp<Problem & { status: string }>(
      "POST",
      `/orders/${order.order_id}/checkout`,
      {
        token: order.token,
      },
    );
    expect(late.status).toBe(409);
    expect(late.body).toMatchObject({ code: "order_not_pending", status: 409, order_status: "PAID" });
  });

  it("a Stripe failure is a 502 the buyer may retry; the retry is not answered the stored failure", async ({
    expect,
  }) => {
    const product = await seedProduct({ sellable: 50, price_cents: 800 });
    const order = await pendingOrder(uniqueUser(), [{ product_id: product.id, quantity: 1 }]);
    // One 500, which Stripe then answers again for that key (the SDK's own retries included).
    stripe.failNext = 1;
    const down = await callStripeApp<Problem>("POST", `/orders/${order.order_id}/checkout`, {
      token: order.token,
    });
    expect(down.status).toBe(502);
    expect(down.body.code).toBe("payment_provider_error");
    stripe.failNext = 0;
    const up = await callStripeApp<CheckoutBody>("POST", `/orders/${order.order_id}/checkout`, {
      token: order.token,
    });
    expect(up.status).toBe(200);
    expect(up.body.checkout_url).toMatch(/^https:\/\/checkout\.stripe\.com\//);
    expect(stripe.sessionFor(order.order_id)).toHaveLength(1);
    const keys = new Set(stripe.requests.map((request) => request.idempotencyKey));
    expect(keys).toEqual(new Set([`checkout:${order.order_id}:1`, `checkout:${order.order_id}:2`]));
  });
});

describe("POST /payments/stripe/webhook", () => {
  it("checkout.session.completed pays the order and issues its tickets", async ({ expect }) => {
    const { order, session } = await orderWithCheckout(3, 1_000);
    const delivered = await deliverStripe(stripe.completed(session));
    expect(delivered).toMatchObject({ status: 200, body: { received: true, outcome: "processed" } });
    expect(await orderStatus(order)).toBe("PAID");
    const tickets = await callStripeApp<{ tickets: { order_id: string }[] }>("GET", "/my/tickets", {
      token: order.token,
    });
    expect(tickets.body.tickets.filter((ticket) => ticket.order_id === order.order_id)).toHaveLength(3);
  });

  it("completed twice (same event, and a new event id) and ten at once settle once", async ({ expect }) => {
    const { order, session } = await orderWithCheckout(2, 1_000);
    const event = stripe.completed(session);
    const outcomes = [
      (await deliverStripe(event)).body.outcome,
      (await deliverStripe(event)).body.outcome,
      (await deliverStripe(stripe.completed(session))).body.outcome,
    ];
    expect(outcomes).toEqual(["processed", "duplicate", "duplicate"]);

    const racing = await orderWithCheckout(1, 1_000);
    const parallel = await Promise.all(
      Array.from({ length: 10 }, () => deliverStripe(stripe.completed(racing.session))),
    );
    expect(parallel.map((answer) => answer.status)).toEqual(Array(10).fill(200));
    expect(parallel.filter((answer) => answer.body.outcome === "processed")).toHaveLength(1);
    const tickets = await callStripeApp<{ tickets: { order_id: string }[] }>("GET", "/my/tickets", {
      token: order.token,
    });
    expect(tickets.body.tickets.filter((ticket) => ticket.order_id === order.order_id)).toHaveLength(2);
  });

  it("expired after completed changes nothing; expired alone fails the order and frees its stock", async ({
    expect,
  }) => {
    const paid = await orderWithCheckout();
    await deliverStripe(stripe.completed(paid.session));
    expect((await deliverStripe(stripe.expired(paid.session))).body.outcome).toBe("ignored");
    expect(await orderStatus(paid.order)).toBe("PAID");

    const product = await seedProduct({ sellable: 1, price_cents: 600 });
    const order = await pendingOrder(uniqueUser(), [{ product_id: product.id, quantity: 1 }]);
    await callStripeApp("POST", `/orders/${order.order_id}/checkout`, { token: order.token });
    const [session] = stripe.sessionFor(order.order_id);
    if (!session) throw new Error("no session");
    expect((await deliverStripe(stripe.expired(session))).body.outcome).toBe("processed");
    expect(await orderStatus(order)).toBe("PAYMENT_FAILED");
    const catalog = await callJson<{ products: { id: string; available: number }[] }>("GET", "/catalog");
    expect(catalog.body.products.find((entry) => entry.id === product.id)?.available).toBe(1);
  });

  it("a declined card leaves the order payable; a session that is not ours is ignored", async ({
    expect,
  }) => {
    const { order, session } = await orderWithCheckout();
    const declined = stripeEvent(newStripeEventId(), "payment_intent.payment_failed", {
      id: session.payment_intent,
      object: "payment_intent",
      metadata: { reference: order.order_id },
    });
    expect((await deliverStripe(declined)).body.outcome).toBe("ignored");
    expect(await orderStatus(order)).toBe("PENDING_PAYMENT");
    const foreign = stripe.completed({ ...session, client_reference_id: "invoice_42" });
    expect((await deliverStripe(foreign)).body).toEqual({ received: true, outcome: "ignored" });
    expect((await deliverStripe(stripe.completed(session))).body.outcome).toBe("processed");
  });

  it("an amount that is not what is due is recorded for review and acknowledged (200), nothing applied", async ({
    expect,
  }) => {
    const { order, session } = await orderWithCheckout(1, 2_000);
    const short = await deliverStripe(stripe.completed({ ...session, amount_total: 1_999 }));
    expect(short.body).toEqual({ received: true, outcome: "ignored" });
    expect(await orderStatus(order)).toBe("PENDING_PAYMENT");
    const admin = await operatorToken(["admin"]);
    const reviews = await callStripeApp<{
      reviews: { reference: string; reason: string; amount_cents: number }[];
    }>("GET", "/admin/payments/reviews?limit=200", { token: admin.token });
    expect(reviews.body.reviews.filter((review) => review.reference === order.order_id)).toEqual([
      expect.objectContaining({ reason: "amount_mismatch", amount_cents: 1_999 }),
    ]);
  });

  it("a session this deployment did not open is acknowledged and changes nothing, even naming our order", async ({
    expect,
  }) => {
    const { order, session } = await orderWithCheckout();
    const foreign = stripe.completed({ ...session, id: "cs_test_elsewhere" });
    expect((await deliverStripe(foreign)).body).toEqual({ received: true, outcome: "ignored" });
    const unknownOrder = stripe.completed({
      ...session,
      id: "cs_test_other",
      client_reference_id: "ord_notours",
    });
    expect((await deliverStripe(unknownOrder)).body).toEqual({ received: true, outcome: "ignored" });
    expect(await orderStatus(order)).toBe("PENDING_PAYMENT");
  });

  it("401 signature_invalid for another secret, a tampered body, no header or a stale timestamp", async ({
    expect,
  }) => {
    const { order, session } = await orderWithCheckout();
    const event = stripe.completed(session);
    const refusals = [
      await deliverStripe(event, { secret: "whsec_someoneElse0123456789" }),
      await deliverStripe(event, { tamper: (body) => body.replace('"amount_total":', '"amount_total":1') }),
      await deliverStripe(event, { header: null }),
      await deliverStripe(event, { header: "t=1,v1=00" }),
      await deliverStripe(event, { timestamp: Math.floor(Date.now() / 1000) - 301 }),
    ];
    for (const refusal of refusals) {
      expect(refusal.status).toBe(401);
      expect((refusal.body as unknown as Problem).code).toBe("signature_invalid");
    }
    expect(await orderStatus(order)).toBe("PENDING_PAYMENT");
    // 299 s old is within the tolerance.
    const recent = await deliverStripe(event, { timestamp: Math.floor(Date.now() / 1000) - 299 });
    expect(recent.body.outcome).toBe("processed");
  });

  it("answers 503 on a deployment that does not use Stripe", async ({ expect }) => {
    const answer = await callJson<Problem>("POST", "/payments/stripe/webhook", {
      rawBody: "{}",
      headers: { "content-type": "application/json", "stripe-signature": "t=1,v1=00" },
    });
    expect(answer.status).toBe(503);
    expect(answer.body.code).toBe("service_unavailable");
  });
});

describe("POST /wallet/topups with Stripe", () => {
  it("answers the top-up's page; a replay answers the same one; paying it credits the wallet once", async ({
    expect,
  }) => {
    const token = await buyerToken(uniqueUser("topup"));
    const key = crypto.randomUUID();
    const first = await callStripeApp<{ topup_id: string; checkout_url: string; amount_cents: number }>(
      "POST",
      "/wallet/topups",
      { token, idempotencyKey: key, body: { amount_cents: 2_000 } },
    );
    expect(first.status).toBe(201);
    const replay = await callStripeApp<{ topup_id: string; checkout_url: string }>("POST", "/wallet/topups", {
      token,
      idempotencyKey: key,
      body: { amount_cents: 2_000 },
    });
    expect(replay.body).toMatchObject({
      topup_id: first.body.topup_id,
      checkout_url: first.body.checkout_url,
    });
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    const [session] = stripe.sessionFor(first.body.topup_id);
    if (!session) throw new Error("no session");
    expect(stripe.sessionFor(first.body.topup_id)).toHaveLength(1);
    expect(session.amount_total).toBe(2_000);
    // A top-up holds nothing: the account's own methods, bank debits included, are fine.
    expect(session.payment_method_types).toBeNull();

    const event = stripe.completed(session);
    expect((await deliverStripe(event)).body.outcome).toBe("processed");
    expect((await deliverStripe(event)).body.outcome).toBe("duplicate");
    const wallet = await callStripeApp<{ balance_cents: number }>("GET", "/wallet", { token });
    expect(wallet.body.balance_cents).toBe(2_000);
  });
});

describe("POST /admin/payments/{payment_id}/refund", () => {
  /** A Stripe payment that arrived after its order was let go: owed a refund. */
  async function refundOwed() {
    const { order, session } = await orderWithCheckout(1, 1_200);
    await callStripeApp("POST", `/orders/${order.order_id}/cancel`, { token: order.token });
    const late = await deliverStripe(stripe.completed(session));
    if (late.body.outcome !== "ignored") throw new Error(`late payment was ${late.body.outcome}`);
    return { order, session };
  }

  it("refunds through Stripe once, however often and however many admins press it", async ({ expect }) => {
    const { session } = await refundOwed();
    const admin = await operatorToken(["admin"]);
    const presses = await Promise.all(
      Array.from({ length: 5 }, () =>
        callStripeApp<{ status: string; provider_refund_id: string }>(
          "POST",
          `/admin/payments/${session.payment_intent}/refund`,
          { token: admin.token, body: { note: "paid after the hold" } },
        ),
      ),
    );
    expect(presses.map((press) => press.status)).toEqual(Array(5).fill(200));
    expect(new Set(presses.map((press) => press.body.status))).toEqual(new Set(["issued"]));
    expect(new Set(presses.map((press) => press.body.provider_refund_id)).size).toBe(1);
    expect([...stripe.refunds.values()]).toEqual([
      expect.objectContaining({ payment_intent: session.payment_intent, amount: 1_200 }),
    ]);
    for (const request of stripe.requests.filter(
      (entry) => entry.path === "/v1/refunds" && entry.method === "POST",
    )) {
      expect(request.idempotencyKey).toBe(`refund:${session.payment_intent}:1`);
    }
    const later = await callStripeApp<{ status: string }>(
      "POST",
      `/admin/payments/${session.payment_intent}/refund`,
      {
        token: admin.token,
      },
    );
    expect(later.body.status).toBe("issued");
    const reviews = await callStripeApp<{ reviews: { payment_id: string; refund_status: string | null }[] }>(
      "GET",
      "/admin/payments/reviews?limit=200",
      { token: admin.token },
    );
    expect(
      reviews.body.reviews.find((review) => review.payment_id === session.payment_intent)?.refund_status,
    ).toBe("issued");
  });

  it("a payment that was applied is 409 refund_not_owed; an unknown one 404; a non-admin 403 forbidden", async ({
    expect,
  }) => {
    const { session } = await orderWithCheckout();
    await deliverStripe(stripe.completed(session));
    const admin = await operatorToken(["admin"]);
    const applied = await callStripeApp<Problem>("POST", `/admin/payments/${session.payment_intent}/refund`, {
      token: admin.token,
    });
    expect(applied.status).toBe(409);
    expect(applied.body.code).toBe("refund_not_owed");
    const unknown = await callStripeApp<Problem>("POST", "/admin/payments/pi_nothing/refund", {
      token: admin.token,
    });
    expect(unknown.status).toBe(404);
    const owed = await refundOwed();
    for (const role of ["gate", "pos", "analyst"] as const) {
      const staff = await operatorToken([role]);
      const refused = await callStripeApp<Problem>(
        "POST",
        `/admin/payments/${owed.session.payment_intent}/refund`,
        {
          token: staff.token,
        },
      );
      expect(refused.status).toBe(403);
      expect(refused.body.code).toBe("forbidden");
    }
    expect(stripe.refunds.size).toBe(0);
  });

  it("Stripe down leaves the refund requested; the next press makes it, once", async ({ expect }) => {
    const { session } = await refundOwed();
    const admin = await operatorToken(["admin"]);
    stripe.failNext = 10;
    const down = await callStripeApp<Problem>("POST", `/admin/payments/${session.payment_intent}/refund`, {
      token: admin.token,
    });
    expect(down.status).toBe(502);
    expect(down.body.code).toBe("payment_provider_error");
    stripe.failNext = 0;
    const up = await callStripeApp<{ status: string }>(
      "POST",
      `/admin/payments/${session.payment_intent}/refund`,
      {
        token: admin.token,
      },
    );
    expect(up.body.status).toBe("issued");
    expect(stripe.refunds.size).toBe(1);
    // The attempt Stripe could not be reached for is not replayed: the refund went under the next key.
    expect(
      stripe.requests
        .filter((request) => request.path === "/v1/refunds" && request.method === "POST")
        .map((r) => r.idempotencyKey),
    ).toEqual([`refund:${session.payment_intent}:2`]);
  });
});

describe("a refund Stripe refuses", () => {
  it("is failed with Stripe's reason; asking again tries again under a new key, and adopts a made refund", async ({
    expect,
  }) => {
    const product = await seedProduct({ sellable: 50, price_cents: 1_100 });
    const order = await pendingOrder(uniqueUser(), [{ product_id: product.id, quantity: 1 }]);
    await callStripeApp("POST", `/orders/${order.order_id}/checkout`, { token: order.token });
    const [session] = stripe.sessionFor(order.order_id);
    if (!session) throw new Error("no session");
    await callStripeApp("POST", `/orders/${order.order_id}/cancel`, { token: order.token });
    await deliverStripe(stripe.completed(session));
    const admin = await operatorToken(["admin"]);
    const press = () =>
      callStripeApp<{ status: string; failure: string | null; provider_refund_id: string | null }>(
        "POST",
        `/admin/payments/${session.payment_intent}/refund`,
        { token: admin.token },
      );

    stripe.refuseNextRefund = "balance_insufficient";
    const refused = await press();
    expect(refused.body).toMatchObject({ status: "failed", provider_refund_id: null });
    expect(refused.body.failure).toContain("balance_insufficient");
    const retried = await press();
    expect(retried.body.status).toBe("issued");
    expect(stripe.refunds.size).toBe(1);
    expect(
      stripe.requests
        .filter((request) => request.path === "/v1/refunds" && request.method === "POST")
        .map((r) => r.idempotencyKey),
    ).toEqual([`refund:${session.payment_intent}:1`, `refund:${session.payment_intent}:2`]);
  });
});

describe("POST /admin/payments/{payment_id}/refund with the standard gateway", () => {
  it("records a refund made in the gateway's dashboard, once, and calls no API", async ({ expect }) => {
    const { deliver, paymentFor } = await import("../support/webhooks");
    const product = await seedProduct({ sellable: 5, price_cents: 1_000 });
    const order = await pendingOrder(uniqueUser(), [{ product_id: product.id, quantity: 1 }]);
    await callJson("POST", `/orders/${order.order_id}/cancel`, { token: order.token });
    const payment = paymentFor(order);
    expect((await deliver(payment)).body).toMatchObject({ outcome: "ignored" });
    const admin = await operatorToken(["admin"]);
    const recorded = await callJson<{ status: string; provider: string; note: string; requested_by: string }>(
      "POST",
      `/admin/payments/${payment.payment_id}/refund`,
      { token: admin.token, body: { note: "refunded in the gateway, ref 8812" } },
    );
    expect(recorded.status).toBe(200);
    expect(recorded.body).toMatchObject({
      status: "recorded",
      provider: "standard",
      note: "refunded in the gateway, ref 8812",
      requested_by: admin.operatorId,
    });
    const again = await callJson<{ status: string; note: string }>(
      "POST",
      `/admin/payments/${payment.payment_id}/refund`,
      { token: admin.token, body: { note: "a second note is not kept" } },
    );
    expect(again.body).toMatchObject({ status: "recorded", note: "refunded in the gateway, ref 8812" });
    expect(stripe.requests).toEqual([]);
  });
});

describe("closing the pages of orders that can no longer be paid (every-minute cron)", () => {
  it("closes an expired or failed order's page at Stripe once, marks a paid one closed without a call", async ({
    expect,
  }) => {
    const config = loadConfig(stripeEnv);
    const provider = await hostedPaymentProvider(config);
    if (!provider) throw new Error("stripe not configured");
    // Earlier tests' pages are swept first, so that this one's counts are its own.
    while ((await closeLapsedCheckouts(db(), provider, new Date())).closed > 0);

    const letGo = await orderWithCheckout();
    await callStripeApp("POST", `/orders/${letGo.order.order_id}/cancel`, { token: letGo.order.token });
    const paid = await orderWithCheckout();
    await deliverStripe(stripe.completed(paid.session));
    const open = await orderWithCheckout();
    const callsBefore = stripe.requests.length;

    expect(await closeLapsedCheckouts(db(), provider, new Date())).toEqual({ closed: 2, failed: 0 });
    expect(stripe.sessions.get(letGo.session.id)?.status).toBe("expired");
    expect(stripe.sessions.get(open.session.id)?.status).toBe("open");
    expect(stripe.requests.slice(callsBefore).map((request) => request.path)).toEqual([
      `/v1/checkout/sessions/${letGo.session.id}/expire`,
    ]);
    // Closed pages are not looked at again.
    expect(await closeLapsedCheckouts(db(), provider, new Date())).toEqual({ closed: 0, failed: 0 });

    // Stripe down: the page stays open here and is closed at the next sweep.
    const later = await orderWithCheckout();
    await callStripeApp("POST", `/orders/${later.order.order_id}/cancel`, { token: later.order.token });
    stripe.failNext = 10;
    expect(await closeLapsedCheckouts(db(), provider, new Date())).toEqual({ closed: 0, failed: 1 });
    stripe.failNext = 0;
    expect(await closeLapsedCheckouts(db(), provider, new Date())).toEqual({ closed: 1, failed: 0 });
    expect(stripe.sessions.get(later.session.id)?.status).toBe("expired");
  });
});

describe("when an order's page stops taking money", () => {
  it("is the hold's end plus Stripe's 30-minute minimum, cut to Stripe's 24-hour maximum", async ({
    expect,
  }) => {
    const created = "2026-12-01T10:00:00.000Z";
    const minute = 60_000;
    const short = orderCheckoutExpiry({ created_at: created, expires_at: "2026-12-01T10:15:00.000Z" });
    expect(short.toISOString()).toBe(
      new Date(Date.parse("2026-12-01T10:15:00.000Z") + 31 * minute).toISOString(),
    );
    const dayLong = orderCheckoutExpiry({ created_at: created, expires_at: "2026-12-02T10:00:00.000Z" });
    expect(dayLong.toISOString()).toBe(
      new Date(Date.parse(created) + 24 * 60 * minute - 5 * minute).toISOString(),
    );
  });
});
