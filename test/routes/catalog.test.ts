import { describe, it } from "vitest";
import type { AuditEntry } from "../../src/types/domain";
import { auditSettled } from "../support/audit";
import { operatorToken, seedProduct } from "../support/fixtures";
import { callJson } from "../support/http";
import { adminOperator } from "../support/staff";
import { buyerToken, uniqueUser } from "../support/tokens";

describe("GET /catalog", () => {
  it("lists active products with availability", async ({ expect }) => {
    const product = await seedProduct({ sellable: 37 });
    const { status, body, headers } = await callJson<{ products: { id: string; available: number }[] }>(
      "GET",
      "/catalog",
    );
    expect(status).toBe(200);
    expect(headers.get("x-request-id")).toBeTruthy();
    const listed = body.products.find((p) => p.id === product.id);
    expect(listed).toMatchObject({ available: 37, functions: product.functions, currency: "EUR" });
  });
});

describe("admin products", () => {
  it("creates a product and refuses sellable below committed", async ({ expect }) => {
    const admin = await operatorToken(["admin"]);
    const created = await callJson<{ id: string; sellable: number }>("POST", "/admin/products", {
      token: admin.token,
      body: { name: "Ferry day", price_cents: 900, sellable: 3, functions: [{ function: "ferry", uses: 2 }] },
    });
    expect(created.status).toBe(201);
    expect(created.body.id).toMatch(/^prd_/);
    const patched = await callJson("PATCH", `/admin/products/${created.body.id}`, {
      token: admin.token,
      body: { sellable: 5, name: "Ferry day+" },
    });
    expect(patched.status).toBe(200);
    expect(patched.body).toMatchObject({ sellable: 5, name: "Ferry day+" });
  });

  it("403 for a non-admin, 401 without a token", async ({ expect }) => {
    const gate = await operatorToken(["gate"]);
    const body = { name: "x", price_cents: 1, sellable: 1, functions: [{ function: "bus", uses: 1 }] };
    expect((await callJson("POST", "/admin/products", { token: gate.token, body })).status).toBe(403);
    const anonymous = await callJson("POST", "/admin/products", { body });
    expect(anonymous.status).toBe(401);
    expect(anonymous.body).toMatchObject({ code: "unauthenticated", status: 401 });
    expect(anonymous.headers.get("content-type")).toContain("application/problem+json");
  });
});

interface AdminProductBody {
  id: string;
  sellable: number;
  reserved: number;
  sold: number;
  available: number;
  code?: string;
  committed?: number;
}

/**
 * The entries whose target is `target`, read through the API once the consumer has chained every entry
 * requested so far; in action order, as the queue does not promise to keep the actions' order.
 */
async function auditEntriesFor(token: string, target: string) {
  await auditSettled();
  const query = new URLSearchParams({
    from: "2000-01-01T00:00:00Z",
    to: "2999-01-01T00:00:00Z",
    limit: "200",
  });
  const entries: AuditEntry[] = [];
  let cursor: string | null = null;
  do {
    if (cursor) query.set("cursor", cursor);
    const page = await callJson<{ entries: AuditEntry[]; next_cursor: string | null }>(
      "GET",
      `/admin/audit?${query}`,
      { token },
    );
    if (page.status !== 200) throw new Error(`audit listing failed: ${page.status}`);
    entries.push(...page.body.entries);
    cursor = page.body.next_cursor;
  } while (cursor);
  return entries.filter((entry) => entry.target === target).sort((a, b) => a.action.localeCompare(b.action));
}

/** Reserves `quantity` units of `productId` through an unpaid order. */
async function reserveUnits(productId: string, quantity: number) {
  const order = await callJson("POST", "/orders", {
    token: await buyerToken(uniqueUser("reserver")),
    idempotencyKey: crypto.randomUUID(),
    body: { items: [{ product_id: productId, quantity }] },
  });
  if (order.status !== 201) throw new Error(`order failed: ${order.status} ${JSON.stringify(order.body)}`);
}

const newProduct = (sellable: number) => ({
  name: "Audited pass",
  price_cents: 500,
  sellable,
  functions: [{ function: "bus", uses: 1 }],
});

