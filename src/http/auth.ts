import { createMiddleware } from "hono/factory";
import { verifyBuyer } from "../auth/buyer-token";
import { verifyOperatorToken } from "../auth/operator-token";
import { getDb } from "../db/client";
import { ApiError } from "../errors";
import { currentOperator } from "../services/current-operator";
import type { OperatorRole } from "../types/domain";
import type { AppEnv } from "./context";

/** Bearer tokens longer than this are refused before any parsing: no real JWT comes close. */
const MAX_BEARER_TOKEN_LENGTH = 8_192;

function bearerToken(header: string | undefined): string {
  const match = header?.match(/^Bearer\s+([A-Za-z0-9\-_.~+/]+=*)\s*$/);
  if (!match?.[1] || match[1].length > MAX_BEARER_TOKEN_LENGTH) {
    throw new ApiError(
      "unauthenticated",
      "Authorization: Bearer <token> is required",
      {},
      {
        "www-authenticate": 'Bearer realm="passes"',
      },
    );
  }
  return match[1];
}

/** What a client is told of a bearer token that was refused; never which check failed beyond this. */
const BEARER_REFUSAL_DETAIL = {
  token_invalid: "Bearer token is not valid",
  subject_invalid: "Token subject is missing or invalid",
  // A well-signed operator token with claims of the wrong shape: the problem's own title.
  claims_invalid: undefined,
} as const;

function bearerRefused(code: keyof typeof BEARER_REFUSAL_DETAIL): ApiError {
  return new ApiError("unauthenticated", BEARER_REFUSAL_DETAIL[code]);
}

/** Buyer routes: a JWT from the identity provider. Sets `buyerId` and, if the token has one, `buyerEmail`. */
export const requireBuyer = createMiddleware<AppEnv>(async (c, next) => {
  const verified = await verifyBuyer(c.get("config"), bearerToken(c.req.header("authorization")));
  if (!verified.ok) throw bearerRefused(verified.code);
  const { buyer } = verified;
  c.set("buyerId", buyer.userId);
  c.set("buyerEmail", buyer.email);
  await next();
});

/**
 * Staff routes: an operator token whose operator, as the record says now (≤ 5 s old), is active, still on
 * the token's credential version, and holds at least one of `roles` (admin passes every check).
 * Missing, invalid or revoked token → 401; valid but without the role → 403.
 */
export function requireOperator(...roles: OperatorRole[]) {
  return createMiddleware<AppEnv>(async (c, next) => {
    const verified = await verifyOperatorToken(c.get("config"), bearerToken(c.req.header("authorization")));
    if (!verified.ok) throw bearerRefused(verified.code);
    const operator = await currentOperator(getDb(c.env.DB), verified.claims, Date.now());
    if (!operator) throw new ApiError("unauthenticated", "This sign-in is no longer valid: sign in again");
    const allowed = operator.roles.includes("admin") || roles.some((role) => operator.roles.includes(role));
    if (!allowed) throw new ApiError("forbidden", `Requires role: ${roles.join(" or ")}`);
    c.set("operator", operator);
    await next();
  });
}
