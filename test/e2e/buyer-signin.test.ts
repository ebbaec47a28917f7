import { readFileSync } from "node:fs";
import { SignJWT } from "jose";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, inject, it } from "vitest";
import { call } from "./support/api";
import { readDevVars } from "./support/app";
import { launchBrowser, openPage, screenshot } from "./support/browser";

// Login CSRF: a link to the buyer page carrying someone else's `#id_token=` must not sign the visitor in,
// nor replace who is signed in. Only the answer to a sign-in this tab started (same `state`, used once)
// counts. The identity provider is played here: its authorize URL is answered by the test, which signs
// an ID token the way the development provider does (HS256 with .dev.vars.example's BUYER_JWT_SECRET).

const base = inject("baseUrl");
const PROVIDER_AUTHORIZE_URL = "https://id.provider.test/authorize";
const CLIENT_ID = "passes-buyer-page";
const IGNORED = "A sign-in this page did not start was ignored";
const isProviderAuthorize = (url: URL) => url.href.startsWith(`${PROVIDER_AUTHORIZE_URL}?`);

const devSecret = readDevVars(".dev.vars.example").BUYER_JWT_SECRET ?? "";
const wranglerToml = readFileSync("wrangler.toml", "utf8");
const wranglerVar = (name: string) =>
  wranglerToml.match(new RegExp(`^${name}\\s*=\\s*"([^"]*)"`, "m"))?.[1] ?? "";

/** An ID token as the deployment's (development) provider would issue it; the API accepts it. */
function idToken(userId: string, claims: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(userId)
    .setIssuer(wranglerVar("BUYER_JWT_ISSUER"))
    .setAudience(wranglerVar("BUYER_JWT_AUDIENCE"))
    .setIssuedAt()
    .setExpirationTime("10m")
    .sign(new TextEncoder().encode(devSecret));
}

/** The buyer page as a deployment that configured its provider serves it (meta tags in index.html). */
async function withProviderConfigured(page: Page): Promise<void> {
  await page.route(
    (url) => url.href === `${base}/`,
    async (route) => {
      const response = await route.fetch();
      const html = (await response.text()).replace(
        "<head>",
        `<head><meta name="passes-oidc-authorize-url" content="${PROVIDER_AUTHORIZE_URL}">` +
          `<meta name="passes-oidc-client-id" content="${CLIENT_ID}">`,
      );
      await route.fulfill({ response, body: html });
    },
  );
}

/** The provider: signs `userId` in, echoing the request's state and nonce, back to its redirect_uri. */
async function providerSigningIn(page: Page, userId: string): Promise<URLSearchParams[]> {
  const requests: URLSearchParams[] = [];
  await page.route(isProviderAuthorize, async (route) => {
    const query = new URL(route.request().url()).searchParams;
    requests.push(query);
    const token = await idToken(userId, { nonce: query.get("nonce") });
    const answer = new URLSearchParams({ id_token: token, state: query.get("state") ?? "" });
    await route.fulfill({
      status: 302,
      headers: { location: `${query.get("redirect_uri")}#${answer}` },
    });
  });
  return requests;
}

const signedInAs = (page: Page) => page.locator("#who").textContent();
const storedToken = (page: Page) => page.evaluate(() => localStorage.getItem("passes.buyer.token"));

let browser: Browser;
beforeAll(async () => {
  browser = await launchBrowser();
});
afterAll(async () => {
  await browser.close();
});

