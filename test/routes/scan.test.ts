import { env } from "cloudflare:workers";
import { SignJWT } from "jose";
import { describe, it } from "vitest";
import type { OperatorRole } from "../../src/types/domain";
import { operatorToken } from "../support/fixtures";
import { callJson } from "../support/http";
import { gateSession, paidTicket, qrToken, scan } from "../support/tickets";

const remainingOf = (body: { entitlements?: { function: string; remaining_uses: number }[] }, fn: string) =>
  body.entitlements?.find((e) => e.function === fn)?.remaining_uses;

describe("POST /tickets/scan: concurrency", () => {
  it("14 parallel scans with fresh tokens against 3 uses: exactly 3 accepted", async ({ expect }) => {
    const ticket = await paidTicket([{ function: "ferry", uses: 3 }]);
    const gate = await gateSession();
    const tokens = await Promise.all(Array.from({ length: 14 }, () => qrToken(ticket)));
    const results = await Promise.all(tokens.map((qr) => scan(gate, qr, "ferry")));
    const accepted = results.filter((r) => r.status === 200);
    const exhausted = results.filter((r) => r.body.code === "exhausted");
    expect(accepted).toHaveLength(3);
    expect(exhausted).toHaveLength(11);
    expect(accepted.map((r) => remainingOf(r.body, "ferry")).sort()).toEqual([0, 1, 2]);
    for (const r of exhausted) {
      expect(r.status).toBe(409);
      expect(remainingOf(r.body, "ferry")).toBe(0);
    }
    const mine = await callJson<{ tickets: { code: string; status: string; entitlements: unknown[] }[] }>(
      "GET",
      "/my/tickets",
      { token: ticket.buyerToken },
    );
    const shown = mine.body.tickets.find((t) => t.code === ticket.code);
    expect(shown?.entitlements).toEqual([{ function: "ferry", total_uses: 3, remaining_uses: 0 }]);
    expect(shown?.status).toBe("USED_UP");
  });

  it("one token raced 12 times: exactly one accepted, the rest token_replayed", async ({ expect }) => {
    const ticket = await paidTicket([{ function: "bus", uses: 10 }]);
    const gate = await gateSession();
    const qr = await qrToken(ticket);
    const results = await Promise.all(Array.from({ length: 12 }, () => scan(gate, qr, "bus")));
    expect(results.filter((r) => r.status === 200)).toHaveLength(1);
    const replayed = results.filter((r) => r.body.code === "token_replayed");
    expect(replayed).toHaveLength(11);
    for (const r of replayed) expect(remainingOf(r.body, "bus")).toBe(9);
  });

  it("/my/tickets reflects each scan as soon as it returns", async ({ expect }) => {
    const ticket = await paidTicket([
      { function: "bus", uses: 10 },
      { function: "museum", uses: 1 },
    ]);
    const gate = await gateSession();
    for (const fn of ["bus", "bus", "museum"])
      expect((await scan(gate, await qrToken(ticket), fn)).status).toBe(200);
    const mine = await callJson<{ tickets: { code: string; entitlements: unknown[] }[] }>(
      "GET",
      "/my/tickets",
      {
        token: ticket.buyerToken,
      },
    );
    expect(mine.body.tickets.find((t) => t.code === ticket.code)?.entitlements).toEqual([
      { function: "bus", total_uses: 10, remaining_uses: 8 },
      { function: "museum", total_uses: 1, remaining_uses: 0 },
    ]);
  });
});

