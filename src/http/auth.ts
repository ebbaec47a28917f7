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

/** Buyer routes: a JWT from the identity provider. Sets `buyerId` and, if the token has one, `buyerEmail`. */
export const requireBuyer = createMiddleware<AppEnv>(async (c, next) => {
  const buyer = await verifyBuyer(c.get("config"), bearerToken(c.req.header("authorization")));
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
    const claims = await verifyOperatorToken(c.get("config"), bearerToken(c.req.header("authorization")));
    const operator = await currentOperator(getDb(c.env.DB), claims, Date.now());
    if (!operator) throw new ApiError("unauthenticated", "This sign-in is no longer valid: sign in again");
    const allowed = operator.roles.includes("admin") || roles.some((role) => operator.roles.includes(role));
    if (!allowed) throw new ApiError("forbidden", `Requires role: ${roles.join(" or ")}`);
    c.set("operator", operator);
    await next();
  });
}
