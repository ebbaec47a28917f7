import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { eq, inArray } from "drizzle-orm";
import { describe, it, vi } from "vitest";
import { verifyAuditChain } from "../../src/db/audit";
import { auditLog, walletReceipts } from "../../src/db/schema";
import { receiptIdForTransaction } from "../../src/domain/ledger";
import type { Mailer } from "../../src/mail/mailer";
import { consumeEvents } from "../../src/queues/consumer";
import type { WalletTransactionPosted } from "../../src/queues/messages";
import { db } from "../support/fixtures";
import { rememberEmail } from "../support/mail";
import { uniqueUser } from "../support/tokens";
import { toppedUpEvent } from "../support/wallet";

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
  // As the buyer's top-up with an `email` claim would have: their receipts have an address.
  await rememberEmail(userId);
  return toppedUpEvent(userId, 1_500);
}

describe("queue consumer: wallet receipts", () => {
  it("a message delivered twice writes one receipt under the transaction's id and mails it once", async ({
    expect,
  }) => {
    const message = await toppedUp();
    const sent: string[] = [];
    const mailer: Mailer = {
      async send(message) {
        sent.push(message.id);
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
      async send() {
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

  /** A till's deduction message: a real ledger row's receipt, with the staff action's audit entry. */
  async function audited(): Promise<WalletTransactionPosted> {
    const message = await toppedUp();
    return {
      ...message,
      type: "wallet.deducted",
      event_id: "evt-demo",
      device_id: "dev-pos-1",
      audit: {
        id: `aud_${message.transaction_id}`,
        actor: "opr_till",
        action: "pos.deduct",
        target: message.transaction_id,
        details: { result: "accepted", amount_cents: message.amount_cents },
        ts: message.created_at,
      },
    };
  }

  const receiptsOf = (messages: WalletTransactionPosted[]) =>
    db()
      .select()
      .from(walletReceipts)
      .where(
        inArray(
          walletReceipts.transactionId,
          messages.map((m) => m.transaction_id),
        ),
      );

  it("a batch of transactions is written in one D1 batch: each receipt and audit entry once, each mailed once", async ({
    expect,
  }) => {
    const messages = [await audited(), await toppedUp(), await audited(), await audited()];
    const sent: string[] = [];
    const mailer: Mailer = {
      async send(message) {
        sent.push(message.id);
      },
    };
    const database = db();
    const batches = vi.spyOn(database, "batch");
    const batch = batchOf(messages);
    await consumeEvents(batch, { db: database, mailer });
    expect(batches).toHaveBeenCalledTimes(1);
    batches.mockRestore();
    const result = await getQueueResult(batch, createExecutionContext());
    expect(result.explicitAcks).toHaveLength(messages.length);
    expect(result.retryMessages).toEqual([]);

    const stored = await receiptsOf(messages);
    expect(stored).toHaveLength(messages.length);
    expect(stored.every((receipt) => receipt.mailedAt !== null)).toBe(true);
    expect(stored.filter((receipt) => receipt.kind === "DEDUCTION")).toHaveLength(3);
    expect(sent.sort()).toEqual(stored.map((receipt) => receipt.id).sort());
    const audits = await db()
      .select()
      .from(auditLog)
      .where(
        inArray(
          auditLog.id,
          messages.flatMap((m) => (m.audit ? [m.audit.id ?? ""] : [])),
        ),
      );
    expect(audits).toHaveLength(3);
    expect(await verifyAuditChain(db())).toMatchObject({ ok: true });

    // The whole batch again (a redelivery): nothing new is written or mailed.
    const again = batchOf(messages);
    await consumeEvents(again, { db: db(), mailer });
    expect((await getQueueResult(again, createExecutionContext())).explicitAcks).toHaveLength(
      messages.length,
    );
    expect(await receiptsOf(messages)).toHaveLength(messages.length);
    expect(sent).toHaveLength(messages.length);
    expect(await verifyAuditChain(db())).toMatchObject({ ok: true });
  });

  it("in a batch, a receipt the mailer refuses retries only its own message", async ({ expect }) => {
    const messages = [await audited(), await audited(), await toppedUp()];
    const refusedId = receiptIdForTransaction(messages[1]?.transaction_id ?? "");
    let refusals = 0;
    const mailer: Mailer = {
      async send(message) {
        if (message.id === refusedId && refusals++ < 2) throw new Error("mailbox full");
      },
    };
    const batch = batchOf(messages);
    await consumeEvents(batch, { db: db(), mailer });
    const result = await getQueueResult(batch, createExecutionContext());
    expect(result.explicitAcks).toHaveLength(2);
    expect(result.retryMessages).toHaveLength(1);
    const stored = await receiptsOf(messages);
    expect(stored.filter((receipt) => receipt.mailedAt === null).map((receipt) => receipt.id)).toEqual([
      refusedId,
    ]);

    await consumeEvents(batchOf([messages[1]]), { db: db(), mailer });
    expect((await receiptsOf(messages)).every((receipt) => receipt.mailedAt !== null)).toBe(true);
    expect(await verifyAuditChain(db())).toMatchObject({ ok: true });
  });
});
