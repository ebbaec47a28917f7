import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { eq } from "drizzle-orm";
import { describe, it } from "vitest";
import { atomically } from "../../src/db/client";
import { walletReceipts } from "../../src/db/schema";
import { ledgerEntry } from "../../src/db/wallet";
import { receiptIdForTransaction } from "../../src/domain/ledger";
import { consumeEvents } from "../../src/queues/consumer";
import type { Mailer } from "../../src/queues/mailer";
import type { WalletTransactionPosted } from "../../src/queues/messages";
import { db } from "../support/fixtures";
import { uniqueUser } from "../support/tokens";

const QUEUE = "passes-events";
let messageSeq = 0;

function batchOf(bodies: unknown[]) {
  return createMessageBatch(
    QUEUE,
    bodies.map((body) => ({ id: `w-${++messageSeq}`, timestamp: new Date(), attempts: 1, body })),
  );
}

/**
 * A wallet-topped-up message for a real PURCHASE row (the receipt references the ledger). The row is
 * appended directly, not through the webhook, so no real queue delivery races the test's own batches.
 */
async function toppedUp(): Promise<WalletTransactionPosted> {
  const userId = uniqueUser();
  const { row, statement } = ledgerEntry(db(), {
    userId,
    type: "PURCHASE",
    amountCents: 1_500,
    currency: "EUR",
    reference: "top_test",
    idempotencyKey: `topup:${crypto.randomUUID()}`,
    createdBy: "system:payments",
    now: new Date(),
  });
  await atomically(db(), [statement]);
  return {
    type: "wallet.topped_up",
    transaction_id: row.id,
    user_id: userId,
    amount_cents: row.amountCents,
    currency: row.currency,
    reference: row.reference,
    event_id: null,
    device_id: null,
    created_at: row.createdAt,
  };
}

describe("queue consumer: wallet receipts", () => {
  it("a message delivered twice writes one receipt under the transaction's id and mails it once", async ({
    expect,
  }) => {
    const message = await toppedUp();
    const sent: string[] = [];
    const mailer: Mailer = {
      async sendReceipt(receipt) {
        sent.push(receipt.id);
      },
    };
    const batch = batchOf([message, message]);
    await consumeEvents(batch, { db: db(), mailer });
    const result = await getQueueResult(batch, createExecutionContext());
    expect(result.retryMessages).toEqual([]);
    expect(result.explicitAcks).toHaveLength(2);
    await consumeEvents(batchOf([message]), { db: db(), mailer });

    const stored = await db()
      .select()
      .from(walletReceipts)
      .where(eq(walletReceipts.transactionId, message.transaction_id));
    expect(stored).toEqual([
      expect.objectContaining({
        id: receiptIdForTransaction(message.transaction_id),
        kind: "TOPUP",
        amountCents: 1_500,
        userId: message.user_id,
      }),
    ]);
    expect(stored[0]?.mailedAt).toBeTruthy();
    expect(sent).toEqual([receiptIdForTransaction(message.transaction_id)]);
  });

  it("a failing mailer retries the message; the receipt is written once and mailed once it succeeds", async ({
    expect,
  }) => {
    const message = await toppedUp();
    let calls = 0;
    const mailer: Mailer = {
      async sendReceipt() {
        calls++;
        if (calls === 1) throw new Error("mail server unavailable");
      },
    };
    const failing = batchOf([message]);
    await consumeEvents(failing, { db: db(), mailer });
    expect((await getQueueResult(failing, createExecutionContext())).retryMessages).toHaveLength(1);
    await consumeEvents(batchOf([message]), { db: db(), mailer });
    const [receipt] = await db()
      .select()
      .from(walletReceipts)
      .where(eq(walletReceipts.transactionId, message.transaction_id));
    expect(receipt?.mailedAt).toBeTruthy();
    expect(calls).toBe(2);
  });
});
