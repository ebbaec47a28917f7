import { env, exports } from "cloudflare:workers";
import { afterEach, describe, it, vi } from "vitest";
import { buildApp } from "../../src/app";
import type { Env } from "../../src/env";
import type { AccessLogLine } from "../../src/http/access-log";
import { operatorToken, seedProduct, TEST_PASSWORD } from "../support/fixtures";
import { buyerToken, uniqueUser } from "../support/tokens";
import { newPaymentId, signatureHeaders } from "../support/webhooks";

interface DataPoint {
  indexes?: string[];
  blobs?: (string | null)[];
  doubles?: number[];
}

/** The app with a METRICS dataset that records what it is given, and console.log captured. */
function instrumented(options: { failingDataset?: boolean } = {}) {
  const points: DataPoint[] = [];
  const dataset: AnalyticsEngineDataset = {
    writeDataPoint(point?: DataPoint) {
      if (options.failingDataset) throw new Error("analytics engine unavailable");
      points.push(point ?? {});
    },
  };
  const logged: string[] = [];
  vi.spyOn(console, "log").mockImplementation((...args: unknown[]) => {
    logged.push(args.map(String).join(" "));
  });
  const app = buildApp();
  const testEnv: Env = { ...(env as Env), METRICS: dataset };
  const ctx = { waitUntil: () => undefined, passThroughOnException: () => undefined, props: {} };
  const fetch = (path: string, init: RequestInit = {}) =>
    app.fetch(new Request(`https://passes.test${path}`, init), testEnv, ctx as unknown as ExecutionContext);
  const accessLines = () =>
    logged
      .filter((line) => line.startsWith("{"))
      .map((line) => JSON.parse(line) as AccessLogLine & Record<string, unknown>)
      .filter((line) => line.msg === "request");
  return { fetch, points, logged, accessLines };
}

afterEach(() => {
  vi.restoreAllMocks();
});

const SECRETS = () =>
  [
    env.OPERATOR_JWT_SECRET,
    env.BUYER_JWT_SECRET,
    env.WALLET_REF_SECRET,
    env.PAYMENT_WEBHOOK_SECRET,
    env.QR_SIGNING_JWK,
  ].filter((value): value is string => typeof value === "string" && value.length > 0);

describe("access log: one JSON line per request", () => {
  it("names the request id, route pattern, method, status, duration and operator; never a token or secret", async ({
    expect,
  }) => {
    const admin = await operatorToken(["admin"]);
    const { fetch, logged, accessLines } = instrumented();
    const response = await fetch("/admin/operators?limit=5", {
      headers: { authorization: `Bearer ${admin.token}`, "x-request-id": "req-access-log-1" },
    });
    expect(response.status).toBe(200);
    const [line] = accessLines();
    expect(line).toEqual({
      level: "info",
      msg: "request",
      request_id: "req-access-log-1",
      method: "GET",
      route: "/admin/operators",
      status: 200,
      duration_ms: expect.any(Number),
      operator_id: admin.operatorId,
    });
    const everything = logged.join("\n");
    expect(everything).not.toContain("Bearer");
    expect(everything).not.toContain(admin.token);
    expect(everything).not.toContain("limit=5");
    for (const secret of SECRETS()) expect(everything).not.toContain(secret);
  });

  it("logs a login without its body: no username, no password, no token handed back", async ({ expect }) => {
    const admin = await operatorToken(["admin"]);
    const { fetch, logged, accessLines } = instrumented();
    const response = await fetch("/operators/login", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ username: admin.username, password: TEST_PASSWORD }),
    });
    const { operator_token: issued } = (await response.json()) as { operator_token: string };
    expect(response.status).toBe(200);
    expect(accessLines()).toEqual([
      expect.objectContaining({ method: "POST", route: "/operators/login", status: 200 }),
    ]);
    const everything = logged.join("\n");
    expect(everything).not.toContain(TEST_PASSWORD);
    expect(everything).not.toContain(issued);
  });

  it("uses the pattern, not the path: ids in the path stay out; a device in the path is named", async ({
    expect,
  }) => {
    const buyer = await buyerToken(uniqueUser());
    const admin = await operatorToken(["admin"]);
    const { fetch, accessLines } = instrumented();
    await fetch("/orders/ord_secretlookingid", { headers: { authorization: `Bearer ${buyer}` } });
    await fetch("/admin/devices/dev-gate-42?session_id=ses_x", {
      method: "PATCH",
      headers: { authorization: `Bearer ${admin.token}`, "content-type": "application/json" },
      body: JSON.stringify({ active: false }),
    });
    await fetch("/no/such/route");
    const [order, device, unknown] = accessLines();
    expect(order).toMatchObject({ route: "/orders/:id", status: 404 });
    expect(JSON.stringify(order)).not.toContain("ord_secretlookingid");
    expect(JSON.stringify(order)).not.toContain(buyer);
    expect(device).toMatchObject({ route: "/admin/devices/:id", device_id: "dev-gate-42", status: 404 });
    expect(device?.operator_id).toBe(admin.operatorId);
    expect(JSON.stringify(device)).not.toContain("ses_x");
    expect(unknown).toMatchObject({ route: null, status: 404 });
  });

  it("a 5xx is logged at level error", async ({ expect }) => {
    const { accessLines } = instrumented();
    const failing = buildApp();
    failing.get("/explode-for-test", () => {
      throw new Error("boom");
    });
    // A route that exists only on this app, to fail the way a bug would.
    const ctx = { waitUntil: () => undefined, passThroughOnException: () => undefined, props: {} };
    const response = await failing.fetch(
      new Request("https://passes.test/explode-for-test"),
      env as Env,
      ctx as unknown as ExecutionContext,
    );
    expect(response.status).toBe(500);
    expect(accessLines()).toEqual([
      expect.objectContaining({ level: "error", status: 500, route: "/explode-for-test" }),
    ]);
  });
});