describe("buyer sign-in from a URL fragment", () => {
  it("ignores a foreign #id_token without the page's state: the current user stays signed in", async ({
    expect,
  }) => {
    const victim = await openPage(browser, `${base}/`);
    await victim.page.getByRole("button", { name: "Continue as a demo user" }).click();
    await victim.page.getByText(/^Signed in as demo-/).waitFor();
    const before = await signedInAs(victim.page);
    const victimToken = await storedToken(victim.page);

    const attacker = await call<{ token: string }>(base, "POST", "/dev/buyer-token", {
      body: { user_id: `attacker-${Date.now()}` },
    });
    expect(attacker.status).toBe(201);
    const link = (fragment: string) => `${base}/?from=mail#${fragment}`;

    // The link opened in the same browser, with no state, then with a guessed one.
    for (const fragment of [
      `id_token=${attacker.body.token}`,
      `id_token=${attacker.body.token}&state=guessed-state`,
    ]) {
      const tab = await victim.context.newPage();
      await tab.goto(link(fragment));
      await tab.getByText(IGNORED).waitFor();
      expect(await signedInAs(tab)).toBe(before);
      expect(await storedToken(tab)).toBe(victimToken);
      // The token is taken out of the address bar either way.
      expect(new URL(tab.url()).hash).toBe("");
      await screenshot(tab, "buyer-signin-foreign-ignored");
      await tab.close();
    }
    expect(victim.errors).toEqual([]);
    await victim.context.close();
  });

  it("ignores a foreign #id_token when nobody is signed in: the sign-in screen stays", async ({ expect }) => {
    const attacker = await call<{ token: string }>(base, "POST", "/dev/buyer-token", { body: {} });
    const { page, context, errors } = await openPage(browser, `${base}/#id_token=${attacker.body.token}`);
    await page.getByText(IGNORED).waitFor();
    await page.getByRole("heading", { name: "Sign in" }).waitFor();
    expect(await signedInAs(page)).toBe("");
    expect(await storedToken(page)).toBeNull();
    // The development path still works from there.
    await page.getByRole("button", { name: "Continue as a demo user" }).click();
    await page.getByText(/^Signed in as demo-/).waitFor();
    expect(await page.getByText(IGNORED).count()).toBe(0);
    expect(errors).toEqual([]);
    await context.close();
  });

  it("signs in with the provider's token when it comes back with the state this tab stored, once", async ({
    expect,
  }) => {
    const userId = `oidc-${Date.now()}`;
    let requests: URLSearchParams[] = [];
    const { page, context, errors } = await openPage(browser, `${base}/`, async (setup) => {
      await withProviderConfigured(setup);
      requests = await providerSigningIn(setup, userId);
    });
    await page.getByRole("button", { name: "Sign in with your identity provider" }).click();
    await page.getByText(`Signed in as ${userId}`).waitFor();
    // Signed in for real: the API accepts the token.
    await page.getByRole("heading", { name: "Harbour Pass" }).waitFor();
    expect(new URL(page.url()).hash).toBe("");

    const request = requests[0];
    expect(request?.get("response_type")).toBe("id_token");
    expect(request?.get("client_id")).toBe(CLIENT_ID);
    expect(request?.get("redirect_uri")).toBe(`${base}/`);
    expect(request?.get("state")?.length).toBeGreaterThanOrEqual(32);
    expect(request?.get("nonce")?.length).toBeGreaterThanOrEqual(32);
    expect(await page.evaluate(() => sessionStorage.getItem("passes.buyer.signin-attempt"))).toBeNull();

    // The same answer again (a replayed or leaked redirect) finds no stored state: ignored, and the
    // signed-in user is unchanged.
    const other = await idToken(`other-${Date.now()}`);
    await page.goto(`${base}/?again#id_token=${other}&state=${request?.get("state")}`);
    await page.getByText(IGNORED).waitFor();
    expect(await signedInAs(page)).toBe(`Signed in as ${userId}`);
    expect(errors).toEqual([]);
    await context.close();
  });

  it("ignores a token minted for another sign-in (its nonce is not ours), even with our state", async ({
    expect,
  }) => {
    const { page, context } = await openPage(browser, `${base}/`, async (setup) => {
      await withProviderConfigured(setup);
      await setup.route(isProviderAuthorize, async (route) => {
        const query = new URL(route.request().url()).searchParams;
        const token = await idToken(`swapped-${Date.now()}`, { nonce: "someone-elses-nonce" });
        const answer = new URLSearchParams({ id_token: token, state: query.get("state") ?? "" });
        await route.fulfill({ status: 302, headers: { location: `${query.get("redirect_uri")}#${answer}` } });
      });
    });
    await page.getByRole("button", { name: "Sign in with your identity provider" }).click();
    await page.getByText(IGNORED).waitFor();
    expect(await signedInAs(page)).toBe("");
    await context.close();
  });
});
