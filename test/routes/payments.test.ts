import { env } from "cloudflare:workers";
import { count, eq } from "drizzle-orm";
import fc from "fast-check";
import { describe, it } from "vitest";
import { CRON_EVERY_MINUTE } from "../../src/cron";
import { findOrderWithItems } from "../../src/db/orders";
import { outbox, paymentReviews, payments, products, tickets } from "../../src/db/schema";
import type { EventMessage } from "../../src/queues/messages";
import { settleOrderPayment } from "../../src/services/settle-order-payment";
import { db, seedProduct } from "../support/fixtures";
import { callJson } from "../support/http";
import { uniqueUser } from "../support/tokens";
import {
  deliver,
  newMessageId,
  newPaymentId,
  type PaymentBody,
  paymentFor,
  pendingOrder,
  signatureHeaders,
} from "../support/webhooks";
import { runCron } from "../support/worker";

interface Receipt {
  received: boolean;
  outcome: "processed" | "duplicate" | "ignored";
}

async function inventoryOf(productId: string) {
  const row = await db().query.products.findFirst({ where: eq(products.id, productId) });
  if (!row) throw new Error("no product");
  return { sellable: row.sellable, reserved: row.reserved, sold: row.sold };
}

async function orderStatus(orderId: string) {
  return (await findOrderWithItems(db(), orderId))?.row.status;
}

async function ticketCount(orderId: string) {
  const [row] = await db().select({ n: count() }).from(tickets).where(eq(tickets.orderId, orderId));
  return row?.n ?? 0;
}

describe("POST /payments/webhook: exactly once", () => {
  it("20 parallel deliveries of one payment: one processed, 19 duplicates, tickets issued once", async ({
    expect,
  }) => {
    const product = await seedProduct({ sellable: 10 });
    const buyer = uniqueUser();
    const order = await pendingOrder(buyer, [{ product_id: product.id, quantity: 3 }]);
    const payment = paymentFor(order);
    const sharedMessageId = newMessageId();
    // Half are redeliveries of one message (same webhook-id); half are the same payment under new ids.
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        deliver<Receipt>(payment, { msgId: i % 2 === 0 ? sharedMessageId : newMessageId() }),
      ),
    );
    for (const result of results) expect(result.status).toBe(200);
    const outcomes = results.map((result) => result.body.outcome);
    expect(outcomes.filter((outcome) => outcome === "processed")).toHaveLength(1);
    expect(outcomes.filter((outcome) => outcome === "duplicate")).toHaveLength(19);

    expect(await orderStatus(order.order_id)).toBe("PAID");
    expect(await ticketCount(order.order_id)).toBe(3);
    expect(await inventoryOf(product.id)).toEqual({ sellable: 10, reserved: 0, sold: 3 });
    const recorded = await db().select().from(payments).where(eq(payments.reference, order.order_id));
    expect(recorded).toHaveLength(1);
    expect(recorded[0]).toMatchObject({ outcome: "processed", needsRefund: false, status: "SUCCESS" });

    // Visible as soon as the 200 has returned.
    const mine = await callJson<{ tickets: { order_id: string }[] }>("GET", "/my/tickets", {
      token: order.token,
    });
    expect(mine.body.tickets.filter((ticket) => ticket.order_id === order.order_id)).toHaveLength(3);

    // The follow-up event was committed with the issuance and sent after it.
    const event = await db().query.outbox.findFirst({ where: eq(outbox.id, `order.paid:${order.order_id}`) });
    expect(event?.sentAt).toBeTruthy();
    expect(JSON.parse(event?.payload ?? "{}")).toMatchObject({
      type: "order.paid",
      order_id: order.order_id,
    });
  });

  it("a redelivery after the payment was processed is a duplicate and changes nothing", async ({
    expect,
  }) => {
    const product = await seedProduct({ sellable: 5 });
    const order = await pendingOrder(uniqueUser(), [{ product_id: product.id, quantity: 2 }]);
    const payment = paymentFor(order);
    const msgId = newMessageId();
    expect((await deliver<Receipt>(payment, { msgId })).body.outcome).toBe("processed");
    expect((await deliver<Receipt>(payment, { msgId })).body).toEqual({
      received: true,
      outcome: "duplicate",
    });
    expect((await deliver<Receipt>(payment)).body.outcome).toBe("duplicate");
    expect(await ticketCount(order.order_id)).toBe(2);
    expect(await inventoryOf(product.id)).toEqual({ sellable: 5, reserved: 0, sold: 2 });
  });

  it("a second, different payment for a paid order is ignored and flagged for refund", async ({ expect }) => {
    const product = await seedProduct({ sellable: 5 });
    const order = await pendingOrder(uniqueUser(), [{ product_id: product.id, quantity: 1 }]);
    expect((await deliver<Receipt>(paymentFor(order))).body.outcome).toBe("processed");
    const second = paymentFor(order);
    expect((await deliver<Receipt>(second)).body.outcome).toBe("ignored");
    const row = await db().query.payments.findFirst({ where: eq(payments.paymentId, second.payment_id) });
    expect(row).toMatchObject({ outcome: "ignored", needsRefund: true });
    expect(await ticketCount(order.order_id)).toBe(1);
  });
});

