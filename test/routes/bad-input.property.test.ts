import fc from "fast-check";
import { describe, it } from "vitest";
import { operatorToken, seedProduct } from "../support/fixtures";
import { call } from "../support/http";
import { buyerToken, uniqueUser } from "../support/tokens";

// Arbitrary JSON, plus near-misses of the real shapes: these find the 500s that random noise misses.
const anyJson = fc.jsonValue({ maxDepth: 4 });
const nearOrder = (productId: string) =>
  fc.record(
    {
      items: fc.oneof(
        fc.array(
          fc.record(
            {
              product_id: fc.oneof(fc.constant(productId), fc.string(), fc.integer(), fc.constant(null)),
              quantity: fc.oneof(
                fc.integer({ min: -5, max: 40 }),
                fc.double(),
                fc.string(),
                fc.constant(null),
              ),
            },
            { requiredKeys: [] },
          ),
          { maxLength: 14 },
        ),
        anyJson,
      ),
      credits_cents: fc.oneof(fc.integer(), fc.string()),
    },
    { requiredKeys: [] },
  );
const nearProduct = fc.record(
  {
    name: fc.oneof(fc.string({ maxLength: 200 }), fc.integer()),
    description: fc.oneof(fc.string(), fc.constant(null)),
    price_cents: fc.oneof(fc.integer(), fc.double(), fc.bigInt().map(String)),
    sellable: fc.oneof(fc.integer(), fc.constant(-1), fc.constant(1e12)),
    functions: fc.oneof(
      fc.array(
        fc.record({ function: fc.string(), uses: fc.oneof(fc.integer(), fc.string()) }, { requiredKeys: [] }),
      ),
      anyJson,
    ),
  },
  { requiredKeys: [] },
);
const rawBody = fc.oneof(
  anyJson.map((value) => JSON.stringify(value)),
  fc.string(),
  fc.constant("{"),
  fc.constant(""),
);

async function expectProblem(response: Response) {
  const { expect } = await import("vitest");
  expect(response.status, await response.clone().text()).toBeGreaterThanOrEqual(400);
  expect(response.status).toBeLessThan(500);
  expect(response.headers.get("content-type")).toContain("application/problem+json");
  const body = (await response.json()) as { code?: unknown };
  expect(typeof body.code).toBe("string");
}

describe("malformed input never yields a 5xx", () => {
  it("POST /orders", async () => {
    const product = await seedProduct({ sellable: 1_000_000 });
    const token = await buyerToken(uniqueUser());
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          nearOrder(product.id).map((v) => JSON.stringify(v)),
          rawBody,
        ),
        async (body) => {
          const response = await call("POST", "/orders", {
            token,
            idempotencyKey: crypto.randomUUID(),
            rawBody: body,
            headers: { "content-type": "application/json" },
          });
          // Some near-misses are valid orders; everything else must be a precise problem.
          if (response.status === 201) return;
          await expectProblem(response);
        },
      ),
      { numRuns: 150 },
    );
  });

  it("POST /admin/products and PATCH /admin/products/{id}", async () => {
    const admin = await operatorToken(["admin"]);
    const product = await seedProduct();
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          nearProduct.map((v) => JSON.stringify(v)),
          rawBody,
        ),
        fc.boolean(),
        async (body, patch) => {
          const response = await call(
            patch ? "PATCH" : "POST",
            patch ? `/admin/products/${product.id}` : "/admin/products",
            {
              token: admin.token,
              rawBody: body,
              headers: { "content-type": "application/json" },
            },
          );
          if (response.status === 201 || response.status === 200) return;
          await expectProblem(response);
        },
      ),
      { numRuns: 150 },
    );
  });

  it("odd paths and headers", async () => {
    const token = await buyerToken(uniqueUser());
    await fc.assert(
      fc.asyncProperty(fc.string({ maxLength: 300 }), fc.string({ maxLength: 300 }), async (id, key) => {
        await expectProblem(await call("GET", `/orders/${encodeURIComponent(id)}`, { token }));
        const safeKey = key.replace(/[^\t\x20-\x7e]/g, "");
        const post = await call("POST", "/orders", { token, idempotencyKey: safeKey, body: { items: [] } });
        await expectProblem(post);
      }),
      { numRuns: 80 },
    );
  });
});
