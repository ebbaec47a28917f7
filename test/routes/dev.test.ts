import { describe, it } from "vitest";
import { buildApp } from "../../src/app";
import { developmentFetch } from "../support/development-app";
import { seedProduct } from "../support/fixtures";
import { callJson } from "../support/http";
import { buyerToken, uniqueUser } from "../support/tokens";

// The dev helpers behind the reference pages' demo buttons, through the app as `npm run dev` serves it
// (support/development-app.ts).

async function devCall<T = Record<string, unknown>>(
  method: string,
  path: string,
  options: { token?: string; body?: unknown; idempotencyKey?: string } = {},
) {
  const response = await developmentFetch(method, path, options);
  const text = await response.text();
  return { status: response.status, body: (text ? JSON.parse(text) : null) as T };
}

async function pendingOrderFor(token: string) {
  const product = await seedProduct({ price_cents: 3_900 });
  const created = await devCall<{ order_id: string }>("POST", "/orders", {
    token,
    idempotencyKey: crypto.randomUUID(),
    body: { items: [{ product_id: product.id, quantity: 2 }] },
  });
  if (created.status !== 201) throw new Error(`order failed: ${created.status}`);
  return created.body.order_id;
}

describe("dev helpers outside development", () => {
  it("answer exactly like an unknown route, before any authentication", async ({ expect }) => {
    const unknown = await callJson("POST", "/no-such-route");
    for (const path of ["/dev/buyer-token", "/dev/simulate-payment"]) {
      const response = await callJson("POST", path, {
        token: await buyerToken(uniqueUser()),
        body: { order_id: "ord_x" },
      });
      expect(response.status).toBe(404);
      expect(response.body).toEqual(unknown.body);
    }
  });

  it("are not in the OpenAPI document", ({ expect }) => {
    const document = buildApp().getOpenAPIDocument({
      openapi: "3.0.3",
      info: { title: "t", version: "0" },
    });
    expect(Object.keys(document.paths ?? {}).filter((path) => path.startsWith("/dev/"))).toEqual([]);
  });
});

describe("dev helpers in development", () => {
  it("POST /dev/buyer-token issues a buyer token the API accepts, for a new demo user or a named one", async ({
    expect,
  }) => {
    const demo = await devCall<{ token: string; user_id: string; expires_in: number }>(
      "POST",
      "/dev/buyer-token",
    );
    expect(demo.status).toBe(201);
    expect(demo.body.user_id).toMatch(/^demo-/);
    const tickets = await devCall("GET", "/my/tickets", { token: demo.body.token });
    expect(tickets.status).toBe(200);

    const named = await devCall<{ user_id: string }>("POST", "/dev/buyer-token", {
      body: { user_id: "ana" },
    });
    expect(named.body.user_id).toBe("ana");
    const bad = await devCall<{ code: string }>("POST", "/dev/buyer-token", { body: { user_id: "a b" } });
    expect(bad.status).toBe(400);
    expect(bad.body.code).toBe("validation_failed");
  });

  it("POST /dev/simulate-payment pays the caller's order through the signed webhook, once", async ({
    expect,
  }) => {
    const token = await buyerToken(uniqueUser());
    const orderId = await pendingOrderFor(token);

    const paid = await devCall<{ received: boolean; outcome: string }>("POST", "/dev/simulate-payment", {
      token,
      body: { order_id: orderId },
    });
    expect(paid).toEqual({ status: 200, body: { received: true, outcome: "processed" } });
    const order = await devCall<{ status: string }>("GET", `/orders/${orderId}`, { token });
    expect(order.body.status).toBe("PAID");
    const tickets = await devCall<{ tickets: { order_id: string }[] }>("GET", "/my/tickets", { token });
    expect(tickets.body.tickets.filter((ticket) => ticket.order_id === orderId)).toHaveLength(2);

    // A second simulated payment is a new payment for a settled order: ignored, nothing issued twice.
    const again = await devCall<{ outcome: string }>("POST", "/dev/simulate-payment", {
      token,
      body: { order_id: orderId },
    });
    expect(again.body.outcome).toBe("ignored");
  });

  it("POST /dev/simulate-payment cannot pay someone else's order, and checks its input", async ({
    expect,
  }) => {
    const owner = await buyerToken(uniqueUser());
    const orderId = await pendingOrderFor(owner);
    const stranger = await devCall<{ code: string }>("POST", "/dev/simulate-payment", {
      token: await buyerToken(uniqueUser()),
      body: { order_id: orderId },
    });
    expect(stranger.status).toBe(404);
    const order = await devCall<{ status: string }>("GET", `/orders/${orderId}`, { token: owner });
    expect(order.body.status).toBe("PENDING_PAYMENT");

    const anonymous = await devCall<{ code: string }>("POST", "/dev/simulate-payment", {
      body: { order_id: orderId },
    });
    expect(anonymous.body.code).toBe("unauthenticated");
    for (const body of [{}, { order_id: orderId, topup_id: "top_x" }, { topup_id: "top_x" }]) {
      const invalid = await devCall<{ code: string }>("POST", "/dev/simulate-payment", {
        token: owner,
        body,
      });
      expect(invalid.status).toBe(400);
      expect(invalid.body.code).toBe("validation_failed");
    }
  });
});
