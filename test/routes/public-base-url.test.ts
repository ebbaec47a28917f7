import { env, exports } from "cloudflare:workers";
import { describe, it } from "vitest";
import { buildApp } from "../../src/app";
import { type Config, type Env, publicBaseUrl } from "../../src/env";
import { fundedWallet, type Problem, posTill, type Till, walletQr } from "../support/wallet";

/** A deduction the wallet cannot cover, sent to `origin` through `fetcher`: it answers a topup_url. */
async function shortDeduction(fetcher: (request: Request) => Promise<Response>, origin: string, till: Till) {
  const { token } = await fundedWallet(600);
  const request = new Request(`${origin}/pos/deductions`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${till.token}`,
      "content-type": "application/json",
      "idempotency-key": crypto.randomUUID(),
    },
    body: JSON.stringify({
      qr_token: await walletQr(token),
      amount_cents: 5_000,
      session_id: till.sessionId,
    }),
  });
  const response = await fetcher(request);
  return { status: response.status, body: (await response.json()) as Problem };
}

describe("links handed to clients (topup_url)", () => {
  it("point at the request's own origin when PUBLIC_BASE_URL is unset", async ({ expect }) => {
    expect(env.PUBLIC_BASE_URL ?? "").toBe("");
    const till = await posTill();
    const origin = "https://venue-a.example.test";
    const answer = await shortDeduction((request) => exports.default.fetch(request), origin, till);
    expect(answer.status).toBe(402);
    expect(answer.body).toMatchObject({ code: "insufficient_funds" });
    expect(answer.body.topup_url).toBe(`${origin}/#wallet`);

    // Another host of the same deployment (a custom domain beside workers.dev) gets its own links.
    const other = await shortDeduction(
      (request) => exports.default.fetch(request),
      "https://passes-edge.example.workers.dev",
      till,
    );
    expect(other.body.topup_url).toBe("https://passes-edge.example.workers.dev/#wallet");
  });

  it("point at PUBLIC_BASE_URL when it is set, whatever origin the request came to", async ({ expect }) => {
    const app = buildApp();
    // A fresh env object: the per-env configuration cache parses the new variable.
    const configured: Env = { ...(env as Env), PUBLIC_BASE_URL: "https://buy.example.com" };
    const ctx = { waitUntil: () => undefined, passThroughOnException: () => undefined, props: {} };
    const till = await posTill();
    const answer = await shortDeduction(
      async (request) => app.fetch(request, configured, ctx as unknown as ExecutionContext),
      "https://venue-a.example.test",
      till,
    );
    expect(answer.status).toBe(402);
    expect(answer.body.topup_url).toBe("https://buy.example.com/#wallet");
  });

  it("publicBaseUrl: the configured base wins, the request origin fills in", ({ expect }) => {
    const config = { publicBaseUrl: undefined } as Config;
    expect(publicBaseUrl(config, "https://a.example")).toBe("https://a.example");
    expect(publicBaseUrl({ ...config, publicBaseUrl: "https://b.example" }, "https://a.example")).toBe(
      "https://b.example",
    );
  });
});
