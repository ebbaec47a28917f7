import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";

/**
 * Every error code the API can return, with its HTTP status and a stable title.
 * Clients branch on `code`; `detail` is for humans and may change.
 */
export const ERROR_CODES = {
  validation_failed: { status: 400, title: "Request validation failed" },
  invalid_json: { status: 400, title: "Request body is not valid JSON" },
  idempotency_key_missing: { status: 400, title: "Idempotency-Key header is required" },
  idempotency_key_invalid: { status: 400, title: "Idempotency-Key header is invalid" },
  unauthenticated: { status: 401, title: "Authentication required" },
  invalid_credentials: { status: 401, title: "Invalid username or password" },
  enrollment_invalid: { status: 401, title: "Enrollment code is unknown, used or expired" },
  signature_invalid: { status: 401, title: "Webhook signature is invalid" },
  insufficient_funds: { status: 402, title: "Insufficient wallet balance" },
  forbidden: { status: 403, title: "Not allowed" },
  device_not_authorized: { status: 403, title: "Device is not registered, not enrolled or not active" },
  approval_required: { status: 403, title: "A supervisor must approve this" },
  annul_not_allowed: { status: 403, title: "This scan cannot be annulled by this caller" },
  session_invalid: { status: 403, title: "Validator session is not valid" },
  function_not_allowed: { status: 403, title: "Device is restricted to other functions" },
  not_found: { status: 404, title: "Resource not found" },
  reference_not_found: { status: 404, title: "Payment reference not found" },
  method_not_allowed: { status: 405, title: "Method not allowed" },
  sold_out: { status: 409, title: "Not enough inventory left" },
  product_inactive: { status: 409, title: "Product is not for sale" },
  sellable_below_committed: { status: 409, title: "Sellable cannot go below reserved + sold" },
  idempotency_in_progress: { status: 409, title: "A request with this Idempotency-Key is still running" },
  username_taken: { status: 409, title: "Username is already taken" },
  device_exists: { status: 409, title: "Device is already registered" },
  token_replayed: { status: 409, title: "Token already redeemed" },
  no_entitlement: { status: 409, title: "Ticket has no such function" },
  exhausted: { status: 409, title: "No uses left for this function" },
  refund_exceeds_original: { status: 409, title: "Refunds would exceed the original deduction" },
  refund_window_closed: { status: 409, title: "The deduction is too old to refund here" },
  too_many_pending: { status: 409, title: "Too many unpaid units held" },
  already_annulled: { status: 409, title: "The redemption was already annulled" },
  order_not_pending: { status: 409, title: "Order is no longer awaiting payment" },
  refund_not_owed: { status: 409, title: "This payment is not owed a refund" },
  payload_too_large: { status: 413, title: "Request body is too large" },
  unsupported_media_type: { status: 415, title: "Unsupported media type" },
  idempotency_key_reused: { status: 422, title: "Idempotency-Key was used with a different request" },
  unknown_product: { status: 422, title: "Unknown product" },
  amount_mismatch: { status: 422, title: "Payment amount or currency does not match" },
  invalid_code: { status: 422, title: "Ticket code is malformed or mistyped" },
  token_invalid: { status: 422, title: "Token is invalid" },
  token_expired: { status: 422, title: "Token has expired" },
  device_scope_mismatch: { status: 422, title: "Location or event differs from the device's" },
  too_many_attempts: { status: 429, title: "Too many attempts" },
  internal_error: { status: 500, title: "Internal error" },
  payment_provider_error: { status: 502, title: "The payment provider could not be reached or refused" },
  service_unavailable: { status: 503, title: "Service temporarily unavailable" },
  service_misconfigured: { status: 503, title: "Service is misconfigured" },
} as const satisfies Record<string, { status: ContentfulStatusCode; title: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export const PROBLEM_CONTENT_TYPE = "application/problem+json";

/** An error the API answers with on purpose: rendered as RFC 9457 problem+json by the app's onError. */
export class ApiError extends Error {
  readonly code: ErrorCode;
  readonly status: ContentfulStatusCode;
  readonly extensions: Record<string, unknown>;
  readonly headers: Record<string, string>;

  constructor(
    code: ErrorCode,
    detail?: string,
    extensions: Record<string, unknown> = {},
    headers: Record<string, string> = {},
  ) {
    super(detail ?? ERROR_CODES[code].title);
    this.name = "ApiError";
    this.code = code;
    this.status = ERROR_CODES[code].status;
    this.extensions = extensions;
    this.headers = headers;
  }
}

export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: ErrorCode;
  [extension: string]: unknown;
}

export function problemBody(
  code: ErrorCode,
  detail?: string,
  extensions: Record<string, unknown> = {},
): ProblemBody {
  const { status, title } = ERROR_CODES[code];
  return {
    ...extensions,
    type: `https://passes.dev/problems/${code.replaceAll("_", "-")}`,
    title,
    status,
    detail: detail ?? title,
    code,
  };
}

export function problemResponse(error: ApiError): Response {
  return new Response(JSON.stringify(problemBody(error.code, error.message, error.extensions)), {
    status: error.status,
    headers: { "content-type": PROBLEM_CONTENT_TYPE, ...error.headers },
  });
}

/**
 * Maps anything thrown inside a request to problem+json. Only ApiErrors and the framework's own
 * client errors keep their detail; anything else is logged and answered as an opaque 500, so no stack
 * trace, SQL or internal name reaches a client.
 */
export function toApiError(error: unknown, c?: Context): ApiError {
  if (error instanceof ApiError) return error;
  if (error instanceof HTTPException) {
    if (error.status === 413) return new ApiError("payload_too_large", "Request body exceeds 64 KiB");
    if (error.status === 400 && /json/i.test(error.message)) return new ApiError("invalid_json");
    if (error.status === 401) return new ApiError("unauthenticated");
    if (error.status < 500) return new ApiError("validation_failed", error.message, { errors: [] });
  }
  console.error(
    JSON.stringify({
      level: "error",
      msg: "unhandled error",
      request_id: c?.get("requestId"),
      error:
        error instanceof Error ? { name: error.name, message: error.message, stack: error.stack } : error,
    }),
  );
  return new ApiError("internal_error", "An internal error occurred; it has been logged");
}