describe("POST /payments/webhook: signatures", () => {
  /** `options` is called right before sending, so timestamps are measured from the request. */
  async function signedCase(options: () => Parameters<typeof deliver>[1]) {
    const product = await seedProduct({ sellable: 5 });
    const order = await pendingOrder(uniqueUser(), [{ product_id: product.id, quantity: 1 }]);
    const response = await deliver<Record<string, unknown>>(paymentFor(order), options());
    return { response, order };
  }

  // Options are built when each test runs: timestamps computed at collection time would drift.
  const refused: [string, () => Parameters<typeof deliver>[1]][] = [
    ["one changed byte in the body", () => ({ tamper: (body) => body.replace('"SUCCESS"', '"SUCCESs"') })],
    ["a stale timestamp (305 s old)", () => ({ date: new Date(Date.now() - 305_000) })],
    ["a future timestamp (305 s ahead)", () => ({ date: new Date(Date.now() + 305_000) })],
    ["a far-future timestamp", () => ({ date: new Date(Date.now() + 24 * 3_600_000) })],
    ["the wrong secret", () => ({ secret: `whsec_${btoa("not-the-configured-secret-at-all")}` })],
    ["only unknown versions", () => ({ signature: (valid) => valid.replace("v1,", "v2,") })],
    ["a v1 entry without a value", () => ({ signature: () => "v1," })],
    ["a garbage header", () => ({ signature: () => "not a signature" })],
    ["a truncated signature", () => ({ signature: (valid) => valid.slice(0, -4) })],
  ];
  for (const [name, options] of refused) {
    it(`401 signature_invalid for ${name}; the order is untouched`, async ({ expect }) => {
      const { response, order } = await signedCase(options);
      expect(response.status).toBe(401);
      expect(response.body).toMatchObject({ code: "signature_invalid", status: 401 });
      expect(response.headers.get("content-type")).toContain("application/problem+json");
      expect(await orderStatus(order.order_id)).toBe("PENDING_PAYMENT");
    });
  }

  it("401 when any of the three headers is missing", async ({ expect }) => {
    const product = await seedProduct();
    const order = await pendingOrder(uniqueUser(), [{ product_id: product.id, quantity: 1 }]);
    const body = JSON.stringify(paymentFor(order));
    const headers = signatureHeaders(body);
    for (const missing of ["webhook-id", "webhook-timestamp", "webhook-signature"]) {
      const partial = Object.fromEntries(Object.entries(headers).filter(([name]) => name !== missing));
      const response = await callJson("POST", "/payments/webhook", { rawBody: body, headers: partial });
      expect(response.status, missing).toBe(401);
      expect(response.body).toMatchObject({ code: "signature_invalid" });
    }
  });

  it("a timestamp inside the tolerance either way is accepted", async ({ expect }) => {
    for (const offsetMs of [-290_000, 290_000]) {
      const { response } = await signedCase(() => ({ date: new Date(Date.now() + offsetMs) }));
      expect(response.status, String(offsetMs)).toBe(200);
    }
  });

  it("one good v1 among bad and unknown-version entries is enough", async ({ expect }) => {
    const { response, order } = await signedCase(() => ({
      signature: (valid) => {
        const [, good] = valid.split(",");
        return `v1,${btoa("x".repeat(32))} v2,${good} v1a,${good} ${valid} v1,${btoa("y".repeat(32))}`;
      },
    }));
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ received: true, outcome: "processed" });
    expect(await orderStatus(order.order_id)).toBe("PAID");
  });

  it("the signature is checked before the body is parsed", async ({ expect }) => {
    const unsigned = await callJson("POST", "/payments/webhook", {
      rawBody: "{not json",
      headers: { "content-type": "application/json" },
    });
    expect(unsigned.status).toBe(401);
    const signed = await deliver("{not json");
    expect(signed.status).toBe(400);
    expect(signed.body).toMatchObject({ code: "invalid_json" });
  });

  it("a signed body that breaks the schema is 400 validation_failed with the failing fields", async ({
    expect,
  }) => {
    const base: PaymentBody = {
      payment_id: newPaymentId(),
      reference: "ord_x",
      status: "SUCCESS",
      amount_cents: 100,
      currency: "EUR",
    };
    const cases: [unknown, string][] = [
      [{ ...base, status: "PENDING" }, "status"],
      [{ ...base, amount_cents: 12.5 }, "amount_cents"],
      [{ ...base, amount_cents: -1 }, "amount_cents"],
      [{ ...base, currency: "eur" }, "currency"],
      [{ ...base, extra: true }, "(root)"],
      [{ payment_id: base.payment_id }, "reference"],
    ];
    for (const [body, path] of cases) {
      const response = await deliver<{ code: string; errors: { path: string }[] }>(JSON.stringify(body));
      expect(response.status, JSON.stringify(body)).toBe(400);
      expect(response.body.code).toBe("validation_failed");
      expect(response.body.errors.map((error) => error.path)).toContain(path);
    }
  });

  it("validly signed arbitrary bodies never yield a 5xx", async ({ expect }) => {
    const product = await seedProduct({ sellable: 1_000 });
    const order = await pendingOrder(uniqueUser(), [{ product_id: product.id, quantity: 1 }]);
    const nearPayment = fc.record(
      {
        payment_id: fc.oneof(fc.string({ maxLength: 200 }), fc.integer(), fc.constant(null)),
        reference: fc.oneof(
          fc.constantFrom(order.order_id, "top_abc", "ord_missing", "constructor_x", "__proto__", ""),
          fc.string(),
        ),
        status: fc.oneof(fc.constantFrom("SUCCESS", "FAILED"), fc.string()),
        amount_cents: fc.oneof(fc.integer(), fc.double(), fc.constant(order.amount_due_cents)),
        currency: fc.oneof(fc.constant("EUR"), fc.string({ maxLength: 4 })),
      },
      { requiredKeys: [] },
    );
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          nearPayment.map((value) => JSON.stringify(value)),
          fc.jsonValue({ maxDepth: 3 }).map((value) => JSON.stringify(value)),
          fc.string(),
        ),
        async (body) => {
          const response = await deliver(body);
          expect(response.status, body).toBeLessThan(500);
        },
      ),
      { numRuns: 120 },
    );
  });
});

