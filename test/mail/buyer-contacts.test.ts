import { env } from "cloudflare:workers";
import { eq } from "drizzle-orm";
import { describe, it } from "vitest";
import { verifyBuyer } from "../../src/auth/buyer-token";
import { buyerContacts } from "../../src/db/schema";
import { loadConfig } from "../../src/env";
import { db, seedProduct } from "../support/fixtures";
import { callJson } from "../support/http";
import { buyerToken, testEmailOf, uniqueUser } from "../support/tokens";
import { startTopup } from "../support/wallet";

// Where receipts go: the buyer's address comes from their identity provider, as the optional OIDC `email`
// claim of their token, and is remembered in the batch of the order or top-up they start.

async function contactOf(userId: string) {
  return (await db().select().from(buyerContacts).where(eq(buyerContacts.userId, userId)))[0];
}

async function order(token: string) {
  const product = await seedProduct({ price_cents: 900 });
  const created = await callJson("POST", "/orders", {
    token,
    idempotencyKey: crypto.randomUUID(),
    body: { items: [{ product_id: product.id, quantity: 1 }] },
  });
  expect201(created.status);
}

function expect201(status: number) {
  if (status !== 201) throw new Error(`expected 201, got ${status}`);
}

describe("the buyer's address", () => {
  it("an order remembers the token's email claim, in the order's own batch; a newer address replaces it", async ({
    expect,
  }) => {
    const userId = uniqueUser();
    // Refused for stock: the batch rolled back, the address with it (it is no write of its own).
    const soldOut = await seedProduct({ sellable: 0 });
    const refused = await callJson<{ code: string }>("POST", "/orders", {
      token: await buyerToken(userId),
      idempotencyKey: crypto.randomUUID(),
      body: { items: [{ product_id: soldOut.id, quantity: 1 }] },
    });
    expect(refused.body.code).toBe("sold_out");
    expect(await contactOf(userId)).toBeUndefined();

    await order(await buyerToken(userId));
    expect(await contactOf(userId)).toMatchObject({ email: testEmailOf(userId) });

    await order(await buyerToken(userId, { email: "new.address@example.test" }));
    expect((await contactOf(userId))?.email).toBe("new.address@example.test");

    // A token without the claim (an access token often has none) leaves the known address alone.
    await order(await buyerToken(userId, { email: null }));
    expect((await contactOf(userId))?.email).toBe("new.address@example.test");
  });

  it("a top-up remembers it too", async ({ expect }) => {
    const userId = uniqueUser();
    const started = await startTopup(await buyerToken(userId), 1_000);
    expect(started.status).toBe(201);
    expect((await contactOf(userId))?.email).toBe(testEmailOf(userId));
  });

  it("a malformed, over-long or unverified address is ignored, and the request still succeeds", async ({
    expect,
  }) => {
    const tooLong = `${"a".repeat(64)}@${"b".repeat(63)}.${"c".repeat(63)}.${"d".repeat(63)}.test`;
    expect(tooLong.length).toBeGreaterThan(254);
    for (const options of [
      { email: "not an address" },
      { email: tooLong },
      { claims: { email_verified: false } },
      { claims: { email_verified: "false" } },
      { claims: { email: 42 } },
    ]) {
      const userId = uniqueUser();
      await order(await buyerToken(userId, options));
      expect(await contactOf(userId)).toBeUndefined();
    }
    // `email_verified: true` is of course fine.
    const verified = uniqueUser();
    await order(await buyerToken(verified, { claims: { email_verified: true } }));
    expect((await contactOf(verified))?.email).toBe(testEmailOf(verified));
  });

  it("verifyBuyer answers the address with the user id, from the isolate's cache as well", async ({
    expect,
  }) => {
    const config = loadConfig(env);
    const userId = uniqueUser();
    const token = await buyerToken(userId);
    const fresh = await verifyBuyer(config, token);
    expect(fresh).toEqual({ ok: true, buyer: { userId, email: testEmailOf(userId) } });
    expect(await verifyBuyer(config, token)).toEqual(fresh);
    expect(await verifyBuyer(config, await buyerToken(userId, { email: null }))).toEqual({
      ok: true,
      buyer: { userId },
    });
  });
});