describe("POST /tickets/scan: rejections", () => {
  it("no_entitlement and exhausted carry the ticket's entitlements", async ({ expect }) => {
    const ticket = await paidTicket([{ function: "museum", uses: 1 }]);
    const gate = await gateSession();
    const none = await scan(gate, await qrToken(ticket), "bus");
    expect(none).toMatchObject({ status: 409, body: { code: "no_entitlement" } });
    expect(remainingOf(none.body, "museum")).toBe(1);
    expect((await scan(gate, await qrToken(ticket), "museum")).status).toBe(200);
    const empty = await scan(gate, await qrToken(ticket), "museum");
    expect(empty).toMatchObject({ status: 409, body: { code: "exhausted" } });
    expect(remainingOf(empty.body, "museum")).toBe(0);
  });

  it("forged, tampered, expired, wallet-typed and garbage tokens", async ({ expect }) => {
    const ticket = await paidTicket([{ function: "bus", uses: 5 }]);
    const gate = await gateSession();
    const good = await qrToken(ticket);
    const [header, payload, signature] = good.split(".");
    const claims = JSON.parse(atob((payload ?? "").replaceAll("-", "+").replaceAll("_", "/")));
    const reencode = (value: unknown) =>
      btoa(JSON.stringify(value)).replaceAll("=", "").replaceAll("+", "-").replaceAll("/", "_");

    const tampered = `${header}.${reencode({ ...claims, sub: "ZZZZZZZZZZZZZZ" })}.${signature}`;
    expect((await scan(gate, tampered, "bus")).body.code).toBe("token_invalid");

    const forgedKey = await crypto.subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"]);
    const forged = await new SignJWT({ jti: crypto.randomUUID() })
      .setProtectedHeader({
        alg: "EdDSA",
        typ: "ticket-qr+jwt",
        kid: JSON.parse(env.QR_SIGNING_JWK ?? "{}").kid,
      })
      .setSubject(ticket.code)
      .setIssuer(env.SERVICE_ISSUER ?? "")
      .setAudience("gate")
      .setIssuedAt()
      .setExpirationTime("30s")
      .sign((forgedKey as CryptoKeyPair).privateKey);
    expect((await scan(gate, forged, "bus")).body.code).toBe("token_invalid");

    const currentKey = JSON.parse(env.QR_SIGNING_JWK ?? "{}");
    const { importJWK } = await import("jose");
    const signingKey = await importJWK(currentKey, "EdDSA");
    const sign = (typ: string, aud: string, exp: number | string) =>
      new SignJWT({ jti: crypto.randomUUID(), nonce: "n" })
        .setProtectedHeader({ alg: "EdDSA", typ, kid: currentKey.kid })
        .setSubject(ticket.code)
        .setIssuer(env.SERVICE_ISSUER ?? "")
        .setAudience(aud)
        .setIssuedAt(Math.floor(Date.now() / 1000) - 120)
        .setExpirationTime(exp)
        .sign(signingKey);
    const expired = await sign("ticket-qr+jwt", "gate", Math.floor(Date.now() / 1000) - 60);
    expect((await scan(gate, expired, "bus")).body.code).toBe("token_expired");
    const walletTyped = await sign("wallet-qr+jwt", "pos", "60s");
    expect((await scan(gate, walletTyped, "bus")).body.code).toBe("token_invalid");
    const wrongAudience = await sign("ticket-qr+jwt", "pos", "60s");
    expect((await scan(gate, wrongAudience, "bus")).body.code).toBe("token_invalid");
    for (const garbage of ["x", "a.b.c", `${header}.${payload}.`]) {
      const response = await scan(gate, garbage, "bus");
      expect(response.status).toBe(422);
      expect(response.body.code).toBe("token_invalid");
    }
    // None of that spent a use.
    const ok = await scan(gate, good, "bus");
    expect(remainingOf(ok.body, "bus")).toBe(4);
  });

  it("closed, foreign and non-gate sessions are session_invalid; restricted devices function_not_allowed", async ({
    expect,
  }) => {
    const ticket = await paidTicket([{ function: "bus", uses: 5 }]);
    const gate = await gateSession();
    const other = await gateSession();
    const foreign = await scan(
      { token: other.token, sessionId: gate.sessionId },
      await qrToken(ticket),
      "bus",
    );
    expect(foreign).toMatchObject({ status: 403, body: { code: "session_invalid" } });

    await callJson("DELETE", `/validators/sessions/${gate.sessionId}`, { token: gate.token });
    const closed = await scan(gate, await qrToken(ticket), "bus");
    expect(closed).toMatchObject({ status: 403, body: { code: "session_invalid" } });

    const unknown = await scan({ token: other.token, sessionId: "ses_nope" }, await qrToken(ticket), "bus");
    expect(unknown.body.code).toBe("session_invalid");

    const ferryOnly = await gateSession({ functions: ["ferry"] });
    const restricted = await scan(ferryOnly, await qrToken(ticket), "bus");
    expect(restricted).toMatchObject({ status: 403, body: { code: "function_not_allowed" } });

    const pos = await operatorToken(["pos"], ["evt"]);
    const asPos = await scan({ token: pos.token, sessionId: other.sessionId }, await qrToken(ticket), "bus");
    expect(asPos).toMatchObject({ status: 403, body: { code: "forbidden" } });

    const ok = await scan(other, await qrToken(ticket), "bus");
    expect(remainingOf(ok.body, "bus")).toBe(4);
  });
});

describe("POST /tickets/scan: roles", () => {
  // The role is checked before the session. Were it missing, the session check would still refuse with a
  // 403, but session_invalid: only the code tells the two apart.
  it.for<OperatorRole>(["pos", "analyst"])(
    "an operator with role %s is forbidden before any session is looked at",
    async (role, { expect }) => {
      const ticket = await paidTicket([{ function: "bus", uses: 1 }]);
      const operator = await operatorToken([role], ["evt"]);
      const refused = await scan(
        { token: operator.token, sessionId: "ses_nope" },
        await qrToken(ticket),
        "bus",
      );
      expect(refused).toMatchObject({ status: 403, body: { code: "forbidden" } });
    },
  );
});
