import { parseReportRange, type ReportRange } from "../domain/report-range";
import { ApiError } from "../errors";

/**
 * A request refused for one field, the way the schema validator refuses one: 400 `validation_failed`
 * with `errors: [{ path, message }]`. For rules the schema cannot express (a range's span, merged
 * quantities, credits against a total), decided below the routes and answered here.
 */
export function invalidField(path: string, message: string): ApiError {
  return new ApiError("validation_failed", message, { errors: [{ path, message }] });
}

/** A report's or listing's `from`/`to`, or the request refused naming the bound at fault. */
export function requestedRange(from: string, to: string, options?: { maxDays?: number }): ReportRange {
  const range = parseReportRange(from, to, options);
  if (!range.ok) throw invalidField(range.path, range.message);
  return { fromIso: range.fromIso, toIso: range.toIso };
}
