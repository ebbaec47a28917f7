import { and, asc, inArray, isNotNull, isNull, lte } from "drizzle-orm";
import { type EventMessage, EventMessageSchema } from "../queues/messages";
import type { Db, Statement } from "./client";
import { outbox } from "./schema";

/** Rows sent per drain: one Queue sendBatch (≤ 100 messages) and inside D1's 100-parameter limit. */
export const OUTBOX_DRAIN_BATCH = 50;
/**
 * Drains one cron run may make: a backlog left by a queue outage (audit requests, receipts) clears at up
 * to this many batches a minute instead of one.
 */
export const OUTBOX_DRAINS_PER_RUN = 20;
/** Sent rows are kept this long (for a look after an incident), then pruned. */
export const OUTBOX_RETENTION_DAYS = 7;
/** Sent rows deleted per statement; a run repeats it while a full batch went. */
const OUTBOX_PRUNE_BATCH = 1_000;
const OUTBOX_PRUNES_PER_RUN = 10;
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

/**
 * Add to the batch whose commit the message announces: the event exists exactly when the change does.
 * An id already stored fails the batch, unless `repeatable`: then the stored row stands and the batch
 * goes on (for an entry that two requests may both ask for, such as one audit entry for racing replays).
 */
export function outboxStatement(
  db: Db,
  entry: OutboxEntry,
  now: Date,
  options: { repeatable?: boolean } = {},
): Statement {
  const insert = db
    .insert(outbox)
    .values({ id: entry.id, payload: JSON.stringify(entry.message), createdAt: now.toISOString() });
  return options.repeatable ? insert.onConflictDoNothing() : insert;
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

/** Drains until the outbox has nothing due or the run's drains are spent. Returns how many were sent. */
export async function drainOutboxBacklog(db: Db, queue: Queue<EventMessage>, now: Date): Promise<number> {
  let sent = 0;
  for (let run = 0; run < OUTBOX_DRAINS_PER_RUN; run++) {
    const drained = await drainOutbox(db, queue, now);
    sent += drained;
    if (drained < OUTBOX_DRAIN_BATCH) break;
  }
  return sent;
}

/** Deletes rows sent more than OUTBOX_RETENTION_DAYS ago, oldest first, a bounded amount per run. */
export async function pruneSentOutbox(db: Db, now: Date): Promise<number> {
  const cutoff = new Date(now.getTime() - OUTBOX_RETENTION_DAYS * 86_400_000).toISOString();
  let pruned = 0;
  for (let run = 0; run < OUTBOX_PRUNES_PER_RUN; run++) {
    const oldest = db
      .select({ id: outbox.id })
      .from(outbox)
      .where(and(isNotNull(outbox.sentAt), lte(outbox.sentAt, cutoff)))
      .orderBy(asc(outbox.sentAt))
      .limit(OUTBOX_PRUNE_BATCH);
    const deleted = await db.delete(outbox).where(inArray(outbox.id, oldest)).returning({ id: outbox.id });
    pruned += deleted.length;
    if (deleted.length < OUTBOX_PRUNE_BATCH) break;
  }
  return pruned;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
