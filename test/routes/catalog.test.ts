import { describe, it } from "vitest";
import { operatorToken, seedProduct } from "../support/fixtures";
import { callJson } from "../support/http";

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
