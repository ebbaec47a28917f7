import { env } from "cloudflare:workers";
import { SignJWT } from "jose";
import { describe, it } from "vitest";
import { verifyBuyer } from "../../src/auth/buyer-token";
import { signOperatorToken, verifyOperatorToken } from "../../src/auth/operator-token";
import { VERIFIED_TOKEN_REUSE_MS, VerifiedTokens } from "../../src/auth/verified-tokens";
import { loadConfig } from "../../src/env";
import { uniqueUser } from "../support/tokens";

// A token verified once is accepted again without its signature check: these tests try to make that
// shortcut accept something the full verification would refuse.

const config = loadConfig(env);
const claims = { operatorId: "opr_cached", roles: ["gate" as const], eventIds: [], credentialVersion: 1 };

async function refusal(
  verification: Promise<{ ok: true } | { ok: false; code: string }>,
): Promise<string | undefined> {
  const verified = await verification;
  return verified.ok ? undefined : verified.code;
}

/** The operator token's lifetime is fixed, so "later" is measured from its `exp`. */
function expiryOf(token: string): number {
  const [, payload] = token.split(".");
  return JSON.parse(atob((payload ?? "").replaceAll("-", "+").replaceAll("_", "/"))).exp as number;
}

describe("operator tokens verified earlier", () => {
  it("stop being accepted at their exp, as the full check would", async ({ expect }) => {
    const issuedAt = new Date(Date.now() - 1_000);
    const token = await signOperatorToken(config, claims, issuedAt);
    const exp = expiryOf(token);
    // Verified (and remembered) a few seconds before it expires, then asked again as it expires.
    await expect(verifyOperatorToken(config, token, new Date((exp - 5) * 1000))).resolves.toEqual({
      ok: true,
      claims,
    });
    await expect(verifyOperatorToken(config, token, new Date(exp * 1000 - 1))).resolves.toEqual({
      ok: true,
      claims,
    });
    expect(await refusal(verifyOperatorToken(config, token, new Date(exp * 1000)))).toBe("token_invalid");
  });

  it("do not vouch for a token that differs in one character", async ({ expect }) => {
    const token = await signOperatorToken(config, claims, new Date());
    await verifyOperatorToken(config, token);
    const [header, payload, signature = ""] = token.split(".");
    // The first character: all six of its bits are signature bits. (The last one's low bits are padding,
    // which base64url decoders ignore, so changing only those would not change the signature at all.)
    const first = signature.startsWith("A") ? "B" : "A";
    const tamperedSignature = `${header}.${payload}.${first}${signature.slice(1)}`;
    const elevated = btoa(
      JSON.stringify({
        ...JSON.parse(atob((payload ?? "").replaceAll("-", "+").replaceAll("_", "/"))),
        roles: ["admin"],
      }),
    )
      .replaceAll("=", "")
      .replaceAll("+", "-")
      .replaceAll("/", "_");
    const tamperedClaims = `${header}.${elevated}.${signature}`;
    expect(await refusal(verifyOperatorToken(config, tamperedSignature))).toBe("token_invalid");
    expect(await refusal(verifyOperatorToken(config, tamperedClaims))).toBe("token_invalid");
  });

  it("are not accepted under a configuration with another secret", async ({ expect }) => {
    const token = await signOperatorToken(config, claims, new Date());
    await expect(verifyOperatorToken(config, token)).resolves.toEqual({ ok: true, claims });
    const rotated = { ...config, operatorJwtSecret: `${config.operatorJwtSecret}-rotated` };
    expect(await refusal(verifyOperatorToken(rotated, token))).toBe("token_invalid");
  });
});

describe("buyer tokens verified earlier", () => {
  it("stop being accepted once exp is the clock tolerance behind", async ({ expect }) => {
    const exp = Math.floor(Date.now() / 1000) + 60;
    const userId = uniqueUser();
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: "HS256", typ: "JWT" })
      .setSubject(userId)
      .setIssuer(config.buyerJwtIssuer)
      .setAudience(config.buyerJwtAudience)
      .setExpirationTime(exp)
      .sign(new TextEncoder().encode(config.buyerJwtSecret));
    const accepted = { ok: true, buyer: { userId } };
    await expect(verifyBuyer(config, token, new Date((exp - 1) * 1000))).resolves.toEqual(accepted);
    // Past exp but inside the 30 s tolerance: still good, from the cache or not.
    await expect(verifyBuyer(config, token, new Date((exp + 29) * 1000))).resolves.toEqual(accepted);
    expect(await refusal(verifyBuyer(config, token, new Date((exp + 30) * 1000)))).toBe("token_invalid");
  });
});

describe("VerifiedTokens", () => {
  it("forgets an entry after the reuse window even when the token lives longer", ({ expect }) => {
    const cache = new VerifiedTokens<{ id: string }>();
    const owner = {};
    cache.remember(owner, "token", { id: "a" }, 10 * VERIFIED_TOKEN_REUSE_MS, 0);
    expect(cache.get(owner, "token", VERIFIED_TOKEN_REUSE_MS - 1)).toEqual({ id: "a" });
    expect(cache.get(owner, "token", VERIFIED_TOKEN_REUSE_MS)).toBeUndefined();
    expect(cache.get({}, "token", 0)).toBeUndefined();
  });
});