describe("POST /payments/webhook: outcomes", () => {
  it("amount or currency mismatch → 422, order still pending, recorded once for review", async ({
    expect,
  }) => {
    const product = await seedProduct({ sellable: 5 });
    const order = await pendingOrder(uniqueUser(), [{ product_id: product.id, quantity: 2 }]);
    const short = paymentFor(order, { amount_cents: order.amount_due_cents - 1 });
    for (let attempt = 0; attempt < 2; attempt++) {
      const response = await deliver(short);
      expect(response.status).toBe(422);
      expect(response.body).toMatchObject({
        code: "amount_mismatch",
        expected_amount_cents: order.amount_due_cents,
        expected_currency: "EUR",
      });
    }
    const wrongCurrency = await deliver(paymentFor(order, { currency: "USD" }));
    expect(wrongCurrency.status).toBe(422);

    expect(await orderStatus(order.order_id)).toBe("PENDING_PAYMENT");
    expect(await inventoryOf(product.id)).toEqual({ sellable: 5, reserved: 2, sold: 0 });
    expect(await ticketCount(order.order_id)).toBe(0);
    const reviews = await db()
      .select()
      .from(paymentReviews)
      .where(eq(paymentReviews.reference, order.order_id));
    expect(reviews).toHaveLength(2);
    expect(reviews.find((review) => review.paymentId === short.payment_id)).toMatchObject({
      reason: "amount_mismatch",
      amountCents: order.amount_due_cents - 1,
      expectedAmountCents: order.amount_due_cents,
    });

    // The right amount still pays the order afterwards.
    expect((await deliver<Receipt>(paymentFor(order))).body.outcome).toBe("processed");
  });

  it("FAILED → PAYMENT_FAILED and the reservation is released; a later SUCCESS is ignored", async ({
    expect,
  }) => {
    const product = await seedProduct({ sellable: 5 });
    const order = await pendingOrder(uniqueUser(), [{ product_id: product.id, quantity: 3 }]);
    expect(await inventoryOf(product.id)).toEqual({ sellable: 5, reserved: 3, sold: 0 });
    const failed = paymentFor(order, { status: "FAILED" });
    expect((await deliver<Receipt>(failed)).body.outcome).toBe("processed");
    expect((await deliver<Receipt>(failed)).body.outcome).toBe("duplicate");
    expect(await orderStatus(order.order_id)).toBe("PAYMENT_FAILED");
    expect(await inventoryOf(product.id)).toEqual({ sellable: 5, reserved: 0, sold: 0 });

    const lateSuccess = paymentFor(order);
    expect((await deliver<Receipt>(lateSuccess)).body.outcome).toBe("ignored");
    expect(await ticketCount(order.order_id)).toBe(0);
    expect(await inventoryOf(product.id)).toEqual({ sellable: 5, reserved: 0, sold: 0 });
    const row = await db().query.payments.findFirst({
      where: eq(payments.paymentId, lateSuccess.payment_id),
    });
    expect(row).toMatchObject({ outcome: "ignored", needsRefund: true });
  });

  it("FAILED for a paid order is ignored and changes nothing", async ({ expect }) => {
    const product = await seedProduct({ sellable: 5 });
    const order = await pendingOrder(uniqueUser(), [{ product_id: product.id, quantity: 1 }]);
    expect((await deliver<Receipt>(paymentFor(order))).body.outcome).toBe("processed");
    const failed = paymentFor(order, { status: "FAILED" });
    expect((await deliver<Receipt>(failed)).body.outcome).toBe("ignored");
    expect(await orderStatus(order.order_id)).toBe("PAID");
    const row = await db().query.payments.findFirst({ where: eq(payments.paymentId, failed.payment_id) });
    expect(row).toMatchObject({ outcome: "ignored", needsRefund: false });
  });

  it("SUCCESS for an order the sweep expired → ignored, recorded as needing a refund", async ({ expect }) => {
    const product = await seedProduct({ sellable: 5 });
    const order = await pendingOrder(uniqueUser(), [{ product_id: product.id, quantity: 2 }]);
    await runCron(CRON_EVERY_MINUTE, Date.parse(order.expires_at) + 60_000);
    expect(await orderStatus(order.order_id)).toBe("EXPIRED");

    const payment = paymentFor(order);
    const response = await deliver<Receipt>(payment);
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ received: true, outcome: "ignored" });
    expect((await deliver<Receipt>(payment)).body.outcome).toBe("duplicate");
    const row = await db().query.payments.findFirst({ where: eq(payments.paymentId, payment.payment_id) });
    expect(row).toMatchObject({ outcome: "ignored", needsRefund: true });
    expect(await ticketCount(order.order_id)).toBe(0);
    expect(await inventoryOf(product.id)).toEqual({ sellable: 5, reserved: 0, sold: 0 });
  });

  it("SUCCESS for a pending order whose hold has lapsed expires it first, then ignores the payment", async ({
    expect,
  }) => {
    const product = await seedProduct({ sellable: 5 });
    const order = await pendingOrder(uniqueUser(), [{ product_id: product.id, quantity: 2 }]);
    const event = paymentFor(order);
    // The route uses the wall clock; the service takes the delivery's time, so the lapse is injected here.
    const outcome = await settleOrderPayment(
      { db: db(), events: env.EVENTS, wallets: env.WALLETS },
      { webhookId: newMessageId(), event, receivedAt: new Date(Date.parse(order.expires_at) + 1_000) },
    );
    expect(outcome).toEqual({ ok: true, outcome: "ignored" });
    expect(await orderStatus(order.order_id)).toBe("EXPIRED");
    expect(await inventoryOf(product.id)).toEqual({ sellable: 5, reserved: 0, sold: 0 });
    const row = await db().query.payments.findFirst({ where: eq(payments.paymentId, event.payment_id) });
    expect(row).toMatchObject({ outcome: "ignored", needsRefund: true });
  });

  it("unknown references → 404 reference_not_found", async ({ expect }) => {
    for (const reference of [
      "ord_doesnotexist",
      "top_notyetrouted",
      "constructor_x",
      "__proto__",
      "nonsense",
    ]) {
      const response = await deliver({
        payment_id: newPaymentId(),
        reference,
        status: "SUCCESS",
        amount_cents: 100,
        currency: "EUR",
      });
      expect(response.status, reference).toBe(404);
      expect(response.body).toMatchObject({ code: "reference_not_found" });
    }
  });
});

