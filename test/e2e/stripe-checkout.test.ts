import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, it } from "vitest";
import { type RunningApp, startApp } from "./support/app";
import { launchBrowser, openPage, screenshot } from "./support/browser";
import {
  E2E_STRIPE_SECRET_KEY,
  E2E_STRIPE_WEBHOOK_SECRET,
  type FakeStripeServer,
  startFakeStripe,
} from "./support/fake-stripe-server";

// The whole card round trip with PAYMENT_PROVIDER=stripe: the buyer page asks the API where to pay, the
// API opens a Checkout Session at (a local stand-in for) Stripe, the browser goes to the hosted page and
// pays, Stripe's signed webhook settles the order, and the buyer comes back to their tickets. The app is
// a second dev server of its own, configured for Stripe.

let browser: Browser;
let stripe: FakeStripeServer;
let app: RunningApp;

beforeAll(async () => {
  stripe = await startFakeStripe();
  app = await startApp({
    vars: {
      PAYMENT_PROVIDER: "stripe",
      STRIPE_SECRET_KEY: E2E_STRIPE_SECRET_KEY,
      STRIPE_WEBHOOK_SECRET: E2E_STRIPE_WEBHOOK_SECRET,
      STRIPE_API_BASE: stripe.url,
    },
  });
  browser = await launchBrowser();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await app?.stop();
  await stripe?.stop();
});

describe("paying by card on Stripe Checkout", () => {
  it("goes to the hosted page, pays, and comes back to the tickets", async ({ expect }) => {
    const { page, errors } = await openPage(browser, `${app.url}/`);
    await page.getByRole("button", { name: "Continue as a demo user" }).click();
    await page.getByRole("button", { name: "Buy Harbour Pass" }).click();
    // The API opened the page while the dialog showed the order: the button says so.
    const pay = page.getByRole("button", { name: "Pay", exact: true });
    await pay.waitFor();
    await screenshot(page, "stripe-1-order");
    await pay.click();

    await page.waitForURL(`${stripe.url}/pay/**`);
    const [session] = [...stripe.sessions.values()];
    expect(session?.client_reference_id).toMatch(/^ord_/);
    expect(stripe.keys).toEqual([`checkout:${session?.client_reference_id}:1`]);
    // The seeded Harbour Pass costs €39.00: the hosted page asks for what the order is due.
    expect(await page.locator("#amount").textContent()).toBe("Pay €39.00");
    await page.getByRole("button", { name: "Pay €39.00" }).click();

    await page.waitForURL(`${app.url}/**`);
    await page.getByText("Paid: your tickets are ready.").waitFor();
    expect(new URL(page.url()).search).toBe("");
    const ticket = page.locator("[data-ticket]").first();
    await ticket.waitFor();
    expect(await ticket.locator(".chips").textContent()).toContain("bus 10/10");
    await screenshot(page, "stripe-2-back-with-tickets");
    expect(errors).toEqual([]);
  });

  it("giving up on the hosted page comes back to an order still reserved", async ({ expect }) => {
    const { page, errors } = await openPage(browser, `${app.url}/`);
    await page.getByRole("button", { name: "Continue as a demo user" }).click();
    await page.getByRole("button", { name: "Buy Harbour Pass" }).click();
    await page.getByRole("button", { name: "Pay", exact: true }).click();
    await page.waitForURL(`${stripe.url}/pay/**`);
    await page.getByRole("link", { name: "Back" }).click();
    await page.getByText(/^Payment not completed\. The passes stay reserved until /).waitFor();
    expect(errors).toEqual([]);
  });
});
