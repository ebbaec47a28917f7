import { env } from "cloudflare:workers";
import { eq, isNull } from "drizzle-orm";
import { describe, it } from "vitest";
import { getDb } from "../../src/db/client";
import { drainOutbox } from "../../src/db/outbox";
import { orders, outbox, products, tickets } from "../../src/db/schema";
import { callWith, faultyD1 } from "../support/faulty-d1";
import { db, seedProduct } from "../support/fixtures";
import { callJson } from "../support/http";
import { buyerToken, uniqueUser } from "../support/tokens";
import { paymentFor, pendingOrder, signatureHeaders } from "../support/webhooks";

function orderRequest(token: string, key: string, productId: string) {
  return new Request("https://passes.test/orders", {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "idempotency-key": key, "content-type": "application/json" },
    body: JSON.stringify({ items: [{ product_id: productId, quantity: 2 }] }),
  });
}

async function inventory(productId: string) {
  const row = await db().query.products.findFirst({ where: eq(products.id, productId) });
  return { reserved: row?.reserved, sold: row?.sold };
}

describe("a D1 failure mid-order, then the client's retry", () => {
  for (const timing of ["before", "after"] as const) {
    it(`failure ${timing} the commit: one order, reserved once`, async ({ expect }) => {
      const product = await seedProduct({ sellable: 10 });
      const userId = uniqueUser();
      const token = await buyerToken(userId);
      const key = crypto.randomUUID();
      // The order's reservation is the first batch the request runs.
      const failed = await callWith(faultyD1(1, timing), orderRequest(token, key, product.id));
      expect(failed.status).toBe(500);
      expect(failed.headers.get("content-type")).toContain("application/problem+json");
      expect(await failed.text()).not.toMatch(/D1_ERROR|SQL|stack/i);

      const retry = await callJson<{ order_id: string }>("POST", "/orders", {
        token,
        idempotencyKey: key,
        body: { items: [{ product_id: product.id, quantity: 2 }] },
      });
      expect(retry.status).toBe(201);
      const mine = await db().select().from(orders).where(eq(orders.userId, userId));
      expect(mine).toHaveLength(1);
      expect(mine[0]?.id).toBe(retry.body.order_id);
      expect(await inventory(product.id)).toEqual({ reserved: 2, sold: 0 });
    });
  }
});

describe("a D1 failure mid-webhook, then the gateway's redelivery", () => {
  for (const timing of ["before", "after"] as const) {
    it(`failure ${timing} the commit: tickets issued once, the order.paid event still goes out`, async ({
      expect,
    }) => {
      const product = await seedProduct({ sellable: 10 });
      const order = await pendingOrder(uniqueUser(), [{ product_id: product.id, quantity: 3 }]);
      const body = JSON.stringify(paymentFor(order));
      const headers = { "content-type": "application/json", ...signatureHeaders(body) };
      const request = () =>
        new Request("https://passes.test/payments/webhook", { method: "POST", headers, body });

      // Batch 1 reads the order and its items; batch 2 is the settlement that pays and issues.
      const failed = await callWith(faultyD1(2, timing), request());
      expect(failed.status).toBe(500);

      // The gateway retries the same delivery (same webhook-id) until it gets a 2xx.
      const retry = await callJson<{ outcome: string }>("POST", "/payments/webhook", {
        rawBody: body,
        headers,
      });
      expect(retry.status).toBe(200);
      expect(retry.body.outcome).toBe(timing === "before" ? "processed" : "duplicate");
      expect(await db().select().from(tickets).where(eq(tickets.orderId, order.order_id))).toHaveLength(3);
      expect(await inventory(product.id)).toEqual({ reserved: 0, sold: 3 });
      const [paid] = await db().select().from(orders).where(eq(orders.id, order.order_id));
      expect(paid?.status).toBe("PAID");

      // A crash between commit and send leaves the event in the outbox: the cron's drain sends it once.
      await drainOutbox(getDb(env.DB), env.EVENTS, new Date(Date.now() + 60_000));
      const pendingEvents = await db().select().from(outbox).where(isNull(outbox.sentAt));
      expect(pendingEvents.filter((row) => row.payload.includes(order.order_id))).toHaveLength(0);
    });
  }
});
