import { OpenAPIHono } from "@hono/zod-openapi";
import type { OperatorClaims } from "../auth/operator-token";
import type { Config, Env } from "../env";
import { ApiError } from "../errors";

export interface AppEnv {
  Bindings: Env;
  Variables: {
    requestId: string;
    config: Config;
    buyerId: string;
    /** The buyer token's `email` claim, when it carries a usable one (src/auth/buyer-token.ts). */
    buyerEmail: string | undefined;
    operator: OperatorClaims;
  };
}

/**
 * Every router is built with this, so that schema failures anywhere become the same
 * `validation_failed` problem with a per-field `errors[]` list.
 */
export function createRouter() {
  return new OpenAPIHono<AppEnv>({
    defaultHook: (result) => {
      if (!result.success) {
        const errors = result.error.issues.map((issue) => ({
          path: issue.path.length > 0 ? issue.path.map(String).join(".") : "(root)",
          message: issue.message,
        }));
        throw new ApiError("validation_failed", `${errors.length} field(s) failed validation`, { errors });
      }
    },
  });
}

/**
 * The routes' typed responses cover the JSON bodies they declare; a stored idempotent replay is a
 * ready Response whose status and body were produced by the same route earlier. This is the one place
 * that bridges the two.
 */
export function asRouteResponse(response: Response): never {
  return response as never;
}
