import { and, asc, desc, eq, inArray, isNull, lt, or, sql } from "drizzle-orm";
import { sha256Hex } from "../auth/sha256";
import type { EventMessage } from "../queues/messages";
import { commitAudited } from "./audit";
import { atomically, type Db, selectJsonRows } from "./client";
import { deadLetters, eventFailures } from "./schema";

/** The error of a dead letter whose failures the main consumer could not record (or never saw). */
export const UNKNOWN_ERROR = "unknown";
/** Enough of an error message to recognise it; a longer one is cut, and a stack is never kept. */
export const MAX_FAILURE_ERROR_CHARS = 1_000;
/** A queue keeps a message at most 14 days, so an older failure row belongs to no message still in flight. */
export const EVENT_FAILURE_RETENTION_MS = 14 * 86_400_000;
/** Stale failure rows removed along with each recorded failure: bounded, so no write becomes a sweep. */
const EVENT_FAILURE_PRUNE_BATCH = 50;
/**
 * Dead letters stored per D1 batch. The failure lookup binds two parameters per message (id and body
 * hash), so this keeps it well inside D1's 100 bound parameters whatever the consumer's batch size.
 */
export const DEAD_LETTER_STORE_CHUNK = 40;
export const DEAD_LETTER_PAGE_MAX = 100;
/** Dead-letter queues are named after their source queue (wrangler.toml keeps to it in every env). */
const DEAD_LETTER_QUEUE_SUFFIX = "-dlq";

type DeadLetterRow = typeof deadLetters.$inferSelect;

/** A dead letter as the admin API answers it. */
export interface DeadLetter {
  id: string;
  queue: string;
  body: unknown;
  error: string;
  attempts: number | null;
  sent_at: string | null;
  received_at: string;
  replayed_at: string | null;
}

/** Stable per queue message: the dead-letter consumer stores a redelivered message once. */
export const deadLetterId = (messageId: string) => `dlt_${messageId}`;

/**
 * The body as stored and replayed: JSON text. Queue bodies may be anything structured clone carries;
 * ours are JSON objects, and anything that is not JSON is kept as its string form rather than lost.
 */
export function bodyText(body: unknown): string {
  try {
    const text = JSON.stringify(body);
    if (text !== undefined) return text;
  } catch {
    // A cycle or a BigInt: fall through to the string form.
  }
  return JSON.stringify(String(body));
}

/** The error as logged: name and message, cut to a bound. Never the stack. */
export function errorText(error: unknown): string {
  const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  return text.slice(0, MAX_FAILURE_ERROR_CHARS);
}

export const isDeadLetterQueue = (queue: string) => queue.endsWith(DEAD_LETTER_QUEUE_SUFFIX);

/** The source of a dead-letter queue, by the naming rule; the DLQ's own name when it does not follow it. */
export function sourceQueueOf(deadLetterQueue: string): string {
  return isDeadLetterQueue(deadLetterQueue)
    ? deadLetterQueue.slice(0, -DEAD_LETTER_QUEUE_SUFFIX.length)
    : deadLetterQueue;
}

export interface EventFailure {
  messageId: string;
  queue: string;
  body: unknown;
  /** The delivery that failed (1 for the first). */
  attempts: number;
  error: unknown;
  now: Date;
}

/** Keeps a message's last failure (replacing an earlier one) and prunes a few stale rows, in one batch. */
export async function recordEventFailure(db: Db, failure: EventFailure): Promise<void> {
  const row = {
    messageId: failure.messageId,
    queue: failure.queue,
    bodyHash: await sha256Hex(bodyText(failure.body)),
    attempts: failure.attempts,
    error: errorText(failure.error),
    failedAt: failure.now.toISOString(),
  };
  const cutoff = new Date(failure.now.getTime() - EVENT_FAILURE_RETENTION_MS).toISOString();
  const stale = db
    .select({ messageId: eventFailures.messageId })
    .from(eventFailures)
    .where(lt(eventFailures.failedAt, cutoff))
    .orderBy(asc(eventFailures.failedAt))
    .limit(EVENT_FAILURE_PRUNE_BATCH);
  await atomically(db, [
    db.delete(eventFailures).where(inArray(eventFailures.messageId, stale)),
    db
      .insert(eventFailures)
      .values(row)
      .onConflictDoUpdate({
        target: eventFailures.messageId,
        set: { attempts: row.attempts, error: row.error, failedAt: row.failedAt },
      }),
  ]);
}

export interface ArrivedDeadLetter {
  messageId: string;
  body: unknown;
  /** When the message was first sent (the queue keeps its timestamp through the dead-letter hop). */
  sentAt: Date;
}

/**
 * Stores messages that arrived on a dead-letter queue, each with the last failure the main consumer
 * recorded for it (by message id, else by body), and forgets those failures, in one batch per chunk.
 * Idempotent on the message id: a redelivered dead letter keeps its first row.
 */
export async function storeDeadLetters(
  db: Db,
  deadLetterQueue: string,
  arrived: readonly ArrivedDeadLetter[],
  now: Date,
): Promise<void> {
  for (let start = 0; start < arrived.length; start += DEAD_LETTER_STORE_CHUNK) {
    await storeChunk(db, deadLetterQueue, arrived.slice(start, start + DEAD_LETTER_STORE_CHUNK), now);
  }
}

