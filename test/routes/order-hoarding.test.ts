import { env } from "cloudflare:workers";
import { eq, inArray } from "drizzle-orm";
import { describe, it } from "vitest";
import { CRON_EVERY_MINUTE } from "../../src/cron";
import {
  EXPIRY_SWEEP_BATCH,
  expireOrders,
  findOrderWithItems,
  sweepExpiredOrders,
} from "../../src/db/orders";
import { buyerPendingUnits, orders, products } from "../../src/db/schema";
import { db, seedProduct } from "../support/fixtures";
import { callJson } from "../support/http";
import { buyerToken, uniqueUser } from "../support/tokens";
import { fundedWallet, orderCreditsOf, storedWallet, timeOutOrderCredits } from "../support/wallet";
import { deliver, paymentFor } from "../support/webhooks";
import { runCron } from "../support/worker";

// A buyer's units in unpaid orders are capped (MAX_PENDING_UNITS_PER_BUYER), and lapsed orders give
// their stock back on the reserve path and in one cron run, however many there are.

const CAP = Number(env.MAX_PENDING_UNITS_PER_BUYER || 40);
const PRICE_CENTS = 2_500;

interface OrderBody {
  order_id: string;
  status: string;
  amount_due_cents: number;
  currency: string;
  expires_at: string;
  code?: string;
  pending_units?: number;
  requested_units?: number;
  max_pending_units?: number;
  product_id?: string;
  available?: number;
}

type Line = { product_id: string; quantity: number };

async function order(token: string, items: Line[], options: { key?: string; creditsCents?: number } = {}) {
  const response = await callJson<OrderBody>("POST", "/orders", {
    token,
    idempotencyKey: options.key ?? crypto.randomUUID(),
    body: { items, ...(options.creditsCents ? { credits_cents: options.creditsCents } : {}) },
  });
  return { ...response, body: { ...response.body, token } };
}

/** A buyer with `units` pending in orders of at most 20 units each. */
async function buyerHolding(productId: string, units: number, userId = uniqueUser("hoarder")) {
  const token = await buyerToken(userId);
  const placed: OrderBody[] = [];
  for (let left = units; left > 0; left -= 20) {
    const created = await order(token, [{ product_id: productId, quantity: Math.min(20, left) }]);
    if (created.status !== 201) throw new Error(`order failed: ${JSON.stringify(created.body)}`);
    placed.push(created.body);
  }
  return { userId, token, orders: placed };
}

async function pendingUnits(userId: string) {
  const row = await db().query.buyerPendingUnits.findFirst({ where: eq(buyerPendingUnits.userId, userId) });
  return row?.units ?? 0;
}

async function inventoryOf(productId: string) {
  const row = await db().query.products.findFirst({ where: eq(products.id, productId) });
  if (!row) throw new Error("no product");
  return { sellable: row.sellable, reserved: row.reserved, sold: row.sold };
}

async function statusOf(orderId: string) {
  return (await findOrderWithItems(db(), orderId))?.row.status;
}

/** Moves these buyers' order deadlines into the past, as if their hold had run out unswept. */
async function lapse(userIds: string[], expiresAt = new Date(Date.now() - 120_000)) {
  await db()
    .update(orders)
    .set({ expiresAt: expiresAt.toISOString() })
    .where(inArray(orders.userId, userIds));
}

