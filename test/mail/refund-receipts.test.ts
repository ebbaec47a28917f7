import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { eq } from "drizzle-orm";
import { describe, it } from "vitest";
import { toWalletTransaction } from "../../src/db/ledger";
import { emailMessages, refundReceipts, walletLedger } from "../../src/db/schema";
import { receiptIdForTransaction } from "../../src/domain/ledger";
import type { Mailer } from "../../src/mail/mailer";
import { consumeEvents } from "../../src/queues/consumer";
import type { WalletRefunded } from "../../src/queues/messages";
import { eventually } from "../support/eventually";
import { db } from "../support/fixtures";
import { testEmailOf } from "../support/tokens";
import { deduct, fundedWallet, posTill, refund, walletQr } from "../support/wallet";

// A POS refund announces itself (`wallet.refunded`, in the wallet object's outbox with the REFUND) and gets a
// receipt of its own in refund_receipts, mailed like the others. End to end through the wallet's object,
// the real queue and the Worker's consumer (the test environment's log mailer).

async function refundedSale() {
  const buyer = await fundedWallet(2_000);
  const till = await posTill();
  const sale = await deduct(till, await walletQr(buyer.token), 450, { reference: "Two coffees" });
  if (sale.status !== 201) throw new Error(`deduction failed: ${sale.status} ${sale.body.code}`);
  const refunded = await refund({ token: till.token, sessionId: till.sessionId }, sale.body.transaction_id, {
    amount_cents: 200,
  });
  if (refunded.status !== 201) throw new Error(`refund failed: ${refunded.status} ${refunded.body.code}`);
  return { buyer, till, saleId: sale.body.transaction_id, refundId: refunded.body.id };
}

describe("POS refund receipts", () => {
  it("a refund commits its event with it, and its receipt is written and mailed once: what was refunded, which sale", async ({
    expect,
  }) => {
    const { buyer, till, saleId, refundId } = await refundedSale();
    // The event carried the REFUND to D1's copy of the ledger, before its receipt.
    const row = await eventually(
      async () => (await db().select().from(walletLedger).where(eq(walletLedger.id, refundId)))[0],
      (found) => found !== undefined,
    );
    expect(row).toMatchObject({
      type: "REFUND",
      userId: buyer.userId,
      reversalOf: saleId,
      amountCents: 200,
      eventId: till.eventId,
    });
    if (!row) throw new Error("no REFUND row");

    const receiptId = receiptIdForTransaction(refundId);
    const email = await eventually(
      async () => (await db().select().from(emailMessages).where(eq(emailMessages.id, receiptId)))[0],
      (row) => row !== undefined,
      20_000,
    );
    expect(email).toMatchObject({
      recipient: testEmailOf(buyer.userId),
      subject: "Refund of €2.00 to your wallet",
      provider: "log",
    });
    expect(email?.text).toContain(receiptIdForTransaction(saleId));
    expect(email?.text).toContain(till.eventId);
    const [stored] = await db().select().from(refundReceipts).where(eq(refundReceipts.id, receiptId));
    expect(stored).toMatchObject({ transactionId: refundId, reversalOf: saleId, amountCents: 200 });
    expect(stored?.mailedAt).toBeTruthy();

    // The event again (the outbox drain, or a redelivery): no second receipt, nothing sent.
    const sent: string[] = [];
    const mailer: Mailer = {
      async send(message) {
        sent.push(message.id);
      },
    };
    const message: WalletRefunded = {
      type: "wallet.refunded",
      transaction_id: row.id,
      user_id: row.userId,
      reversal_of: saleId,
      amount_cents: row.amountCents,
      currency: row.currency,
      reference: row.reference,
      event_id: row.eventId,
      created_at: row.createdAt,
      ledger: toWalletTransaction(row),
    };
    const batch = createMessageBatch("passes-events", [
      { id: `refund-${crypto.randomUUID()}`, timestamp: new Date(), attempts: 2, body: message },
    ]);
    const ctx = createExecutionContext();
    await consumeEvents(batch, { db: db(), mailer });
    expect((await getQueueResult(batch, ctx)).explicitAcks).toHaveLength(1);
    expect(sent).toEqual([]);
    expect(
      await db().select().from(refundReceipts).where(eq(refundReceipts.transactionId, refundId)),
    ).toHaveLength(1);
  });
});
