import { env } from "cloudflare:workers";
import { SignJWT } from "jose";

const secret = () => new TextEncoder().encode(env.BUYER_JWT_SECRET);

/** The address test buyers' tokens carry unless told otherwise: receipts have somewhere to go. */
export const testEmailOf = (userId: string) => `${userId}@example.test`;

/**
 * A buyer JWT as the configured identity provider would issue it; `overrides` breaks one thing at a time.
 * It carries the OIDC `email` claim `testEmailOf(userId)`; `email: null` leaves the claim out.
 */
export async function buyerToken(
  userId: string,
  overrides: {
    issuer?: string;
    audience?: string;
    expiresInSeconds?: number;
    secret?: string;
    email?: string | null;
    /** More claims, e.g. `email_verified`. */
    claims?: Record<string, unknown>;
  } = {},
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const email = overrides.email === undefined ? testEmailOf(userId) : overrides.email;
  return new SignJWT({ ...(email === null ? {} : { email }), ...overrides.claims })
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
