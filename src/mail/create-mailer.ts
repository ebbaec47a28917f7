import type { Db } from "../db/client";
import { recordSentEmail, wasEmailSent } from "../db/email-messages";
import type { Config } from "../env";
import { logTransport } from "./log-transport";
import type { Mailer, MailTransport, OutgoingEmail } from "./mailer";
import { resendTransport } from "./resend-transport";

/**
 * Sends of this isolate not finished yet, by message id. Two deliveries of one receipt handled by the
 * same isolate at once (a queue redelivery, or the outbox drain racing the first send) share the first
 * one's work instead of making a second request. Across isolates the provider's idempotency key keeps
 * the second request from mailing again.
 */
const sendsInFlight = new Map<string, Promise<void>>();

/**
 * A mailer over a transport that sends each message id at most once: it looks for its own record of the
 * id first, hands the message over, then keeps what was sent in email_messages. The record is written
 * only after the provider accepted, so it never claims a message that was not sent; a crash between the
 * two leaves no record, and the retry hands the message over again under the same idempotency key.
 */
export function recordingMailer(
  db: Db,
  transport: MailTransport,
  from: string,
  now = () => new Date(),
): Mailer {
  async function sendOnce(message: OutgoingEmail): Promise<void> {
    if (await wasEmailSent(db, message.id)) return;
    const { providerMessageId } = await transport.deliver(message, from);
    await recordSentEmail(db, { message, provider: transport.provider, providerMessageId, sentAt: now() });
  }
  return {
    async send(message) {
      const running = sendsInFlight.get(message.id);
      if (running) return running;
      // Registered before the first await, and removed only once the record is written: a later send of
      // this id in this isolate either joins this one or finds the record.
      const sending = sendOnce(message);
      sendsInFlight.set(message.id, sending);
      try {
        await sending;
      } finally {
        sendsInFlight.delete(message.id);
      }
    },
  };
}

/** The deployment's mailer, as MAIL_PROVIDER chose it. */
export function createMailer(config: Config, db: Db): Mailer {
  if (config.mailProvider === "log") return recordingMailer(db, logTransport, config.mailFrom);
  // loadConfig refuses MAIL_PROVIDER=resend without a key, so this only guards that promise.
  if (!config.resendApiKey) throw new Error("invariant: MAIL_PROVIDER=resend needs RESEND_API_KEY");
  return recordingMailer(db, resendTransport(config.resendApiKey), config.mailFrom);
}
