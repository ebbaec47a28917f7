import { eq, inArray } from "drizzle-orm";
import { describe, it } from "vitest";
import { EXPIRY_SWEEP_BATCH, findOrderWithItems, sweepExpiredOrders } from "../../src/db/orders";
import { buyerPendingUnits, orders, payments, products, tickets } from "../../src/db/schema";
import { db, seedProduct } from "../support/fixtures";
import { callJson } from "../support/http";
import { buyerToken, uniqueUser } from "../support/tokens";
import { deduct, fundedWallet, orderCreditsOf, posTill, storedWallet, walletQr } from "../support/wallet";
import { deliver, type PendingOrder, paymentFor } from "../support/webhooks";

// GET /my/orders and POST /orders/{id}/cancel ("let go"): a cancel is the expiry path run early, so
// everything here tries to make it release twice, release what a payment committed, or show one buyer
// another's orders.

interface OrderBody extends PendingOrder {
  total_cents: number;
  credits_applied_cents: number;
  created_at: string;
  items: { product_id: string; quantity: number; unit_price_cents: number }[];
  code?: string;
}

interface OrderPage {
  orders: OrderBody[];
  next_cursor: string | null;
  code?: string;
}

type Line = { product_id: string; quantity: number };

async function placeOrder(token: string, items: Line[], creditsCents?: number) {
  const response = await callJson<OrderBody>("POST", "/orders", {
    token,
    idempotencyKey: crypto.randomUUID(),
    body: { items, ...(creditsCents ? { credits_cents: creditsCents } : {}) },
  });
  if (response.status !== 201) throw new Error(`order failed: ${JSON.stringify(response.body)}`);
  return { ...response.body, token };
}

const cancel = (token: string, orderId: string) =>
  callJson<OrderBody>("POST", `/orders/${encodeURIComponent(orderId)}/cancel`, { token });

function myOrders(token: string, query: Record<string, string | number> = {}) {
  const search = new URLSearchParams(Object.entries(query).map(([k, v]) => [k, String(v)])).toString();
  return callJson<OrderPage>("GET", `/my/orders${search ? `?${search}` : ""}`, { token });
}

/** Every page of the caller's orders, following next_cursor to the end. */
async function allMyOrders(token: string, query: Record<string, string | number> = {}) {
  const pages: OrderBody[][] = [];
  let cursor: string | null = null;
  do {
    const page = await myOrders(token, { ...query, ...(cursor ? { cursor } : {}) });
    if (page.status !== 200) throw new Error(`page failed: ${JSON.stringify(page.body)}`);
    pages.push(page.body.orders);
    cursor = page.body.next_cursor;
  } while (cursor);
  return pages;
}

async function inventoryOf(productId: string) {
  const row = await db().query.products.findFirst({ where: eq(products.id, productId) });
  if (!row) throw new Error("no product");
  return { reserved: row.reserved, sold: row.sold };
}

async function pendingUnits(userId: string) {
  const row = await db().query.buyerPendingUnits.findFirst({ where: eq(buyerPendingUnits.userId, userId) });
  return row?.units ?? 0;
}

async function storedStatus(orderId: string) {
  return (await findOrderWithItems(db(), orderId))?.row.status;
}

async function ticketCount(orderId: string) {
  return (await db().select().from(tickets).where(eq(tickets.orderId, orderId))).length;
}

const holdOf = orderCreditsOf;

/** Moves these orders' deadlines into the past, as if their hold had run out unswept. */
async function lapse(orderIds: string[]) {
  await db()
    .update(orders)
    .set({ expiresAt: new Date(Date.now() - 60_000).toISOString() })
    .where(inArray(orders.id, orderIds));
}

