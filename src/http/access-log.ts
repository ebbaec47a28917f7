import type { Context } from "hono";
import { createMiddleware } from "hono/factory";
import { matchedRoutes } from "hono/route";
import { recordMetric } from "../observability/metrics";
import type { AppEnv } from "./context";

/**
 * One structured line per request, for Workers Logs: who (operator, device) did what (route pattern,
 * method), with what result (status) and how long it took. Built from an allow-list of fields: never a
 * header, a token, a query string, a body or a path with its ids in it (the route pattern has
 * placeholders), so nothing secret or personal can reach the log by accident.
 */
export interface AccessLogLine {
  level: "info" | "error";
  msg: "request";
  request_id: string | null;
  method: string;
  /** The route's pattern (`/orders/:id`), or null when no route matched. */
  route: string | null;
  status: number;
  duration_ms: number;
  operator_id?: string;
  device_id?: string;
}

/** The handler's route pattern: the last matched route that is not app-wide middleware. */
function routePattern(c: Context<AppEnv>): string | null {
  const handler = matchedRoutes(c).findLast((route) => route.method !== "ALL");
  return handler?.path ?? null;
}

/**
 * A device named by the path itself (`/devices/:device_id/…`, `/admin/devices/:id…`); a device in a body
 * is never read.
 */
function deviceId(c: Context<AppEnv>, route: string | null): string | undefined {
  try {
    const named =
      c.req.param("device_id") || (route?.startsWith("/admin/devices/:id") ? c.req.param("id") : "");
    return named || undefined;
  } catch {
    return undefined;
  }
}

export function accessLogLine(c: Context<AppEnv>, durationMs: number, status: number): AccessLogLine {
  const line: AccessLogLine = {
    level: status >= 500 ? "error" : "info",
    msg: "request",
    request_id: c.get("requestId") ?? null,
    method: c.req.method,
    route: routePattern(c),
    status,
    duration_ms: durationMs,
  };
  // Set by requireOperator once the token and the operator record checked out; absent otherwise.
  const operatorId = c.get("operator")?.operatorId;
  if (operatorId) line.operator_id = operatorId;
  const device = deviceId(c, line.route);
  if (device) line.device_id = device;
  return line;
}

/**
 * The app's outermost middleware: logs every request the Worker answers (static pages are served before
 * the Worker and are not logged) and counts it in the `request` metric, whose duration gives latency
 * percentiles per route.
 */
export const accessLog = createMiddleware<AppEnv>(async (c, next) => {
  const startedMs = Date.now();
  let status = 500;
  try {
    await next();
    status = c.res.status;
  } finally {
    const line = accessLogLine(c, Date.now() - startedMs, status);
    console.log(JSON.stringify(line));
    recordMetric(c.env, "request", String(line.status), {
      detail: `${line.method} ${line.route ?? "(no route)"}`,
      value: line.duration_ms,
      status: line.status,
    });
  }
});
