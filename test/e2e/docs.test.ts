import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, inject, it } from "vitest";
import { launchBrowser, PHONE_VIEWPORT, screenshot } from "./support/browser";

const base = inject("baseUrl");

let browser: Browser;
beforeAll(async () => {
  browser = await launchBrowser();
});
afterAll(async () => {
  await browser.close();
});

describe("/docs: the API reference, self-contained", () => {
  it("renders the operations with every request to another origin blocked, without console errors", async ({
    expect,
  }) => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const foreign: string[] = [];
    // A venue network with no internet, or a CDN that is down: anything not from the app fails.
    await context.route("**/*", (route) => {
      const url = route.request().url();
      if (new URL(url).origin === base || url.startsWith("data:") || url.startsWith("blob:")) {
        return route.continue();
      }
      foreign.push(url);
      return route.abort("internetdisconnected");
    });
    const page = await context.newPage();
    const errors: string[] = [];
    page.on("console", (message) => {
      if (message.type() === "error") errors.push(message.text());
    });
    page.on("pageerror", (error) => errors.push(error.message));

    const response = await page.goto(`${base}/docs`);
    expect(response?.status()).toBe(200);
    await page.getByText("Passes Edge API", { exact: false }).first().waitFor();
    await page.getByText("loginOperator").first().waitFor();
    // "Try it out" goes to this deployment, the only origin the page may reach.
    expect(await page.locator("select").first().inputValue()).toBe(base);
    await screenshot(page, "docs");
    expect(foreign).toEqual([]);
    expect(errors).toEqual([]);
    await context.close();
  });

  it("is served under a Content-Security-Policy that names no other origin", async ({ expect }) => {
    const response = await fetch(`${base}/docs`);
    expect(response.status).toBe(200);
    const csp = response.headers.get("content-security-policy") ?? "";
    expect(csp).toContain("default-src 'self'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toMatch(/https?:|\*|unsafe-eval/);
    const html = await response.text();
    expect(html).not.toMatch(/src="https?:|href="https?:/);
  });

  it("renders at phone width too", async ({ expect }) => {
    const context = await browser.newContext({ viewport: PHONE_VIEWPORT });
    const page = await context.newPage();
    await page.goto(`${base}/docs`);
    await page.getByText("loginOperator").first().waitFor();
    expect(await page.title()).toContain("API reference");
    await context.close();
  });
});
