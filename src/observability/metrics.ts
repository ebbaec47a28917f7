import type { Context } from "hono";
import { createMiddleware } from "hono/factory";
import { ApiError } from "../errors";
import type { AppEnv } from "../http/context";
import { REPLAYED_HEADER } from "../http/idempotency";

/**
 * Counters in the Workers Analytics Engine dataset bound as METRICS. Every point has the same layout, so
 * one SQL shape queries them all (see the README's "Operating it"):
 *
 *   index1  metric (the sampling key: each metric is sampled on its own)
 *   blob1   metric          blob2  outcome ("ok", a problem `code`, an HTTP status, …)   blob3  detail
 *   double1 count (always 1; multiply by _sample_interval)   double2  value (ms, cents)   double3  HTTP status
 */
export const METRIC_NAMES = ["request", "scan", "pos.deduction", "order", "webhook"] as const;
export type MetricName = (typeof METRIC_NAMES)[number];

/** Blobs are dimensions, not payloads: ours are codes and route patterns, cut to this just in case. */
const MAX_BLOB_CHARS = 256;

export interface MetricDetail {
  detail?: string;
  value?: number;
  status?: number;
}

/** The bindings a metric needs: optional, so tests and tools without the dataset write nothing. */
export interface MetricsEnv {
  METRICS?: AnalyticsEngineDataset;
}

/**
 * Writes one data point. Never awaited and never throws: the runtime sends it after the response, and a
 * metric must not change an answer.
 */
export function recordMetric(env: MetricsEnv, metric: MetricName, outcome: string, extra: MetricDetail = {}) {
  const dataset = env.METRICS;
  if (!dataset) return;
  try {
    dataset.writeDataPoint({
      indexes: [metric],
      blobs: [metric, outcome.slice(0, MAX_BLOB_CHARS), (extra.detail ?? "").slice(0, MAX_BLOB_CHARS)],
      doubles: [1, extra.value ?? 0, extra.status ?? 0],
    });
  } catch (error) {
    console.log(JSON.stringify({ level: "warn", msg: "metric not written", metric, error: String(error) }));
  }
}

declare module "hono" {
  interface ContextVariableMap {
    /** A handler's own word for its success (e.g. the webhook's "duplicate"); see meter(). */
    metricOutcome?: string;
  }
}

/** Names the outcome meter() records for a successful answer, where the status alone does not say it. */
export function setMetricOutcome(c: Context, outcome: string): void {
  c.set("metricOutcome", outcome);
}

function outcomeOf(c: Context<AppEnv>): string {
  if (c.error instanceof ApiError) return c.error.code;
  if (c.error) return "internal_error";
  return c.get("metricOutcome") ?? (c.res.status < 400 ? "ok" : String(c.res.status));
}

/**
 * Route middleware that counts the route's outcomes under `metric`: the problem `code` of a refusal, the
 * handler's named outcome or "ok" for a success, with detail "replayed" for an idempotent replay. Placed
 * after the route's auth middleware, so it counts decisions, not anonymous noise.
 */
export function meter(metric: MetricName) {
  return createMiddleware<AppEnv>(async (c, next) => {
    await next();
    recordMetric(c.env, metric, outcomeOf(c), {
      detail: c.res.headers.get(REPLAYED_HEADER) === "true" ? "replayed" : "",
      status: c.res.status,
    });
  });
}
