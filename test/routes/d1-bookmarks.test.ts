import { describe, it } from "vitest";
import { countingApp } from "../support/counting-env";
import { seedProduct } from "../support/fixtures";
import { buyerToken, uniqueUser } from "../support/tokens";

// D1 read replication through the Sessions API: a read starts on the nearest copy, a write on the primary,
// and a client that brings the bookmark of its last answer (`x-d1-bookmark`) reads at least that fresh.
// Locally there is one copy, so what is tested is the plumbing: which session each request starts, and
// that the bookmark travels both ways. (Counted at the binding: support/counting-env.ts.)

const BOOKMARK = "x-d1-bookmark";

describe("D1 sessions and bookmarks", () => {
  it("a read starts unconstrained, a write on the primary; both answer their session's bookmark", async ({
    expect,
  }) => {
    const app = countingApp();
    const catalog = await app.call("GET", "/catalog");
    expect(catalog.status).toBe(200);
    expect(catalog.cost.sessions).toEqual(["first-unconstrained"]);
    expect(catalog.headers.get(BOOKMARK)).toMatch(/^[0-9a-f]+(-[0-9a-f]+)+$/);

    const product = await seedProduct();
    const order = await app.call("POST", "/orders", {
      token: await buyerToken(uniqueUser()),
      idempotencyKey: crypto.randomUUID(),
      body: { items: [{ product_id: product.id, quantity: 1 }] },
    });
    expect(order.status).toBe(201);
    expect(order.cost.sessions).toEqual(["first-primary"]);
    expect(order.headers.get(BOOKMARK)).toBeTruthy();
  });

  it("a buyer who creates an order and lists at once with its bookmark sees it, no older than the write", async ({
    expect,
  }) => {
    const app = countingApp();
    const product = await seedProduct();
    const token = await buyerToken(uniqueUser());
    const created = await app.call("POST", "/orders", {
      token,
      idempotencyKey: crypto.randomUUID(),
      body: { items: [{ product_id: product.id, quantity: 1 }] },
    });
    const written = created.headers.get(BOOKMARK) ?? "";
    expect(written).not.toBe("");

    const listed = await app.call("GET", "/my/orders", { token, headers: { [BOOKMARK]: written } });
    expect(listed.status).toBe(200);
    expect(listed.cost.sessions).toEqual([written]);
    const orders = (listed.body.orders ?? []) as { order_id: string }[];
    expect(orders.map((order) => order.order_id)).toContain(created.body.order_id);
    // Bookmarks sort by time: the list read at the write's state or later.
    expect((listed.headers.get(BOOKMARK) ?? "") >= written).toBe(true);
  });

  it("a bookmark that is not one is ignored: the read starts unconstrained and succeeds", async ({
    expect,
  }) => {
    const app = countingApp();
    for (const junk of ["first-primary", "'; DROP TABLE orders; --", "x".repeat(300), "zz-zz"]) {
      const answer = await app.call("GET", "/catalog", { headers: { [BOOKMARK]: junk } });
      expect(answer.status).toBe(200);
      expect(answer.cost.sessions).toEqual(["first-unconstrained"]);
    }
  });

  it("a request that queries nothing answers no bookmark", async ({ expect }) => {
    const app = countingApp();
    const answer = await app.call("GET", "/.well-known/jwks.json");
    expect(answer.status).toBe(200);
    expect(answer.cost.d1).toBe(0);
    // The session is opened by the first query: none here.
    expect(answer.cost.sessions).toEqual([]);
    expect(answer.headers.get(BOOKMARK)).toBeNull();
  });
});