describe("POST /orders: the pending-units cap", () => {
  it("one buyer fills the cap in sequence; the next unit is too_many_pending and reserves nothing", async ({
    expect,
  }) => {
    const product = await seedProduct({ sellable: 500 });
    const buyer = await buyerHolding(product.id, CAP);
    const key = crypto.randomUUID();
    const refused = await order(buyer.token, [{ product_id: product.id, quantity: 1 }], { key });
    expect(refused.status).toBe(409);
    expect(refused.body).toMatchObject({
      code: "too_many_pending",
      pending_units: CAP,
      requested_units: 1,
      max_pending_units: CAP,
    });
    expect(refused.headers.get("content-type")).toContain("application/problem+json");
    expect(await inventoryOf(product.id)).toMatchObject({ reserved: CAP });
    expect(await pendingUnits(buyer.userId)).toBe(CAP);

    // A business failure is the key's stored outcome.
    const replay = await order(buyer.token, [{ product_id: product.id, quantity: 1 }], { key });
    expect(replay.status).toBe(409);
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    expect(replay.body.code).toBe("too_many_pending");

    // One order over the cap on its own is refused too, for a buyer holding nothing.
    const fresh = await buyerToken(uniqueUser());
    const tooBig = await order(fresh, [
      { product_id: product.id, quantity: 20 },
      { product_id: (await seedProduct()).id, quantity: 20 },
      { product_id: (await seedProduct()).id, quantity: CAP - 39 },
    ]);
    expect(tooBig.status).toBe(409);
    expect(tooBig.body).toMatchObject({
      code: "too_many_pending",
      pending_units: 0,
      requested_units: CAP + 1,
    });
  });

  it("parallel orders of one buyer racing for the cap never hold more than it together", async ({
    expect,
  }) => {
    const product = await seedProduct({ sellable: 1_000 });
    const userId = uniqueUser("racer");
    const token = await buyerToken(userId);
    const quantities = Array.from({ length: 30 }, (_, i) => 1 + (i % 5));
    const results = await Promise.all(
      quantities.map((quantity) => order(token, [{ product_id: product.id, quantity }])),
    );
    let acceptedUnits = 0;
    results.forEach((result, i) => {
      if (result.status === 201) acceptedUnits += quantities[i] ?? 0;
      else {
        expect(result.status).toBe(409);
        expect(result.body).toMatchObject({ code: "too_many_pending", max_pending_units: CAP });
      }
    });
    expect(acceptedUnits).toBeLessThanOrEqual(CAP);
    // Every refusal found less room than it asked for (at most 5), and room only shrinks.
    expect(acceptedUnits).toBeGreaterThan(CAP - 5);
    expect(await inventoryOf(product.id)).toMatchObject({ reserved: acceptedUnits });
    expect(await pendingUnits(userId)).toBe(acceptedUnits);
  });

  it("paying an order or failing its payment frees its units", async ({ expect }) => {
    const product = await seedProduct({ sellable: 500 });
    const buyer = await buyerHolding(product.id, CAP);
    const [first, second] = buyer.orders;
    if (!first || !second) throw new Error("expected two orders");
    const more = () => order(buyer.token, [{ product_id: product.id, quantity: 20 }]);
    expect((await more()).body.code).toBe("too_many_pending");

    const paid = await deliver(paymentFor({ ...first, token: buyer.token }));
    expect(paid.body).toMatchObject({ outcome: "processed" });
    expect(await pendingUnits(buyer.userId)).toBe(CAP - 20);
    expect((await more()).status).toBe(201);
    expect((await more()).body.code).toBe("too_many_pending");

    const failed = await deliver(paymentFor({ ...second, token: buyer.token }, { status: "FAILED" }));
    expect(failed.body).toMatchObject({ outcome: "processed" });
    expect(await statusOf(second.order_id)).toBe("PAYMENT_FAILED");
    expect((await more()).status).toBe(201);
    expect(await pendingUnits(buyer.userId)).toBe(CAP);
    expect(await inventoryOf(product.id)).toEqual({ sellable: 500, reserved: CAP, sold: 20 });
  });

  it("another buyer is unaffected by one at the cap", async ({ expect }) => {
    const product = await seedProduct({ sellable: 500 });
    await buyerHolding(product.id, CAP);
    const other = await order(await buyerToken(uniqueUser()), [{ product_id: product.id, quantity: 20 }]);
    expect(other.status).toBe(201);
  });

  it("an order paid in full with credits is never pending: accepted at the cap, counted nowhere", async ({
    expect,
  }) => {
    const product = await seedProduct({ sellable: 500, price_cents: PRICE_CENTS });
    const { userId, token } = await fundedWallet(PRICE_CENTS * 2 + 500);
    await buyerHolding(product.id, CAP, userId);
    const paid = await order(token, [{ product_id: product.id, quantity: 2 }], {
      creditsCents: PRICE_CENTS * 2,
    });
    expect(paid.status).toBe(201);
    expect(paid.body.status).toBe("PAID");
    expect(await pendingUnits(userId)).toBe(CAP);
    expect(await inventoryOf(product.id)).toMatchObject({ reserved: CAP, sold: 2 });

    // Credits covering only part of the total leave the order pending: it counts.
    const partial = await order(token, [{ product_id: product.id, quantity: 1 }], { creditsCents: 100 });
    expect(partial.body.code).toBe("too_many_pending");
  });

  it("a buyer is not blocked by their own lapsed orders: the refused order expires them and succeeds", async ({
    expect,
  }) => {
    const product = await seedProduct({ sellable: 500 });
    const buyer = await buyerHolding(product.id, CAP);
    await lapse([buyer.userId]);
    const again = await order(buyer.token, [{ product_id: product.id, quantity: 20 }]);
    expect(again.status).toBe(201);
    for (const old of buyer.orders) expect(await statusOf(old.order_id)).toBe("EXPIRED");
    expect(await pendingUnits(buyer.userId)).toBe(20);
    expect(await inventoryOf(product.id)).toMatchObject({ reserved: 20 });
  });
});

