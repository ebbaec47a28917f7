import { and, asc, inArray, isNull, lte } from "drizzle-orm";
import { type EventMessage, EventMessageSchema } from "../queues/messages";
import type { Db, Statement } from "./client";
import { outbox } from "./schema";

/** Rows sent per drain: one Queue sendBatch (≤ 100 messages) and inside D1's 100-parameter limit. */
export const OUTBOX_DRAIN_BATCH = 50;
/**
 * The drain leaves rows this young alone: the request that wrote one is normally sending it right now.
 * Sending twice would be harmless (consumers are idempotent), only wasteful.
 */
export const OUTBOX_GRACE_SECONDS = 30;

export interface OutboxEntry {
  /** Deterministic per event (e.g. `order.paid:<order id>`), so an event is stored once. */
  id: string;
  message: EventMessage;
}

/** Add to the batch whose commit the message announces: the event exists exactly when the change does. */
export function outboxStatement(db: Db, entry: OutboxEntry, now: Date): Statement {
  return db
    .insert(outbox)
    .values({ id: entry.id, payload: JSON.stringify(entry.message), createdAt: now.toISOString() });
}

async function markSent(db: Db, ids: string[], now: Date): Promise<void> {
  if (ids.length === 0) return;
  await db
    .update(outbox)
    .set({ sentAt: now.toISOString() })
    .where(and(inArray(outbox.id, ids), isNull(outbox.sentAt)))
    .run();
}

/**
 * Sends a just-committed event and marks it sent. A failure is logged, not thrown: the change it announces
 * has committed, and the cron drain sends the row later. Returns whether it was sent now.
 */
export async function publishOutboxEntry(
  db: Db,
  queue: Queue<EventMessage>,
  entry: OutboxEntry,
  now: Date,
): Promise<boolean> {
  try {
    await queue.send(entry.message);
  } catch (error) {
    console.error(
      JSON.stringify({
        level: "warn",
        msg: "queue send failed; left in outbox",
        outbox_id: entry.id,
        error: String(error),
      }),
    );
    return false;
  }
  try {
    await markSent(db, [entry.id], now);
  } catch (error) {
    // Sent but not marked: the drain sends it once more, which the consumer absorbs.
    console.error(
      JSON.stringify({ level: "warn", msg: "outbox mark failed", outbox_id: entry.id, error: String(error) }),
    );
  }
  return true;
}

/**
 * Sends up to `limit` unsent rows older than the grace period, oldest first, and marks them sent.
 * Returns how many were sent. A send failure throws and leaves the rows for the next run.
 */
export async function drainOutbox(
  db: Db,
  queue: Queue<EventMessage>,
  now: Date,
  limit = OUTBOX_DRAIN_BATCH,
): Promise<number> {
  const cutoff = new Date(now.getTime() - OUTBOX_GRACE_SECONDS * 1000).toISOString();
  const rows = await db
    .select({ id: outbox.id, payload: outbox.payload })
    .from(outbox)
    .where(and(isNull(outbox.sentAt), lte(outbox.createdAt, cutoff)))
    .orderBy(asc(outbox.createdAt))
    .limit(Math.min(limit, OUTBOX_DRAIN_BATCH));
  if (rows.length === 0) return 0;

  const messages: EventMessage[] = [];
  const unreadable: string[] = [];
  for (const row of rows) {
    const parsed = EventMessageSchema.safeParse(safeJson(row.payload));
    if (parsed.success) messages.push(parsed.data);
    else unreadable.push(row.id);
  }
  if (unreadable.length > 0) {
    // Only our own code writes these rows, so this is a bug; the payload stays in the table for a look,
    // and marking it keeps it from blocking every later drain.
    console.error(
      JSON.stringify({ level: "error", msg: "unreadable outbox rows skipped", outbox_ids: unreadable }),
    );
  }
  if (messages.length > 0) await queue.sendBatch(messages.map((body) => ({ body })));
  await markSent(
    db,
    rows.map((row) => row.id),
    now,
  );
  return messages.length;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
