import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, inject, it } from "vitest";
import { call } from "./support/api";
import { documentWidth, launchBrowser, openPage, PHONE_VIEWPORT, screenshot } from "./support/browser";

const base = inject("baseUrl");
const PAGES = [
  { path: "/", name: "buyer", heading: "Sign in" },
  { path: "/gate", name: "gate", heading: "Staff sign-in" },
  { path: "/pos", name: "pos", heading: "Staff sign-in" },
  { path: "/reports", name: "reports", heading: "Analyst sign-in" },
  { path: "/admin", name: "admin", heading: "Admin sign-in" },
];

let browser: Browser;
beforeAll(async () => {
  browser = await launchBrowser();
});
afterAll(async () => {
  await browser.close();
});

describe("the reference pages, served as static assets next to the API", () => {
  for (const { path, name, heading } of PAGES) {
    it(`${path} loads at 390 px without console errors, sideways scrolling or unlabelled fields`, async ({
      expect,
    }) => {
      const { page, errors } = await openPage(browser, `${base}${path}`);
      await page.getByRole("heading", { name: heading }).waitFor();
      expect(await documentWidth(page)).toBeLessThanOrEqual(PHONE_VIEWPORT.width);
      const unlabelled = await page.evaluate(() =>
        [...document.querySelectorAll<HTMLInputElement>("input, select, textarea")]
          .filter((field) => (field.labels?.length ?? 0) === 0 && !field.getAttribute("aria-label"))
          .map((field) => field.id || field.name),
      );
      expect(unlabelled).toEqual([]);
      await screenshot(page, `page-${name}`);
      expect(errors).toEqual([]);
      await page.context().close();
    });
  }

  it("pages carry a content security policy; the API's own answers are untouched", async ({ expect }) => {
    const page = await fetch(`${base}/gate`);
    expect(page.headers.get("content-security-policy")).toContain("default-src 'self'");
    expect(page.headers.get("content-type")).toMatch(/^text\/html/);
    const catalog = await fetch(`${base}/catalog`);
    expect(catalog.status).toBe(200);
    expect(catalog.headers.get("x-request-id")).toBeTruthy();
    // A page and an API path share a prefix; the API path still reaches the Worker.
    const exports = await call(base, "GET", "/reports/exports");
    expect(exports.status).toBe(401);
  });

  it("the development helpers work here but are not part of the published contract", async ({ expect }) => {
    const token = await call<{ token: string; user_id: string }>(base, "POST", "/dev/buyer-token", {
      body: {},
    });
    expect(token.status).toBe(201);
    expect(token.body.user_id).toMatch(/^demo-/);
    const anonymous = await call(base, "POST", "/dev/simulate-payment", { body: { order_id: "ord_x" } });
    expect(anonymous.status).toBe(401);
    const document = await call<{ paths: Record<string, unknown> }>(base, "GET", "/openapi.json");
    expect(Object.keys(document.body.paths).filter((path) => path.startsWith("/dev/"))).toEqual([]);
  });
});
