import { ApiProblem, NetworkError } from "./api";

const moneyFormats = new Map<string, Intl.NumberFormat>();

/** Integer minor units → "€12.50". */
export function money(cents: number, currency = "EUR"): string {
  let format = moneyFormats.get(currency);
  if (!format) {
    format = new Intl.NumberFormat(undefined, { style: "currency", currency });
    moneyFormats.set(currency, format);
  }
  return format.format(cents / 100);
}

/** "12", "12.5", "12,50" → 1250 cents; anything else (or ≤ 0) → undefined. Never goes through a float sum. */
export function parseAmountCents(text: string): number | undefined {
  const match = text.trim().match(/^(\d{1,7})(?:[.,](\d{1,2}))?$/);
  if (!match?.[1]) return undefined;
  const cents = Number(match[1]) * 100 + Number((match[2] ?? "").padEnd(2, "0"));
  return cents > 0 ? cents : undefined;
}

export function dateTime(iso: string): string {
  return new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

/** Groups of four symbols: "7KQ2M9XA4RTB5C" reads as "7KQ2-M9XA-4RTB-5C". */
const TICKET_CODE_GROUPS = /.{1,4}/g;

/** A ticket code as the buyer sees it on the ticket and staff read it out: groups joined by dashes. */
export function formatTicketCode(code: string): string {
  return code.match(TICKET_CODE_GROUPS)?.join("-") ?? code;
}

/** Human text for the API's stable error codes, as staff and buyers should read them. */
const REASONS: Record<string, string> = {
  token_invalid: "Not a valid code for this device",
  token_expired: "Code expired: ask for a fresh one on the phone",
  token_replayed: "This code was already used",
  no_entitlement: "The ticket does not include this",
  exhausted: "No uses left",
  session_invalid: "The device session is no longer valid: open a new session",
  function_not_allowed: "This device does not validate that",
  device_not_authorized: "This device is not enrolled, or an admin has revoked it",
  device_scope_mismatch: "This device belongs to another location or event",
  enrollment_invalid: "That enrollment code is wrong, used or expired: ask an admin for a new one",
  approval_required: "A refund this large needs a supervisor",
  refund_window_closed: "This sale is too old to refund at the till",
  unauthenticated: "Signed out: sign in again",
  forbidden: "Your account is not allowed to do this",
  invalid_credentials: "Wrong username or password",
  too_many_attempts: "Too many failed attempts: wait a few minutes",
  insufficient_funds: "Not enough credit",
  sold_out: "Sold out",
  product_inactive: "No longer for sale",
  idempotency_in_progress: "Still processing the previous attempt: retry in a moment",
  idempotency_key_reused: "This attempt was already used for a different request",
  refund_exceeds_original: "Already refunded",
  already_annulled: "This scan was already undone",
  annul_not_allowed: "Too late to undo here: ask a supervisor",
  validation_failed: "Some input is not valid",
  not_found: "Not found",
  service_unavailable: "Service temporarily unavailable",
};

export function reasonText(code: string): string {
  return REASONS[code] ?? code.replaceAll("_", " ");
}

/** One line describing any failure thrown by `api()`. */
export function describeError(error: unknown): string {
  if (error instanceof ApiProblem) {
    const reason = REASONS[error.code];
    return reason ?? error.problem.detail ?? error.code;
  }
  if (error instanceof NetworkError) return "No connection to the server: check the network and retry";
  return error instanceof Error ? error.message : String(error);
}

/** "14:05": a time of day, for lists that already say which day they cover. */
export function timeOfDay(iso: string): string {
  return new Date(iso).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
}

/**
 * Like describeError, but a `validation_failed` problem is described by the API's own per-field messages
 * (`errors[].message`, which say what is wrong), not by the generic "Some input is not valid".
 */
export function describeProblem(error: unknown): string {
  if (error instanceof ApiProblem && error.code === "validation_failed") {
    const errors = Array.isArray(error.problem.errors) ? (error.problem.errors as unknown[]) : [];
    const messages = errors
      .map((entry) => (entry as { message?: unknown } | null)?.message)
      .filter((message): message is string => typeof message === "string" && message.length > 0);
    if (messages.length > 0) return [...new Set(messages)].join("; ");
  }
  return describeError(error);
}

/** The `errors[].path` of a `validation_failed` problem (which field to point at), else none. */
export function problemPaths(error: unknown): string[] {
  if (!(error instanceof ApiProblem) || error.code !== "validation_failed") return [];
  const errors = Array.isArray(error.problem.errors) ? (error.problem.errors as unknown[]) : [];
  return errors
    .map((entry) => (entry as { path?: unknown } | null)?.path)
    .filter((path): path is string => typeof path === "string");
}
