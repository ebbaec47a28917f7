import { ApiError } from "../errors";

/** The contract's bound on one report or export request. */
export const MAX_REPORT_RANGE_DAYS = 366;
const DAY_MS = 24 * 60 * 60 * 1000;
const DATE_ONLY = /^\d{4}-\d{2}-\d{2}$/;

export interface ReportRange {
  /** Inclusive start, ISO timestamp. */
  fromIso: string;
  /** Exclusive end, ISO timestamp. */
  toIso: string;
}

function parseBound(name: "from" | "to", value: string): { ms: number; dateOnly: boolean } {
  const dateOnly = DATE_ONLY.test(value);
  const ms = Date.parse(dateOnly ? `${value}T00:00:00Z` : value);
  if (Number.isNaN(ms)) {
    throw new ApiError("validation_failed", `${name} is not a date or RFC 3339 time`, {
      errors: [{ path: name, message: "Expected YYYY-MM-DD or an RFC 3339 timestamp" }],
    });
  }
  return { ms, dateOnly };
}

/**
 * `from` is inclusive. `to` is exclusive when it is a timestamp, and includes that whole day when it is a
 * plain date (`from=2026-11-01&to=2026-11-30` is November). At most 366 days.
 */
export function parseReportRange(from: string, to: string): ReportRange {
  const start = parseBound("from", from);
  const end = parseBound("to", to);
  const endMs = end.dateOnly ? end.ms + DAY_MS : end.ms;
  if (endMs <= start.ms) {
    throw new ApiError("validation_failed", "to must be after from", {
      errors: [{ path: "to", message: "Must be after from" }],
    });
  }
  if (endMs - start.ms > MAX_REPORT_RANGE_DAYS * DAY_MS) {
    throw new ApiError("validation_failed", `A report spans at most ${MAX_REPORT_RANGE_DAYS} days`, {
      errors: [{ path: "to", message: `At most ${MAX_REPORT_RANGE_DAYS} days after from` }],
    });
  }
  return { fromIso: new Date(start.ms).toISOString(), toIso: new Date(endMs).toISOString() };
}

/** The UTC calendar day before `now`, as YYYY-MM-DD: what the daily export covers. */
export function previousUtcDay(now: Date): string {
  return new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()) - DAY_MS)
    .toISOString()
    .slice(0, 10);
}

export function dayRange(day: string): ReportRange {
  const start = Date.parse(`${day}T00:00:00Z`);
  return { fromIso: new Date(start).toISOString(), toIso: new Date(start + DAY_MS).toISOString() };
}
