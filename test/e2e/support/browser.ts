import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";
import { DEMO_PASSWORD as GATE_DEMO_PASSWORD } from "./api";

// Debian's Chromium driven by playwright-core (which downloads no browser of its own).

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
/** A common phone: the pages must be fully usable this narrow. */
export const PHONE_VIEWPORT = { width: 390, height: 844 };
export const ARTIFACTS_DIR = join("test-results", "e2e");

const CHROMIUM_ARGS = [
  "--headless=new",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-dev-shm-usage",
];

export function assertChromium(): void {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(`${CHROMIUM_PATH} is missing: apt-get update && apt-get install -y chromium`);
  }
}

/** `fakeVideo`: a .y4m file the browser's camera shows instead of a real device. */
export function launchBrowser(options: { fakeVideo?: string } = {}): Promise<Browser> {
  const camera = options.fakeVideo
    ? [
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        `--use-file-for-fake-video-capture=${options.fakeVideo}`,
      ]
    : [];
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: [...CHROMIUM_ARGS, ...camera],
  });
}

export interface WatchedPage {
  page: Page;
  context: BrowserContext;
  /** Console errors and uncaught exceptions, in order. A page under test must leave this empty. */
  errors: string[];
}

/** A new phone-sized tab that records every console error and uncaught exception. */
export async function openPage(browser: Browser, url: string, setup?: (page: Page) => Promise<void>) {
  const context = await browser.newContext({ viewport: PHONE_VIEWPORT, deviceScaleFactor: 1 });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on("console", (message) => {
    if (message.type() === "error") errors.push(`console: ${message.text()} at ${message.location().url}`);
  });
  page.on("pageerror", (error) => errors.push(`uncaught: ${error.message}`));
  await setup?.(page);
  await page.goto(url);
  return { page, context, errors } satisfies WatchedPage;
}

/** The buyer page's key for a signed-in buyer's token (web/src/buyer.ts). */
const BUYER_TOKEN_KEY = "passes.buyer.token";

/**
 * The buyer page with `token` already signed in, as after an earlier sign-in in this browser. (A token in
 * the URL fragment is only taken with the state of a sign-in the page started: see buyer-signin.test.ts.)
 */
export function openSignedInBuyerPage(
  browser: Browser,
  base: string,
  token: string,
  setup?: (page: Page) => Promise<void>,
) {
  return openPage(browser, `${base}/`, async (page) => {
    await page.addInitScript(
      ([key, value]) => {
        if (!localStorage.getItem(key)) localStorage.setItem(key, value);
      },
      [BUYER_TOKEN_KEY, token] as const,
    );
    await setup?.(page);
  });
}

/** How wide the document is: more than the viewport means something forces sideways scrolling. */
export function documentWidth(page: Page): Promise<number> {
  return page.evaluate(() => document.documentElement.scrollWidth);
}

/** Saves a full-page screenshot under test-results/e2e/ and returns its path. */
export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(ARTIFACTS_DIR, { recursive: true });
  const path = join(ARTIFACTS_DIR, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}

/** The gate page signed in as `gate-demo` with a session open on `deviceId` (the page enrolls it itself). */
export async function openGatePage(browser: Browser, base: string, deviceId: string): Promise<WatchedPage> {
  const gate = await openPage(browser, `${base}/gate`);
  const { page } = gate;
  await page.getByLabel("Username").fill("gate-demo");
  await page.getByLabel("Password").fill(GATE_DEMO_PASSWORD);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByLabel("Device id").fill(deviceId);
  await page.getByRole("button", { name: "Open session" }).click();
  await page.getByText(new RegExp(`^Device ${deviceId}, `)).waitFor();
  return gate;
}
