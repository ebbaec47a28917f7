import { eq } from "drizzle-orm";
import { describe, it } from "vitest";
import { CRON_EVERY_MINUTE } from "../../src/cron";
import { sweepExpiredOrders } from "../../src/db/orders";
import { products } from "../../src/db/schema";
import { db, seedProduct } from "../support/fixtures";
import { call, callJson } from "../support/http";
import { buyerToken, uniqueUser } from "../support/tokens";
import { runCron } from "../support/worker";

interface OrderBody {
  order_id: string;
  status: string;
  total_cents: number;
  amount_due_cents: number;
  expires_at: string;
  items: { product_id: string; quantity: number }[];
}

async function inventoryOf(productId: string) {
  const row = await db().query.products.findFirst({ where: eq(products.id, productId) });
  if (!row) throw new Error("no product");
  return { sellable: row.sellable, reserved: row.reserved, sold: row.sold };
}

describe("POST /orders: inventory under concurrency", () => {
  it("50 parallel orders racing for 10 units: exactly 10 succeed, the rest sold_out", async ({ expect }) => {
    const product = await seedProduct({ sellable: 10 });
    const results = await Promise.all(
      Array.from({ length: 50 }, async (_, i) =>
        callJson<OrderBody & { code?: string }>("POST", "/orders", {
          token: await buyerToken(`racer-${i}`),
          idempotencyKey: `race-${i}`,
          body: { items: [{ product_id: product.id, quantity: 1 }] },
        }),
      ),
    );
    const created = results.filter((r) => r.status === 201);
    const soldOut = results.filter((r) => r.status === 409);
    expect(created).toHaveLength(10);
    expect(soldOut).toHaveLength(40);
    for (const r of soldOut)
      expect(r.body).toMatchObject({ code: "sold_out", product_id: product.id, available: 0 });
    expect(await inventoryOf(product.id)).toEqual({ sellable: 10, reserved: 10, sold: 0 });
    const catalog = await callJson<{ products: { id: string; available: number }[] }>("GET", "/catalog");
    expect(catalog.body.products.find((p) => p.id === product.id)?.available).toBe(0);
  });

  it("multi-item orders never over-reserve either product", async ({ expect }) => {
    const a = await seedProduct({ sellable: 7 });
    const b = await seedProduct({ sellable: 5 });
    const results = await Promise.all(
      Array.from({ length: 12 }, async (_, i) =>
        callJson("POST", "/orders", {
          token: await buyerToken(`multi-${i}`),
          idempotencyKey: `multi-${i}`,
          body: {
            items: [
              { product_id: a.id, quantity: 1 },
              { product_id: b.id, quantity: 1 },
            ],
          },
        }),
      ),
    );
    expect(results.filter((r) => r.status === 201)).toHaveLength(5);
    expect(await inventoryOf(a.id)).toMatchObject({ reserved: 5 });
    expect(await inventoryOf(b.id)).toMatchObject({ reserved: 5 });
  });

  it("prices the order, merges duplicate lines and reports what is due", async ({ expect }) => {
    const product = await seedProduct({ sellable: 50, price_cents: 1_250 });
    const { status, body } = await callJson<OrderBody>("POST", "/orders", {
      token: await buyerToken(uniqueUser()),
      idempotencyKey: crypto.randomUUID(),
      body: {
        items: [
          { product_id: product.id, quantity: 2 },
          { product_id: product.id, quantity: 3 },
        ],
      },
    });
    expect(status).toBe(201);
    expect(body).toMatchObject({
      status: "PENDING_PAYMENT",
      total_cents: 6_250,
      credits_applied_cents: 0,
      amount_due_cents: 6_250,
      currency: "EUR",
      items: [{ product_id: product.id, quantity: 5, unit_price_cents: 1_250 }],
    });
    expect(body.order_id).toMatch(/^ord_/);
    expect(Date.parse(body.expires_at) - Date.now()).toBeGreaterThan(800_000);
  });

  it("refuses unknown and inactive products, and merged quantities over the limit", async ({ expect }) => {
    const token = await buyerToken(uniqueUser());
    const unknown = await callJson("POST", "/orders", {
      token,
      idempotencyKey: crypto.randomUUID(),
      body: { items: [{ product_id: "prd_nope", quantity: 1 }] },
    });
    expect(unknown.status).toBe(422);
    expect(unknown.body).toMatchObject({ code: "unknown_product", product_id: "prd_nope" });

    const product = await seedProduct();
    await db().update(products).set({ active: false }).where(eq(products.id, product.id));
    const inactive = await callJson("POST", "/orders", {
      token,
      idempotencyKey: crypto.randomUUID(),
      body: { items: [{ product_id: product.id, quantity: 1 }] },
    });
    expect(inactive.body).toMatchObject({ code: "product_inactive" });

    const merged = await callJson("POST", "/orders", {
      token,
      idempotencyKey: crypto.randomUUID(),
      body: {
        items: [
          { product_id: product.id, quantity: 15 },
          { product_id: product.id, quantity: 15 },
        ],
      },
    });
    expect(merged.status).toBe(400);
    expect(merged.body).toMatchObject({ code: "validation_failed" });
  });
});

