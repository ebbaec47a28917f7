import { randomUUID } from "node:crypto";
import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, inject, it } from "vitest";
import { call, demoBuyer, paidTicket, staffToken, type Ticket } from "./support/api";
import {
  ARTIFACTS_DIR,
  documentWidth,
  launchBrowser,
  openGatePage,
  PHONE_VIEWPORT,
  screenshot,
  type WatchedPage,
} from "./support/browser";
import { writeQrVideo } from "./support/y4m";

// The gate page at a phone's size: a lost answer is resent with its Idempotency-Key and confirmed, a code
// refused for the wrong function is read again for the right one, and an accepted scan can be undone.

const base = inject("baseUrl");

let browser: Browser;
const browsers: Browser[] = [];

beforeAll(async () => {
  browser = await launchBrowser();
  browsers.push(browser);
});

afterAll(async () => {
  await Promise.all(browsers.map((open) => open.close()));
});

async function qrToken(buyerToken: string, code: string): Promise<string> {
  const result = await call<{ token: string }>(
    base,
    "POST",
    `/tickets/${encodeURIComponent(code)}/qr-token`,
    {
      token: buyerToken,
    },
  );
  if (result.status !== 200) throw new Error(`qr-token: ${result.status}`);
  return result.body.token;
}

async function remainingUses(buyerToken: string, code: string, fn: string): Promise<number | undefined> {
  const result = await call<{ tickets: Ticket[] }>(base, "GET", "/my/tickets", { token: buyerToken });
  const ticket = result.body.tickets.find((candidate) => candidate.code === code);
  return ticket?.entitlements.find((entitlement) => entitlement.function === fn)?.remaining_uses;
}

/** The gate page signed in as gate-demo with a session open on `deviceId` (enrolled by the page itself). */
function openGate(on: Browser, deviceId: string): Promise<WatchedPage> {
  return openGatePage(on, base, deviceId);
}

function verdictIs(page: Page, text: string, timeout = 20_000): Promise<unknown> {
  return page.waitForFunction(
    (expected) => document.getElementById("verdict")?.textContent === expected,
    text,
    {
      timeout,
    },
  );
}

async function pasteToken(page: Page, token: string): Promise<void> {
  await page.getByLabel("No camera? Paste the QR token").fill(token);
  await page.getByRole("button", { name: "Validate" }).click();
}

function grouped(code: string): string {
  return code.match(/.{1,4}/g)?.join("-") ?? code;
}

/**
 * Chromium logs a 4xx answer to fetch() and a reset connection as console errors; a refused scan and the
 * dropped answer are both on purpose here. Anything else is a fault of the page.
 */
function unexpected(errors: string[]): string[] {
  return errors.filter(
    (error) => !(error.includes("/tickets/scan") && /status of 409|net::ERR_CONNECTION_RESET/.test(error)),
  );
}

