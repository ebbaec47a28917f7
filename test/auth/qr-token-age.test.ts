import { env } from "cloudflare:workers";
import { importJWK, SignJWT } from "jose";
import { describe, it } from "vitest";
import {
  type QrTokenVerification,
  TICKET_QR_AUDIENCE,
  TICKET_QR_MAX_AGE_SECONDS,
  TICKET_QR_TTL_SECONDS,
  TICKET_QR_TYP,
  type VerifiedQrToken,
  verifyQrToken,
  WALLET_QR_AUDIENCE,
  WALLET_QR_MAX_AGE_SECONDS,
  WALLET_QR_TTL_SECONDS,
  WALLET_QR_TYP,
} from "../../src/auth/qr-token";
import { loadConfig } from "../../src/env";
import { callJson } from "../support/http";
import { gateSession, paidTicket, scan } from "../support/tickets";
import { deduct, fundedWallet, posTill, storedWallet } from "../support/wallet";

// A QR token's life is bounded at verification, not only by the `exp` its signer chose: a token with a
// good signature whose `iat` is older than its kind's bound (60 s for tickets, 120 s for wallets) is
// refused as token_expired even when its `exp` is far away. These tokens are signed here with the test
// deployment's own key, as a buggy or misconfigured signer would make them.

const config = loadConfig(env);
const nowSeconds = () => Math.floor(Date.now() / 1000);
/** Beyond the bound and the verifier's clock tolerance (5 s). */
const TOLERANCE_MARGIN_SECONDS = 10;

async function signWithServiceKey(
  kind: { typ: string; audience: string },
  subject: string,
  times: { iat: number; exp: number },
): Promise<string> {
  const jwk = JSON.parse(env.QR_SIGNING_JWK ?? "{}") as { kid: string };
  const key = await importJWK(jwk, "EdDSA");
  return new SignJWT({ jti: crypto.randomUUID(), nonce: "test-nonce" })
    .setProtectedHeader({ alg: "EdDSA", typ: kind.typ, kid: jwk.kid })
    .setIssuer(config.serviceIssuer)
    .setAudience(kind.audience)
    .setSubject(subject)
    .setIssuedAt(times.iat)
    .setExpirationTime(times.exp)
    .sign(key);
}

const TICKET = { typ: TICKET_QR_TYP, audience: TICKET_QR_AUDIENCE };
const WALLET = { typ: WALLET_QR_TYP, audience: WALLET_QR_AUDIENCE };
const DAY_SECONDS = 86_400;

async function refusal(verification: Promise<QrTokenVerification>): Promise<string> {
  const verified = await verification;
  return verified.ok ? "accepted" : verified.code;
}

/** The claims of a token the test expects to verify. */
async function accepted(verification: Promise<QrTokenVerification>): Promise<VerifiedQrToken> {
  const verified = await verification;
  if (!verified.ok) throw new Error(`refused: ${verified.code}`);
  return verified.token;
}