describe("outbox: events survive a failed send", () => {
  it("a failed queue send does not fail the payment; the cron drain sends it later", async ({ expect }) => {
    const product = await seedProduct({ sellable: 5 });
    const order = await pendingOrder(uniqueUser(), [{ product_id: product.id, quantity: 1 }]);
    // Fault injection: a queue that is down. Everything else is the real D1 and the real issuance.
    const downQueue = {
      send: async () => {
        throw new Error("queue unavailable");
      },
      sendBatch: async () => {
        throw new Error("queue unavailable");
      },
    } as unknown as Queue<EventMessage>;
    const paidAt = new Date();
    const outcome = await settleOrderPayment(
      { db: db(), events: downQueue, wallets: env.WALLETS },
      { webhookId: newMessageId(), event: paymentFor(order), receivedAt: paidAt },
    );
    expect(outcome).toEqual({ ok: true, outcome: "processed" });
    expect(await ticketCount(order.order_id)).toBe(1);
    const id = `order.paid:${order.order_id}`;
    expect((await db().query.outbox.findFirst({ where: eq(outbox.id, id) }))?.sentAt).toBeNull();

    await runCron(CRON_EVERY_MINUTE, paidAt.getTime() + 60_000);
    expect((await db().query.outbox.findFirst({ where: eq(outbox.id, id) }))?.sentAt).toBeTruthy();
  });
});