describe("gate page at a phone's size", () => {
  it("resends a scan whose answer was lost with the same key and shows it confirmed, spending one use", async ({
    expect,
  }) => {
    const buyer = await demoBuyer(base);
    const ticket = await paidTicket(base, buyer);
    const gate = await openGate(browser, "dev-gate-1");
    const { page } = gate;
    const sent: { key: string; body: string }[] = [];
    // The first scan reaches the server and spends the use, but its answer never arrives.
    await page.route("**/tickets/scan", async (route) => {
      const request = route.request();
      sent.push({ key: request.headers()["idempotency-key"] ?? "", body: request.postData() ?? "" });
      if (sent.length > 1) return route.continue();
      await route.fetch();
      await route.abort("connectionreset");
    });
    await page.getByLabel("This gate validates").selectOption("bus");
    await pasteToken(page, await qrToken(buyer, ticket.code));

    await verdictIs(page, "ACCEPTED");
    expect(await page.locator("#retry-note").textContent()).toBe("Confirmed on retry");
    expect(await page.locator("#verdict-mark").textContent()).toBe("✓");
    expect(await page.locator("#ticket").textContent()).toBe(`Ticket ${grouped(ticket.code)} · bus`);
    expect(await page.locator("#uses li.scanned").textContent()).toMatch(/bus\s*9 of 10 left/);
    await screenshot(page, "gate-retry-1-confirmed");
    expect(sent).toHaveLength(2);
    expect(sent[1]).toEqual(sent[0]);
    expect(sent[0]?.key).toMatch(/^[0-9a-f-]{36}$/);
    expect(await remainingUses(buyer, ticket.code, "bus")).toBe(9);

    // The verdict clears by itself, so the next passenger is not greeted with this one's answer.
    await verdictIs(page, "Ready", 6_000);
    expect(await page.locator("#accepted-count").textContent()).toBe("1");
    expect(await page.locator("#history li").first().textContent()).toContain(grouped(ticket.code));
    expect(await documentWidth(page)).toBeLessThanOrEqual(PHONE_VIEWPORT.width);
    expect(unexpected(gate.errors)).toEqual([]);
  });

  it("shows NOT CHECKED in amber when every resend fails, and Retry resends the same attempt", async ({
    expect,
  }) => {
    const buyer = await demoBuyer(base);
    const ticket = await paidTicket(base, buyer);
    const gate = await openGate(browser, "dev-gate-1");
    const { page } = gate;
    const keys: string[] = [];
    let online = false;
    await page.route("**/tickets/scan", async (route) => {
      keys.push(route.request().headers()["idempotency-key"] ?? "");
      return online ? route.continue() : route.abort("connectionreset");
    });
    await page.getByLabel("This gate validates").selectOption("ferry");
    await pasteToken(page, await qrToken(buyer, ticket.code));

    await verdictIs(page, "NOT CHECKED");
    const panel = page.locator("#result");
    expect(await panel.getAttribute("data-state")).toBe("unchecked");
    // Amber, not the red of a refusal.
    expect(await panel.evaluate((element) => getComputedStyle(element).backgroundColor)).toBe(
      "rgb(240, 180, 0)",
    );
    expect(keys).toHaveLength(4);
    expect(new Set(keys).size).toBe(1);
    await screenshot(page, "gate-retry-2-not-checked");

    online = true;
    await page.getByRole("button", { name: "Retry" }).click();
    await verdictIs(page, "ACCEPTED");
    expect(await page.locator("#retry-note").textContent()).toBe("Confirmed on retry");
    expect(new Set(keys).size).toBe(1);
    expect(await remainingUses(buyer, ticket.code, "ferry")).toBe(1);
    expect(await documentWidth(page)).toBeLessThanOrEqual(PHONE_VIEWPORT.width);
    expect(unexpected(gate.errors)).toEqual([]);
  });

  it("reads a code refused for the wrong function again after the function changes", async ({ expect }) => {
    // A pier gate that validates a function the Harbour Pass lacks, then the ferry.
    const deviceId = `dev-gate-pier-${randomUUID().slice(0, 8)}`;
    const admin = await staffToken(base, "admin-demo");
    const device = await call(base, "POST", "/admin/devices", {
      token: admin,
      body: {
        device_id: deviceId,
        kind: "gate",
        location_id: "loc-pier-1",
        functions: ["lighthouse", "ferry"],
      },
    });
    expect(device.status).toBe(201);
    const buyer = await demoBuyer(base);
    const ticket = await paidTicket(base, buyer);

    // The camera shows the ticket's code the whole time (a token lives 60 s: fetched last).
    mkdirSync(ARTIFACTS_DIR, { recursive: true });
    const video = resolve(join(ARTIFACTS_DIR, "gate-function-qr.y4m"));
    writeQrVideo(video, await qrToken(buyer, ticket.code));
    const cameraBrowser = await launchBrowser({ fakeVideo: video });
    browsers.push(cameraBrowser);
    const gate = await openGate(cameraBrowser, deviceId);
    const { page } = gate;

    // Only the device's functions are offered, the first one chosen.
    const select = page.getByLabel("This gate validates");
    expect(await select.locator("option").allTextContents()).toEqual(["lighthouse", "ferry"]);
    expect(await select.inputValue()).toBe("lighthouse");

    await page.getByRole("button", { name: "Start camera" }).click();
    await verdictIs(page, "REFUSED");
    expect(await page.locator("#verdict-mark").textContent()).toBe("✗");
    expect(await page.locator("#reason").textContent()).toBe("The ticket does not include this");
    await screenshot(page, "gate-function-1-refused");

    // A tap dismisses the verdict; the code is still in view and is checked for the ferry.
    await page.locator("#result").click();
    await verdictIs(page, "Ready", 2_000);
    await select.selectOption("ferry");
    await verdictIs(page, "ACCEPTED");
    expect(await page.locator("#uses li.scanned").textContent()).toMatch(/ferry\s*1 of 2 left/);
    await screenshot(page, "gate-function-2-accepted");
    expect(await remainingUses(buyer, ticket.code, "ferry")).toBe(1);

    // The accepted code stays in view without being spent again.
    await verdictIs(page, "Ready", 6_000);
    await page.waitForTimeout(1_000);
    expect(await page.locator("#verdict").textContent()).toBe("Ready");
    expect(await remainingUses(buyer, ticket.code, "ferry")).toBe(1);
    expect(await page.locator("#camera-status").textContent()).toBe("Camera on: hold the QR code in view");
    expect(await documentWidth(page)).toBeLessThanOrEqual(PHONE_VIEWPORT.width);
    expect(unexpected(gate.errors)).toEqual([]);
  });

  it("undoes an accepted scan from the history after a confirmation, once", async ({ expect }) => {
    const buyer = await demoBuyer(base);
    const ticket = await paidTicket(base, buyer);
    const gate = await openGate(browser, "dev-gate-1");
    const { page } = gate;
    await page.getByLabel("This gate validates").selectOption("museum");
    await pasteToken(page, await qrToken(buyer, ticket.code));
    await verdictIs(page, "ACCEPTED");
    expect(await remainingUses(buyer, ticket.code, "museum")).toBe(0);
    await page.locator("#result").click();
    expect(await page.locator("#accepted-count").textContent()).toBe("1");

    const row = page.locator("#history li").first();
    expect(await row.textContent()).toContain(grouped(ticket.code));
    await row.getByRole("button", { name: "Undo" }).click();
    // Nothing happens before the confirmation.
    expect(await row.textContent()).toContain("Give this museum use back?");
    await screenshot(page, "gate-undo-1-confirm");
    expect(await remainingUses(buyer, ticket.code, "museum")).toBe(0);
    await row.getByRole("button", { name: "Yes, undo" }).click();

    await row.getByText("↺ Undone").waitFor();
    expect(await row.textContent()).toContain("1 of 1 museum left");
    expect(await row.getByRole("button").count()).toBe(0);
    expect(await page.locator("#accepted-count").textContent()).toBe("0");
    expect(await remainingUses(buyer, ticket.code, "museum")).toBe(1);
    await screenshot(page, "gate-undo-2-undone");

    // The history survives a reload, still without a second Undo.
    await page.reload();
    await page.locator("#history li").first().getByText("↺ Undone").waitFor();
    expect(await page.locator("#history li").first().getByRole("button").count()).toBe(0);
    expect(await documentWidth(page)).toBeLessThanOrEqual(PHONE_VIEWPORT.width);
    expect(unexpected(gate.errors)).toEqual([]);
  });
});
