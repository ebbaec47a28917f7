import jsQR from "jsqr";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, inject, it } from "vitest";
import {
  call,
  DEMO_PASSWORD,
  demoBuyer,
  newGateDevice,
  paidTicket,
  registerGateDevice,
  staffToken,
  type Ticket,
} from "./support/api";
import {
  launchBrowser,
  openGatePage,
  openPage,
  openSignedInBuyerPage,
  screenshot,
  type WatchedPage,
} from "./support/browser";

// Offline gates in Chromium (CONTRACT Part 2, "Offline gates with a bounded risk"): a buyer's phone that
// lost its signal still shows a valid code; a gate that lost it reloads from its service worker, decides
// alone with the shared rule, and reconciles by itself when the network is back.

const base = inject("baseUrl");
const LOCATION = "loc-pier-1";
/** The contract: every over-spend is a conflict within 60 s of the devices' reconnection. */
const SYNC_DEADLINE_MS = 60_000;

let browser: Browser;

beforeAll(async () => {
  browser = await launchBrowser();
});

afterAll(async () => {
  await browser.close();
});

type Supply = { token: string; not_before: string; expires_at: string }[];

async function supplyOf(buyerToken: string, code: string): Promise<Supply> {
  const supply = await call<{ tokens: Supply }>(
    base,
    "POST",
    `/tickets/${encodeURIComponent(code)}/qr-tokens`,
    {
      token: buyerToken,
    },
  );
  return supply.body.tokens;
}

/** The supply's code for the current window. */
function currentOf(supply: Supply): string {
  const now = Date.now();
  const current = supply.find((t) => Date.parse(t.not_before) <= now && now < Date.parse(t.expires_at));
  if (!current) throw new Error("no current code in the supply");
  return current.token;
}

/** A window's code for `ticket`, from the buyer's supply (the current window). */
async function currentCode(buyerToken: string, code: string): Promise<string> {
  return currentOf(await supplyOf(buyerToken, code));
}

/** The gate page for gate-demo on `deviceId` (which the page enrolls itself), its offline kit loaded. */
async function openGate(deviceId: string, fn: string): Promise<WatchedPage> {
  const gate = await openGatePage(browser, base, deviceId);
  const { page } = gate;
  await page.getByLabel("This gate validates").selectOption(fn);
  await page
    .locator("#kit-age")
    .getByText(/^Offline kit/)
    .waitFor({ timeout: 20_000 });
  // The service worker controls the page once it has claimed it: only then does a reload work offline.
  await page.waitForFunction(() => navigator.serviceWorker.controller !== null, undefined, {
    timeout: 20_000,
  });
  return gate;
}

async function paste(page: Page, token: string): Promise<void> {
  await page.getByLabel("No camera? Paste the QR token").fill(token);
  await page.getByRole("button", { name: "Validate" }).click();
}

/** Waits for the verdict `text` (and answers whether it was decided offline). */
async function verdict(page: Page, text: string): Promise<{ offline: boolean; reason: string }> {
  const shown = () =>
    page.evaluate(() => ({
      verdict: document.getElementById("verdict")?.textContent ?? "",
      offline: document.getElementById("result")?.dataset.offline === "true",
      reason: document.getElementById("reason")?.textContent ?? "",
    }));
  await page
    .waitForFunction((expected) => document.getElementById("verdict")?.textContent === expected, text, {
      timeout: 15_000,
    })
    .catch(async () => {
      await screenshot(page, `offline-unexpected-${text.toLowerCase()}`);
      throw new Error(`expected ${text}, the gate shows ${JSON.stringify(await shown())}`);
    });
  return page.evaluate(() => ({
    offline: document.getElementById("result")?.dataset.offline === "true",
    reason: document.getElementById("reason")?.textContent ?? "",
  }));
}

function waiting(page: Page): Promise<string | null> {
  return page.locator("#offline-status").getAttribute("data-waiting");
}

/** The code the buyer's phone shows, read from its canvas as a gate's camera would. */
async function shownCode(page: Page): Promise<string> {
  const image = await page.evaluate(() => {
    const canvas = document.getElementById("qr-canvas") as HTMLCanvasElement;
    const pixels = canvas.getContext("2d")?.getImageData(0, 0, canvas.width, canvas.height);
    return { width: canvas.width, height: canvas.height, data: Array.from(pixels?.data ?? []) };
  });
  const decoded = jsQR(Uint8ClampedArray.from(image.data), image.width, image.height);
  if (!decoded) throw new Error("no QR code on the buyer's screen");
  return decoded.data;
}

