import { env } from "cloudflare:workers";
import { SignJWT } from "jose";

const secret = () => new TextEncoder().encode(env.BUYER_JWT_SECRET);

/** A buyer JWT as the configured identity provider would issue it; `overrides` breaks one thing at a time. */
export async function buyerToken(
  userId: string,
  overrides: { issuer?: string; audience?: string; expiresInSeconds?: number; secret?: string } = {},
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(userId)
    .setIssuer(overrides.issuer ?? env.BUYER_JWT_ISSUER ?? "")
    .setAudience(overrides.audience ?? env.BUYER_JWT_AUDIENCE ?? "")
    .setIssuedAt(now)
    .setExpirationTime(now + (overrides.expiresInSeconds ?? 600))
    .sign(overrides.secret ? new TextEncoder().encode(overrides.secret) : secret());
}

/** An unsigned token (`alg: none`), which must never be accepted anywhere. */
export function unsignedToken(claims: Record<string, unknown>): string {
  const encode = (value: unknown) =>
    btoa(JSON.stringify(value)).replaceAll("=", "").replaceAll("+", "-").replaceAll("/", "_");
  return `${encode({ alg: "none", typ: "JWT" })}.${encode(claims)}.`;
}

export function uniqueUser(prefix = "user"): string {
  return `${prefix}-${crypto.randomUUID()}`;
}
