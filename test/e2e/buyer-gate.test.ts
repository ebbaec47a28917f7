import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, inject, it } from "vitest";
import { call, DEMO_PASSWORD, demoBuyer, HARBOUR_PASS, paidTicket } from "./support/api";
import {
  ARTIFACTS_DIR,
  documentWidth,
  launchBrowser,
  openPage,
  openSignedInBuyerPage,
  PHONE_VIEWPORT,
  screenshot,
} from "./support/browser";
import { writeQrVideo } from "./support/y4m";

const base = inject("baseUrl");
const QR_TOKEN_PATH = /^\/tickets\/[^/]+\/qr-token$/;

let browser: Browser;
const browsers: Browser[] = [];

beforeAll(async () => {
  browser = await launchBrowser();
  browsers.push(browser);
});

afterAll(async () => {
  await Promise.all(browsers.map((open) => open.close()));
});

describe("buyer app and gate, in Chromium", () => {
  it("a demo buyer buys a Harbour Pass, pays, shows the QR, and a gate camera accepts it", async ({
    expect,
  }) => {
    const buyer = await openPage(browser, `${base}/`);
    const page = buyer.page;

    await page.getByRole("button", { name: "Continue as a demo user" }).click();
    await page.getByText(/^Signed in as demo-/).waitFor();
    await page.getByRole("heading", { name: "Harbour Pass" }).waitFor();
    await screenshot(page, "buyer-1-catalog");

    await page.getByRole("button", { name: "Buy Harbour Pass" }).click();
    const pay = page.getByRole("button", { name: "Simulate payment" });
    await pay.waitFor();
    expect(await page.locator("#order-summary").textContent()).toMatch(/1 × Harbour Pass.*39\.00/);
    await screenshot(page, "buyer-2-order");
    await pay.click();

    await page.getByText("Paid: your tickets are ready.").waitFor();
    const ticket = page.locator("[data-ticket]").first();
    expect(await ticket.locator(".chips").textContent()).toContain("bus 10/10");
    await screenshot(page, "buyer-3-tickets");

    const firstToken = page.waitForResponse((response) =>
      QR_TOKEN_PATH.test(new URL(response.url()).pathname),
    );
    await ticket.getByRole("button", { name: /Show QR code/ }).click();
    const { token } = (await (await firstToken).json()) as { token: string; expires_in: number };
    const dialog = page.getByRole("dialog");
    await dialog.getByText(/^New code in \d+ s$/).waitFor();
    expect(await page.locator("#qr-canvas").getAttribute("data-state")).toBe("live");
    // The code fills the phone's width: scannable from a distance.
    const qrBox = await page.locator("#qr-canvas").boundingBox();
    expect(qrBox?.width).toBeGreaterThan(PHONE_VIEWPORT.width * 0.85);
    await screenshot(page, "buyer-4-qr");

    // The gate's camera sees the code the phone shows: the same token, drawn into a fake video stream.
    mkdirSync(ARTIFACTS_DIR, { recursive: true });
    const video = resolve(join(ARTIFACTS_DIR, "ticket-qr.y4m"));
    writeQrVideo(video, token);
    const cameraBrowser = await launchBrowser({ fakeVideo: video });
    browsers.push(cameraBrowser);
    const gate = await openPage(cameraBrowser, `${base}/gate`);
    await gate.page.getByLabel("Username").fill("gate-demo");
    await gate.page.getByLabel("Password").fill(DEMO_PASSWORD);
    await gate.page.getByRole("button", { name: "Sign in" }).click();
    expect(await gate.page.getByLabel("Device id").inputValue()).toBe("dev-gate-1");
    await gate.page.getByRole("button", { name: "Open session" }).click();
    await gate.page.getByText(/^Device dev-gate-1, location loc-pier-1/).waitFor();
    await gate.page.getByLabel("This gate validates").selectOption("bus");
    await gate.page.getByRole("button", { name: "Start camera" }).click();

    const verdict = gate.page.locator("#verdict");
    await gate.page.waitForFunction(
      () => document.getElementById("verdict")?.textContent === "ACCEPTED",
      null,
      {
        timeout: 20_000,
      },
    );
    expect(await verdict.textContent()).toBe("ACCEPTED");
    expect(await gate.page.locator("#uses li.scanned").textContent()).toMatch(/bus\s*9 of 10 left/);
    expect(await gate.page.locator("#reason").textContent()).toBe("9 bus uses left");
    // The ticket code as the buyer's ticket shows it, in groups.
    expect(await gate.page.locator("#ticket").textContent()).toMatch(/^Ticket (\w{4}-){3}\S{2} · bus$/);
    expect(await gate.page.locator("#result").getAttribute("aria-live")).toBe("assertive");
    await screenshot(gate.page, "gate-1-accepted");

    // The phone notices the scan, says so, and shows a fresh code for the next gate.
    await page.getByText("Scanned: 9 bus left").waitFor({ timeout: 15_000 });
    await page.getByRole("button", { name: "Close" }).click();
    await page.waitForFunction(() =>
      document.querySelector("[data-ticket] .chips")?.textContent?.includes("bus 9/10"),
    );
    await screenshot(page, "buyer-5-after-scan");

    // The same token again, typed in by hand: refused, with the reason and what is left.
    await gate.page.getByLabel("No camera? Paste the QR token").fill(token);
    await gate.page.getByRole("button", { name: "Validate" }).click();
    await gate.page.waitForFunction(() => document.getElementById("verdict")?.textContent === "REFUSED");
    expect(await gate.page.locator("#reason").textContent()).toBe("This code was already used");
    expect(await gate.page.locator("#ticket").textContent()).toMatch(/ · bus$/);
    expect(await gate.page.locator("#uses li.scanned").textContent()).toMatch(/9 of 10 left/);
    await screenshot(gate.page, "gate-2-refused");

    for (const watched of [buyer, gate]) {
      expect(await documentWidth(watched.page)).toBeLessThanOrEqual(PHONE_VIEWPORT.width);
    }
    expect(buyer.errors).toEqual([]);
    expect(gate.errors.filter((error) => !expectedRefusal(error))).toEqual([]);
  });

  it("a checkout retried after a lost answer reuses its Idempotency-Key and reserves once", async ({
    expect,
  }) => {
    const available = async () =>
      (
        await call<{ products: { id: string; available: number }[] }>(base, "GET", "/catalog")
      ).body.products.find((product) => product.id === HARBOUR_PASS)?.available ?? 0;
    const before = await available();
    const buyer = await openSignedInBuyerPage(browser, base, await demoBuyer(base));
    const { page } = buyer;
    const keys: string[] = [];
    // The first order reaches the server and is made, but its answer never arrives.
    await page.route("**/orders", async (route) => {
      keys.push(route.request().headers()["idempotency-key"] ?? "");
      if (keys.length > 1) return route.continue();
      await route.fetch();
      await route.abort("connectionreset");
    });
    await page.getByRole("button", { name: "Buy Harbour Pass" }).click();
    const retry = page.getByRole("button", { name: "Retry order" });
    await retry.waitFor();
    expect(await page.locator("#checkout-status").textContent()).toContain("Retrying is safe");
    await retry.click();
    await page.getByRole("button", { name: "Simulate payment" }).waitFor();
    expect(keys).toHaveLength(2);
    expect(keys[1]).toBe(keys[0]);
    expect(await available()).toBe(before - 1);
    await screenshot(page, "buyer-6-order-retried");
    expect(buyer.errors.filter((error) => !/net::ERR_CONNECTION_RESET/.test(error))).toEqual([]);
  });

  it("the QR code refreshes itself before it expires, counting down", async ({ expect }) => {
    const token = await demoBuyer(base);
    await paidTicket(base, token);
    const buyer = await openSignedInBuyerPage(browser, base, token, (page) => page.clock.install());
    const { page } = buyer;
    await page.getByRole("button", { name: "Tickets" }).click();
    const ticket = page.locator("[data-ticket]").first();
    await ticket.waitFor();

    const first = page.waitForResponse((response) => QR_TOKEN_PATH.test(new URL(response.url()).pathname));
    await ticket.getByRole("button", { name: /Show QR code/ }).click();
    const firstBody = (await (await first).json()) as { token: string; expires_in: number };
    await page.getByText(/^New code in \d+ s$/).waitFor();
    const shownSeconds = Number((await page.locator("#qr-countdown").textContent())?.match(/\d+/)?.[0]);
    expect(shownSeconds).toBeLessThan(firstBody.expires_in);

    // Just short of the token's lifetime on the page's clock: a new code must already have replaced it.
    const second = page.waitForResponse((response) => QR_TOKEN_PATH.test(new URL(response.url()).pathname));
    await page.clock.fastForward((firstBody.expires_in - 2) * 1000);
    const secondBody = (await (await second).json()) as { token: string };
    expect(secondBody.token).not.toBe(firstBody.token);
    await page.waitForFunction(() =>
      /^New code in \d+ s$/.test(document.getElementById("qr-countdown")?.textContent ?? ""),
    );
    expect(await page.locator("#qr-canvas").getAttribute("data-state")).toBe("live");
    expect(buyer.errors).toEqual([]);
  });
});

/** Chromium reports a 4xx answer to fetch() as a console error; a refused scan is one, on purpose. */
function expectedRefusal(error: string): boolean {
  return (
    /Failed to load resource: the server responded with a status of 409/.test(error) &&
    error.includes("/tickets/scan")
  );
}