describe("POST /orders/{id}/cancel: letting go of a pending order", () => {
  it("expires it now: stock, pending units and nothing else released; a second cancel answers it unchanged", async ({
    expect,
  }) => {
    const product = await seedProduct({ sellable: 10 });
    const userId = uniqueUser("letgo");
    const token = await buyerToken(userId);
    // A second pending order of the same buyer and product: a release counted twice would show in both
    // counters instead of hiding behind zero.
    const kept = await placeOrder(token, [{ product_id: product.id, quantity: 2 }]);
    const order = await placeOrder(token, [{ product_id: product.id, quantity: 3 }]);
    expect(await inventoryOf(product.id)).toEqual({ reserved: 5, sold: 0 });
    expect(await pendingUnits(userId)).toBe(5);

    const first = await cancel(token, order.order_id);
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({
      order_id: order.order_id,
      status: "EXPIRED",
      total_cents: order.total_cents,
      items: [{ product_id: product.id, quantity: 3 }],
    });
    expect(await inventoryOf(product.id)).toEqual({ reserved: 2, sold: 0 });
    expect(await pendingUnits(userId)).toBe(2);
    expect(await storedStatus(kept.order_id)).toBe("PENDING_PAYMENT");

    const again = await cancel(token, order.order_id);
    expect(again.status).toBe(200);
    expect(again.body).toEqual(first.body);
    const read = await callJson<OrderBody>("GET", `/orders/${order.order_id}`, { token });
    expect(read.body).toEqual(first.body);
    expect(await inventoryOf(product.id)).toEqual({ reserved: 2, sold: 0 });
    expect(await pendingUnits(userId)).toBe(2);

    // The sweep, later, finds nothing more to do for it.
    const later = new Date(Date.parse(order.expires_at) + 1_000);
    await sweepExpiredOrders(db(), later, EXPIRY_SWEEP_BATCH);
    expect(await inventoryOf(product.id)).toEqual({ reserved: 0, sold: 0 });
    expect(await pendingUnits(userId)).toBe(0);
  });

  it("20 parallel cancels of one order: all answer EXPIRED, the release happens once", async ({ expect }) => {
    const product = await seedProduct({ sellable: 20 });
    const userId = uniqueUser("parallel-letgo");
    const token = await buyerToken(userId);
    await placeOrder(token, [{ product_id: product.id, quantity: 4 }]);
    const order = await placeOrder(token, [{ product_id: product.id, quantity: 5 }]);
    const results = await Promise.all(Array.from({ length: 20 }, () => cancel(token, order.order_id)));
    expect(results.map((result) => result.status)).toEqual(Array(20).fill(200));
    for (const result of results) expect(result.body).toEqual(results[0]?.body);
    expect(results[0]?.body.status).toBe("EXPIRED");
    expect(await inventoryOf(product.id)).toEqual({ reserved: 4, sold: 0 });
    expect(await pendingUnits(userId)).toBe(4);
  });

  it("cancels racing the expiry sweep release once between them", async ({ expect }) => {
    const product = await seedProduct({ sellable: 20 });
    const userId = uniqueUser("sweep-letgo");
    const token = await buyerToken(userId);
    await placeOrder(token, [{ product_id: product.id, quantity: 1 }]);
    for (let round = 0; round < 4; round++) {
      const order = await placeOrder(token, [{ product_id: product.id, quantity: 2 }]);
      await lapse([order.order_id]);
      const [cancelled] = await Promise.all([
        cancel(token, order.order_id),
        sweepExpiredOrders(db(), new Date(), EXPIRY_SWEEP_BATCH),
        cancel(token, order.order_id),
      ]);
      expect(cancelled.body.status).toBe("EXPIRED");
      expect(await inventoryOf(product.id)).toEqual({ reserved: 1, sold: 0 });
      expect(await pendingUnits(userId)).toBe(1);
    }
  });

  it("a split order's credit hold is voided at once: a till can spend the whole balance right after", async ({
    expect,
  }) => {
    const product = await seedProduct({ price_cents: 2_500, sellable: 5 });
    const { userId, token } = await fundedWallet(3_000);
    const order = await placeOrder(token, [{ product_id: product.id, quantity: 1 }], 1_000);
    expect(order).toMatchObject({ credits_applied_cents: 1_000, amount_due_cents: 1_500 });
    expect((await holdOf(order.order_id))?.status).toBe("PENDING");

    const cancelled = await Promise.all([cancel(token, order.order_id), cancel(token, order.order_id)]);
    expect(cancelled.map((result) => result.body.status)).toEqual(["EXPIRED", "EXPIRED"]);
    expect((await holdOf(order.order_id))?.status).toBe("VOIDED");
    expect(await storedWallet(userId)).toMatchObject({
      balanceCents: 3_000,
      heldCents: 0,
    });
    const till = await posTill();
    const charged = await deduct(till, await walletQr(token), 3_000);
    expect(charged.status).toBe(201);
    expect(charged.body.balance_cents).toBe(0);
  });

  it("a PAID or PAYMENT_FAILED order is 409 order_not_pending and stays as it is", async ({ expect }) => {
    const product = await seedProduct({ sellable: 5 });
    const userId = uniqueUser("settled");
    const token = await buyerToken(userId);
    const paid = await placeOrder(token, [{ product_id: product.id, quantity: 1 }]);
    expect((await deliver<{ outcome: string }>(paymentFor(paid))).body.outcome).toBe("processed");
    const failed = await placeOrder(token, [{ product_id: product.id, quantity: 1 }]);
    await deliver(paymentFor(failed, { status: "FAILED" }));
    const before = await inventoryOf(product.id);

    for (const [order, status] of [
      [paid, "PAID"],
      [failed, "PAYMENT_FAILED"],
    ] as const) {
      const refused = await cancel(token, order.order_id);
      expect(refused.status).toBe(409);
      expect(refused.headers.get("content-type")).toContain("application/problem+json");
      expect(refused.body).toMatchObject({ code: "order_not_pending", status: 409, order_status: status });
      expect(refused.body).toMatchObject({ order_id: order.order_id });
      expect(await storedStatus(order.order_id)).toBe(status);
    }
    expect(await inventoryOf(product.id)).toEqual(before);
    expect(await ticketCount(paid.order_id)).toBe(1);
    expect(await pendingUnits(userId)).toBe(0);
  });

  it("someone else's order answers exactly like a missing one, and is left alone", async ({ expect }) => {
    const product = await seedProduct({ sellable: 5 });
    const owner = await buyerToken(uniqueUser("owner"));
    const order = await placeOrder(owner, [{ product_id: product.id, quantity: 1 }]);
    const stranger = await buyerToken(uniqueUser("stranger"));
    const theirs = await cancel(stranger, order.order_id);
    const missing = await cancel(stranger, "ord_doesnotexist");
    expect(theirs.status).toBe(404);
    expect(theirs.body).toEqual(missing.body);
    expect(await storedStatus(order.order_id)).toBe("PENDING_PAYMENT");
    expect(await inventoryOf(product.id)).toEqual({ reserved: 1, sold: 0 });

    const anonymous = await callJson("POST", `/orders/${order.order_id}/cancel`);
    expect(anonymous).toMatchObject({ status: 401, body: { code: "unauthenticated" } });
    const tooLong = await cancel(owner, `ord_${"x".repeat(100)}`);
    expect(tooLong).toMatchObject({ status: 400, body: { code: "validation_failed" } });
  });

  it("a lapsed order not yet swept is cancelled as the expiry it already is", async ({ expect }) => {
    const product = await seedProduct({ sellable: 5 });
    const userId = uniqueUser("lapsed-letgo");
    const token = await buyerToken(userId);
    const order = await placeOrder(token, [{ product_id: product.id, quantity: 2 }]);
    await lapse([order.order_id]);
    const cancelled = await cancel(token, order.order_id);
    expect(cancelled).toMatchObject({ status: 200, body: { status: "EXPIRED" } });
    expect(await inventoryOf(product.id)).toEqual({ reserved: 0, sold: 0 });
    expect(await pendingUnits(userId)).toBe(0);
  });
});

