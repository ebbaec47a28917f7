import { retryable } from "cloudflare:durable-objects";
import { DurableObject } from "cloudflare:workers";
import { decideRedemption, type EntitlementState, type RedemptionRejection } from "../domain/redemption";
import type { Env } from "../env";
import { newId } from "../ids";
import type { RedemptionRecorded } from "../queues/messages";

/**
 * How long an accepted scan's answer outlives its token. The answer is kept with the spent jti, so an RPC
 * resent after a dropped connection (same scan id, same jti) is answered again instead of spending twice;
 * a resend comes within seconds, even one that lands just after the token expired.
 */
export const RESENT_SCAN_GRACE_MS = 60_000;
/** Outbox rows sent per alarm run (one Queue sendBatch holds at most 100 messages). */
const OUTBOX_BATCH = 100;
/** How long accepted scans may gather in the outbox before one alarm forwards them together. */
const OUTBOX_FLUSH_DELAY_MS = 2_000;
/** Back-off before the alarm retries an outbox that failed to send. */
const OUTBOX_RETRY_MS = 5_000;

export interface ScanSession {
  sessionId: string;
  operatorId: string;
  deviceId: string;
  locationId: string | null;
}

export interface RedeemRequest {
  ticketCode: string;
  /** Unique per scan attempt; a retried RPC carries the same one. */
  scanId: string;
  fn: string;
  jti: string;
  /** The QR token's `exp`, in Unix seconds: the jti is remembered until then. */
  tokenExpiresAt: number;
  session: ScanSession;
}

export type RedeemResult =
  | {
      result: "accepted";
      redemptionId: string;
      ticketCode: string;
      fn: string;
      scannedAt: string;
      entitlements: EntitlementState[];
    }
  | { result: "rejected"; code: RedemptionRejection; entitlements: EntitlementState[] }
  | { result: "rejected"; code: "ticket_not_found" };

export interface TicketSnapshot {
  code: string;
  entitlements: EntitlementState[];
}

/**
 * One object per ticket code: the source of truth for the ticket's remaining uses and the QR jtis it has
 * spent. Every check-and-decrement runs synchronously inside one storage transaction, so concurrent scans
 * of one ticket are serialized without locks, and the redemption event is written to the object's own
 * outbox in that same transaction; the alarm forwards it to the queue (at least once).
 */
export class TicketObject extends DurableObject<Env> {
  static {
    // A redeem resent with the same scan id and jti answers what the first attempt did (see
    // RESENT_SCAN_GRACE_MS), so the runtime may resend one cut off after it started; a read is harmless.
    retryable(TicketObject.prototype.redeem, TicketObject.prototype.snapshot);
  }