describe("lapsed reservations are released on the reserve path", () => {
  it("an order that would be sold_out expires the lapsed orders holding the product, credit holds included", async ({
    expect,
  }) => {
    const product = await seedProduct({ sellable: 10, price_cents: PRICE_CENTS });
    const holders = await Promise.all(Array.from({ length: 4 }, () => buyerHolding(product.id, 2)));
    const withCredits = await fundedWallet(1_000);
    const credited = await order(withCredits.token, [{ product_id: product.id, quantity: 2 }], {
      creditsCents: 1_000,
    });
    expect(credited.status).toBe(201);
    expect(await inventoryOf(product.id)).toMatchObject({ reserved: 10 });

    // Still held: sold out, and nothing is expired early.
    const early = await order(await buyerToken(uniqueUser()), [{ product_id: product.id, quantity: 1 }]);
    expect(early.body).toMatchObject({ code: "sold_out", product_id: product.id, available: 0 });

    await lapse([...holders.map((holder) => holder.userId), withCredits.userId]);
    const buyer = uniqueUser();
    const bought = await order(await buyerToken(buyer), [{ product_id: product.id, quantity: 7 }]);
    expect(bought.status).toBe(201);
    for (const holder of holders) expect(await statusOf(holder.orders[0]?.order_id ?? "")).toBe("EXPIRED");
    expect(await statusOf(credited.body.order_id)).toBe("EXPIRED");
    // Its credits were the wallet's: released at the transfer's timeout, once D1 shows the order expired.
    expect((await orderCreditsOf(credited.body.order_id))?.status).toBe("PENDING");
    await timeOutOrderCredits(withCredits.userId);
    expect((await orderCreditsOf(credited.body.order_id))?.status).toBe("VOIDED");
    expect(await storedWallet(withCredits.userId)).toMatchObject({ balanceCents: 1_000, heldCents: 0 });
    for (const holder of holders) expect(await pendingUnits(holder.userId)).toBe(0);
    expect(await inventoryOf(product.id)).toMatchObject({ reserved: 7 });

    // Nothing lapsed is left to release: a real shortage is still sold_out.
    const short = await order(await buyerToken(uniqueUser()), [{ product_id: product.id, quantity: 4 }]);
    expect(short.body).toMatchObject({ code: "sold_out", product_id: product.id, available: 3 });
  });
});