/** Offline, the network's absence is expected: Chromium logs every refused request as an error. */
function unexpected(errors: string[]): string[] {
  return errors.filter(
    (error) =>
      !/ERR_INTERNET_DISCONNECTED|Failed to fetch|ERR_CONNECTION_RESET|status of 409|status of 422/.test(
        error,
      ),
  );
}

async function poll<T>(read: () => Promise<T>, check: (value: T) => boolean, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (check(value) || Date.now() > deadline) return value;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

function reportRange(): string {
  const from = new Date(Date.now() - 86_400_000).toISOString();
  const to = new Date(Date.now() + 86_400_000).toISOString();
  return `from=${from}&to=${to}`;
}

async function redemptionsCsv(): Promise<string[]> {
  const response = await fetch(`${base}/reports/redemptions?${reportRange()}&format=csv`, {
    headers: { authorization: `Bearer ${await staffToken(base, "analyst-demo")}` },
  });
  return (await response.text()).trim().split("\r\n");
}

describe("offline gates, in Chromium", () => {
  it("a phone and a gate both offline: the gate reloads, accepts once, refuses a replay and a used-up ticket, then syncs", async ({
    expect,
  }) => {
    const buyerToken = await demoBuyer(base);
    const ticket: Ticket = await paidTicket(base, buyerToken);
    const usedUp: Ticket = await paidTicket(base, buyerToken);
    // The phone of the second ticket's holder kept its codes; then its museum entry is used up online,
    // before the gate's kit is taken. Those kept codes still name museum as open: only the kit can say.
    const keptBeforeUseUp = await supplyOf(buyerToken, usedUp.code);
    const elsewhere = await newGateDevice(base, await staffToken(base, "gate-demo"), LOCATION);
    const spent = await call(base, "POST", "/tickets/scan", {
      token: await staffToken(base, "gate-demo"),
      body: {
        qr_token: await currentCode(buyerToken, usedUp.code),
        function: "museum",
        session_id: elsewhere.sessionId,
      },
    });
    expect(spent.status).toBe(200);
    // The kit is built from the read model, a moment behind the ticket's object.
    await new Promise((resolve) => setTimeout(resolve, 4_000));

    const buyer = await openSignedInBuyerPage(browser, base, buyerToken);
    await buyer.page.evaluate(() => {
      location.hash = "#tickets";
    });
    await buyer.page.getByRole("heading", { name: "My tickets" }).waitFor();
    const supplied = buyer.page.waitForResponse(
      (r) => new URL(r.url()).pathname === `/tickets/${ticket.code}/qr-tokens`,
    );
    await buyer.page.getByRole("button", { name: `Show QR code for ticket ${ticket.code}` }).click();
    expect((await supplied).status()).toBe(200);

    const { deviceId } = await registerGateDevice(base, LOCATION);
    const gate = await openGate(deviceId, "museum");
    expect(await waiting(gate.page)).toBe("0");

    // Both lose the signal. The gate reloads: its service worker serves the page, its session and kit stay.
    await gate.context.setOffline(true);
    await buyer.context.setOffline(true);
    await gate.page.reload();
    await gate.page.locator("#offline-status[data-state='offline']").waitFor({ timeout: 20_000 });
    await gate.page.getByLabel("This gate validates").selectOption("museum");

    // The phone, offline, switches to its saved codes at the next window.
    await buyer.page
      .locator("#qr-offline-note")
      .getByText(/^Offline: showing saved codes/)
      .waitFor({ timeout: 45_000 });
    // A camera reads the code in a moment; this test takes seconds to read the canvas, so it waits for a
    // window with most of its life ahead.
    await buyer.page.waitForFunction(
      () =>
        Number(/(\d+) s$/.exec(document.getElementById("qr-countdown")?.textContent ?? "")?.[1] ?? 0) >= 20,
      undefined,
      { timeout: 40_000 },
    );
    await screenshot(buyer.page, "offline-1-buyer");
    const code = await shownCode(buyer.page);
    const acceptedAt = Date.now();
    await paste(gate.page, code);
    expect(await verdict(gate.page, "ACCEPTED")).toMatchObject({ offline: true });
    expect(await waiting(gate.page)).toBe("1");
    await screenshot(gate.page, "offline-2-gate-accepted");

    await paste(gate.page, code);
    expect(await verdict(gate.page, "REFUSED")).toEqual({
      offline: true,
      reason: expect.stringMatching(/already used/i),
    });
    await paste(gate.page, currentOf(keptBeforeUseUp));
    expect(await verdict(gate.page, "REFUSED")).toEqual({
      offline: true,
      reason: expect.stringMatching(/no uses left/i),
    });
    expect(await waiting(gate.page)).toBe("3");
    await screenshot(gate.page, "offline-3-gate-waiting");

    // The network returns: the queue goes by itself, and the report shows the scan at its offline time.
    const back = Date.now();
    await gate.context.setOffline(false);
    await gate.page
      .locator("#offline-status[data-state='online'][data-waiting='0']")
      .waitFor({ timeout: SYNC_DEADLINE_MS });
    expect(Date.now() - back).toBeLessThan(SYNC_DEADLINE_MS);
    const lines = await poll(
      redemptionsCsv,
      (rows) => rows.some((row) => row.includes(`,${ticket.code},museum,`)),
      15_000,
    );
    const header = lines[0]?.split(",") ?? [];
    const row = lines.find((line) => line.includes(`,${ticket.code},museum,`))?.split(",") ?? [];
    expect(row[header.indexOf("device_id")]).toBe(deviceId);
    expect(row[header.indexOf("offline")]).toBe("true");
    const ts = Date.parse(row[header.indexOf("ts")] ?? "");
    expect(ts).toBeLessThan(back);
    expect(Math.abs(ts - acceptedAt)).toBeLessThan(10_000);
    expect(unexpected(gate.errors)).toEqual([]);
    expect(unexpected(buyer.errors)).toEqual([]);
    await gate.context.close();
    await buyer.context.close();
  });

  it("two gates offline accept the same one-use ticket: one applied, one conflict in the report", async ({
    expect,
  }) => {
    const buyerToken = await demoBuyer(base);
    const ticket = await paidTicket(base, buyerToken);
    const north = await registerGateDevice(base, LOCATION);
    const south = await registerGateDevice(base, LOCATION);
    const gates = [await openGate(north.deviceId, "museum"), await openGate(south.deviceId, "museum")];
    for (const gate of gates) await gate.context.setOffline(true);

    // One screenshot, two gates.
    const code = await currentCode(buyerToken, ticket.code);
    for (const gate of gates) {
      await paste(gate.page, code);
      expect(await verdict(gate.page, "ACCEPTED")).toMatchObject({ offline: true });
    }

    for (const gate of gates) await gate.context.setOffline(false);
    for (const gate of gates) {
      await gate.page
        .locator("#offline-status[data-state='online'][data-waiting='0']")
        .waitFor({ timeout: SYNC_DEADLINE_MS });
    }
    const analyst = await staffToken(base, "analyst-demo");
    const report = await poll(
      () =>
        call<{
          conflicts: {
            ticket_code: string | null;
            outcome: string;
            device_id: string;
            other_device_id: string | null;
          }[];
        }>(base, "GET", `/reports/offline-conflicts?${reportRange()}`, { token: analyst }),
      (answer) => answer.body.conflicts.some((c) => c.ticket_code === ticket.code),
      15_000,
    );
    const conflicts = report.body.conflicts.filter((c) => c.ticket_code === ticket.code);
    expect(conflicts).toHaveLength(1);
    const [conflict] = conflicts;
    const sides = [conflict?.device_id, conflict?.other_device_id].sort();
    expect(sides).toEqual([north.deviceId, south.deviceId].sort());
    expect(conflict?.outcome).toBe("conflict");
    const applied = (await redemptionsCsv()).filter((line) => line.includes(`,${ticket.code},museum,`));
    expect(applied).toHaveLength(1);

    // The analyst sees it on the reports page, with the gate that spent the last use.
    const reports = await openPage(browser, `${base}/reports`);
    await reports.page.getByLabel("Username").fill("analyst-demo");
    await reports.page.getByLabel("Password").fill(DEMO_PASSWORD);
    await reports.page.getByRole("button", { name: "Sign in" }).click();
    const row = reports.page.locator("#conflicts tr", { hasText: ticket.code.slice(0, 6) });
    await row.waitFor({ timeout: 15_000 });
    expect(await row.getAttribute("data-outcome")).toBe("conflict");
    expect(await row.textContent()).toContain(conflict?.other_device_id ?? "?");
    await screenshot(reports.page, "offline-4-reports-conflict");
    expect(reports.errors).toEqual([]);
    await reports.context.close();
    for (const gate of gates) {
      expect(unexpected(gate.errors)).toEqual([]);
      await gate.context.close();
    }
  });
});
