import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, it, vi } from "vitest";
import { buildApp } from "../../src/app";
import { PUBLISHED_DEV_SECRETS, SECRET_VARIABLES } from "../../src/config/published-dev-secrets";
import type { Env } from "../../src/env";
import { buyerToken, uniqueUser } from "../support/tokens";

// With ENVIRONMENT=production a secret from .dev.vars.example (public, so anyone can sign with it) makes
// the service refuse every route; so does a configuration it cannot run with at all. Each case drives a
// copy of the app with its own env object, so its config is parsed (and refused, and logged) afresh.

const app = buildApp();

/** Routes of every kind: public, buyer, staff, webhook, well-known, the document, and no route at all. */
const ROUTES: { method: string; path: string; body?: unknown }[] = [
  { method: "GET", path: "/catalog" },
  { method: "GET", path: "/my/tickets" },
  { method: "POST", path: "/operators/login", body: { username: "nobody", password: "wrong-password" } },
  { method: "POST", path: "/tickets/scan", body: { qr_token: "x", function: "bus", session_id: "ses_x" } },
  { method: "POST", path: "/payments/webhook", body: {} },
  { method: "GET", path: "/.well-known/jwks.json" },
  { method: "GET", path: "/openapi.json" },
  { method: "GET", path: "/no-such-route" },
];

async function send(
  deployment: Env,
  route: { method: string; path: string; body?: unknown },
  token?: string,
): Promise<{ status: number; text: string; headers: Headers }> {
  const headers = new Headers({ "x-request-id": "req-guard-test" });
  if (token) headers.set("authorization", `Bearer ${token}`);
  if (route.body !== undefined) headers.set("content-type", "application/json");
  const ctx = createExecutionContext();
  const response = await app.fetch(
    new Request(`https://passes.test${route.path}`, {
      method: route.method,
      headers,
      body: route.body === undefined ? undefined : JSON.stringify(route.body),
    }),
    deployment,
    ctx,
  );
  await waitOnExecutionContext(ctx);
  return { status: response.status, text: await response.text(), headers: response.headers };
}

const production = (overrides: Partial<Env>) => ({ ...env, ENVIRONMENT: "production", ...overrides }) as Env;