describe("the every-minute cron drains every lapsed order", () => {
  it("200 lapsed orders: one cron run makes every unit sellable again", async ({ expect }) => {
    const LAPSED_ORDERS = 200;
    const BUYERS = 10;
    const product = await seedProduct({ sellable: LAPSED_ORDERS });
    const userIds = Array.from({ length: BUYERS }, () => uniqueUser("lapsing"));
    // Each buyer places its orders one after another; the buyers run in parallel.
    const placed = await Promise.all(
      userIds.map(async (userId) => {
        const token = await buyerToken(userId);
        const ids: string[] = [];
        for (let i = 0; i < LAPSED_ORDERS / BUYERS; i++) {
          const created = await order(token, [{ product_id: product.id, quantity: 1 }]);
          if (created.status !== 201) throw new Error(`order failed: ${JSON.stringify(created.body)}`);
          ids.push(created.body.order_id);
        }
        return ids;
      }),
    );
    expect(await inventoryOf(product.id)).toMatchObject({ reserved: LAPSED_ORDERS });
    await lapse(userIds);

    await runCron(CRON_EVERY_MINUTE, Date.now());

    const rows = await db().query.orders.findMany({ where: inArray(orders.userId, userIds) });
    expect(rows).toHaveLength(LAPSED_ORDERS);
    expect(rows.filter((row) => row.status !== "EXPIRED")).toEqual([]);
    expect(new Set(rows.map((row) => row.id))).toEqual(new Set(placed.flat()));
    expect(await inventoryOf(product.id)).toEqual({ sellable: LAPSED_ORDERS, reserved: 0, sold: 0 });
    for (const userId of userIds) expect(await pendingUnits(userId)).toBe(0);
    const catalog = await callJson<{ products: { id: string; available: number }[] }>("GET", "/catalog");
    expect(catalog.body.products.find((p) => p.id === product.id)?.available).toBe(LAPSED_ORDERS);

    // Sellable in fact: the same buyers buy every unit again.
    const rebought = await Promise.all(
      userIds.map(async (userId) => {
        const token = await buyerToken(userId);
        return order(token, [{ product_id: product.id, quantity: LAPSED_ORDERS / BUYERS }]);
      }),
    );
    expect(rebought.map((result) => result.status)).toEqual(userIds.map(() => 201));
  });

  it("a sweep run stops at its batch budget and the next run goes on from there", async ({ expect }) => {
    const product = await seedProduct({ sellable: 10 });
    const buyer = await buyerHolding(product.id, 3);
    await order(buyer.token, [{ product_id: product.id, quantity: 2 }]);
    await order(buyer.token, [{ product_id: product.id, quantity: 1 }]);
    // Deadlines long before every other test's, so that this sweep sees only these three orders.
    const deadline = new Date("2001-01-01T00:00:00Z");
    await lapse([buyer.userId], deadline);
    const now = new Date(deadline.getTime() + 1_000);
    const bounded = { maxBatches: 1, budgetMs: 60_000 };
    expect(await sweepExpiredOrders(db(), now, 2, bounded)).toBe(2);
    expect(await sweepExpiredOrders(db(), now, EXPIRY_SWEEP_BATCH)).toBe(1);
    expect(await sweepExpiredOrders(db(), now, EXPIRY_SWEEP_BATCH)).toBe(0);
    expect(await inventoryOf(product.id)).toMatchObject({ reserved: 0 });
    expect(await pendingUnits(buyer.userId)).toBe(0);
  });

  it("a batch that meets an order settled meanwhile still expires the others together", async ({
    expect,
  }) => {
    const product = await seedProduct({ sellable: 10 });
    const payer = await buyerHolding(product.id, 2);
    const [paidOrder] = payer.orders;
    if (!paidOrder) throw new Error("expected an order");
    expect((await deliver(paymentFor({ ...paidOrder, token: payer.token }))).body).toMatchObject({
      outcome: "processed",
    });
    const lapsing = [await buyerHolding(product.id, 3), await buyerHolding(product.id, 4)];
    await lapse(lapsing.map((buyer) => buyer.userId));
    const ids = [paidOrder, ...lapsing.flatMap((buyer) => buyer.orders)].map((placed) => placed.order_id);

    expect(await expireOrders(db(), ids, new Date())).toBe(2);
    expect(await statusOf(paidOrder.order_id)).toBe("PAID");
    for (const buyer of lapsing) expect(await pendingUnits(buyer.userId)).toBe(0);
    expect(await inventoryOf(product.id)).toEqual({ sellable: 10, reserved: 0, sold: 2 });
  });
});
