import { env } from "cloudflare:workers";
import { describe, it } from "vitest";
import { callWith } from "../support/faulty-d1";
import { call, callJson } from "../support/http";

/** A D1 whose every query fails (or never answers), as an outage looks from the Worker. */
function brokenD1(mode: "fails" | "hangs"): D1Database {
  const failing = () => {
    const statement = {
      bind: () => statement,
      first: () =>
        mode === "fails"
          ? Promise.reject(new Error("D1_ERROR: injected outage"))
          : new Promise(() => undefined),
      run: () => Promise.reject(new Error("D1_ERROR: injected outage")),
      all: () => Promise.reject(new Error("D1_ERROR: injected outage")),
      raw: () => Promise.reject(new Error("D1_ERROR: injected outage")),
    };
    return statement;
  };
  return new Proxy(env.DB, {
    get(target, property, receiver) {
      if (property === "prepare") return failing;
      if (property === "batch") return () => Promise.reject(new Error("D1_ERROR: injected outage"));
      const value = Reflect.get(target, property, receiver);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

const SECRETS = [
  env.OPERATOR_JWT_SECRET,
  env.BUYER_JWT_SECRET,
  env.WALLET_REF_SECRET,
  env.PAYMENT_WEBHOOK_SECRET,
  env.QR_SIGNING_JWK,
].filter((value): value is string => typeof value === "string" && value.length > 0);

describe("GET /health", () => {
  it("answers 200 with every check ok, without authentication, uncached", async ({ expect }) => {
    const response = await callJson("GET", "/health");
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ ok: true, checks: { d1: "ok" } });
    expect(response.headers.get("cache-control")).toBe("no-store");
    expect(response.headers.get("x-request-id")).toBeTruthy();
  });

  it("answers 503 naming the failing check when D1 refuses, and says nothing more", async ({ expect }) => {
    const response = await callWith(brokenD1("fails"), new Request("https://passes.test/health"));
    expect(response.status).toBe(503);
    expect(response.headers.get("content-type")).toBe("application/problem+json");
    expect(response.headers.get("retry-after")).toBe("5");
    const text = await response.text();
    expect(JSON.parse(text)).toMatchObject({
      code: "service_unavailable",
      status: 503,
      ok: false,
      checks: { d1: "failed" },
    });
    expect(text).not.toContain("injected outage");
    for (const secret of SECRETS) expect(text).not.toContain(secret);
  });

  it("answers 503 with d1 timeout when D1 does not answer in time", async ({ expect }) => {
    const started = Date.now();
    const response = await callWith(brokenD1("hangs"), new Request("https://passes.test/health"));
    expect(response.status).toBe(503);
    expect(await response.json()).toMatchObject({ ok: false, checks: { d1: "timeout" } });
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it("is in the OpenAPI document with both answers", async ({ expect }) => {
    const doc = (await (await call("GET", "/openapi.json")).json()) as {
      paths: Record<string, { get?: { operationId?: string; security?: unknown; responses: object } }>;
    };
    const health = doc.paths["/health"]?.get;
    expect(health?.operationId).toBe("getHealth");
    expect(health?.security).toBeUndefined();
    expect(Object.keys(health?.responses ?? {})).toEqual(expect.arrayContaining(["200", "503"]));
  });
});
