/** The mailers a deployment can choose with MAIL_PROVIDER. */
export const MAIL_PROVIDERS = ["log", "resend"] as const;
export type MailProviderName = (typeof MAIL_PROVIDERS)[number];

/**
 * One email, ready to go. `id` is the receipt's id: stable across every retry of the receipt, it is the
 * provider's idempotency key and the key of the record the mailer keeps (email_messages).
 */
export interface OutgoingEmail {
  id: string;
  to: string;
  subject: string;
  text: string;
  html: string;
}

/**
 * Where receipts go. The queue consumer calls it at least once per receipt, so it may see an id again;
 * `send` resolves once the provider has accepted the message (and it is recorded), and throws otherwise,
 * so that the consumer retries.
 */
export interface Mailer {
  send(message: OutgoingEmail): Promise<void>;
}

/** What a provider does: hands one message over, under its id as the idempotency key. */
export interface MailTransport {
  readonly provider: MailProviderName;
  /** Resolves with the provider's id for the message (null when it has none); throws when refused. */
  deliver(message: OutgoingEmail, from: string): Promise<{ providerMessageId: string | null }>;
}
