import type { Db } from "../db/client";
import { markReceiptMailed, writeReceipt } from "../db/receipts";
import type { Mailer } from "./mailer";
import { type EventMessage, EventMessageSchema } from "./messages";

export interface ConsumerDependencies {
  db: Db;
  mailer: Mailer;
  now?: () => Date;
}

function log(level: "info" | "warn" | "error", msg: string, fields: Record<string, unknown>): void {
  console.log(JSON.stringify({ level, msg, ...fields }));
}

/** `order.paid`: one receipt per order (deterministic id), mailed until the mailer has accepted it once. */
async function onOrderPaid(
  message: Extract<EventMessage, { type: "order.paid" }>,
  { db, mailer, now = () => new Date() }: ConsumerDependencies,
): Promise<void> {
  const receipt = await writeReceipt(db, message.order_id, message.paid_at, now());
  if (!receipt) {
    // Orders are never deleted, so no retry would find it: log it for a look and move on.
    log("error", "order.paid for an unknown order", { order_id: message.order_id });
    return;
  }
  if (receipt.mailedAt) return;
  await mailer.sendReceipt(receipt);
  await markReceiptMailed(db, receipt.id, now());
}

async function handleEvent(message: EventMessage, dependencies: ConsumerDependencies): Promise<void> {
  switch (message.type) {
    case "order.paid":
      return onOrderPaid(message, dependencies);
    default: {
      // A new message type without a handler here fails to compile instead of being acked unhandled.
      const unhandled: never = message.type;
      throw new Error(`no handler for ${String(unhandled)}`);
    }
  }
}

/**
 * Processes a batch from the EVENTS queue. Delivery is at-least-once: every handler is idempotent, each
 * handled message is acked on its own (so a retry of the batch does not redo it), and a failed one is
 * retried alone, up to the queue's max_retries and then to the dead-letter queue. A message that does not
 * parse can never succeed, so it is logged and acked instead of retried.
 */
export async function consumeEvents(
  batch: MessageBatch<unknown>,
  dependencies: ConsumerDependencies,
): Promise<void> {
  for (const message of batch.messages) {
    const parsed = EventMessageSchema.safeParse(message.body);
    if (!parsed.success) {
      log("error", "invalid event message dropped", {
        queue: batch.queue,
        message_id: message.id,
        issues: parsed.error.issues.map((issue) => `${issue.path.join(".")}: ${issue.message}`),
      });
      message.ack();
      continue;
    }
    try {
      await handleEvent(parsed.data, dependencies);
      message.ack();
    } catch (error) {
      log("warn", "event handling failed; will retry", {
        queue: batch.queue,
        message_id: message.id,
        type: parsed.data.type,
        attempts: message.attempts,
        error: error instanceof Error ? error.message : String(error),
      });
      message.retry();
    }
  }
}
