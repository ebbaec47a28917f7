import { canSignQrTokens, type QrSigningConfig, type QrTokenRefusal } from "../auth/qr-token";
import type { Db } from "../db/client";
import { parseReportRange, type ReportRange } from "../domain/report-range";
import type { Config } from "../env";
import { ApiError } from "../errors";
import {
  findOpenSession,
  type OpenSession,
  type OpenSessionRefusal,
  type RequireOpenSessionRequest,
} from "../services/validator-sessions";

/**
 * A request refused for one field, the way the schema validator refuses one: 400 `validation_failed`
 * with `errors: [{ path, message }]`. For rules the schema cannot express (a range's span, merged
 * quantities, credits against a total), decided below the routes and answered here. `detail` defaults to
 * the field's message.
 */
export function invalidField(path: string, message: string, detail = message): ApiError {
  return new ApiError("validation_failed", detail, { errors: [{ path, message }] });
}

/** A report's or listing's `from`/`to`, or the request refused naming the bound at fault. */
export function requestedRange(from: string, to: string, options?: { maxDays?: number }): ReportRange {
  const range = parseReportRange(from, to, options);
  if (!range.ok) throw invalidField(range.path, range.message);
  return { fromIso: range.fromIso, toIso: range.toIso };
}

/** A QR token refused at a gate or a till: 422 `token_invalid` or `token_expired`. */
export function qrTokenRefused(refusal: QrTokenRefusal): ApiError {
  return new ApiError(refusal.code, refusal.detail);
}

/** The configuration, able to sign QR tokens; without a signing key, 503 `service_unavailable`. */
export function qrSigningConfig(config: Config): QrSigningConfig {
  if (!canSignQrTokens(config)) throw new ApiError("service_unavailable", "QR signing is not configured");
  return config;
}

/** The caller's open gate or POS session, or 403 `session_invalid` (see findOpenSession). */
export async function requireOpenSession(db: Db, request: RequireOpenSessionRequest): Promise<OpenSession> {
  const found = await findOpenSession(db, request);
  if (!found.ok) throw new ApiError(found.code, found.detail);
  return { session: found.session, device: found.device };
}

/** A session not opened: 403 `device_not_authorized` / `forbidden`, or 422 `device_scope_mismatch`. */
export function sessionRefused(refusal: OpenSessionRefusal): ApiError {
  if (refusal.code !== "device_scope_mismatch") return new ApiError(refusal.code, refusal.detail);
  return new ApiError(refusal.code, refusal.detail, {
    device_location_id: refusal.deviceLocationId,
    device_event_id: refusal.deviceEventId,
  });
}