/** The configuration log lines written so far through `console.error`. */
function configurationLogs(spy: { mock: { calls: unknown[][] } }): string[] {
  return spy.mock.calls
    .map((args) => String(args[0]))
    .filter((line) => line.includes("configuration refused"));
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe("a production deployment with a published development secret", () => {
  it("answers 503 service_misconfigured on every route, and logs the variable's name once", async ({
    expect,
  }) => {
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    const devSecret = PUBLISHED_DEV_SECRETS.OPERATOR_JWT_SECRET ?? "";
    const deployment = production({ OPERATOR_JWT_SECRET: devSecret });
    const token = await buyerToken(uniqueUser());
    for (const route of ROUTES) {
      const response = await send(deployment, route, token);
      expect(response.status, `${route.method} ${route.path}`).toBe(503);
      expect(response.headers.get("content-type")).toBe("application/problem+json");
      expect(response.headers.get("x-request-id")).toBe("req-guard-test");
      const body = JSON.parse(response.text);
      expect(body).toMatchObject({ status: 503, code: "service_misconfigured" });
      // The client learns that the service is misconfigured, not how.
      expect(response.text).not.toContain("OPERATOR_JWT_SECRET");
      expect(response.text).not.toContain(devSecret);
    }
    const logs = configurationLogs(errors);
    expect(logs).toHaveLength(1);
    expect(logs[0]).toContain("OPERATOR_JWT_SECRET");
    expect(logs[0]).not.toContain(devSecret);
  });

  it.for(SECRET_VARIABLES)("refuses to serve when %s is a published value", async (variable, { expect }) => {
    vi.spyOn(console, "error").mockImplementation(() => {});
    // QR_SIGNING_JWK_PREVIOUS has no value of its own in the file: the published current key is refused there.
    const published = PUBLISHED_DEV_SECRETS[variable] ?? PUBLISHED_DEV_SECRETS.QR_SIGNING_JWK ?? "";
    const response = await send(production({ [variable]: published }), { method: "GET", path: "/catalog" });
    expect(response.status).toBe(503);
    expect(JSON.parse(response.text).code).toBe("service_misconfigured");
  });

  it("refuses too when ENVIRONMENT is unset, which means production", async ({ expect }) => {
    vi.spyOn(console, "error").mockImplementation(() => {});
    const deployment = {
      ...env,
      ENVIRONMENT: undefined,
      WALLET_REF_SECRET: PUBLISHED_DEV_SECRETS.WALLET_REF_SECRET,
    };
    const response = await send(deployment as Env, { method: "GET", path: "/catalog" });
    expect(response.status).toBe(503);
  });

  it("is fine in development, where the published values belong", async ({ expect }) => {
    const deployment = {
      ...env,
      ENVIRONMENT: "development",
      OPERATOR_JWT_SECRET: PUBLISHED_DEV_SECRETS.OPERATOR_JWT_SECRET,
    } as Env;
    expect((await send(deployment, { method: "GET", path: "/catalog" })).status).toBe(200);
  });
});

describe("a production deployment with secrets of its own", () => {
  it("serves the same routes", async ({ expect }) => {
    const deployment = production({});
    const token = await buyerToken(uniqueUser());
    const catalog = await send(deployment, { method: "GET", path: "/catalog" });
    expect(catalog.status).toBe(200);
    expect(JSON.parse(catalog.text)).toHaveProperty("products");
    expect((await send(deployment, { method: "GET", path: "/my/tickets" }, token)).status).toBe(200);
    const jwks = await send(deployment, { method: "GET", path: "/.well-known/jwks.json" });
    expect(jwks.status).toBe(200);
    expect(JSON.parse(jwks.text).keys.length).toBeGreaterThan(0);
    const login = await send(deployment, ROUTES[2] as (typeof ROUTES)[number]);
    expect(login.status).toBe(401);
    expect(JSON.parse(login.text).code).toBe("invalid_credentials");
    expect((await send(deployment, { method: "GET", path: "/no-such-route" })).status).toBe(404);
  });
});

describe("a deployment the service cannot run with", () => {
  it("answers 503 service_misconfigured, not an opaque 500, and logs which variable is wrong", async ({
    expect,
  }) => {
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    const deployment = { ...env, OPERATOR_JWT_SECRET: undefined, WALLET_REF_SECRET: "too-short" } as Env;
    for (const route of ROUTES.slice(0, 3)) {
      const response = await send(deployment, route);
      expect(response.status).toBe(503);
      expect(JSON.parse(response.text).code).toBe("service_misconfigured");
      expect(response.text).not.toMatch(/stack|zod|WALLET_REF_SECRET/i);
    }
    const logs = configurationLogs(errors);
    expect(logs).toHaveLength(1);
    expect(logs[0]).toContain("OPERATOR_JWT_SECRET");
    expect(logs[0]).toContain("WALLET_REF_SECRET");
    expect(logs[0]).not.toContain("too-short");
  });

  it("refuses a provider chosen without its secrets, a Stripe double in production, an unknown provider", async ({
    expect,
  }) => {
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    const deployment = { ...env, PAYMENT_PROVIDER: "stripe", MAIL_PROVIDER: "resend" } as Env;
    const response = await send(deployment, { method: "GET", path: "/catalog" });
    expect(response.status).toBe(503);
    expect(JSON.parse(response.text).code).toBe("service_misconfigured");
    const [log] = configurationLogs(errors);
    for (const variable of ["STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "RESEND_API_KEY"]) {
      expect(log).toContain(variable);
    }
    const mocked = production({
      STRIPE_API_BASE: "http://127.0.0.1:12111",
      ...Object.fromEntries(SECRET_VARIABLES.map((name) => [name, env[name as keyof typeof env]])),
    });
    expect((await send(mocked, { method: "GET", path: "/catalog" })).status).toBe(503);
    expect(configurationLogs(errors).at(-1)).toContain("STRIPE_API_BASE");
    const unknown = { ...env, PAYMENT_PROVIDER: "paypal" } as Env;
    expect((await send(unknown, { method: "GET", path: "/catalog" })).status).toBe(503);
    expect(configurationLogs(errors).at(-1)).toContain("PAYMENT_PROVIDER");
  });
});
