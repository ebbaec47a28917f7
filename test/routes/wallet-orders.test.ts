import { env } from "cloudflare:workers";
import { eq } from "drizzle-orm";
import { describe, it } from "vitest";
import { CRON_EVERY_MINUTE } from "../../src/cron";
import { EXPIRY_SWEEP_BATCH, findOrderWithItems, sweepExpiredOrders } from "../../src/db/orders";
import { orders, outbox, payments, products } from "../../src/db/schema";
import { releaseCreditsOfUnpaidOrders } from "../../src/services/order-credits";
import { settleOrderPayment } from "../../src/services/settle-order-payment";
import { db, seedProduct } from "../support/fixtures";
import { callJson } from "../support/http";
import {
  deduct,
  fundedWallet,
  orderCreditsOf,
  posTill,
  storedWallet,
  timeOutOrderCredits,
  topUp,
  walletOf,
  walletQr,
} from "../support/wallet";
import { deliver, newMessageId, type PendingOrder, paymentFor } from "../support/webhooks";
import { runCron } from "../support/worker";

interface OrderBody extends PendingOrder {
  total_cents: number;
  credits_applied_cents: number;
  code?: string;
  balance_cents?: number;
  available_cents?: number;
}

const PRICE_CENTS = 2_500;

async function creditOrder(
  token: string,
  productId: string,
  creditsCents: number,
  key = crypto.randomUUID(),
) {
  const response = await callJson<OrderBody>("POST", "/orders", {
    token,
    idempotencyKey: key,
    body: { items: [{ product_id: productId, quantity: 1 }], credits_cents: creditsCents },
  });
  return { ...response, body: { ...response.body, token } };
}

const holdOf = orderCreditsOf;

async function orderStatus(orderId: string) {
  return (await findOrderWithItems(db(), orderId))?.row.status;
}

async function inventoryOf(productId: string) {
  const row = await db().query.products.findFirst({ where: eq(products.id, productId) });
  return { reserved: row?.reserved, sold: row?.sold };
}

/** Runs the sweep until it finds nothing more to expire at `now` (other tests' lapsed orders included). */
async function sweepAt(now: Date) {
  while ((await sweepExpiredOrders(db(), now, EXPIRY_SWEEP_BATCH)) > 0);
}

const later = (order: { expires_at: string }) => new Date(Date.parse(order.expires_at) + 60_000);

describe("POST /orders with credits covering the whole total", () => {
  it("is PAID at once: tickets visible, one DEDUCT referencing the order, inventory sold", async ({
    expect,
  }) => {
    const product = await seedProduct({ price_cents: PRICE_CENTS, sellable: 5 });
    const { userId, token } = await fundedWallet(3_000);
    const created = await creditOrder(token, product.id, PRICE_CENTS);
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      status: "PAID",
      total_cents: PRICE_CENTS,
      credits_applied_cents: PRICE_CENTS,
      amount_due_cents: 0,
    });
    const orderId = created.body.order_id;
    const mine = await callJson<{ tickets: { order_id: string }[] }>("GET", "/my/tickets", { token });
    expect(mine.body.tickets.filter((ticket) => ticket.order_id === orderId)).toHaveLength(1);
    expect(await inventoryOf(product.id)).toEqual({ reserved: 0, sold: 1 });
    const stored = await storedWallet(userId);
    const deducts = stored.ledger.filter((row) => row.type === "DEDUCT");
    expect(deducts).toEqual([
      expect.objectContaining({
        reference: orderId,
        amountCents: PRICE_CENTS,
        idempotencyKey: `order:${orderId}`,
      }),
    ]);
    expect(stored).toMatchObject({ balanceCents: 500, heldCents: 0, ledgerSumCents: 500 });
    expect((await callJson<OrderBody>("GET", `/orders/${orderId}`, { token })).body.status).toBe("PAID");
    const paid = await db().query.outbox.findFirst({ where: eq(outbox.id, `order.paid:${orderId}`) });
    expect(paid?.sentAt).toBeTruthy();
    // Paid already: a card payment for it is ignored and flagged.
    const late = await deliver<{ outcome: string }>(paymentFor({ ...created.body, amount_due_cents: 0 }));
    expect(late.body.outcome).toBe("ignored");
  });

  it("more than the available credit → 402 with the balance, stored as the key's outcome; nothing written", async ({
    expect,
  }) => {
    const product = await seedProduct({ price_cents: PRICE_CENTS, sellable: 5 });
    const { userId, token } = await fundedWallet(1_000);
    const key = crypto.randomUUID();
    const short = await creditOrder(token, product.id, PRICE_CENTS, key);
    expect(short.status).toBe(402);
    expect(short.body).toMatchObject({
      code: "insufficient_funds",
      balance_cents: 1_000,
      available_cents: 1_000,
    });
    await topUp(userId, 5_000);
    const retried = await creditOrder(token, product.id, PRICE_CENTS, key);
    expect(retried.status).toBe(402);
    expect(retried.headers.get("idempotent-replayed")).toBe("true");
    expect(await inventoryOf(product.id)).toEqual({ reserved: 0, sold: 0 });
    expect((await storedWallet(userId)).heldCents).toBe(0);

    const tooMuch = await creditOrder(token, product.id, PRICE_CENTS + 1);
    expect(tooMuch).toMatchObject({ status: 400, body: { code: "validation_failed" } });
    for (const credits of [0, -1, 1.5]) {
      expect((await creditOrder(token, product.id, credits)).status, String(credits)).toBe(400);
    }
  });
});