describe("POST /orders: idempotency", () => {
  it("replays a finished request with the same status and body", async ({ expect }) => {
    const product = await seedProduct();
    const token = await buyerToken(uniqueUser());
    const request = {
      token,
      idempotencyKey: "replay-1",
      body: { items: [{ product_id: product.id, quantity: 2 }] },
    };
    const first = await callJson<OrderBody>("POST", "/orders", request);
    const second = await callJson<OrderBody>("POST", "/orders", request);
    expect(first.status).toBe(201);
    expect(second.status).toBe(201);
    expect(second.body).toEqual(first.body);
    expect(second.headers.get("idempotent-replayed")).toBe("true");
    expect(first.headers.get("idempotent-replayed")).toBeNull();
    expect(await inventoryOf(product.id)).toMatchObject({ reserved: 2 });
  });

  it("10 parallel requests with one key create one order", async ({ expect }) => {
    const product = await seedProduct();
    const token = await buyerToken(uniqueUser());
    const results = await Promise.all(
      Array.from({ length: 10 }, () =>
        callJson<OrderBody & { code?: string }>("POST", "/orders", {
          token,
          idempotencyKey: '"parallel-key"',
          body: { items: [{ product_id: product.id, quantity: 1 }] },
        }),
      ),
    );
    const created = results.filter((r) => r.status === 201);
    expect(created.length).toBeGreaterThanOrEqual(1);
    expect(new Set(created.map((r) => r.body.order_id)).size).toBe(1);
    for (const r of results.filter((r) => r.status !== 201)) {
      expect(r.status).toBe(409);
      expect(r.body.code).toBe("idempotency_in_progress");
    }
    expect(await inventoryOf(product.id)).toMatchObject({ reserved: 1 });
    // Once finished, every retry replays the one order.
    const retry = await callJson<OrderBody>("POST", "/orders", {
      token,
      idempotencyKey: "parallel-key",
      body: { items: [{ product_id: product.id, quantity: 1 }] },
    });
    expect(retry.body.order_id).toBe(created[0]?.body.order_id);
  });

  it("reuse with another body is 422 and changes nothing", async ({ expect }) => {
    const product = await seedProduct();
    const token = await buyerToken(uniqueUser());
    await callJson("POST", "/orders", {
      token,
      idempotencyKey: "reuse",
      body: { items: [{ product_id: product.id, quantity: 1 }] },
    });
    const reused = await callJson("POST", "/orders", {
      token,
      idempotencyKey: "reuse",
      body: { items: [{ product_id: product.id, quantity: 3 }] },
    });
    expect(reused.status).toBe(422);
    expect(reused.body).toMatchObject({ code: "idempotency_key_reused" });
    expect(await inventoryOf(product.id)).toMatchObject({ reserved: 1 });
  });

  it("keys are scoped per caller: the same key from two buyers makes two orders", async ({ expect }) => {
    const product = await seedProduct();
    const body = { items: [{ product_id: product.id, quantity: 1 }] };
    const a = await callJson<OrderBody>("POST", "/orders", {
      token: await buyerToken(uniqueUser()),
      idempotencyKey: "k",
      body,
    });
    const b = await callJson<OrderBody>("POST", "/orders", {
      token: await buyerToken(uniqueUser()),
      idempotencyKey: "k",
      body,
    });
    expect(a.body.order_id).not.toBe(b.body.order_id);
  });

  it("a stored sold_out stays sold_out on retry, even after stock is added", async ({ expect }) => {
    const product = await seedProduct({ sellable: 1 });
    const token = await buyerToken(uniqueUser());
    const request = {
      token,
      idempotencyKey: "short",
      body: { items: [{ product_id: product.id, quantity: 2 }] },
    };
    const first = await callJson("POST", "/orders", request);
    expect(first.body).toMatchObject({ code: "sold_out", available: 1 });
    await db().update(products).set({ sellable: 10 }).where(eq(products.id, product.id));
    const retry = await callJson("POST", "/orders", request);
    expect(retry.status).toBe(409);
    expect(retry.body).toEqual(first.body);
    expect(retry.headers.get("idempotent-replayed")).toBe("true");
  });

  it("missing, empty and over-long keys are 400s", async ({ expect }) => {
    const product = await seedProduct();
    const token = await buyerToken(uniqueUser());
    const body = { items: [{ product_id: product.id, quantity: 1 }] };
    const missing = await callJson("POST", "/orders", { token, body });
    expect(missing).toMatchObject({ status: 400, body: { code: "idempotency_key_missing" } });
    const empty = await callJson("POST", "/orders", { token, body, idempotencyKey: '""' });
    expect(empty).toMatchObject({ status: 400, body: { code: "idempotency_key_invalid" } });
    const long = await callJson("POST", "/orders", { token, body, idempotencyKey: "x".repeat(256) });
    expect(long).toMatchObject({ status: 400, body: { code: "idempotency_key_invalid" } });
    expect(await inventoryOf(product.id)).toMatchObject({ reserved: 0 });
  });
});