  private readonly sql: SqlStorage;
  /** In-memory copies of what storage already says, so a scan does not re-read them. */
  private initializedCode: string | undefined;
  /** The entitlements table as last committed; this object is its only writer. */
  private entitlementsCopy: EntitlementState[] | undefined;
  private flushScheduled = false;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec(`
      CREATE TABLE IF NOT EXISTS ticket (code TEXT PRIMARY KEY, initialized_at INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS entitlements (
        function TEXT PRIMARY KEY,
        total_uses INTEGER NOT NULL,
        remaining_uses INTEGER NOT NULL CHECK (remaining_uses >= 0 AND remaining_uses <= total_uses)
      );
      CREATE TABLE IF NOT EXISTS spent_jtis (
        jti TEXT PRIMARY KEY,
        expires_at_ms INTEGER NOT NULL,
        scan_id TEXT,
        result TEXT
      );
      CREATE INDEX IF NOT EXISTS spent_jtis_by_expiry ON spent_jtis (expires_at_ms);
      CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, payload TEXT NOT NULL);
    `);
    upgradeStorage(this.sql);
  }

  /** Redeems one use of `fn`. Idempotent on `scanId`; refuses a jti it has seen. */
  async redeem(request: RedeemRequest): Promise<RedeemResult> {
    if (!(await this.ensureInitialized(request.ticketCode)))
      return { result: "rejected", code: "ticket_not_found" };

    // From here on there is no await until the result is returned: the check and the decrement cannot be
    // separated by another request.
    const nowMs = Date.now();
    const before = this.currentEntitlements();
    const result = this.ctx.storage.transactionSync((): RedeemResult => {
      const spent = this.sql
        .exec<{ scan_id: string | null; result: string | null }>(
          "SELECT scan_id, result FROM spent_jtis WHERE jti = ?",
          request.jti,
        )
        .toArray()[0];
      // The same scan resent (same scan id, same jti): its answer, even if the token has expired since.
      if (spent?.result && spent.scan_id === request.scanId) return JSON.parse(spent.result) as RedeemResult;

      const decision = decideRedemption({
        entitlements: before,
        fn: request.fn,
        jtiSpent: spent !== undefined,
        tokenExpiresAtSeconds: request.tokenExpiresAt,
        nowMs,
      });
      if (!decision.ok) return { result: "rejected", code: decision.code, entitlements: before };

      const changed = this.sql.exec(
        "UPDATE entitlements SET remaining_uses = remaining_uses - 1 WHERE function = ? AND remaining_uses > 0",
        request.fn,
      ).rowsWritten;
      if (changed !== 1) throw new Error("invariant: decrement after a positive check must change one row");

      const scannedAt = new Date(nowMs).toISOString();
      const result: RedeemResult = {
        result: "accepted",
        redemptionId: newId("red"),
        ticketCode: request.ticketCode,
        fn: request.fn,
        scannedAt,
        // The row just changed by exactly one use; no need to read it back.
        entitlements: before.map((e) =>
          e.function === request.fn ? { ...e, remaining_uses: e.remaining_uses - 1 } : e,
        ),
      };
      this.sql.exec(
        "INSERT INTO spent_jtis (jti, expires_at_ms, scan_id, result) VALUES (?, ?, ?, ?)",
        request.jti,
        request.tokenExpiresAt * 1000,
        request.scanId,
        JSON.stringify(result),
      );
      const remaining = result.entitlements.find((e) => e.function === request.fn)?.remaining_uses ?? 0;
      const event: RedemptionRecorded = {
        type: "redemption.recorded",
        redemption_id: result.redemptionId,
        ticket_code: request.ticketCode,
        function: request.fn,
        remaining_uses: remaining,
        operator_id: request.session.operatorId,
        session_id: request.session.sessionId,
        device_id: request.session.deviceId,
        location_id: request.session.locationId,
        ts: scannedAt,
      };
      this.sql.exec("INSERT INTO outbox (payload) VALUES (?)", JSON.stringify(event));
      return result;
    });
    // Committed: only now may the in-memory copy move (a throw above rolled storage back, and it with it).
    if (result.result === "accepted") {
      this.entitlementsCopy = result.entitlements;
      await this.scheduleOutboxFlush();
    }
    return result;
  }

  /**
   * Forwards the outbox shortly after a scan. Scans within one flush window share one alarm and one queue
   * batch, instead of an alarm and a send each; the window is far inside the 10 s reporting promise.
   * Awaiting storage does not let other requests in, and the output gate holds the scan's answer until
   * the alarm is durable too.
   */
  private async scheduleOutboxFlush(): Promise<void> {
    if (this.flushScheduled) return;
    const flushAt = Date.now() + OUTBOX_FLUSH_DELAY_MS;
    const pending = await this.ctx.storage.getAlarm();
    if (pending === null || pending > flushAt) await this.ctx.storage.setAlarm(flushAt);
    this.flushScheduled = true;
  }

  /** The ticket's current uses, or null when no scan has reached this object yet (D1 is then exact). */
  snapshot(): TicketSnapshot | null {
    const row = this.sql.exec<{ code: string }>("SELECT code FROM ticket").toArray()[0];
    return row ? { code: row.code, entitlements: this.currentEntitlements() } : null;
  }

  /** Forwards the outbox to the queue, then forgets jtis and scan ids that can no longer matter. */
  override async alarm(): Promise<void> {
    // Scans from here on need a flush of their own: this run may already have read the outbox.
    this.flushScheduled = false;
    const rows = this.sql
      .exec<{ seq: number; payload: string }>(
        "SELECT seq, payload FROM outbox ORDER BY seq LIMIT ?",
        OUTBOX_BATCH,
      )
      .toArray();
    if (rows.length > 0) {
      try {
        await this.env.EVENTS.sendBatch(rows.map((row) => ({ body: JSON.parse(row.payload) })));
        this.sql.exec("DELETE FROM outbox WHERE seq <= ?", rows.at(-1)?.seq ?? 0);
      } catch (error) {
        console.error(
          JSON.stringify({
            level: "warn",
            msg: "ticket outbox send failed; will retry",
            error: String(error),
          }),
        );
        await this.ctx.storage.setAlarm(Date.now() + OUTBOX_RETRY_MS);
        return;
      }
    }
    this.prune(Date.now());
    await this.scheduleNextAlarm();
  }

  /**
   * A spent jti can go once its token has expired and a resend of its scan can no longer come: an expired
   * token is refused as expired before its jti is even looked at.
   */
  private prune(nowMs: number): void {
    this.sql.exec("DELETE FROM spent_jtis WHERE expires_at_ms <= ?", nowMs - RESENT_SCAN_GRACE_MS);
  }

  private async scheduleNextAlarm(): Promise<void> {
    const pendingOutbox = this.sql.exec("SELECT 1 FROM outbox LIMIT 1").toArray().length > 0;
    if (pendingOutbox) return this.ctx.storage.setAlarm(Date.now());
    const next = this.sql
      .exec<{ at: number | null }>(
        `SELECT MIN(expires_at_ms) + ${RESENT_SCAN_GRACE_MS} AS at FROM spent_jtis`,
      )
      .toArray()[0]?.at;
    if (next != null) await this.ctx.storage.setAlarm(next);
  }

  private currentEntitlements(): EntitlementState[] {
    this.entitlementsCopy ??= this.entitlements();
    return this.entitlementsCopy;
  }

  private entitlements(): EntitlementState[] {
    return this.sql
      .exec<{ function: string; total_uses: number; remaining_uses: number }>(
        "SELECT function, total_uses, remaining_uses FROM entitlements ORDER BY function",
      )
      .toArray()
      .map((row) => ({
        function: row.function,
        total_uses: row.total_uses,
        remaining_uses: row.remaining_uses,
      }));
  }

  /**
   * Loads the issued ticket from D1 the first time a scan reaches this object; afterwards the object's own
   * storage is authoritative and D1 is never read again for it. Concurrent first scans may all load, but
   * the inserts are idempotent, so they converge on one state.
   */
  private async ensureInitialized(code: string): Promise<boolean> {
    const existing =
      this.initializedCode ?? this.sql.exec<{ code: string }>("SELECT code FROM ticket").toArray()[0]?.code;
    if (existing !== undefined) {
      if (existing !== code) throw new Error("invariant: a ticket object serves exactly one code");
      this.initializedCode = existing;
      return true;
    }
    const { results } = await this.env.DB.prepare(
      "SELECT function, total_uses, remaining_uses FROM ticket_entitlements WHERE ticket_code = ?",
    )
      .bind(code)
      .all<{ function: string; total_uses: number; remaining_uses: number }>();
    if (results.length === 0) return false;
    this.ctx.storage.transactionSync(() => {
      if (this.sql.exec("SELECT 1 FROM ticket").toArray().length > 0) return;
      this.sql.exec("INSERT INTO ticket (code, initialized_at) VALUES (?, ?)", code, Date.now());
      for (const row of results) {
        this.sql.exec(
          "INSERT INTO entitlements (function, total_uses, remaining_uses) VALUES (?, ?, ?)",
          row.function,
          row.total_uses,
          row.remaining_uses,
        );
      }
    });
    return true;
  }
}

/**
 * Storage written by an earlier version of this class: spent jtis without their scan's answer, which lived
 * in a `scans` table of its own. The jtis are kept (a replay must stay refused across the upgrade); the old
 * answers are dropped, which only a resend in flight during the deploy could have needed.
 */
function upgradeStorage(sql: SqlStorage): void {
  try {
    sql.exec("SELECT scan_id FROM spent_jtis LIMIT 0");
  } catch {
    sql.exec(`
      ALTER TABLE spent_jtis ADD COLUMN scan_id TEXT;
      ALTER TABLE spent_jtis ADD COLUMN result TEXT;
      DROP TABLE IF EXISTS scans;
    `);
  }
}
