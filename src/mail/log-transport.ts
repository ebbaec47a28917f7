import type { MailTransport } from "./mailer";

/**
 * The development mailer: nothing leaves the Worker. Each message is one JSON log line, and (like every
 * mailer) is kept in email_messages, which the development page /dev/messages lists.
 */
export const logTransport: MailTransport = {
  provider: "log",
  async deliver(message, from) {
    console.log(
      JSON.stringify({
        level: "info",
        msg: "email logged, not sent",
        id: message.id,
        from,
        // Not the address: logs are kept and read more widely than email_messages.
        subject: message.subject,
      }),
    );
    return { providerMessageId: null };
  },
};