describe("GET /orders/{id}", () => {
  it("shows the owner's order and hides it from anyone else", async ({ expect }) => {
    const product = await seedProduct();
    const owner = await buyerToken(uniqueUser());
    const created = await callJson<OrderBody>("POST", "/orders", {
      token: owner,
      idempotencyKey: crypto.randomUUID(),
      body: { items: [{ product_id: product.id, quantity: 1 }] },
    });
    const mine = await callJson<OrderBody>("GET", `/orders/${created.body.order_id}`, { token: owner });
    expect(mine.status).toBe(200);
    expect(mine.body).toEqual(created.body);
    const theirs = await callJson("GET", `/orders/${created.body.order_id}`, {
      token: await buyerToken(uniqueUser()),
    });
    const missing = await callJson("GET", "/orders/ord_doesnotexist", { token: owner });
    expect(theirs.status).toBe(404);
    expect(theirs.body).toEqual({ ...missing.body });
  });
});

describe("order expiry", () => {
  it("releases the reservation exactly once, however often and concurrently the sweep runs", async ({
    expect,
  }) => {
    const product = await seedProduct({ sellable: 5 });
    const token = await buyerToken(uniqueUser());
    const created = await callJson<OrderBody>("POST", "/orders", {
      token,
      idempotencyKey: crypto.randomUUID(),
      body: { items: [{ product_id: product.id, quantity: 3 }] },
    });
    expect(await inventoryOf(product.id)).toMatchObject({ reserved: 3 });

    // Not yet due: nothing happens.
    expect(await sweepExpiredOrders(db(), new Date())).toBe(0);

    const later = new Date(Date.parse(created.body.expires_at) + 1_000);
    const runs = await Promise.all([sweepExpiredOrders(db(), later), sweepExpiredOrders(db(), later)]);
    expect(runs.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(1);
    await sweepExpiredOrders(db(), later);
    expect(await inventoryOf(product.id)).toEqual({ sellable: 5, reserved: 0, sold: 0 });
    const order = await callJson<OrderBody>("GET", `/orders/${created.body.order_id}`, { token });
    expect(order.body.status).toBe("EXPIRED");
  });

  it("the every-minute cron expires lapsed orders", async ({ expect }) => {
    const product = await seedProduct({ sellable: 2 });
    const token = await buyerToken(uniqueUser());
    const created = await callJson<OrderBody>("POST", "/orders", {
      token,
      idempotencyKey: crypto.randomUUID(),
      body: { items: [{ product_id: product.id, quantity: 2 }] },
    });
    await runCron(CRON_EVERY_MINUTE, Date.parse(created.body.expires_at) + 60_000);
    expect(await inventoryOf(product.id)).toMatchObject({ reserved: 0 });
  });
});

describe("input hardening", () => {
  it("invalid JSON, wrong content type and oversized bodies are precise 4xx problems", async ({ expect }) => {
    const token = await buyerToken(uniqueUser());
    const invalid = await call("POST", "/orders", {
      token,
      idempotencyKey: "x",
      rawBody: "{not json",
      headers: { "content-type": "application/json" },
    });
    expect(invalid.status).toBe(400);
    expect(await invalid.json()).toMatchObject({ code: "invalid_json" });

    const text = await call("POST", "/orders", { token, idempotencyKey: "y", rawBody: "items=1" });
    expect(text.status).toBe(400);
    expect(await text.json()).toMatchObject({ code: "validation_failed" });

    const huge = await call("POST", "/orders", {
      token,
      idempotencyKey: "z",
      rawBody: JSON.stringify({ items: [], pad: "x".repeat(70 * 1024) }),
      headers: { "content-type": "application/json" },
    });
    expect(huge.status).toBe(413);
    expect(huge.headers.get("content-type")).toContain("application/problem+json");
    expect(await huge.json()).toMatchObject({ code: "payload_too_large" });
  });

  it("echoes a client request id", async ({ expect }) => {
    const response = await call("GET", "/catalog", { headers: { "x-request-id": "abc-123" } });
    expect(response.headers.get("x-request-id")).toBe("abc-123");
  });

  it("unknown routes are problem+json 404s", async ({ expect }) => {
    const response = await callJson("GET", "/nope");
    expect(response).toMatchObject({ status: 404, body: { code: "not_found" } });
  });
});
