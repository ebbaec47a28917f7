import { randomUUID } from "node:crypto";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, inject, it } from "vitest";
import { call, demoBuyer, deviceSession, HARBOUR_PASS, staffToken } from "./support/api";
import {
  documentWidth,
  launchBrowser,
  openPage,
  openSignedInBuyerPage,
  PHONE_VIEWPORT,
  screenshot,
  type WatchedPage,
} from "./support/browser";

// The buyer page on a phone: paying with credits, unpaid orders kept in My orders and let go, the wallet
// QR noticing a till's charge (and keeping the screen awake), `/#wallet`, and a long catalog.

const base = inject("baseUrl");
const BUYER_TOKEN_KEY = "passes.buyer.token";
const WALLET_QR_PATH = "/wallet/qr-token";

let browser: Browser;
beforeAll(async () => {
  browser = await launchBrowser();
});
afterAll(async () => {
  await browser.close();
});

/** The buyer page at `path` (such as `/#wallet`) with `token` signed in, as after an earlier visit. */
function openBuyerAt(path: string, token: string, setup?: (page: Page) => Promise<void>) {
  return openPage(browser, `${base}${path}`, async (page) => {
    await page.addInitScript(([key, value]) => localStorage.setItem(key, value), [
      BUYER_TOKEN_KEY,
      token,
    ] as const);
    await setup?.(page);
  });
}

/**
 * Stands in for the Screen Wake Lock API (a headless browser has no screen to keep on) and records what
 * the page asks of it in `window.wakeLockLog`; `window.wakeLocks` are the locks handed out.
 */
async function recordWakeLock(page: Page): Promise<void> {
  await page.addInitScript(() => {
    const log: string[] = [];
    const locks: EventTarget[] = [];
    Object.assign(window, { wakeLockLog: log, wakeLocks: locks });
    const wakeLock = {
      request: async (type: string) => {
        log.push(`request ${type}`);
        let released = false;
        const lock = Object.assign(new EventTarget(), {
          type,
          get released() {
            return released;
          },
          release: async () => {
            if (released) return;
            released = true;
            log.push("release");
            lock.dispatchEvent(new Event("release"));
          },
        });
        locks.push(lock);
        return lock;
      },
    };
    Object.defineProperty(navigator, "wakeLock", { configurable: true, value: wakeLock });
  });
}

const wakeLockLog = (page: Page) =>
  page.evaluate(() => (window as unknown as { wakeLockLog: string[] }).wakeLockLog);

/** As when the phone locks and unlocks: the browser drops the lock when the page is hidden. */
async function hideAndShow(page: Page): Promise<void> {
  await page.evaluate(async () => {
    const setVisibility = (state: DocumentVisibilityState) => {
      Object.defineProperty(document, "visibilityState", { configurable: true, get: () => state });
      document.dispatchEvent(new Event("visibilitychange"));
    };
    setVisibility("hidden");
    const locks = (window as unknown as { wakeLocks: { release(): Promise<void> }[] }).wakeLocks;
    await locks.at(-1)?.release();
    setVisibility("visible");
  });
}

async function available(productId = HARBOUR_PASS): Promise<number> {
  const catalog = await call<{ products: { id: string; available: number }[] }>(base, "GET", "/catalog");
  return catalog.body.products.find((product) => product.id === productId)?.available ?? 0;
}

async function walletOf(token: string) {
  return (await call<{ balance_cents: number; held_cents: number }>(base, "GET", "/wallet", { token })).body;
}