/** Which of the two is sent first in each round, and how long before the other follows. */
const RACE_ROUNDS = [0, 1, 3, 6, 10].flatMap((gapMs) => [
  { first: "cancel" as const, gapMs },
  { first: "pay" as const, gapMs },
]);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("a payment and a cancel of the same order", () => {
  it("a payment arriving after the cancel is ignored and owed back; nothing is issued or sold", async ({
    expect,
  }) => {
    const product = await seedProduct({ sellable: 5 });
    const userId = uniqueUser("late-payment");
    const token = await buyerToken(userId);
    const order = await placeOrder(token, [{ product_id: product.id, quantity: 2 }]);
    expect((await cancel(token, order.order_id)).body.status).toBe("EXPIRED");

    const payment = paymentFor(order);
    const delivered = await deliver<{ received: boolean; outcome: string }>(payment);
    expect(delivered).toMatchObject({ status: 200, body: { received: true, outcome: "ignored" } });
    const row = await db().query.payments.findFirst({ where: eq(payments.paymentId, payment.payment_id) });
    expect(row).toMatchObject({ outcome: "ignored", needsRefund: true });
    expect(await storedStatus(order.order_id)).toBe("EXPIRED");
    expect(await ticketCount(order.order_id)).toBe(0);
    expect(await inventoryOf(product.id)).toEqual({ reserved: 0, sold: 0 });
    expect(await pendingUnits(userId)).toBe(0);
  });

  it("racing: exactly one of PAID (cancel refused) or EXPIRED (payment ignored, refund owed), credits too", async ({
    expect,
  }) => {
    const product = await seedProduct({ price_cents: 2_500, sellable: 40 });
    const { userId, token } = await fundedWallet(20_000);
    const seen = new Set<string>();
    let balance = 20_000;
    let sold = 0;
    for (let round = 0; round < RACE_ROUNDS.length; round++) {
      // Half the rounds pay partly with credits, so the hold is posted or voided with the order.
      const credits = round % 2 === 0 ? 1_000 : undefined;
      const order = await placeOrder(token, [{ product_id: product.id, quantity: 1 }], credits);
      const payment = paymentFor(order);
      // Either one is sent first, the other after a gap, so the rounds cover both winners and the
      // moments in between.
      const { first, gapMs } = RACE_ROUNDS[round] ?? { first: "cancel", gapMs: 0 };
      const sendCancel = () => cancel(token, order.order_id);
      const sendPayment = () => deliver<{ outcome: string }>(payment);
      let cancelling: ReturnType<typeof sendCancel>;
      let paying: ReturnType<typeof sendPayment>;
      if (first === "cancel") {
        cancelling = sendCancel();
        await sleep(gapMs);
        paying = sendPayment();
      } else {
        paying = sendPayment();
        await sleep(gapMs);
        cancelling = sendCancel();
      }
      const [cancelled, paid] = await Promise.all([cancelling, paying]);
      const status = await storedStatus(order.order_id);
      const row = await db().query.payments.findFirst({ where: eq(payments.paymentId, payment.payment_id) });
      seen.add(String(status));
      if (status === "PAID") {
        sold += 1;
        if (credits) balance -= credits;
        expect(paid.body.outcome).toBe("processed");
        expect(cancelled).toMatchObject({ status: 409, body: { code: "order_not_pending" } });
        expect(row).toMatchObject({ outcome: "processed", needsRefund: false });
        expect(await ticketCount(order.order_id)).toBe(1);
        if (credits) expect((await holdOf(order.order_id))?.status).toBe("POSTED");
      } else {
        expect(status).toBe("EXPIRED");
        expect(cancelled).toMatchObject({ status: 200, body: { status: "EXPIRED" } });
        expect(paid.body.outcome).toBe("ignored");
        expect(row).toMatchObject({ outcome: "ignored", needsRefund: true });
        expect(await ticketCount(order.order_id)).toBe(0);
        if (credits) expect((await holdOf(order.order_id))?.status).toBe("VOIDED");
      }
      expect(await inventoryOf(product.id)).toEqual({ reserved: 0, sold });
      expect(await pendingUnits(userId)).toBe(0);
      expect(await storedWallet(userId)).toMatchObject({
        balanceCents: balance,
        heldCents: 0,
        ledgerSumCents: balance,
      });
    }
    // Not an invariant, but a race test where one side always wins tests less than it claims.
    expect([...seen].sort()).toEqual(["EXPIRED", "PAID"]);
  });
});

