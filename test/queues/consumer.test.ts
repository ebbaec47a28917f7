import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { eq } from "drizzle-orm";
import { describe, it } from "vitest";
import { receiptIdForOrder } from "../../src/db/receipts";
import { receipts } from "../../src/db/schema";
import type { Mailer } from "../../src/mail/mailer";
import { consumeEvents } from "../../src/queues/consumer";
import type { EventMessage } from "../../src/queues/messages";
import { db, seedProduct } from "../support/fixtures";
import { uniqueUser } from "../support/tokens";
import { pendingOrder } from "../support/webhooks";
import { worker } from "../support/worker";

const QUEUE = "passes-events";

/** A mailer that records what it was handed and fails the first `failures` calls. */
function recordingMailer(failures = 0) {
  const sent: string[] = [];
  let calls = 0;
  const mailer: Mailer = {
    async send(message) {
      calls++;
      if (calls <= failures) throw new Error("mail server unavailable");
      sent.push(message.id);
    },
  };
  return { mailer, sent, calls: () => calls };
}

/**
 * An order with its `order.paid` message. The order is created through the API but not paid through the
 * webhook, so no real queue delivery races the test's own batches.
 */
async function paidMessage(): Promise<Extract<EventMessage, { type: "order.paid" }>> {
  const product = await seedProduct({ price_cents: 1_200 });
  const order = await pendingOrder(uniqueUser(), [{ product_id: product.id, quantity: 2 }]);
  const row = await db().query.orders.findFirst({ where: (orders, { eq }) => eq(orders.id, order.order_id) });
  return {
    type: "order.paid",
    order_id: order.order_id,
    user_id: row?.userId ?? "",
    paid_at: new Date().toISOString(),
  };
}

async function receiptsFor(orderId: string) {
  return db().select().from(receipts).where(eq(receipts.orderId, orderId));
}

let messageSeq = 0;
function batchOf(bodies: unknown[], attempts = 1) {
  return createMessageBatch(
    QUEUE,
    bodies.map((body) => ({ id: `m-${++messageSeq}`, timestamp: new Date(), attempts, body })),
  );
}

describe("queue consumer: order.paid → receipt", () => {
  it("a message delivered twice writes one receipt and mails it once; both are acked", async ({ expect }) => {
    const message = await paidMessage();
    const { mailer, sent } = recordingMailer();
    const batch = batchOf([message, message]);
    const ctx = createExecutionContext();
    await consumeEvents(batch, { db: db(), mailer });
    const result = await getQueueResult(batch, ctx);
    expect(result.explicitAcks.sort()).toEqual(batch.messages.map((m) => m.id).sort());
    expect(result.retryMessages).toEqual([]);

    // And once more in a later batch, as a redelivery would arrive.
    await consumeEvents(batchOf([message], 2), { db: db(), mailer });

    const stored = await receiptsFor(message.order_id);
    expect(stored).toHaveLength(1);
    expect(stored[0]).toMatchObject({
      id: receiptIdForOrder(message.order_id),
      totalCents: 2_400,
      amountPaidCents: 2_400,
      currency: "EUR",
      lines: [
        expect.objectContaining({ quantity: 2, unit_price_cents: 1_200, product_name: "Harbour Pass" }),
      ],
    });
    expect(stored[0]?.mailedAt).toBeTruthy();
    expect(sent).toEqual([receiptIdForOrder(message.order_id)]);
  });

  it("a consumer that fails on the first delivery retries it, and the retry leaves one receipt", async ({
    expect,
  }) => {
    const message = await paidMessage();
    const flaky = recordingMailer(1);

    const first = batchOf([message], 1);
    const firstCtx = createExecutionContext();
    await consumeEvents(first, { db: db(), mailer: flaky.mailer });
    const firstResult = await getQueueResult(first, firstCtx);
    expect(firstResult.explicitAcks).toEqual([]);
    expect(firstResult.retryMessages.map((m) => m.msgId)).toEqual([first.messages[0]?.id]);
    expect((await receiptsFor(message.order_id))[0]?.mailedAt).toBeNull();

    const second = batchOf([message], 2);
    const secondCtx = createExecutionContext();
    await consumeEvents(second, { db: db(), mailer: flaky.mailer });
    const secondResult = await getQueueResult(second, secondCtx);
    expect(secondResult.explicitAcks).toEqual([second.messages[0]?.id]);

    const stored = await receiptsFor(message.order_id);
    expect(stored).toHaveLength(1);
    expect(stored[0]?.mailedAt).toBeTruthy();
    expect(flaky.calls()).toBe(2);
    expect(flaky.sent).toEqual([receiptIdForOrder(message.order_id)]);
  });

  it("invalid messages are logged and acked, without failing the rest of the batch", async ({ expect }) => {
    const message = await paidMessage();
    const { mailer, sent } = recordingMailer();
    const batch = batchOf([{ type: "order.paid" }, "garbage", { type: "unknown.kind" }, message]);
    const ctx = createExecutionContext();
    await consumeEvents(batch, { db: db(), mailer });
    const result = await getQueueResult(batch, ctx);
    expect(result.explicitAcks).toHaveLength(4);
    expect(result.retryMessages).toEqual([]);
    expect(sent).toEqual([receiptIdForOrder(message.order_id)]);
  });

  it("the Worker's queue() handler consumes the batch with the real mailer", async ({ expect }) => {
    const message = await paidMessage();
    const result = await (
      worker as unknown as {
        queue(
          name: string,
          messages: { id: string; timestamp: Date; attempts: number; body: unknown }[],
        ): Promise<{
          outcome: string;
          explicitAcks: string[];
        }>;
      }
    ).queue(QUEUE, [
      { id: "real-1", timestamp: new Date(), attempts: 1, body: message },
      { id: "real-2", timestamp: new Date(), attempts: 1, body: message },
    ]);
    expect(result.outcome).toBe("ok");
    expect(result.explicitAcks.sort()).toEqual(["real-1", "real-2"]);
    expect(await receiptsFor(message.order_id)).toHaveLength(1);
  });
});
