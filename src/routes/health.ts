import { createRoute, z } from "@hono/zod-openapi";
import { ApiError } from "../errors";
import { createRouter } from "../http/context";
import { json, problems } from "../http/schemas";

/**
 * A health probe answers quickly or not at all: a D1 that takes longer than this to answer `SELECT 1` is
 * failing as far as traffic is concerned, and a load balancer's probe would time out waiting anyway.
 */
export const HEALTH_D1_TIMEOUT_MS = 2_000;
/** A failing check is probed again by monitors; this is how long we suggest they wait. */
const HEALTH_RETRY_AFTER_SECONDS = 5;

const HealthSchema = z
  .object({
    ok: z.literal(true),
    checks: z.object({ d1: z.literal("ok") }),
  })
  .openapi("Health");

type CheckResult = "ok" | "failed" | "timeout";

async function checkD1(db: D1Database): Promise<CheckResult> {
  let timer: ReturnType<typeof setTimeout> | null = null;
  const timeout = new Promise<CheckResult>((resolve) => {
    timer = setTimeout(() => resolve("timeout"), HEALTH_D1_TIMEOUT_MS);
  });
  const probe = db
    .prepare("SELECT 1 AS one")
    .first<{ one: number }>()
    .then((row): CheckResult => (row?.one === 1 ? "ok" : "failed"))
    .catch((error: unknown): CheckResult => {
      // The reason stays in the log: the probe is public and answers only which check failed.
      console.error(
        JSON.stringify({
          level: "error",
          msg: "health check failed",
          check: "d1",
          error: error instanceof Error ? error.message : String(error),
        }),
      );
      return "failed";
    });
  try {
    return await Promise.race([probe, timeout]);
  } finally {
    if (timer !== null) clearTimeout(timer);
  }
}

export const healthRoutes = createRouter().openapi(
  createRoute({
    method: "get",
    path: "/health",
    operationId: "getHealth",
    tags: ["Operations"],
    summary: "Whether this deployment can serve: its dependencies answer",
    description:
      "No authentication; answers nothing secret. Checks that D1 answers a trivial query within " +
      `${HEALTH_D1_TIMEOUT_MS} ms. When a check fails: 503 \`service_unavailable\` (problem+json) with ` +
      '`ok: false` and `checks` naming the failing check (`"failed"` or `"timeout"`), and `Retry-After`. ' +
      "A deployment whose configuration is refused answers 503 `service_misconfigured`, as every route " +
      "does. Never cached.",
    responses: {
      200: json(HealthSchema, "Every check passed"),
      ...problems("service_unavailable", "service_misconfigured"),
    },
  }),
  async (c) => {
    const d1 = await checkD1(c.env.DB);
    if (d1 !== "ok") {
      throw new ApiError(
        "service_unavailable",
        "A dependency of the service is failing",
        { ok: false, checks: { d1 } },
        { "retry-after": String(HEALTH_RETRY_AFTER_SECONDS), "cache-control": "no-store" },
      );
    }
    return c.json({ ok: true as const, checks: { d1: "ok" as const } }, 200, { "cache-control": "no-store" });
  },
);
