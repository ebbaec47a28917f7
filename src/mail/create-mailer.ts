import type { Db } from "../db/client";
import { recordSentEmail, wasEmailSent } from "../db/email-messages";
import type { Config } from "../env";
import { logTransport } from "./log-transport";
import type { Mailer, MailTransport, OutgoingEmail } from "./mailer";
import { resendTransport } from "./resend-transport";

/**
 * A mailer over a transport that sends each message id at most once: it looks for its own record of the
 * id first, hands the message over, then keeps what was sent in email_messages. The record is written
 * only after the provider accepted, so it never claims a message that was not sent; a crash between the
 * two leaves no record, and the retry hands the message over again under the same idempotency key. Two
 * deliveries of one receipt at once both reach the provider under that key, which sends one email (no
 * promise is shared between them: in workerd a promise settled in another request's context may hang).
 */
export function recordingMailer(
  db: Db,
  transport: MailTransport,
  from: string,
  now = () => new Date(),
): Mailer {
  return {
    async send(message: OutgoingEmail) {
      if (await wasEmailSent(db, message.id)) return;
      const { providerMessageId } = await transport.deliver(message, from);
      await recordSentEmail(db, { message, provider: transport.provider, providerMessageId, sentAt: now() });
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