describe("QR token age bound", () => {
  it("is the contract's cap per kind, and the tokens we sign live within it", ({ expect }) => {
    expect(TICKET_QR_MAX_AGE_SECONDS).toBe(60);
    expect(WALLET_QR_MAX_AGE_SECONDS).toBe(120);
    expect(TICKET_QR_TTL_SECONDS).toBeLessThanOrEqual(TICKET_QR_MAX_AGE_SECONDS);
    expect(WALLET_QR_TTL_SECONDS).toBeLessThanOrEqual(WALLET_QR_MAX_AGE_SECONDS);
  });

  it("refuses a well-signed token whose iat is older than the bound, whatever its exp", async ({
    expect,
  }) => {
    const now = nowSeconds();
    const oldTicket = await signWithServiceKey(TICKET, "ANYCODE", {
      iat: now - TICKET_QR_MAX_AGE_SECONDS - TOLERANCE_MARGIN_SECONDS,
      exp: now + DAY_SECONDS,
    });
    expect(await refusal(verifyQrToken(config, oldTicket, TICKET))).toBe("token_expired");
    const oldWallet = await signWithServiceKey(WALLET, "user-old", {
      iat: now - WALLET_QR_MAX_AGE_SECONDS - TOLERANCE_MARGIN_SECONDS,
      exp: now + DAY_SECONDS,
    });
    expect(await refusal(verifyQrToken(config, oldWallet, WALLET))).toBe("token_expired");
  });

  it("bounds each kind by its own limit: 90 s old is too old for a ticket, not for a wallet", async ({
    expect,
  }) => {
    const times = { iat: nowSeconds() - 90, exp: nowSeconds() + DAY_SECONDS };
    const ticket = await signWithServiceKey(TICKET, "ANYCODE", times);
    const wallet = await signWithServiceKey(WALLET, "user-90", times);
    expect(await refusal(verifyQrToken(config, ticket, TICKET))).toBe("token_expired");
    const verified = await accepted(verifyQrToken(config, wallet, WALLET));
    // Good for what is left of its 120 s, not until its exp: the objects judge expiry by this.
    expect(verified.expiresAt).toBe(times.iat + WALLET_QR_MAX_AGE_SECONDS);
  });

  it("refuses an iat in the future as token_invalid", async ({ expect }) => {
    const now = nowSeconds();
    const future = await signWithServiceKey(TICKET, "ANYCODE", { iat: now + 600, exp: now + 630 });
    expect(await refusal(verifyQrToken(config, future, TICKET))).toBe("token_invalid");
  });

  it("still returns an aged-out token to a caller that accepts expired ones, expired", async ({ expect }) => {
    const now = nowSeconds();
    const iat = now - WALLET_QR_MAX_AGE_SECONDS - TOLERANCE_MARGIN_SECONDS;
    const old = await signWithServiceKey(WALLET, "user-retry", { iat, exp: now + DAY_SECONDS });
    const verified = await accepted(verifyQrToken(config, old, { ...WALLET, acceptExpired: true }));
    expect(verified.subject).toBe("user-retry");
    expect(verified.expiresAt).toBe(iat + WALLET_QR_MAX_AGE_SECONDS);
    expect(verified.expiresAt).toBeLessThan(now);
  });
});

describe("an aged-out QR token at the gate and the till", () => {
  it("is a 422 token_expired at the scan route, and spends nothing", async ({ expect }) => {
    const ticket = await paidTicket([{ function: "bus", uses: 2 }]);
    const gate = await gateSession();
    const now = nowSeconds();
    const old = await signWithServiceKey(TICKET, ticket.code, {
      iat: now - TICKET_QR_MAX_AGE_SECONDS - TOLERANCE_MARGIN_SECONDS,
      exp: now + DAY_SECONDS,
    });
    const refused = await scan(gate, old, "bus");
    expect(refused).toMatchObject({ status: 422, body: { code: "token_expired" } });
    const mine = await callJson<{ tickets: { code: string; entitlements: { remaining_uses: number }[] }[] }>(
      "GET",
      "/my/tickets",
      { token: ticket.buyerToken },
    );
    expect(mine.body.tickets.find((t) => t.code === ticket.code)?.entitlements[0]?.remaining_uses).toBe(2);
  });

  it("is a 422 token_expired at the POS lookup and deduction, also on a retry, and takes nothing", async ({
    expect,
  }) => {
    const { userId } = await fundedWallet(1_000);
    const till = await posTill();
    const now = nowSeconds();
    const old = await signWithServiceKey(WALLET, userId, {
      iat: now - WALLET_QR_MAX_AGE_SECONDS - TOLERANCE_MARGIN_SECONDS,
      exp: now + DAY_SECONDS,
    });
    const lookup = await callJson("POST", "/pos/wallet-lookup", {
      token: till.token,
      body: { qr_token: old, session_id: till.sessionId },
    });
    expect(lookup).toMatchObject({ status: 422, body: { code: "token_expired" } });
    const key = crypto.randomUUID();
    const refused = await deduct(till, old, 250, { key });
    expect(refused).toMatchObject({ status: 422, body: { code: "token_expired" } });
    const retried = await deduct(till, old, 250, { key });
    expect(retried).toMatchObject({ status: 422, body: { code: "token_expired" } });
    expect(await storedWallet(userId)).toMatchObject({ balanceCents: 1_000, ledgerSumCents: 1_000 });
  });
});
