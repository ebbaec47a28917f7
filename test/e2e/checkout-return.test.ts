import { randomUUID } from "node:crypto";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, inject, it } from "vitest";
import { call, demoBuyer, HARBOUR_PASS } from "./support/api";
import { launchBrowser, openPage, screenshot } from "./support/browser";

// Coming back from the payment provider's page: the provider sends the buyer to
// `/?checkout=success|cancel&reference=…`, and the page shows the order's real state from the API, not
// what the address claims. (Locally the gateway is the standard one: the payment is simulated first.)

const base = inject("baseUrl");

let browser: Browser;
beforeAll(async () => {
  browser = await launchBrowser();
});
afterAll(async () => {
  await browser.close();
});

/** The page as the provider's redirect opens it, with `token` signed in from an earlier visit. */
function openReturn(token: string, result: "success" | "cancel", reference: string) {
  return openPage(browser, `${base}/?checkout=${result}&reference=${reference}`, async (page) => {
    await page.addInitScript(([key, value]) => localStorage.setItem(key, value), [
      "passes.buyer.token",
      token,
    ] as const);
  });
}

async function pendingOrder(token: string): Promise<{ order_id: string; expires_at: string }> {
  const order = await call<{ order_id: string; expires_at: string }>(base, "POST", "/orders", {
    token,
    idempotencyKey: randomUUID(),
    body: { items: [{ product_id: HARBOUR_PASS, quantity: 1 }] },
  });
  if (order.status !== 201) throw new Error(`order: ${order.status}`);
  return order.body;
}

describe("back from the payment provider's page", () => {
  it("success with the payment confirmed opens the tickets; the address loses the return", async ({
    expect,
  }) => {
    const token = await demoBuyer(base);
    const order = await pendingOrder(token);
    const paid = await call(base, "POST", "/dev/simulate-payment", {
      token,
      body: { order_id: order.order_id },
    });
    expect(paid.status).toBe(200);
    const { page, errors } = await openReturn(token, "success", order.order_id);
    await page.getByText("Paid: your tickets are ready.").waitFor();
    expect(await page.locator("#tab-tickets").isVisible()).toBe(true);
    expect(new URL(page.url()).search).toBe("");
    await screenshot(page, "checkout-return-success");
    expect(errors).toEqual([]);
  });

  it("success claimed for an unpaid order says it is not confirmed, and never shows tickets", async ({
    expect,
  }) => {
    const token = await demoBuyer(base);
    const order = await pendingOrder(token);
    const { page, errors } = await openReturn(token, "success", order.order_id);
    await page.getByText("Confirming your payment…").waitFor();
    await page
      .getByText("Your payment is not confirmed yet: this order updates as soon as it is.")
      .waitFor({ timeout: 20_000 });
    expect(await page.locator("#tab-tickets").isVisible()).toBe(false);
    expect(errors).toEqual([]);
  });

  it("cancel says the passes stay reserved and leads to My orders, where Pay is offered", async ({
    expect,
  }) => {
    const token = await demoBuyer(base);
    const order = await pendingOrder(token);
    const { page, errors } = await openReturn(token, "cancel", order.order_id);
    await page.getByText(/^Payment not completed\. The passes stay reserved until /).waitFor();
    await screenshot(page, "checkout-return-cancel");
    await page.locator("#checkout-return").getByRole("button", { name: "My orders" }).click();
    const card = page.locator(`li[data-order="${order.order_id}"]`);
    await card.getByRole("button", { name: "Simulate payment" }).click();
    await page.getByText("Paid: your tickets are ready.").waitFor();
    expect(errors).toEqual([]);
  });
});