/** Tops the wallet up through the API and the development payment simulator. */
async function topUp(token: string, cents: number): Promise<void> {
  const before = (await walletOf(token)).balance_cents;
  const topup = await call<{ topup_id: string }>(base, "POST", "/wallet/topups", {
    token,
    idempotencyKey: randomUUID(),
    body: { amount_cents: cents },
  });
  if (topup.status !== 201) throw new Error(`top-up: ${topup.status} ${JSON.stringify(topup.body)}`);
  const paid = await call(base, "POST", "/dev/simulate-payment", {
    token,
    body: { topup_id: topup.body.topup_id, amount_cents: cents },
  });
  if (paid.status !== 200) throw new Error(`top-up payment: ${paid.status}`);
  for (let poll = 0; (await walletOf(token)).balance_cents < before + cents; poll++) {
    if (poll > 40) throw new Error("the top-up never reached the balance");
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** A till charges the buyer's wallet `cents` through the POS API, with a fresh wallet QR token. */
async function tillCharge(buyerToken: string, cents: number, qrToken?: string) {
  const staff = await staffToken(base, "pos-demo");
  const session = await deviceSession(base, staff, "dev-pos-1");
  const qr =
    qrToken ??
    (await call<{ token: string }>(base, "POST", WALLET_QR_PATH, { token: buyerToken })).body.token;
  return call<{ balance_cents: number }>(base, "POST", "/pos/deductions", {
    token: staff,
    idempotencyKey: randomUUID(),
    body: { qr_token: qr, amount_cents: cents, session_id: session },
  });
}

async function closeAll(...pages: WatchedPage[]): Promise<void> {
  await Promise.all(pages.map((watched) => watched.context.close()));
}

describe("buyer page, in Chromium at 390 × 844", () => {
  it("tops up in the wallet, then pays one pass with credits alone and one with credits and card", async ({
    expect,
  }) => {
    const buyer = await openPage(browser, `${base}/`);
    const { page } = buyer;
    await page.getByRole("button", { name: "Continue as a demo user" }).click();
    await page.getByRole("button", { name: "Wallet", exact: true }).click();
    await page.getByText(/^€0\.00$/).waitFor();
    await page.getByLabel("Amount (EUR)").fill("100");
    await page.getByRole("button", { name: "Top up", exact: true }).click();
    await page.getByRole("button", { name: "Simulate payment" }).click();
    await page.getByText("€100.00 added").waitFor();
    const token = (await page.evaluate((key) => localStorage.getItem(key), BUYER_TOKEN_KEY)) ?? "";

    // Credits cover the whole pass: offered first, and the order is paid at once.
    await page.getByRole("button", { name: "Buy", exact: true }).click();
    await page.getByRole("button", { name: "Buy Harbour Pass" }).click();
    const creditsOnly = page.getByLabel("Credits only");
    await creditsOnly.waitFor();
    expect(await creditsOnly.isChecked()).toBe(true);
    expect(await page.locator("#credits-available").textContent()).toBe("€100.00 of credit available.");
    await screenshot(page, "buyer-credits-1-choice");
    await page.getByRole("button", { name: "Place order" }).click();
    await page.getByText("Paid with credits: your tickets are ready.").waitFor();
    await expect.poll(() => page.locator("[data-ticket]").count()).toBe(1);
    expect(await walletOf(token)).toMatchObject({ balance_cents: 6_100, held_cents: 0 });

    // Part with credits: they are held (and said to be) until the card pays the rest.
    await page.getByRole("button", { name: "Buy", exact: true }).click();
    await page.getByRole("button", { name: "Buy Harbour Pass" }).click();
    await page.getByLabel("Credits and card").check();
    // Too much is said under the field, before anything is sent.
    await page.getByLabel("Credits to use (EUR)").fill("60");
    await page.getByRole("button", { name: "Place order" }).click();
    const fieldError = page.locator("#credits-error");
    await page.getByText("At most €39.00").waitFor();
    const field = await page.getByLabel("Credits to use (EUR)").boundingBox();
    const error = await fieldError.boundingBox();
    expect((error?.y ?? 0) - ((field?.y ?? 0) + (field?.height ?? 0))).toBeLessThan(80);
    await page.getByLabel("Credits to use (EUR)").fill("10");
    await page.getByRole("button", { name: "Place order" }).click();
    await page.getByText("€10.00 credit + €29.00 by card").waitFor();
    expect(await page.locator("#order-summary").textContent()).toContain(
      "€10.00 of your credit is held for this order",
    );
    expect(await walletOf(token)).toMatchObject({ balance_cents: 6_100, held_cents: 1_000 });
    await screenshot(page, "buyer-credits-2-split-held");
    await page.getByRole("button", { name: "Simulate payment" }).click();
    await page.getByText("Paid: your tickets are ready.").waitFor();
    await expect.poll(async () => page.locator("[data-ticket]").count()).toBe(2);
    expect(await walletOf(token)).toMatchObject({ balance_cents: 5_100, held_cents: 0 });

    // The activity says what happened in plain words.
    await page.getByRole("button", { name: "Wallet", exact: true }).click();
    await page.locator("#balance", { hasText: "€51.00" }).waitFor();
    await expect
      .poll(() => page.locator("#transactions .what").allTextContents())
      .toEqual(["Paid for passes", "Paid for passes", "Top-up"]);
    await screenshot(page, "buyer-credits-3-activity");
    expect(await documentWidth(page)).toBeLessThanOrEqual(PHONE_VIEWPORT.width);
    expect(buyer.errors).toEqual([]);
    await closeAll(buyer);
  });

  it("credits spent at a till while choosing: the refusal is said at the choice, and the card still works", async ({
    expect,
  }) => {
    const token = await demoBuyer(base);
    await topUp(token, 5_000);
    const buyer = await openSignedInBuyerPage(browser, base, token);
    const { page } = buyer;
    await page.getByRole("button", { name: "Buy Harbour Pass" }).click();
    const creditsOnly = page.getByLabel("Credits only");
    await creditsOnly.waitFor();
    expect(await creditsOnly.isChecked()).toBe(true);
    expect((await tillCharge(token, 3_000)).status).toBe(201);

    await page.getByRole("button", { name: "Place order" }).click();
    await page.getByText("Not enough credit: €20.00 available (balance €20.00)").waitFor();
    // Said inside the choice it is about, which is offered again as it now stands.
    expect(await page.locator("#pay-form #credits-error").isVisible()).toBe(true);
    expect(await creditsOnly.isDisabled()).toBe(true);
    expect(await page.getByLabel("Card only").isChecked()).toBe(true);
    await screenshot(page, "buyer-credits-4-refused");
    await page.getByRole("button", { name: "Place order" }).click();
    await page.getByText("€39.00 by card").waitFor();
    expect(await walletOf(token)).toMatchObject({ balance_cents: 2_000, held_cents: 0 });
    expect(await documentWidth(page)).toBeLessThanOrEqual(PHONE_VIEWPORT.width);
    // Chromium reports the 402 answer itself as a console error; nothing else may appear.
    expect(buyer.errors.filter((error) => !/status of 402 .* at .*\/orders$/.test(error))).toEqual([]);
    await closeAll(buyer);
  });

  it("an unpaid order stays in My orders when the dialog closes, and letting it go puts the pass back", async ({
    expect,
  }) => {
    const token = await demoBuyer(base);
    const before = await available();
    const buyer = await openSignedInBuyerPage(browser, base, token);
    const { page } = buyer;
    await page.getByRole("button", { name: "Buy Harbour Pass" }).click();
    await page.getByRole("button", { name: "Simulate payment" }).waitFor();
    expect(await available()).toBe(before - 1);
    await page.getByRole("button", { name: "Pay later" }).click();

    // Closed, not lost: the catalog says an order waits, and the Orders tab counts it.
    await page.getByText(/^You have an unpaid order, reserved until/).waitFor();
    expect(await page.locator("#orders-count").textContent()).toBe("1");
    await screenshot(page, "buyer-orders-1-pending-notice");
    await page.getByRole("button", { name: "My orders" }).click();
    const card = page.locator("[data-order]").first();
    await card.getByText("Awaiting payment").waitFor();
    expect(await card.textContent()).toContain("1 × Harbour Pass");
    expect(await card.textContent()).toMatch(/Reserved: \d+:\d\d left/);
    expect(new URL(page.url()).hash).toBe("#orders");
    await screenshot(page, "buyer-orders-2-list");

    await card.getByRole("button", { name: "Let go" }).click();
    await page.getByText("Let go: the passes are back on sale").waitFor();
    expect(await page.locator("[data-order]").first().getAttribute("data-status")).toBe("EXPIRED");
    expect(await available()).toBe(before);
    const mine = await call<{ orders: { status: string }[] }>(base, "GET", "/my/orders", { token });
    expect(mine.body.orders.map((order) => order.status)).toEqual(["EXPIRED"]);
    await page.locator("#orders-count").waitFor({ state: "hidden" });
    await screenshot(page, "buyer-orders-3-let-go");

    // The address keeps the section: a reload lands on My orders again.
    await page.reload();
    await page.locator("[data-order][data-status=EXPIRED]").waitFor();
    expect(await page.locator("#tab-orders").isVisible()).toBe(true);
    expect(await documentWidth(page)).toBeLessThanOrEqual(PHONE_VIEWPORT.width);
    expect(buyer.errors).toEqual([]);
    await closeAll(buyer);
  });

  it("the wallet QR says Paid when a till charges it, shows a fresh code, and keeps the screen awake meanwhile", async ({
    expect,
  }) => {
    const token = await demoBuyer(base);
    await topUp(token, 2_000);
    const buyer = await openBuyerAt("/#wallet", token, recordWakeLock);
    const { page } = buyer;
    await page.locator("#balance", { hasText: "€20.00" }).waitFor();

    const first = page.waitForResponse((response) => new URL(response.url()).pathname === WALLET_QR_PATH);
    await page.getByRole("button", { name: "Show wallet QR to pay" }).click();
    const shown = (await (await first).json()) as { token: string };
    await page.getByText(/^New code in \d+ s$/).waitFor();
    await page.getByRole("dialog").getByText("Balance €20.00").waitFor();
    expect(await wakeLockLog(page)).toEqual(["request screen"]);

    // The phone is locked and unlocked while the code is up: the lock is asked for again.
    await hideAndShow(page);
    await expect.poll(() => wakeLockLog(page)).toEqual(["request screen", "release", "request screen"]);

    // A till charges the code on screen, through the POS API.
    const fresh = page.waitForResponse((response) => new URL(response.url()).pathname === WALLET_QR_PATH);
    const charged = await tillCharge(token, 450, shown.token);
    expect(charged).toMatchObject({ status: 201, body: { balance_cents: 1_550 } });
    await page.getByText("Paid €4.50 · balance €15.50").waitFor({ timeout: 15_000 });
    const next = (await (await fresh).json()) as { token: string };
    expect(next.token).not.toBe(shown.token);
    await page.getByText(/^New code in \d+ s$/).waitFor();
    expect(await page.locator("#qr-canvas").getAttribute("data-state")).toBe("live");
    await screenshot(page, "buyer-wallet-qr-paid");

    await page.getByRole("button", { name: "Close" }).click();
    await expect
      .poll(() => wakeLockLog(page))
      .toEqual(["request screen", "release", "request screen", "release"]);
    await page.locator("#balance", { hasText: "€15.50" }).waitFor();
    await page.locator("#transactions li", { hasText: "Paid at a till" }).waitFor();
    await screenshot(page, "buyer-wallet-after-charge");
    expect(await documentWidth(page)).toBeLessThanOrEqual(PHONE_VIEWPORT.width);
    expect(buyer.errors).toEqual([]);
    await closeAll(buyer);
  });

  it("the QR screen is bounded: no reads while the page is hidden, and a pause after ten minutes", async ({
    expect,
  }) => {
    const token = await demoBuyer(base);
    const buyer = await openBuyerAt("/#wallet", token, async (page) => {
      await recordWakeLock(page);
      await page.clock.install();
    });
    const { page } = buyer;
    const reads: string[] = [];
    page.on("request", (request) => {
      const path = new URL(request.url()).pathname;
      if (path === "/wallet" || path === WALLET_QR_PATH) reads.push(path);
    });
    await page.locator("#balance", { hasText: "€0.00" }).waitFor();
    await page.getByRole("button", { name: "Show wallet QR to pay" }).click();
    await page.getByText(/^New code in \d+ s$/).waitFor();
    await page.getByRole("dialog").getByText("Balance €0.00").waitFor();

    // Hidden (the phone locked): twenty seconds pass without a single read.
    await page.evaluate(() => {
      Object.defineProperty(document, "visibilityState", { configurable: true, get: () => "hidden" });
      document.dispatchEvent(new Event("visibilitychange"));
    });
    const before = reads.length;
    await page.clock.runFor(20_000);
    expect(reads.slice(before).filter((path) => path === "/wallet")).toEqual([]);
    // Shown again: it looks at once.
    const look = page.waitForRequest((request) => new URL(request.url()).pathname === "/wallet");
    await page.evaluate(() => {
      Object.defineProperty(document, "visibilityState", { configurable: true, get: () => "visible" });
      document.dispatchEvent(new Event("visibilitychange"));
    });
    await look;

    // Ten minutes up: the code pauses, the screen may sleep, and nothing is read any more.
    await page.clock.fastForward(10 * 60_000);
    await page.getByText("Paused to save battery").waitFor();
    expect((await wakeLockLog(page)).at(-1)).toBe("release");
    const paused = reads.length;
    await page.clock.runFor(30_000);
    expect(reads.length).toBe(paused);
    await screenshot(page, "buyer-qr-paused");

    await page.getByRole("button", { name: "Show a new code" }).click();
    await page.getByText(/^New code in \d+ s$/).waitFor();
    expect((await wakeLockLog(page)).at(-1)).toBe("request screen");
    expect(buyer.errors).toEqual([]);
    await closeAll(buyer);
  });

  it("/#wallet opens the wallet, for a buyer already signed in and right after signing in", async ({
    expect,
  }) => {
    const signedIn = await openBuyerAt("/#wallet", await demoBuyer(base));
    await signedIn.page.getByRole("heading", { name: "Wallet" }).waitFor();
    expect(await signedIn.page.locator("#tab-catalog").isVisible()).toBe(false);
    expect(
      await signedIn.page.getByRole("button", { name: "Wallet", exact: true }).getAttribute("aria-current"),
    ).toBe("page");

    const fresh = await openPage(browser, `${base}/#wallet`);
    await fresh.page.getByRole("button", { name: "Continue as a demo user" }).click();
    await fresh.page.getByRole("heading", { name: "Wallet" }).waitFor();
    await fresh.page.locator("#balance", { hasText: "€0.00" }).waitFor();
    await screenshot(fresh.page, "buyer-wallet-from-link");
    // Another section through its address, while the page is open.
    await fresh.page.evaluate(() => {
      location.hash = "#tickets";
    });
    await fresh.page.getByRole("heading", { name: "My tickets" }).waitFor();
    for (const watched of [signedIn, fresh]) {
      expect(await documentWidth(watched.page)).toBeLessThanOrEqual(PHONE_VIEWPORT.width);
      expect(watched.errors).toEqual([]);
    }
    await closeAll(signedIn, fresh);
  });

  it("a hundred products: several cards to a screen, a search box that finds one, errors at the card", async ({
    expect,
  }) => {
    const products = Array.from({ length: 100 }, (_, i) => ({
      id: `prd_many_${String(i).padStart(3, "0")}`,
      name: `Day Pass ${String(i).padStart(3, "0")}`,
      description: i % 2 ? "Buses and trams all day" : "",
      price_cents: 500 + i * 10,
      currency: "EUR",
      functions: [{ function: "bus", uses: 10 }, ...(i % 3 === 0 ? [{ function: "museum", uses: 1 }] : [])],
      available: i === 7 ? 0 : 50,
    }));
    const buyer = await openSignedInBuyerPage(browser, base, await demoBuyer(base), async (page) => {
      await page.route(`${base}/catalog`, (route) => route.fulfill({ json: { products } }));
    });
    const { page } = buyer;
    await page.getByRole("heading", { name: "Day Pass 099" }).waitFor({ state: "attached" });
    const onScreen = await page.evaluate(
      () =>
        [...document.querySelectorAll<HTMLElement>("#products > li")].filter((card) => {
          const box = card.getBoundingClientRect();
          return !card.hidden && box.top >= 0 && box.bottom <= innerHeight;
        }).length,
    );
    expect(onScreen).toBeGreaterThanOrEqual(4);
    await screenshot(page, "buyer-catalog-1-hundred");

    await page.getByLabel("Search passes").fill("pass 042");
    await expect.poll(() => page.locator("#products > li:visible").count()).toBe(1);
    expect(await page.locator("#catalog-count").textContent()).toBe("1 of 100");
    await page.getByLabel("Search passes").fill("museum trams");
    // Every third product has a museum, every second one trams: those are the odd multiples of three.
    await expect.poll(() => page.locator("#products > li:visible").count()).toBe(17);
    await page.getByLabel("Search passes").fill("no such pass");
    await page.getByText("No passes match “no such pass”.").waitFor();
    await page.getByLabel("Search passes").fill("");
    expect(await page.getByRole("button", { name: "Buy Day Pass 007" }).isDisabled()).toBe(true);

    // Far down the list, a quantity out of range is said on that card, beside its button.
    const card = page.locator("[data-product=prd_many_080]");
    await card.getByLabel("Qty").fill("25");
    await card.getByRole("button", { name: "Buy Day Pass 080" }).click();
    const message = card.getByText("Choose a quantity from 1 to 20");
    await message.waitFor();
    const button = await card.getByRole("button", { name: "Buy Day Pass 080" }).boundingBox();
    const said = await message.boundingBox();
    expect(Math.abs((said?.y ?? 0) - (button?.y ?? 0))).toBeLessThan(80);
    expect(said?.y ?? -1).toBeGreaterThanOrEqual(0);
    expect((said?.y ?? 0) + (said?.height ?? 0)).toBeLessThanOrEqual(PHONE_VIEWPORT.height);
    expect(await page.locator("#checkout").isVisible()).toBe(false);
    await screenshot(page, "buyer-catalog-2-quantity-error");
    expect(await documentWidth(page)).toBeLessThanOrEqual(PHONE_VIEWPORT.width);
    expect(buyer.errors).toEqual([]);
    await closeAll(buyer);
  });
});
