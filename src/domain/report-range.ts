/** The contract's bound on one report or export request. */
export const MAX_REPORT_RANGE_DAYS = 366;
const DAY_MS = 24 * 60 * 60 * 1000;
const DATE_ONLY = /^(\d{4})-(\d{2})-(\d{2})$/;
/** RFC 3339 date-time (seconds optional, as `z.iso.datetime` takes them), with `Z` or an offset. */
const DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:\d{2})$/i;
const EXAMPLE_TIME = "2026-11-21T10:00:00Z";

export interface ReportRange {
  /** Inclusive start, ISO timestamp. */
  fromIso: string;
  /** Exclusive end, ISO timestamp. */
  toIso: string;
}

/** Why a range was refused: which bound, in words a person can act on. */
export interface RangeRefusal {
  ok: false;
  path: "from" | "to";
  message: string;
}

function invalid(path: "from" | "to", message: string): RangeRefusal {
  return { ok: false, path, message };
}

/** Date.parse rolls 2026-02-30 over to March 2nd: a day that is not on the calendar is refused instead. */
function isCalendarDay(year: string, month: string, day: string): boolean {
  const date = new Date(Date.UTC(Number(year), Number(month) - 1, Number(day)));
  return date.getUTCMonth() === Number(month) - 1 && date.getUTCDate() === Number(day);
}

/** A bound's instant, or NaN when it is neither a plain date nor an RFC 3339 time on the calendar. */
function parseBound(value: string): { ms: number; dateOnly: boolean } {
  const dateOnly = DATE_ONLY.test(value);
  const match = DATE_ONLY.exec(value) ?? DATE_TIME.exec(value);
  if (!match || !isCalendarDay(match[1] ?? "", match[2] ?? "", match[3] ?? "")) {
    return { ms: Number.NaN, dateOnly };
  }
  return { ms: Date.parse(dateOnly ? `${value}T00:00:00Z` : value), dateOnly };
}

const notATime = (name: "from" | "to", value: string) =>
  invalid(
    name,
    `${name} "${value.slice(0, 40)}" is not a date (YYYY-MM-DD) or a time such as ${EXAMPLE_TIME}`,
  );

/**
 * `from` is inclusive. `to` is exclusive when it is a timestamp, and includes that whole day when it is a
 * plain date (`from=2026-11-01&to=2026-11-30` is November). At most `maxDays` (366 for reports; the
 * paged audit listing passes Infinity). A refusal says what is wrong in words a person can act on (routes
 * answer it as `validation_failed`, and the pages show the message as it is).
 */
export function parseReportRange(
  from: string,
  to: string,
  { maxDays = MAX_REPORT_RANGE_DAYS }: { maxDays?: number } = {},
): ({ ok: true } & ReportRange) | RangeRefusal {
  const start = parseBound(from);
  if (Number.isNaN(start.ms)) return notATime("from", from);
  const end = parseBound(to);
  if (Number.isNaN(end.ms)) return notATime("to", to);
  const endMs = end.dateOnly ? end.ms + DAY_MS : end.ms;
  if (endMs <= start.ms) {
    return invalid(
      "to",
      end.dateOnly && start.dateOnly
        ? `to (${to}) is before from (${from}): the range must end on or after the day it starts`
        : `to (${to}) must be later than from (${from})`,
    );
  }
  if (endMs - start.ms > maxDays * DAY_MS) {
    const days = Math.ceil((endMs - start.ms) / DAY_MS);
    return invalid("to", `The range spans ${days} days: at most ${maxDays} are allowed, so narrow it`);
  }
  return { ok: true, fromIso: new Date(start.ms).toISOString(), toIso: new Date(endMs).toISOString() };
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