describe("POST /orders with credits covering part of the total", () => {
  it("holds the credits; the card payment posts the hold inside the PAID batch", async ({ expect }) => {
    const product = await seedProduct({ price_cents: PRICE_CENTS, sellable: 5 });
    const { userId, token } = await fundedWallet(1_500);
    const created = await creditOrder(token, product.id, 1_000);
    expect(created.body).toMatchObject({
      status: "PENDING_PAYMENT",
      credits_applied_cents: 1_000,
      amount_due_cents: 1_500,
    });
    expect(await walletOf(token)).toMatchObject({
      balance_cents: 1_500,
      held_cents: 1_000,
      available_cents: 500,
    });
    expect((await holdOf(created.body.order_id))?.status).toBe("PENDING");

    // The gateway is asked for amount_due_cents, not the total.
    const wrong = await deliver(paymentFor({ ...created.body, amount_due_cents: PRICE_CENTS }));
    expect(wrong).toMatchObject({
      status: 422,
      body: { code: "amount_mismatch", expected_amount_cents: 1_500 },
    });
    const paid = await deliver<{ outcome: string }>(paymentFor(created.body));
    expect(paid.body.outcome).toBe("processed");
    expect(await orderStatus(created.body.order_id)).toBe("PAID");
    expect((await holdOf(created.body.order_id))?.status).toBe("POSTED");
    const stored = await storedWallet(userId);
    expect(stored).toMatchObject({
      balanceCents: 500,
      heldCents: 0,
      ledgerSumCents: 500,
    });
    expect(stored.ledger.filter((row) => row.type === "DEDUCT")).toEqual([
      expect.objectContaining({
        reference: created.body.order_id,
        amountCents: 1_000,
        createdBy: "system:payments",
      }),
    ]);
    // A redelivery posts nothing more.
    expect((await deliver<{ outcome: string }>(paymentFor(created.body))).body.outcome).toBe("ignored");
    expect((await storedWallet(userId)).ledger.filter((row) => row.type === "DEDUCT")).toHaveLength(1);
  });

  it("FAILED voids the hold in the settlement batch", async ({ expect }) => {
    const product = await seedProduct({ price_cents: PRICE_CENTS, sellable: 5 });
    const { userId, token } = await fundedWallet(1_000);
    const created = await creditOrder(token, product.id, 800);
    const failed = await deliver<{ outcome: string }>(paymentFor(created.body, { status: "FAILED" }));
    expect(failed.body.outcome).toBe("processed");
    expect(await orderStatus(created.body.order_id)).toBe("PAYMENT_FAILED");
    expect((await holdOf(created.body.order_id))?.status).toBe("VOIDED");
    expect(await storedWallet(userId)).toMatchObject({
      balanceCents: 1_000,
      heldCents: 0,
      ledgerSumCents: 1_000,
    });
    expect(await inventoryOf(product.id)).toEqual({ reserved: 0, sold: 0 });
  });

  it("expiry voids the hold: with the cron's sweep, at the timeout after a bare sweep, at once after a late payment", async ({
    expect,
  }) => {
    const product = await seedProduct({ price_cents: PRICE_CENTS, sellable: 10 });
    const { userId, token } = await fundedWallet(3_000);
    const swept = [
      await creditOrder(token, product.id, 700),
      await creditOrder(token, product.id, 900),
      await creditOrder(token, product.id, 1_100),
    ];
    expect((await storedWallet(userId)).heldCents).toBe(2_700);

    await sweepAt(later(swept[2]?.body ?? { expires_at: "" }));
    // The sweep alone writes D1 only; the wallet's object voids each at its timeout, once D1 says EXPIRED.
    for (const order of swept) expect((await holdOf(order.body.order_id))?.status).toBe("PENDING");
    await timeOutOrderCredits(userId);
    for (const order of swept) {
      expect(await orderStatus(order.body.order_id)).toBe("EXPIRED");
      expect((await holdOf(order.body.order_id))?.status).toBe("VOIDED");
    }
    expect(await storedWallet(userId)).toMatchObject({ balanceCents: 3_000, heldCents: 0 });

    // The cron's sweep releases the credits of what it expired in the same run, not at the timeout.
    const viaCron = await creditOrder(token, product.id, 1_000);
    await runCron(CRON_EVERY_MINUTE, later(viaCron.body).getTime());
    expect((await holdOf(viaCron.body.order_id))?.status).toBe("VOIDED");

    const viaWebhook = await creditOrder(token, product.id, 1_000);
    const outcome = await settleOrderPayment(
      { db: db(), events: env.EVENTS, wallets: env.WALLETS },
      { webhookId: newMessageId(), event: paymentFor(viaWebhook.body), receivedAt: later(viaWebhook.body) },
    );
    expect(outcome).toEqual({ ok: true, outcome: "ignored" });
    expect((await holdOf(viaWebhook.body.order_id))?.status).toBe("VOIDED");
    expect(await storedWallet(userId)).toMatchObject({
      balanceCents: 3_000,
      heldCents: 0,
      ledgerSumCents: 3_000,
    });
  });

  it("holds compete for the balance like deductions: parallel orders never hold more than it", async ({
    expect,
  }) => {
    const product = await seedProduct({ price_cents: PRICE_CENTS, sellable: 50 });
    const { userId, token } = await fundedWallet(1_000);
    const results = await Promise.all(Array.from({ length: 6 }, () => creditOrder(token, product.id, 300)));
    expect(results.filter((r) => r.status === 201)).toHaveLength(3);
    expect(results.filter((r) => r.status === 402)).toHaveLength(3);
    expect(await storedWallet(userId)).toMatchObject({
      balanceCents: 1_000,
      heldCents: 900,
    });
    expect(await inventoryOf(product.id)).toEqual({ reserved: 3, sold: 0 });
    // Held credit is not spendable at a till either.
    const till = await posTill();
    const refused = await deduct(till, await walletQr(token), 101);
    expect(refused.body).toMatchObject({
      code: "insufficient_funds",
      balance_cents: 1_000,
      available_cents: 100,
    });
    expect((await deduct(till, await walletQr(token), 100)).status).toBe(201);
  });
});

