import { env } from "cloudflare:workers";
import { SignJWT } from "jose";
import { describe, it } from "vitest";
import { operatorToken, TEST_PASSWORD } from "../support/fixtures";
import { callJson } from "../support/http";
import { buyerToken, uniqueUser, unsignedToken } from "../support/tokens";

describe("buyer authentication", () => {
  const probe = (token?: string) => callJson("GET", "/orders/ord_probe", token ? { token } : {});

  it("accepts a valid token (the order is simply not found)", async ({ expect }) => {
    expect((await probe(await buyerToken(uniqueUser()))).status).toBe(404);
  });

  it.each([
    ["missing", async () => undefined],
    [
      "alg none",
      async () =>
        unsignedToken({ sub: "u", iss: env.BUYER_JWT_ISSUER, aud: env.BUYER_JWT_AUDIENCE, exp: 9e9 }),
    ],
    ["wrong audience", () => buyerToken("u", { audience: "someone-else" })],
    ["wrong issuer", () => buyerToken("u", { issuer: "https://evil.example/" })],
    ["expired", () => buyerToken("u", { expiresInSeconds: -120 })],
    ["wrong secret", () => buyerToken("u", { secret: "another-secret-another-secret-0123" })],
    ["garbage", async () => "not.a.jwt"],
  ])("401 for %s", async (_name, makeToken) => {
    const { expect } = await import("vitest");
    const response = await probe(await makeToken());
    expect(response.status).toBe(401);
    expect(response.body).toMatchObject({ code: "unauthenticated" });
  });

  it("an operator token is not a buyer token", async ({ expect }) => {
    const operator = await operatorToken(["admin"]);
    expect((await probe(operator.token)).status).toBe(401);
  });

  it("a buyer token is not an operator token, even when signed with the operator secret", async ({
    expect,
  }) => {
    const body = { name: "x", price_cents: 1, sellable: 1, functions: [{ function: "bus", uses: 1 }] };
    const buyer = await buyerToken(uniqueUser());
    expect((await callJson("POST", "/admin/products", { token: buyer, body })).status).toBe(401);
    const forged = await new SignJWT({ operator_id: "opr_x", roles: ["admin"] })
      .setProtectedHeader({ alg: "HS256", typ: "JWT" })
      .setSubject("opr_x")
      .setIssuer(env.SERVICE_ISSUER ?? "")
      .setAudience(env.BUYER_JWT_AUDIENCE ?? "")
      .setExpirationTime("5m")
      .sign(new TextEncoder().encode(env.OPERATOR_JWT_SECRET));
    expect((await callJson("POST", "/admin/products", { token: forged, body })).status).toBe(401);
  });
});

describe("POST /operators/login", () => {
  it("issues an operator token carrying roles and events", async ({ expect }) => {
    const operator = await operatorToken(["pos"], ["evt-1"]);
    const [, payload] = operator.token.split(".");
    const claims = JSON.parse(atob((payload ?? "").replaceAll("-", "+").replaceAll("_", "/")));
    expect(claims).toMatchObject({
      operator_id: operator.operatorId,
      roles: ["pos"],
      event_ids: ["evt-1"],
      aud: "staff",
    });
  });

  it("answers a wrong username and a wrong password identically", async ({ expect }) => {
    const operator = await operatorToken(["gate"]);
    const wrongPassword = await callJson("POST", "/operators/login", {
      body: { username: operator.username, password: "nope-nope-nope" },
    });
    const wrongUser = await callJson("POST", "/operators/login", {
      body: { username: `ghost-${crypto.randomUUID().slice(0, 6)}`, password: "nope-nope-nope" },
    });
    expect(wrongPassword.status).toBe(401);
    expect(wrongPassword.body).toEqual(wrongUser.body);
    expect(wrongPassword.body).toMatchObject({ code: "invalid_credentials" });
  });

  it("throttles repeated failures, even for the right password", async ({ expect }) => {
    const operator = await operatorToken(["gate"]);
    const attempts = await Promise.all(
      Array.from({ length: 5 }, () =>
        callJson("POST", "/operators/login", {
          body: { username: operator.username, password: "wrong-password!" },
        }),
      ),
    );
    expect(attempts.every((a) => a.status === 401)).toBe(true);
    const blocked = await callJson("POST", "/operators/login", {
      body: { username: operator.username, password: TEST_PASSWORD },
    });
    expect(blocked.status).toBe(429);
    expect(blocked.body).toMatchObject({ code: "too_many_attempts" });
    expect(Number(blocked.headers.get("retry-after"))).toBeGreaterThan(0);
  });

  it("admin can create operators; duplicates are 409; non-admins 403", async ({ expect }) => {
    const admin = await operatorToken(["admin"]);
    const username = `new-${crypto.randomUUID().slice(0, 8)}`;
    const body = { username, password: "a-long-enough-password", roles: ["gate"] };
    const created = await callJson("POST", "/admin/operators", { token: admin.token, body });
    expect(created.status).toBe(201);
    expect(created.body).not.toHaveProperty("password");
    expect(created.body).not.toHaveProperty("password_hash");
    const again = await callJson("POST", "/admin/operators", {
      token: admin.token,
      body: { ...body, username: username.toUpperCase() },
    });
    expect(again).toMatchObject({ status: 409, body: { code: "username_taken" } });
    const analyst = await operatorToken(["analyst"]);
    expect((await callJson("POST", "/admin/operators", { token: analyst.token, body })).status).toBe(403);
    const login = await callJson("POST", "/operators/login", { body: { username, password: body.password } });
    expect(login.status).toBe(200);
  });
});