describe("GET /my/orders", () => {
  it("pages through the caller's orders newest first, without gaps or duplicates, never another's", async ({
    expect,
  }) => {
    const product = await seedProduct({ sellable: 100 });
    const mine = await buyerToken(uniqueUser("pager"));
    const theirs = await buyerToken(uniqueUser("neighbour"));
    const placed: string[] = [];
    const others: string[] = [];
    for (let i = 0; i < 13; i++) {
      placed.push((await placeOrder(mine, [{ product_id: product.id, quantity: 1 }])).order_id);
      if (i % 3 === 0)
        others.push((await placeOrder(theirs, [{ product_id: product.id, quantity: 1 }])).order_id);
    }
    // Ties on created_at (orders made in the same millisecond) must page by id, not drop or repeat.
    await db()
      .update(orders)
      .set({ createdAt: "2026-01-01T00:00:00.000Z" })
      .where(inArray(orders.id, placed.slice(3, 9)));

    const pages = await allMyOrders(mine, { limit: 4 });
    expect(pages.map((page) => page.length)).toEqual([4, 4, 4, 1]);
    const listed = pages.flat();
    const ids = listed.map((order) => order.order_id);
    expect(new Set(ids).size).toBe(ids.length);
    expect([...ids].sort()).toEqual([...placed].sort());
    for (const id of others) expect(ids).not.toContain(id);
    const keys = listed.map((order) => [order.created_at, order.order_id].join(" "));
    expect(keys).toEqual([...keys].sort().reverse());
    expect(listed[0]).toMatchObject({
      status: "PENDING_PAYMENT",
      items: [{ product_id: product.id, quantity: 1 }],
    });

    // Orders created while paging sort before the first page: the rest of the walk is unchanged.
    const first = await myOrders(mine, { limit: 5 });
    await placeOrder(mine, [{ product_id: product.id, quantity: 1 }]);
    const rest = (await allMyOrders(mine, { limit: 5, cursor: first.body.next_cursor ?? "" })).flat();
    expect([...first.body.orders, ...rest].map((order) => order.order_id)).toEqual(ids);

    // A cursor is a position, not a pass: with it, the neighbour still sees only their own orders.
    const borrowed = (await allMyOrders(theirs, { cursor: first.body.next_cursor ?? "" })).flat();
    for (const order of borrowed) expect(others).toContain(order.order_id);
    expect((await allMyOrders(theirs)).flat().map((order) => order.order_id)).toEqual([...others].reverse());
  });

  it("reports a lapsed order as EXPIRED, filters by the reported status, and records the expiry", async ({
    expect,
  }) => {
    const product = await seedProduct({ sellable: 10 });
    const userId = uniqueUser("filter");
    const token = await buyerToken(userId);
    const paid = await placeOrder(token, [{ product_id: product.id, quantity: 1 }]);
    await deliver(paymentFor(paid));
    const lapsed = await placeOrder(token, [{ product_id: product.id, quantity: 2 }]);
    const pending = await placeOrder(token, [{ product_id: product.id, quantity: 3 }]);
    const letGo = await placeOrder(token, [{ product_id: product.id, quantity: 1 }]);
    await cancel(token, letGo.order_id);
    await lapse([lapsed.order_id]);
    expect(await inventoryOf(product.id)).toEqual({ reserved: 5, sold: 1 });

    const byStatus = async (status: string) =>
      (await allMyOrders(token, { status })).flat().map((order) => [order.order_id, order.status]);
    expect(await byStatus("PENDING_PAYMENT")).toEqual([[pending.order_id, "PENDING_PAYMENT"]]);
    expect(await byStatus("PAID")).toEqual([[paid.order_id, "PAID"]]);
    expect(await byStatus("PAYMENT_FAILED")).toEqual([]);
    expect(await byStatus("EXPIRED")).toEqual([
      [letGo.order_id, "EXPIRED"],
      [lapsed.order_id, "EXPIRED"],
    ]);
    // Listing settled the lapsed order for real: its stock and units are free, once.
    expect(await storedStatus(lapsed.order_id)).toBe("EXPIRED");
    expect(await inventoryOf(product.id)).toEqual({ reserved: 3, sold: 1 });
    expect(await pendingUnits(userId)).toBe(3);
    const all = (await allMyOrders(token)).flat();
    expect(all.map((order) => order.status)).toEqual(["EXPIRED", "PENDING_PAYMENT", "EXPIRED", "PAID"]);
    expect(await inventoryOf(product.id)).toEqual({ reserved: 3, sold: 1 });
  });

  it("a new buyer has no orders; bad queries are 400 validation_failed; no token is 401", async ({
    expect,
  }) => {
    const token = await buyerToken(uniqueUser("fresh"));
    expect(await myOrders(token)).toMatchObject({ status: 200, body: { orders: [], next_cursor: null } });
    const badQueries: Record<string, string | number>[] = [
      { limit: 0 },
      { limit: 51 },
      { limit: "ten" },
      { status: "CANCELLED" },
      { cursor: "not-a-cursor" },
      { cursor: "x".repeat(600) },
    ];
    for (const query of badQueries) {
      const response = await myOrders(token, query);
      expect(response.status, JSON.stringify(query)).toBe(400);
      expect(response.body.code).toBe("validation_failed");
    }
    expect(await callJson("GET", "/my/orders")).toMatchObject({
      status: 401,
      body: { code: "unauthenticated" },
    });
  });
});