async function storeChunk(
  db: Db,
  deadLetterQueue: string,
  arrived: readonly ArrivedDeadLetter[],
  now: Date,
): Promise<void> {
  const prepared = await Promise.all(
    arrived.map(async (message) => {
      const text = bodyText(message.body);
      return { ...message, text, hash: await sha256Hex(text) };
    }),
  );
  if (prepared.length === 0) return;
  const failures = await db
    .select()
    .from(eventFailures)
    .where(
      or(
        inArray(
          eventFailures.messageId,
          prepared.map((m) => m.messageId),
        ),
        inArray(
          eventFailures.bodyHash,
          prepared.map((m) => m.hash),
        ),
      ),
    )
    .orderBy(desc(eventFailures.failedAt));
  const rows: Omit<DeadLetterRow, "seq">[] = prepared.map((message) => {
    // Newest first, so a body-hash match takes the latest failure of that event.
    const failure =
      failures.find((f) => f.messageId === message.messageId) ??
      failures.find((f) => f.bodyHash === message.hash);
    return {
      id: deadLetterId(message.messageId),
      queue: failure?.queue ?? sourceQueueOf(deadLetterQueue),
      body: message.text,
      error: failure?.error ?? UNKNOWN_ERROR,
      attempts: failure?.attempts ?? null,
      sentAt: message.sentAt.toISOString(),
      receivedAt: now.toISOString(),
      replayedAt: null,
    };
  });
  const used = [...new Set(failures.map((f) => f.messageId))];
  await atomically(db, [
    db
      .insert(deadLetters)
      .select(
        // One JSON parameter for the whole chunk; seq is left to AUTOINCREMENT.
        selectJsonRows(rows, [
          sql`NULL`,
          "id",
          "queue",
          "body",
          "error",
          "attempts",
          "sentAt",
          "receivedAt",
          "replayedAt",
        ] satisfies (keyof DeadLetterRow | ReturnType<typeof sql>)[]),
      )
      .onConflictDoNothing(),
    ...(used.length > 0 ? [db.delete(eventFailures).where(inArray(eventFailures.messageId, used))] : []),
  ]);
}

function parseBody(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    // Only a row edited behind the API's back: show the text rather than fail the listing.
    return text;
  }
}

function toDeadLetter(row: DeadLetterRow): DeadLetter {
  return {
    id: row.id,
    queue: row.queue,
    body: parseBody(row.body),
    error: row.error,
    attempts: row.attempts,
    sent_at: row.sentAt,
    received_at: row.receivedAt,
    replayed_at: row.replayedAt,
  };
}

/** Page cursors are the listing's position (seq), opaque to clients. */
export const encodeDeadLetterCursor = (seq: number) => String(seq);
export function decodeDeadLetterCursor(text: string): number | undefined {
  const seq = /^[1-9][0-9]{0,15}$/.test(text) ? Number(text) : Number.NaN;
  return Number.isSafeInteger(seq) ? seq : undefined;
}

/** Newest first; `before` is the cursor of the previous page. */
export async function listDeadLetters(
  db: Db,
  page: { before?: number; limit: number },
): Promise<{ deadLetters: DeadLetter[]; next: string | null }> {
  const rows = await db
    .select()
    .from(deadLetters)
    .where(page.before === undefined ? undefined : lt(deadLetters.seq, page.before))
    .orderBy(desc(deadLetters.seq))
    .limit(page.limit + 1);
  const shown = rows.slice(0, page.limit);
  const last = shown.at(-1);
  return {
    deadLetters: shown.map(toDeadLetter),
    next: rows.length > page.limit && last ? encodeDeadLetterCursor(last.seq) : null,
  };
}

export type ReplayOutcome = { kind: "not_found" } | { kind: "replayed"; replayedAt: string; sent: boolean };

/**
 * Sends a dead letter's body to the EVENTS queue again, once: the first replay sends it and marks the row
 * (with the request for its audit entry, in one batch); later ones answer the first replay's time and
 * send nothing.
 *
 * The send comes before the mark. A crash between the two leaves the row unmarked, and the next replay
 * sends again: harmless, since every consumer is idempotent. The other order could mark a letter that
 * was never sent. Two replays racing may both send; only one marks, and both answer its time.
 */
export async function replayDeadLetter(
  db: Db,
  queue: Queue<EventMessage>,
  id: string,
  actor: string,
  now: Date,
): Promise<ReplayOutcome> {
  const [row] = await db.select().from(deadLetters).where(eq(deadLetters.id, id)).limit(1);
  if (!row) return { kind: "not_found" };
  if (row.replayedAt !== null) return { kind: "replayed", replayedAt: row.replayedAt, sent: false };
  // Sent as stored: a body the consumer cannot parse is acked and logged there, as it was the first time.
  await queue.send(parseBody(row.body) as EventMessage);
  await commitAudited(
    db,
    queue,
    {
      // Deterministic: racing replays request, and the consumer appends, one entry.
      id: `aud_replay_${row.id}`,
      actor,
      action: "dead_letter.replay",
      target: row.id,
      details: { queue: row.queue },
    },
    now,
    [
      db
        .update(deadLetters)
        .set({ replayedAt: now.toISOString() })
        .where(and(eq(deadLetters.id, id), isNull(deadLetters.replayedAt))),
    ],
  );
  const [marked] = await db
    .select({ replayedAt: deadLetters.replayedAt })
    .from(deadLetters)
    .where(eq(deadLetters.id, id))
    .limit(1);
  return { kind: "replayed", replayedAt: marked?.replayedAt ?? now.toISOString(), sent: true };
}
