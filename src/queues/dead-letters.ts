import type { Db } from "../db/client";
import { recordEventFailure, storeDeadLetters } from "../db/dead-letters";

function log(level: "info" | "warn" | "error", msg: string, fields: Record<string, unknown>): void {
  console.log(JSON.stringify({ level, msg, ...fields }));
}

/**
 * A batch from a dead-letter queue: every message is stored for an admin to look at and replay, then the
 * batch is acked. If D1 refuses, the whole batch is retried (the dead-letter consumer's max_retries and
 * retry_delay in wrangler.toml give an outage hours): storing is idempotent on the message id.
 */
export async function consumeDeadLetters(
  batch: MessageBatch<unknown>,
  db: Db,
  now: () => Date = () => new Date(),
): Promise<void> {
  const arrived = batch.messages.map((message) => ({
    messageId: message.id,
    body: message.body,
    sentAt: message.timestamp,
  }));
  try {
    await storeDeadLetters(db, batch.queue, arrived, now());
  } catch (error) {
    log("error", "dead letters could not be stored; will retry", {
      queue: batch.queue,
      count: batch.messages.length,
      error: error instanceof Error ? error.message : String(error),
    });
    batch.retryAll();
    return;
  }
  // An event gave up for good: worth a look, so it is logged loudly once, here.
  log("error", "events dead-lettered", {
    queue: batch.queue,
    message_ids: batch.messages.map((message) => message.id),
  });
  batch.ackAll();
}

/**
 * What the main consumer does before it asks for a retry: keeps the failure, so that if this was the last
 * attempt, the dead letter says why. A failure to record is logged and swallowed: the retry matters more.
 */
export function failureRecorder(db: Db, queue: string, now: () => Date = () => new Date()) {
  return async (message: Message<unknown>, error: unknown): Promise<void> => {
    try {
      await recordEventFailure(db, {
        messageId: message.id,
        queue,
        body: message.body,
        attempts: message.attempts,
        error,
        now: now(),
      });
    } catch (recordError) {
      log("warn", "event failure not recorded", {
        queue,
        message_id: message.id,
        error: recordError instanceof Error ? recordError.message : String(recordError),
      });
    }
  };
}