describe("PATCH /admin/products/{id}: sellable_below_committed", () => {
  it("refuses sellable below reserved + sold with 409, and records nothing for the refusal", async ({
    expect,
  }) => {
    const admin = await adminOperator();
    const created = await callJson<AdminProductBody>("POST", "/admin/products", {
      token: admin.token,
      body: newProduct(5),
    });
    expect(created.status).toBe(201);
    await reserveUnits(created.body.id, 3);

    const below = await callJson<AdminProductBody>("PATCH", `/admin/products/${created.body.id}`, {
      token: admin.token,
      body: { sellable: 2, name: "Never applied" },
    });
    expect(below.status).toBe(409);
    expect(below.body).toMatchObject({ code: "sellable_below_committed", committed: 3 });

    const atCommitted = await callJson<AdminProductBody>("PATCH", `/admin/products/${created.body.id}`, {
      token: admin.token,
      body: { sellable: 3 },
    });
    expect(atCommitted.status).toBe(200);
    expect(atCommitted.body).toMatchObject({ sellable: 3, reserved: 3, available: 0 });

    // The refused change rolled back with its entry: only the create and the applied change are there.
    const entries = await auditEntriesFor(admin.token, created.body.id);
    expect(entries.map((entry) => [entry.action, entry.details])).toEqual([
      ["product.create", expect.objectContaining({ sellable: 5 })],
      ["product.update", { sellable: 3 }],
    ]);
    const catalog = await callJson<{ products: { id: string; name: string }[] }>("GET", "/catalog");
    expect(catalog.body.products.find((p) => p.id === created.body.id)?.name).toBe("Audited pass");
  });

  it("a cut racing reservations never leaves reserved above sellable", async ({ expect }) => {
    const admin = await adminOperator();
    const product = await callJson<AdminProductBody>("POST", "/admin/products", {
      token: admin.token,
      body: newProduct(10),
    });
    const [cut, ...orders] = await Promise.all([
      callJson<AdminProductBody>("PATCH", `/admin/products/${product.body.id}`, {
        token: admin.token,
        body: { sellable: 4 },
      }),
      ...Array.from({ length: 10 }, async () =>
        callJson("POST", "/orders", {
          token: await buyerToken(uniqueUser("racer")),
          idempotencyKey: crypto.randomUUID(),
          body: { items: [{ product_id: product.body.id, quantity: 1 }] },
        }),
      ),
    ]);
    if (!cut) throw new Error("the PATCH answered");
    const placed = orders.filter((order) => order.status === 201).length;
    if (cut.status === 200) {
      expect(placed).toBeLessThanOrEqual(4);
    } else {
      expect(cut).toMatchObject({ status: 409, body: { code: "sellable_below_committed" } });
      expect(placed).toBeGreaterThan(4);
    }
    for (const order of orders.filter((o) => o.status !== 201)) {
      expect(order.body).toMatchObject({ code: "sold_out" });
    }
    const updates = (await auditEntriesFor(admin.token, product.body.id)).filter(
      (entry) => entry.action === "product.update",
    );
    expect(updates).toHaveLength(cut.status === 200 ? 1 : 0);
  });

  it("404 not_found for an unknown product, with no audit entry", async ({ expect }) => {
    const admin = await adminOperator();
    const missing = await callJson("PATCH", "/admin/products/prd_missing", {
      token: admin.token,
      body: { sellable: 1 },
    });
    expect(missing).toMatchObject({ status: 404, body: { code: "not_found" } });
    expect(await auditEntriesFor(admin.token, "prd_missing")).toEqual([]);
  });
});

describe("admin changes commit with their audit entry", () => {
  it("product create and patch each leave one entry with the admin as actor", async ({ expect }) => {
    const admin = await adminOperator();
    const created = await callJson<AdminProductBody>("POST", "/admin/products", {
      token: admin.token,
      body: newProduct(7),
    });
    expect(created.status).toBe(201);
    const patched = await callJson("PATCH", `/admin/products/${created.body.id}`, {
      token: admin.token,
      body: { price_cents: 650, active: false },
    });
    expect(patched.status).toBe(200);
    const entries = await auditEntriesFor(admin.token, created.body.id);
    expect(entries).toHaveLength(2);
    expect(entries[0]).toMatchObject({
      actor: admin.operatorId,
      action: "product.create",
      details: { name: "Audited pass", sellable: 7, price_cents: 500 },
    });
    expect(entries[1]).toMatchObject({
      actor: admin.operatorId,
      action: "product.update",
      details: { price_cents: 650, active: false },
    });
  });

  it("operator create leaves one entry; a duplicate username is 409 username_taken and leaves none", async ({
    expect,
  }) => {
    const admin = await adminOperator();
    const username = `audited-${crypto.randomUUID().slice(0, 8)}`;
    const body = { username, password: "a-long-enough-password", roles: ["gate", "gate"] };
    // Sent at once: the UNIQUE index picks one winner, and the loser's entry rolls back with its insert.
    const answers = await Promise.all(
      [username, username.toUpperCase(), username].map((name) =>
        callJson<{ operator_id?: string; roles?: string[]; code?: string }>("POST", "/admin/operators", {
          token: admin.token,
          body: { ...body, username: name },
        }),
      ),
    );
    const created = answers.filter((answer) => answer.status === 201);
    expect(created).toHaveLength(1);
    for (const answer of answers.filter((a) => a.status !== 201)) {
      expect(answer).toMatchObject({ status: 409, body: { code: "username_taken" } });
    }
    const operatorId = created[0]?.body.operator_id ?? "";
    expect(created[0]?.body.roles).toEqual(["gate"]);
    const entries = await auditEntriesFor(admin.token, operatorId);
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({
      actor: admin.operatorId,
      action: "operator.create",
      details: { roles: ["gate"], event_ids: [] },
    });
    expect(JSON.stringify(entries)).not.toContain(body.password);
  });
});
