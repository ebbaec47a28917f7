import { DurableObject } from "cloudflare:workers";
import type { Env } from "../env";

/**
 * How long a pushed count is kept. The read model catches up within seconds (the outbox forwards in 2 s,
 * the consumer projects in batches of one second); a week covers a consumer stopped over a long weekend,
 * after which D1 alone is exact again. Counts are versioned, so a stale one never overrides a newer one.
 */
export const HOLDER_COUNT_RETENTION_MS = 7 * 24 * 60 * 60 * 1000;

/** One function of one ticket as its object last changed it; `version` counts the function's changes. */
export interface HeldCount {
  ticketCode: string;
  function: string;
  totalUses: number;
  remainingUses: number;
  version: number;
}

/**
 * One object per buyer: the newest use counts of the buyer's tickets, pushed by each ticket's object right
 * after a change commits and before that change's answer leaves it. GET /my/tickets then reads the read
 * model (D1) and this object, two calls whatever the number of tickets, and takes per function whichever
 * has the higher version: every scan that has returned is here even while D1 still trails it.
 *
 * This object owns nothing: it is a versioned cache of facts the ticket objects own, so losing a push
 * (the ticket object retries it from its alarm) delays a count, never corrupts one.
 */
export class TicketHolderObject extends DurableObject<Env> {
  private readonly sql: SqlStorage;
  /** Whether this instance has seen the pruning alarm set: checked once, not on every push. */
  private alarmSet = false;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec(`
      CREATE TABLE IF NOT EXISTS counts (
        ticket_code TEXT NOT NULL,
        function TEXT NOT NULL,
        total_uses INTEGER NOT NULL,
        remaining_uses INTEGER NOT NULL,
        version INTEGER NOT NULL,
        pushed_at_ms INTEGER NOT NULL,
        PRIMARY KEY (ticket_code, function)
      );
      CREATE INDEX IF NOT EXISTS counts_by_age ON counts (pushed_at_ms);
    `);
  }

  /** Keeps each count unless a newer version is already held: pushes may arrive in any order, or twice. */
  async record(counts: HeldCount[]): Promise<void> {
    const nowMs = Date.now();
    this.ctx.storage.transactionSync(() => {
      for (const count of counts) {
        this.sql.exec(
          `INSERT INTO counts (ticket_code, function, total_uses, remaining_uses, version, pushed_at_ms)
           VALUES (?, ?, ?, ?, ?, ?)
           ON CONFLICT (ticket_code, function) DO UPDATE SET
             total_uses = excluded.total_uses, remaining_uses = excluded.remaining_uses,
             version = excluded.version, pushed_at_ms = excluded.pushed_at_ms
           WHERE excluded.version > counts.version`,
          count.ticketCode,
          count.function,
          count.totalUses,
          count.remainingUses,
          count.version,
          nowMs,
        );
      }
    });
    if (!this.alarmSet) {
      if ((await this.ctx.storage.getAlarm()) === null) {
        await this.ctx.storage.setAlarm(nowMs + HOLDER_COUNT_RETENTION_MS);
      }
      this.alarmSet = true;
    }
  }

  /** Every count held; the caller keeps those newer than its read model's. */
  counts(): HeldCount[] {
    return this.sql
      .exec<{
        ticket_code: string;
        function: string;
        total_uses: number;
        remaining_uses: number;
        version: number;
      }>("SELECT ticket_code, function, total_uses, remaining_uses, version FROM counts")
      .toArray()
      .map((row) => ({
        ticketCode: row.ticket_code,
        function: row.function,
        totalUses: row.total_uses,
        remainingUses: row.remaining_uses,
        version: row.version,
      }));
  }

  /** Forgets counts the read model has long caught up with; wakes again for the oldest one left. */
  override async alarm(): Promise<void> {
    const nowMs = Date.now();
    this.sql.exec("DELETE FROM counts WHERE pushed_at_ms <= ?", nowMs - HOLDER_COUNT_RETENTION_MS);
    const oldest = this.sql
      .exec<{ at: number | null }>("SELECT MIN(pushed_at_ms) AS at FROM counts")
      .toArray()[0]?.at;
    this.alarmSet = oldest != null;
    if (oldest != null) await this.ctx.storage.setAlarm(oldest + HOLDER_COUNT_RETENTION_MS);
  }
}
