import { env } from "cloudflare:workers";
import { eq } from "drizzle-orm";
import { describe, it, vi } from "vitest";
import { receiptIdForOrder } from "../../src/db/receipts";
import { emailMessages, receipts } from "../../src/db/schema";
import type { EventMessage } from "../../src/queues/messages";
import { eventually } from "../support/eventually";
import { db, operatorToken, seedProduct } from "../support/fixtures";
import { callJson } from "../support/http";
import { uniqueUser } from "../support/tokens";
import { pendingOrder } from "../support/webhooks";

// A receipt whose sending fails on every delivery, through the real queue (wrangler.toml: max_retries = 5,
// then passes-events-dlq, whose consumer stores dead letters in D1). The Worker's own queue handler uses
// the test environment's mailer (MAIL_PROVIDER unset: the log mailer), whose send ends with the record in
// email_messages: D1 refusing that record makes every send fail, as Resend answering 500 would. That the
// Resend mailer throws on a 500 or a lost connection, so that the message is retried, is shown in
// ./resend-receipts.test.ts; this file shows where a send that keeps failing ends.

interface DeadLetterBody {
  id: string;
  queue: string;
  body: { type?: string; order_id?: string };
  error: string;
  attempts: number | null;
}

async function deadLetterOf(token: string, orderId: string): Promise<DeadLetterBody | undefined> {
  const listed = await callJson<{ dead_letters: DeadLetterBody[] }>("GET", "/admin/dead-letters?limit=100", {
    token,
  });
  return listed.body.dead_letters.find((letter) => letter.body.order_id === orderId);
}

describe("a receipt that cannot be sent", () => {
  it("is retried on every delivery, ends as a dead letter with the mailer's error, and a replay mails it once", async ({
    expect,
  }) => {
    const { token } = await operatorToken(["admin"]);
    const product = await seedProduct({ price_cents: 700 });
    const userId = uniqueUser();
    const order = await pendingOrder(userId, [{ product_id: product.id, quantity: 1 }]);
    const receiptId = receiptIdForOrder(order.order_id);
    const trigger = `test_mail_dlq_${crypto.randomUUID().replaceAll("-", "")}`;
    await env.DB.prepare(
      `CREATE TRIGGER ${trigger} BEFORE INSERT ON email_messages WHEN NEW.id = '${receiptId}' ` +
        `BEGIN SELECT RAISE(ABORT, 'crafted mail failure'); END`,
    ).run();
    const sends = vi.spyOn(console, "log");
    try {
      const message: EventMessage = {
        type: "order.paid",
        order_id: order.order_id,
        user_id: userId,
        paid_at: new Date().toISOString(),
      };
      await env.EVENTS.send(message);

      // Six deliveries about a second apart, then the dead-letter queue's batch (≤ 5 s).
      const letter = await eventually(
        () => deadLetterOf(token, order.order_id),
        (found) => found !== undefined,
        60_000,
      );
      expect(letter).toMatchObject({ queue: "passes-events", attempts: 6, body: message });
      expect(letter?.error).toContain("crafted mail failure");
      // Every delivery tried to send it (the log mailer's line), and none was recorded or marked.
      const attempts = sends.mock.calls
        .map(([line]) => String(line))
        .filter((line) => line.includes("email logged, not sent") && line.includes(receiptId));
      expect(attempts).toHaveLength(6);
    } finally {
      sends.mockRestore();
      await env.DB.prepare(`DROP TRIGGER IF EXISTS ${trigger}`).run();
    }
    const [unsent] = await db().select().from(receipts).where(eq(receipts.id, receiptId));
    expect(unsent).toMatchObject({ mailedAt: null, mailSkippedAt: null });

    // The provider is back: an admin replays the dead letter, and the receipt is mailed once.
    const letter = await deadLetterOf(token, order.order_id);
    const replay = await callJson("POST", `/admin/dead-letters/${letter?.id}/replay`, { token });
    expect(replay.status).toBe(200);
    const mailed = await eventually(
      async () => (await db().select().from(receipts).where(eq(receipts.id, receiptId)))[0],
      (row) => Boolean(row?.mailedAt),
      20_000,
    );
    expect(mailed?.mailedAt).toBeTruthy();
    expect(await db().select().from(emailMessages).where(eq(emailMessages.id, receiptId))).toHaveLength(1);
  });
});