describe("metrics (Analytics Engine)", () => {
  it("counts every request with its status and duration, and the outcomes of metered routes", async ({
    expect,
  }) => {
    const { fetch, points } = instrumented();
    const product = await seedProduct({ price_cents: 1_000 });
    const buyer = await buyerToken(uniqueUser());
    const order = await fetch("/orders", {
      method: "POST",
      headers: {
        authorization: `Bearer ${buyer}`,
        "content-type": "application/json",
        "idempotency-key": crypto.randomUUID(),
      },
      body: JSON.stringify({ items: [{ product_id: product.id, quantity: 1 }] }),
    });
    expect(order.status).toBe(201);
    const unsigned = await fetch("/payments/webhook", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    expect(unsigned.status).toBe(401);
    const { order_id: orderId, amount_due_cents: due } = (await order.json()) as {
      order_id: string;
      amount_due_cents: number;
    };
    const payment = JSON.stringify({
      payment_id: newPaymentId(),
      reference: orderId,
      status: "SUCCESS",
      amount_cents: due,
      currency: "EUR",
    });
    const paid = await fetch("/payments/webhook", {
      method: "POST",
      headers: { "content-type": "application/json", ...signatureHeaders(payment) },
      body: payment,
    });
    expect(paid.status).toBe(200);

    const byMetric = (metric: string) => points.filter((p) => p.indexes?.[0] === metric);
    expect(byMetric("order")).toEqual([
      { indexes: ["order"], blobs: ["order", "ok", ""], doubles: [1, 0, 201] },
    ]);
    expect(byMetric("webhook").map((p) => p.blobs?.[1])).toEqual(["signature_invalid", "processed"]);
    const requests = byMetric("request");
    expect(requests.map((p) => p.blobs?.[2])).toEqual([
      "POST /orders",
      "POST /payments/webhook",
      "POST /payments/webhook",
    ]);
    expect(requests.map((p) => p.doubles?.[2])).toEqual([201, 401, 200]);
    for (const p of requests) expect(p.doubles?.[1]).toBeGreaterThanOrEqual(0);
  });

  it("a dataset that throws changes no answer", async ({ expect }) => {
    const { fetch } = instrumented({ failingDataset: true });
    const response = await fetch("/health");
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ ok: true, checks: { d1: "ok" } });
  });

  it("the real local binding (wrangler.toml METRICS) accepts points", async ({ expect }) => {
    expect(typeof env.METRICS?.writeDataPoint).toBe("function");
    env.METRICS?.writeDataPoint({
      indexes: ["request"],
      blobs: ["request", "200", "GET /health"],
      doubles: [1],
    });
    const response = await exports.default.fetch(new Request("https://passes.test/health"));
    expect(response.status).toBe(200);
  });
});