describe("a hold is resolved exactly once", () => {
  it("a late delivery that loses the race to the order's payment leaves its credits to that payment", async ({
    expect,
  }) => {
    const product = await seedProduct({ price_cents: PRICE_CENTS, sellable: 10 });
    const { userId, token } = await fundedWallet(3_000);
    const order = (await creditOrder(token, product.id, 700)).body;
    // The payment's call to the wallet is lost after its batch committed: the transfer's timeout must post.
    const lostCall = {
      idFromName: (name: string) => env.WALLETS.idFromName(name),
      get: () => ({ resolveOrderCredits: () => Promise.reject(new Error("connection lost")) }),
    } as unknown as typeof env.WALLETS;
    const payment = () =>
      settleOrderPayment(
        { db: db(), events: env.EVENTS, wallets: lostCall },
        {
          webhookId: newMessageId(),
          event: paymentFor(order),
          receivedAt: new Date(Date.parse(order.expires_at) - 1_000),
        },
      );
    // A late FAILED reads the order PENDING and past its deadline; the payment commits PAID right before
    // the late delivery's expiry batch, which then finds the order settled.
    const base = db();
    let batches = 0;
    let raced = false;
    const racing = new Proxy(base, {
      get(target, property) {
        if (property === "batch") {
          return async (statements: Parameters<typeof base.batch>[0]) => {
            // The first batch is its read of the order (one snapshot); the second its expiry.
            if (++batches === 2) {
              raced = true;
              expect(await payment()).toEqual({ ok: true, outcome: "processed" });
            }
            return target.batch(statements);
          };
        }
        const value = Reflect.get(target, property, target);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    const late = await settleOrderPayment(
      { db: racing, events: env.EVENTS, wallets: env.WALLETS },
      { webhookId: newMessageId(), event: paymentFor(order, { status: "FAILED" }), receivedAt: later(order) },
    );
    expect(raced).toBe(true);
    expect(late).toEqual({ ok: true, outcome: "ignored" });
    expect(await orderStatus(order.order_id)).toBe("PAID");
    expect((await holdOf(order.order_id))?.status).toBe("PENDING");
    await timeOutOrderCredits(userId);
    expect((await holdOf(order.order_id))?.status).toBe("POSTED");
    expect(await storedWallet(userId)).toMatchObject({
      balanceCents: 2_300,
      heldCents: 0,
      ledgerSumCents: 2_300,
    });
  });

  it("FAILED racing the expiry sweep: one of them wins, the hold is voided once", async ({ expect }) => {
    const product = await seedProduct({ price_cents: PRICE_CENTS, sellable: 20 });
    const { userId, token } = await fundedWallet(5_000);
    for (let round = 0; round < 4; round++) {
      const created = await creditOrder(token, product.id, 1_000);
      const [failed] = await Promise.all([
        deliver<{ outcome: string }>(paymentFor(created.body, { status: "FAILED" })),
        sweepAt(later(created.body)),
      ]);
      const status = await orderStatus(created.body.order_id);
      expect(["PAYMENT_FAILED", "EXPIRED"]).toContain(status);
      expect(failed.body.outcome).toBe(status === "PAYMENT_FAILED" ? "processed" : "ignored");
      expect((await holdOf(created.body.order_id))?.status).toBe("VOIDED");
      expect(await storedWallet(userId)).toMatchObject({ balanceCents: 5_000, heldCents: 0 });
    }
  });

  it("SUCCESS racing the expiry sweep: posted or voided, never both", async ({ expect }) => {
    const product = await seedProduct({ price_cents: PRICE_CENTS, sellable: 20 });
    const { userId, token } = await fundedWallet(8_000);
    let balance = 8_000;
    for (let round = 0; round < 4; round++) {
      const created = await creditOrder(token, product.id, 1_000);
      const payment = paymentFor(created.body);
      const [paid] = await Promise.all([deliver<{ outcome: string }>(payment), sweepAt(later(created.body))]);
      const status = await orderStatus(created.body.order_id);
      const hold = await holdOf(created.body.order_id);
      const stored = await storedWallet(userId);
      const deducts = stored.ledger.filter((row) => row.reference === created.body.order_id);
      if (status === "PAID") {
        balance -= 1_000;
        expect(paid.body.outcome).toBe("processed");
        expect(hold?.status).toBe("POSTED");
        expect(deducts).toHaveLength(1);
      } else {
        expect(status).toBe("EXPIRED");
        expect(paid.body.outcome).toBe("ignored");
        expect(hold?.status).toBe("VOIDED");
        expect(deducts).toHaveLength(0);
        const row = await db().query.payments.findFirst({
          where: eq(payments.paymentId, payment.payment_id),
        });
        expect(row?.needsRefund).toBe(true);
      }
      expect(stored).toMatchObject({ balanceCents: balance, heldCents: 0, ledgerSumCents: balance });
    }
  });
});

describe("order credits and tills share one wallet", () => {
  it("a held order's credits are out of every till's reach; a failed payment gives them back at once", async ({
    expect,
  }) => {
    const product = await seedProduct({ price_cents: PRICE_CENTS, sellable: 5 });
    const { userId, token } = await fundedWallet(3_000);
    const till = await posTill();
    const created = await creditOrder(token, product.id, 2_000);
    expect(created.body).toMatchObject({ status: "PENDING_PAYMENT", credits_applied_cents: 2_000 });
    expect((await deduct(till, await walletQr(token), 1_001)).body).toMatchObject({
      code: "insufficient_funds",
      available_cents: 1_000,
    });
    expect((await deduct(till, await walletQr(token), 1_000)).status).toBe(201);
    expect(await storedWallet(userId)).toMatchObject({ balanceCents: 2_000, heldCents: 2_000 });

    const failed = await deliver<{ outcome: string }>(paymentFor(created.body, { status: "FAILED" }));
    expect(failed.body.outcome).toBe("processed");
    // The object had not seen the void; refusing makes it look, and the money is there.
    expect((await deduct(till, await walletQr(token), 2_000)).status).toBe(201);
    expect(await storedWallet(userId)).toMatchObject({ balanceCents: 0, heldCents: 0, ledgerSumCents: 0 });
  });

  it("tills and an order racing for the last credit never overdraw: D1 agrees with every answer", async ({
    expect,
  }) => {
    const product = await seedProduct({ price_cents: PRICE_CENTS, sellable: 5 });
    const { userId, token } = await fundedWallet(2_000);
    const till = await posTill();
    const qrs = await Promise.all(Array.from({ length: 4 }, () => walletQr(token)));
    const [order, ...deductions] = await Promise.all([
      creditOrder(token, product.id, 1_500),
      ...qrs.map((qr) => deduct(till, qr, 500)),
    ]);
    const deducted = deductions.filter((d) => d.status === 201).length * 500;
    const held = order?.status === 201 ? 1_500 : 0;
    expect(deducted + held).toBeLessThanOrEqual(2_000);
    // Every refusal was a real one: what was left could not cover it.
    for (const d of deductions.filter((d) => d.status !== 201))
      expect(d.body.code).toBe("insufficient_funds");
    if (order?.status !== 201) expect(order?.body.code).toBe("insufficient_funds");
    expect(await storedWallet(userId)).toMatchObject({
      balanceCents: 2_000 - deducted,
      heldCents: held,
      ledgerSumCents: 2_000 - deducted,
    });
  });
  it("an order refused after its credits were reserved (sold out) gives them back at once, not at expiry", async ({
    expect,
  }) => {
    const product = await seedProduct({ price_cents: PRICE_CENTS, sellable: 0 });
    const { userId, token } = await fundedWallet(3_000);
    const refused = await creditOrder(token, product.id, 2_000);
    expect(refused).toMatchObject({ status: 409, body: { code: "sold_out" } });
    const till = await posTill();
    expect((await deduct(till, await walletQr(token), 3_000)).status).toBe(201);
    expect(await storedWallet(userId)).toMatchObject({ balanceCents: 0, heldCents: 0, ledgerSumCents: 0 });
  });
});

describe("the cron's release of expired orders' credits", () => {
  it("never voids the credits of an order a payment settled PAID in the same moment", async ({ expect }) => {
    const product = await seedProduct({ price_cents: PRICE_CENTS, sellable: 5 });
    const { userId, token } = await fundedWallet(3_000);
    const order = await creditOrder(token, product.id, 1_000);
    // The payment settles the order PAID in D1 but its call to post the credits is lost (a crash).
    await db().update(orders).set({ status: "PAID" }).where(eq(orders.id, order.body.order_id));
    // The release sees D1's PAID and leaves the pending transfer alone...
    await releaseCreditsOfUnpaidOrders(env.WALLETS, db(), [order.body.order_id]);
    expect((await holdOf(order.body.order_id))?.status).toBe("PENDING");
    // ...and the transfer's timeout, asking D1 again, posts it.
    await timeOutOrderCredits(userId);
    expect((await holdOf(order.body.order_id))?.status).toBe("POSTED");
    expect(await storedWallet(userId)).toMatchObject({
      balanceCents: 2_000,
      heldCents: 0,
      ledgerSumCents: 2_000,
    });
  });
});
