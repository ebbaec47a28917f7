import { desc, eq, inArray, lt } from "drizzle-orm";
import type { MailProviderName, OutgoingEmail } from "../mail/mailer";
import type { Db } from "./client";
import { emailMessages } from "./schema";

export type EmailMessageRow = typeof emailMessages.$inferSelect;

export interface SentEmail {
  message: OutgoingEmail;
  provider: MailProviderName;
  providerMessageId: string | null;
  sentAt: Date;
}

/**
 * Keeps what a provider accepted. A resend of the same receipt (after a crash before its mark) carries
 * the same idempotency key, so the provider sent nothing new: the first record stands.
 */
export async function recordSentEmail(db: Db, sent: SentEmail): Promise<void> {
  try {
    await db
      .insert(emailMessages)
      .values({
        id: sent.message.id,
        recipient: sent.message.to,
        subject: sent.message.subject,
        text: sent.message.text,
        html: sent.message.html,
        provider: sent.provider,
        providerMessageId: sent.providerMessageId,
        sentAt: sent.sentAt.toISOString(),
      })
      .onConflictDoNothing()
      .run();
  } catch (error) {
    // drizzle's error quotes every parameter, the whole email with its address among them: the error
    // that travels to logs and dead letters names the message and D1's own reason only.
    throw new Error(`email ${sent.message.id} was accepted but not recorded: ${innermostMessage(error)}`, {
      cause: error,
    });
  }
}

function innermostMessage(error: unknown): string {
  let current = error;
  for (let depth = 0; current instanceof Error && current.cause instanceof Error && depth < 4; depth++) {
    current = current.cause;
  }
  return current instanceof Error ? current.message : String(current);
}

/** Whether a provider already accepted the message with this id (its record is written after that). */
export async function wasEmailSent(db: Db, id: string): Promise<boolean> {
  const [row] = await db.select({ id: emailMessages.id }).from(emailMessages).where(eq(emailMessages.id, id));
  return row !== undefined;
}

/** The newest messages first (the index on sent_at), for the development page. */
export function recentEmails(db: Db, limit: number): Promise<EmailMessageRow[]> {
  return db
    .select()
    .from(emailMessages)
    .orderBy(desc(emailMessages.sentAt), desc(emailMessages.id))
    .limit(limit);
}

/**
 * How long a sent email's copy (its address and body) is kept. Long enough to answer "did you send my
 * receipt?" and to keep a resend of a receipt from mailing twice (retries end within hours); not kept for
 * ever, since it is the buyer's personal data and the receipt itself stays in its own table.
 */
export const EMAIL_RETENTION_DAYS = 90;
/** Rows deleted per statement, and statements per run: bounded so a backlog drains over a few days. */
export const EMAIL_PRUNE_BATCH = 500;
const EMAIL_PRUNE_MAX_BATCHES = 20;

/** Deletes the copies of emails sent more than EMAIL_RETENTION_DAYS before `now`, oldest first. */
export async function pruneSentEmails(db: Db, now: Date): Promise<number> {
  const before = new Date(now.getTime() - EMAIL_RETENTION_DAYS * 86_400_000).toISOString();
  let deleted = 0;
  for (let batch = 0; batch < EMAIL_PRUNE_MAX_BATCHES; batch++) {
    const old = db
      .select({ id: emailMessages.id })
      .from(emailMessages)
      .where(lt(emailMessages.sentAt, before))
      .orderBy(emailMessages.sentAt)
      .limit(EMAIL_PRUNE_BATCH);
    const result = await db.delete(emailMessages).where(inArray(emailMessages.id, old)).run();
    const changed = result.meta.changes ?? 0;
    deleted += changed;
    if (changed < EMAIL_PRUNE_BATCH) break;
  }
  return deleted;
}
