import type { EventMessage } from "../queues/messages";

/** Rows sent per `sendBatch` (a Queue batch holds at most 100 messages). */
export const OUTBOX_SEND_BATCH = 100;
/**
 * Payload bytes per `sendBatch`: a Queue batch holds at most 256 KB, and 100 large events (a refund's
 * reason, long ids) can pass that. Without a cap such a window would fail its send on every alarm and
 * never drain. Headroom is left for the per-message envelope.
 */
export const OUTBOX_SEND_BATCH_BYTES = 192 * 1024;

/**
 * A Durable Object's outbox: events written in the same storage transaction as the change they announce,
 * so an event exists exactly when its change does, and forwarded to the queue by the object's alarm,
 * oldest first, at least once (consumers are idempotent on the events' ids). Shared by the ticket and
 * wallet objects; each decides when its alarm runs.
 */
export class ObjectOutbox {
  constructor(
    private readonly sql: SqlStorage,
    private readonly queue: Queue<EventMessage>,
  ) {
    // AUTOINCREMENT, though it costs a write per event: a seq is never handed out twice, so a send that
    // deletes "up to the last row it sent" can never delete a newer row that reused a freed seq.
    sql.exec(
      "CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, payload TEXT NOT NULL)",
    );
  }

  /** Call inside the transaction that makes the change the event announces. */
  add(event: EventMessage): void {
    this.addSerialized(JSON.stringify(event));
  }

  /**
   * An event the caller already keeps as JSON (the JSON.stringify of an EventMessage), moved here as it
   * is rather than parsed and written again: the wallet's flush moves up to a thousand at a time.
   */
  addSerialized(payload: string): void {
    this.sql.exec("INSERT INTO outbox (payload) VALUES (?)", payload);
  }

  isEmpty(): boolean {
    return this.sql.exec("SELECT 1 FROM outbox LIMIT 1").toArray().length === 0;
  }

  /**
   * Sends everything, a batch at a time, deleting each batch once the queue took it. False when a send
   * failed: the rows stay for the next alarm (a batch the queue took before the failure is not resent).
   */
  async send(): Promise<boolean> {
    for (;;) {
      const rows = this.sql
        .exec<{ seq: number; payload: string }>(
          "SELECT seq, payload FROM outbox ORDER BY seq LIMIT ?",
          OUTBOX_SEND_BATCH,
        )
        .toArray();
      const batch = withinBytes(rows, OUTBOX_SEND_BATCH_BYTES);
      const last = batch.at(-1);
      if (!last) return true;
      try {
        await this.queue.sendBatch(batch.map((row) => ({ body: JSON.parse(row.payload) as EventMessage })));
      } catch (error) {
        console.error(
          JSON.stringify({
            level: "warn",
            msg: "object outbox send failed; will retry",
            error: String(error),
          }),
        );
        return false;
      }
      this.sql.exec("DELETE FROM outbox WHERE seq <= ?", last.seq);
    }
  }
}

/** The longest prefix of `rows` whose payloads fit in `maxBytes` (UTF-8), and never less than one row. */
function withinBytes<R extends { payload: string }>(rows: R[], maxBytes: number): R[] {
  const encoder = new TextEncoder();
  let bytes = 0;
  for (let i = 0; i < rows.length; i++) {
    bytes += encoder.encode(rows[i]?.payload ?? "").length;
    if (bytes > maxBytes && i > 0) return rows.slice(0, i);
  }
  return rows;
}

/**
 * Books the object's alarm for `atMs` unless one is already booked sooner. `replace`: called from the alarm
 * itself, whose own booking is spent. Awaiting storage does not let other requests in, and the output
 * gate holds the answer of the change that asked until the alarm is durable too.
 */
export async function bookAlarm(storage: DurableObjectStorage, atMs: number, replace = false): Promise<void> {
  const booked = replace ? null : await storage.getAlarm();
  if (booked === null || booked > atMs) await storage.setAlarm(atMs);
}
