import { Resend } from "resend";
import type { MailTransport } from "./mailer";

/**
 * Seconds before a rate-limited send is tried again. Resend's default limit is a few requests a second per
 * team, so a till's burst of receipts meets it; retried at once, the whole burst would use up its queue
 * retries within a second and end as dead letters. Spread over this window instead, it drains.
 */
export const RATE_LIMITED_RETRY_SECONDS = 10;

/** Resend refused a message or could not be reached. Thrown so that the queue retries the receipt. */
export class MailDeliveryError extends Error {
  readonly statusCode: number | null;
  readonly code: string;
  /** How long the queue should wait before the retry (rate limits); undefined: the queue's own pace. */
  readonly retryAfterSeconds: number | undefined;

  constructor(code: string, message: string, statusCode: number | null) {
    super(
      `Resend refused the email (${code}${statusCode === null ? "" : `, HTTP ${statusCode}`}): ${message}`,
    );
    this.name = "MailDeliveryError";
    this.code = code;
    this.statusCode = statusCode;
    this.retryAfterSeconds = statusCode === 429 ? RATE_LIMITED_RETRY_SECONDS : undefined;
  }
}

/**
 * Sends through Resend's REST API (its SDK is fetch-based, made for edge runtimes). The message id is
 * the request's idempotency key: should we crash after Resend accepted it but before the receipt is
 * marked, the retry sends the same key and Resend answers the first result instead of mailing again
 * (Resend keeps keys for 24 hours, far longer than the queue's retries take).
 */
export function resendTransport(apiKey: string): MailTransport {
  const resend = new Resend(apiKey);
  return {
    provider: "resend",
    async deliver(message, from) {
      // The SDK answers { data, error } instead of throwing, network failures included.
      const { data, error } = await resend.emails.send(
        { from, to: message.to, subject: message.subject, text: message.text, html: message.html },
        { idempotencyKey: message.id },
      );
      if (error) {
        // This key was used before with another payload (the address or the text changed between a send
        // whose answer was lost and its retry): Resend sent the first one and will not send again. The
        // receipt has gone out, which is what the record says.
        if (error.name === "invalid_idempotent_request") return { providerMessageId: null };
        throw new MailDeliveryError(error.name, error.message, error.statusCode);
      }
      return { providerMessageId: data.id };
    },
  };
}
