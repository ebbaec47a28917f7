import { eq, like } from "drizzle-orm";
import { describe, it } from "vitest";
import { CRON_DAILY_EXPORT } from "../../src/cron";
import { EMAIL_PRUNE_BATCH, EMAIL_RETENTION_DAYS, recordSentEmail } from "../../src/db/email-messages";
import { emailMessages } from "../../src/db/schema";
import { db } from "../support/fixtures";
import { runCron } from "../support/worker";

// Copies of sent emails hold the buyer's address and the receipt's text: the daily cron deletes those
// older than EMAIL_RETENTION_DAYS, in bounded batches, and keeps the rest.

const DAY_MS = 86_400_000;

async function sentAt(id: string, at: Date) {
  await recordSentEmail(db(), {
    message: { id, to: "buyer@example.test", subject: "Your receipt", text: "t", html: "<p>t</p>" },
    provider: "log",
    providerMessageId: null,
    sentAt: at,
  });
}

describe("keeping sent emails", () => {
  it("the daily cron deletes copies older than the retention, more than one batch of them, and keeps newer", async ({
    expect,
  }) => {
    // Now, so that emails other tests send at this moment are well inside the retention.
    const run = new Date();
    const prefix = `rct_retention_${crypto.randomUUID().slice(0, 8)}`;
    const old = new Date(run.getTime() - (EMAIL_RETENTION_DAYS + 1) * DAY_MS);
    const kept = new Date(run.getTime() - (EMAIL_RETENTION_DAYS - 1) * DAY_MS);
    const oldCount = EMAIL_PRUNE_BATCH + 3;
    for (let i = 0; i < oldCount; i += 50) {
      await Promise.all(
        Array.from({ length: Math.min(50, oldCount - i) }, (_, j) => sentAt(`${prefix}_old_${i + j}`, old)),
      );
    }
    await sentAt(`${prefix}_kept`, kept);

    await runCron(CRON_DAILY_EXPORT, run);

    const left = await db()
      .select({ id: emailMessages.id })
      .from(emailMessages)
      .where(like(emailMessages.id, `${prefix}%`));
    expect(left.map((row) => row.id)).toEqual([`${prefix}_kept`]);
    const [stillThere] = await db()
      .select()
      .from(emailMessages)
      .where(eq(emailMessages.id, `${prefix}_kept`));
    expect(stillThere?.recipient).toBe("buyer@example.test");
  });
});
