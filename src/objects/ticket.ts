import { retryable } from "cloudflare:durable-objects";
import { DurableObject } from "cloudflare:workers";
import {
  isOverBudget,
  OFFLINE_SCAN_RETENTION_MS,
  type OfflineGateDecision,
  offlineFlagId,
  reconcileOfflineScan,
} from "../domain/offline-reconciliation";
import {
  type AnnulmentRefusal,
  decideAnnulment,
  decideRedemption,
  type EntitlementState,
  type RedemptionRejection,
} from "../domain/redemption";
import { newRedemptionId } from "../domain/redemption-id";
import type { Env } from "../env";
import type {
  OfflineScanFlagged,
  RedemptionAnnulled,
  RedemptionRecorded,
  ScanRejected,
} from "../queues/messages";
import { bookAlarm, ObjectOutbox } from "./object-outbox";

/**
 * How long an accepted scan's answer outlives its token. The answer is kept with the spent jti, so an RPC
 * resent after a dropped connection (same scan id, same jti) is answered again instead of spending twice;
 * a resend comes within seconds, even one that lands just after the token expired.
 */
export const RESENT_SCAN_GRACE_MS = 60_000;
/** A gate's own Idempotency-Key for a scan is honoured at least this long (the contract's 24 h). */
export const SCAN_KEY_RETENTION_MS = 24 * 60 * 60 * 1000;
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

/** A gate's Idempotency-Key for one scan attempt, scoped to its operator by the caller. */
export interface ScanKey {
  /** `operator id` + the gate's key: the same attempt resent has the same one. */
  scope: string;
  /** The request's identity (token, function, session): the same key with another is refused, not replayed. */
  requestHash: string;
}

export interface RedeemRequest {
  ticketCode: string;
  /** Unique per scan attempt; a retried RPC carries the same one. */
  scanId: string;
  /** Present when the gate sent an Idempotency-Key: the answer is kept under it for 24 h. */
  key?: ScanKey;
  fn: string;
  jti: string;
  /** The QR token's `exp`, in Unix seconds: the jti is remembered until then. */
  tokenExpiresAt: number;
  session: ScanSession;
}

export type RedeemAnswer =
  | {
      result: "accepted";
      redemptionId: string;
      ticketCode: string;
      fn: string;
      scannedAt: string;
      entitlements: EntitlementState[];
    }
  | { result: "rejected"; code: RedemptionRejection; entitlements: EntitlementState[] };

/** `replayed`: the stored answer to an earlier attempt with the same Idempotency-Key and body. */
export type RedeemResult =
  | (RedeemAnswer & { replayed?: boolean })
  | { result: "rejected"; code: "ticket_not_found" | "idempotency_key_reused" };

export interface AnnulRequest {
  redemptionId: string;
  ticketCode: string;
  session: ScanSession;
  /** A supervisor or admin: may annul any scan, from any device, at any time (with a reason). */
  canOverride: boolean;
  reason: string | null;
  windowSeconds: number;
  /**
   * A redemption made before this object remembered its scans (the read model's copy of the object's own
   * event): adopted when the object has no record of that id, so such scans can be annulled too.
   */
  recorded?: { fn: string; deviceId: string; scannedAtMs: number };
}

export type AnnulResult =
  | {
      result: "annulled";
      redemptionId: string;
      ticketCode: string;
      fn: string;
      annulledAt: string;
      entitlements: EntitlementState[];
      /** The function's change count after the annulment, as its event reports it. */
      usesVersion: number;
    }
  | { result: "refused"; code: AnnulmentRefusal | "ticket_not_found" };

/** One scan a gate decided offline, as the upload route verified it. */
export interface OfflineScan {
  /** The gate's id for the scan: reconciliation is idempotent on it. */
  scanId: string;
  fn: string;
  decision: OfflineGateDecision;
  jti: string;
  /** The QR token's end of life, in Unix seconds: an accepted token's jti is spent until then. */
  tokenExpiresAt: number;
  /** Whether the token was good at `scannedAtMs` (a gate that accepts an expired code breaks its budget). */
  tokenGoodAtScan: boolean;
  /** When the gate decided, by its clock. */
  scannedAtMs: number;
}

export interface OfflineReconcileRequest {
  ticketCode: string;
  /** The uploading session: its device made the scans. */
  session: ScanSession;
  acceptsPerTicketFunction: number;
  /** In the order the gate made them (the upload's order). */
  scans: OfflineScan[];
}

export interface OfflineScanResult {
  scanId: string;
  outcome: "applied" | "duplicate" | "conflict" | "recorded";
  redemptionId?: string;
  /** Uses of the scan's function left once it was reconciled (absent when the ticket has no such function). */
  remainingUses?: number;
  overBudget: boolean;
}

export type OfflineReconcileResult =
  | { result: "reconciled"; scans: OfflineScanResult[] }
  | { result: "ticket_not_found" };

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
  /** Events of committed changes, forwarded to the queue by the alarm. */
  private readonly events: ObjectOutbox;
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
        remaining_uses INTEGER NOT NULL CHECK (remaining_uses >= 0 AND remaining_uses <= total_uses),
        version INTEGER NOT NULL DEFAULT 0
      );
      CREATE TABLE IF NOT EXISTS redemptions (
        id TEXT PRIMARY KEY,
        function TEXT NOT NULL,
        device_id TEXT NOT NULL,
        scanned_at_ms INTEGER NOT NULL,
        annulled_at_ms INTEGER,
        offline INTEGER NOT NULL DEFAULT 0
      );
      CREATE TABLE IF NOT EXISTS scan_keys (
        scope TEXT PRIMARY KEY,
        request_hash TEXT NOT NULL,
        answer TEXT NOT NULL,
        keep_until_ms INTEGER NOT NULL
      );
      DROP INDEX IF EXISTS scan_keys_by_expiry;
      CREATE TABLE IF NOT EXISTS spent_jtis (
        jti TEXT PRIMARY KEY,
        expires_at_ms INTEGER NOT NULL,
        scan_id TEXT,
        result TEXT
      );
      CREATE INDEX IF NOT EXISTS spent_jtis_by_expiry ON spent_jtis (expires_at_ms);
      CREATE TABLE IF NOT EXISTS offline_scans (
        device_id TEXT NOT NULL,
        scan_id TEXT NOT NULL,
        function TEXT NOT NULL,
        decision TEXT NOT NULL,
        outcome TEXT NOT NULL,
        redemption_id TEXT,
        scanned_at_ms INTEGER NOT NULL,
        reconciled_at_ms INTEGER NOT NULL,
        PRIMARY KEY (device_id, scan_id)
      );
    `);
    upgradeStorage(this.sql);
    this.events = new ObjectOutbox(this.sql, env.EVENTS);
  }

  /** Redeems one use of `fn`. Idempotent on `scanId`; refuses a jti it has seen. */
  async redeem(request: RedeemRequest): Promise<RedeemResult> {
    if (!(await this.ensureInitialized(request.ticketCode)))
      return { result: "rejected", code: "ticket_not_found" };

    // From here on there is no await until the result is returned: the check and the decrement cannot be
    // separated by another request.
    const nowMs = Date.now();
    const before = this.currentEntitlements();
    const { key } = request;
    const result = this.ctx.storage.transactionSync((): RedeemResult => {
      if (key) {
        const stored = this.sql
          .exec<{ request_hash: string; answer: string }>(
            "SELECT request_hash, answer FROM scan_keys WHERE scope = ?",
            key.scope,
          )
          .toArray()[0];
        if (stored && stored.request_hash !== key.requestHash) {
          return { result: "rejected", code: "idempotency_key_reused" };
        }
        if (stored) return { ...(JSON.parse(stored.answer) as RedeemAnswer), replayed: true };
      }
      const answer = this.decideAndApply(request, before, nowMs);
      if (key) {
        this.sql.exec(
          "INSERT INTO scan_keys (scope, request_hash, answer, keep_until_ms) VALUES (?, ?, ?, ?)",
          key.scope,
          key.requestHash,
          JSON.stringify(answer),
          nowMs + SCAN_KEY_RETENTION_MS,
        );
      }
      return answer;
    });
    // Committed: only now may the in-memory copy move (a throw above rolled storage back, and it with it).
    if (result.result === "accepted" && !("replayed" in result && result.replayed)) {
      this.entitlementsCopy = result.entitlements;
      await this.scheduleOutboxFlush();
    }
    return result;
  }

  /**
   * The scan's decision and, when accepted, its effects: one use spent, the jti spent with the answer, the
   * redemption remembered for annulment, the event in the outbox. Runs inside redeem's transaction.
   */
  private decideAndApply(request: RedeemRequest, before: EntitlementState[], nowMs: number): RedeemAnswer {
    const spent = this.sql
      .exec<{ scan_id: string | null; result: string | null }>(
        "SELECT scan_id, result FROM spent_jtis WHERE jti = ?",
        request.jti,
      )
      .toArray()[0];
    // The same scan resent (same scan id, same jti): its answer, even if the token has expired since.
    if (spent?.result && spent.scan_id === request.scanId) return JSON.parse(spent.result) as RedeemAnswer;

    const decision = decideRedemption({
      entitlements: before,
      fn: request.fn,
      jtiSpent: spent !== undefined,
      tokenExpiresAtSeconds: request.tokenExpiresAt,
      nowMs,
    });
    if (!decision.ok) return { result: "rejected", code: decision.code, entitlements: before };

    const scannedAt = new Date(nowMs).toISOString();
    const redemptionId = this.spendUse(request.ticketCode, request.fn, request.session, nowMs, false);
    const result: RedeemAnswer = {
      result: "accepted",
      redemptionId,
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
    return result;
  }

  /**
   * One use of `fn` spent, after a check that found one left: the count, the redemption remembered for
   * annulment, and its event in the outbox. The same for an online scan and an applied offline one, which
   * is dated when the gate let the holder in. Runs inside the caller's transaction; answers the id.
   */
  private spendUse(
    ticketCode: string,
    fn: string,
    session: ScanSession,
    atMs: number,
    offline: boolean,
  ): string {
    const [row] = this.sql
      .exec<{ version: number; remaining_uses: number }>(
        "UPDATE entitlements SET remaining_uses = remaining_uses - 1, version = version + 1 " +
          "WHERE function = ? AND remaining_uses > 0 RETURNING version, remaining_uses",
        fn,
      )
      .toArray();
    if (!row) throw new Error("invariant: a use is spent only after a check found one left");
    const redemptionId = newRedemptionId(ticketCode);
    this.sql.exec(
      "INSERT INTO redemptions (id, function, device_id, scanned_at_ms, offline) VALUES (?, ?, ?, ?, ?)",
      redemptionId,
      fn,
      session.deviceId,
      atMs,
      offline ? 1 : 0,
    );
    const event: RedemptionRecorded = {
      type: "redemption.recorded",
      redemption_id: redemptionId,
      ticket_code: ticketCode,
      function: fn,
      remaining_uses: row.remaining_uses,
      uses_version: row.version,
      operator_id: session.operatorId,
      session_id: session.sessionId,
      device_id: session.deviceId,
      location_id: session.locationId,
      ts: new Date(atMs).toISOString(),
      ...(offline ? { offline: true } : {}),
    };
    this.events.add(event);
    return redemptionId;
  }

  /**
   * Reconciles scans a gate decided offline, in one transaction: each is judged once (reconcileOfflineScan)
   * and remembered by its device and scan id, so an upload retried, duplicated or reordered ends in the same state.
   * An applied scan spends a use dated when the gate let the holder in; a conflict spends nothing (no count
   * goes below zero) and is flagged with the redemption that took the last use; a refusal is recorded.
   */
  async reconcileOffline(request: OfflineReconcileRequest): Promise<OfflineReconcileResult> {
    if (!(await this.ensureInitialized(request.ticketCode))) return { result: "ticket_not_found" };
    const nowMs = Date.now();
    const scans = this.ctx.storage.transactionSync(() =>
      request.scans.map((scan) => this.reconcileOne(request, scan, nowMs)),
    );
    if (scans.some((scan) => scan.outcome !== "duplicate")) {
      this.entitlementsCopy = this.entitlements();
      await this.scheduleOutboxFlush();
    }
    return { result: "reconciled", scans };
  }

  private reconcileOne(
    request: OfflineReconcileRequest,
    scan: OfflineScan,
    nowMs: number,
  ): OfflineScanResult {
    const { session, ticketCode } = request;
    const remaining = () =>
      this.sql
        .exec<{ remaining_uses: number }>(
          "SELECT remaining_uses FROM entitlements WHERE function = ?",
          scan.fn,
        )
        .toArray()[0]?.remaining_uses;
    const earlier = this.sql
      .exec<{ redemption_id: string | null }>(
        "SELECT redemption_id FROM offline_scans WHERE device_id = ? AND scan_id = ?",
        session.deviceId,
        scan.scanId,
      )
      .toArray()[0];
    const before = remaining();
    const judged = reconcileOfflineScan({
      alreadyReconciled: earlier !== undefined,
      decision: scan.decision,
      hasEntitlement: before !== undefined,
      remainingUses: before ?? 0,
    });
    if (judged.outcome === "duplicate") {
      return {
        scanId: scan.scanId,
        outcome: "duplicate",
        redemptionId: earlier?.redemption_id ?? undefined,
        remainingUses: before,
        overBudget: false,
      };
    }
    const scannedAt = new Date(scan.scannedAtMs).toISOString();
    const overBudget =
      scan.decision === "accepted" &&
      isOverBudget({
        inFlightBefore: this.inFlightOfflineAccepts(session.deviceId, scan),
        acceptsPerTicketFunction: request.acceptsPerTicketFunction,
        tokenGoodAtScan: scan.tokenGoodAtScan,
      });
    let redemptionId: string | null = null;
    if (judged.outcome === "applied") {
      redemptionId = this.spendUse(ticketCode, scan.fn, session, scan.scannedAtMs, true);
      this.spendJti(scan);
      // Applied, but by a device that broke its budget: kept for the report like a conflict.
      if (overBudget) {
        const reason = scan.tokenGoodAtScan ? "in_flight" : "token_not_good_at_scan";
        this.events.add(
          this.offlineFlag(request, scan, { outcome: "over_budget", reason }, scannedAt, true, nowMs),
        );
      }
    } else if (judged.outcome === "conflict") {
      this.spendJti(scan);
      const flag = { outcome: "conflict" as const, reason: judged.reason };
      this.events.add(this.offlineFlag(request, scan, flag, scannedAt, overBudget, nowMs));
    } else {
      const refused: ScanRejected = {
        type: "scan.rejected",
        scan_id: offlineFlagId(ticketCode, session.deviceId, scan.scanId),
        code: "refused_offline",
        ticket_code: ticketCode,
        function: scan.fn,
        operator_id: session.operatorId,
        session_id: session.sessionId,
        ts: scannedAt,
        offline: true,
      };
      this.events.add(refused);
    }
    this.sql.exec(
      `INSERT INTO offline_scans
         (scan_id, device_id, function, decision, outcome, redemption_id, scanned_at_ms, reconciled_at_ms)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      scan.scanId,
      session.deviceId,
      scan.fn,
      scan.decision,
      judged.outcome,
      redemptionId,
      scan.scannedAtMs,
      nowMs,
    );
    return {
      scanId: scan.scanId,
      outcome: judged.outcome,
      redemptionId: redemptionId ?? undefined,
      remainingUses: remaining(),
      overBudget,
    };
  }

  /**
   * The device's earlier offline accepts of this function that it could not have seen reconciled when it
   * made this one: made before it, reconciled after it (or in this very upload).
   */
  private inFlightOfflineAccepts(deviceId: string, scan: OfflineScan): number {
    return (
      this.sql
        .exec<{ n: number }>(
          `SELECT count(*) AS n FROM offline_scans
           WHERE device_id = ? AND function = ? AND decision = 'accepted'
             AND scanned_at_ms < ? AND reconciled_at_ms > ?`,
          deviceId,
          scan.fn,
          scan.scannedAtMs,
          scan.scannedAtMs,
        )
        .toArray()[0]?.n ?? 0
    );
  }

  /** An accepted token is used up online too: showing it at a gate with a network is then a replay. */
  private spendJti(scan: OfflineScan): void {
    this.sql.exec(
      "INSERT OR IGNORE INTO spent_jtis (jti, expires_at_ms) VALUES (?, ?)",
      scan.jti,
      scan.tokenExpiresAt * 1000,
    );
  }

  /**
   * A flagged offline accept. A conflict carries its other side: the standing redemption that took the
   * last use, the one recorded last (rowid order is the order uses were spent, whatever the gates' clocks).
   */
  private offlineFlag(
    request: OfflineReconcileRequest,
    scan: OfflineScan,
    flag: { outcome: "conflict" | "over_budget"; reason: string },
    scannedAt: string,
    overBudget: boolean,
    nowMs: number,
  ): OfflineScanFlagged {
    const other =
      flag.outcome === "conflict"
        ? this.sql
            .exec<{ id: string; device_id: string; scanned_at_ms: number; offline: number }>(
              `SELECT id, device_id, scanned_at_ms, offline FROM redemptions
               WHERE function = ? AND annulled_at_ms IS NULL ORDER BY rowid DESC LIMIT 1`,
              scan.fn,
            )
            .toArray()[0]
        : undefined;
    const { session, ticketCode } = request;
    return {
      type: "offline.flagged",
      id: offlineFlagId(ticketCode, session.deviceId, scan.scanId),
      outcome: flag.outcome,
      reason: flag.reason,
      scan_id: scan.scanId,
      ticket_code: ticketCode,
      function: scan.fn,
      device_id: session.deviceId,
      operator_id: session.operatorId,
      session_id: session.sessionId,
      location_id: session.locationId,
      scanned_at: scannedAt,
      recorded_at: new Date(nowMs).toISOString(),
      over_budget: overBudget,
      other: other
        ? {
            redemption_id: other.id,
            device_id: other.device_id,
            scanned_at: new Date(other.scanned_at_ms).toISOString(),
            offline: other.offline === 1,
          }
        : null,
    };
  }

  /**
   * Gives one scan's use back (see decideAnnulment for who may, and when). The use, the redemption's
   * annulled time and the annulment event commit in one transaction; a second annulment finds the first.
   */
  async annul(request: AnnulRequest): Promise<AnnulResult> {
    if (!(await this.ensureInitialized(request.ticketCode)))
      return { result: "refused", code: "ticket_not_found" };
    const nowMs = Date.now();
    const result = this.ctx.storage.transactionSync((): AnnulResult => {
      if (request.recorded) {
        this.sql.exec(
          "INSERT OR IGNORE INTO redemptions (id, function, device_id, scanned_at_ms) VALUES (?, ?, ?, ?)",
          request.redemptionId,
          request.recorded.fn,
          request.recorded.deviceId,
          request.recorded.scannedAtMs,
        );
      }
      const row = this.sql
        .exec<{ function: string; device_id: string; scanned_at_ms: number; annulled_at_ms: number | null }>(
          "SELECT function, device_id, scanned_at_ms, annulled_at_ms FROM redemptions WHERE id = ?",
          request.redemptionId,
        )
        .toArray()[0];
      const decision = decideAnnulment({
        redemption: row && {
          fn: row.function,
          deviceId: row.device_id,
          scannedAtMs: row.scanned_at_ms,
          annulledAtMs: row.annulled_at_ms,
        },
        deviceId: request.session.deviceId,
        canOverride: request.canOverride,
        hasReason: request.reason !== null,
        windowSeconds: request.windowSeconds,
        nowMs,
      });
      if (!decision.ok || !row) return { result: "refused", code: decision.ok ? "not_found" : decision.code };
      const [version] = this.sql
        .exec<{ version: number }>(
          "UPDATE entitlements SET remaining_uses = remaining_uses + 1, version = version + 1 " +
            "WHERE function = ? RETURNING version",
          row.function,
        )
        .toArray();
      if (!version) throw new Error("invariant: an accepted scan's function is one of the ticket's");
      this.sql.exec("UPDATE redemptions SET annulled_at_ms = ? WHERE id = ?", nowMs, request.redemptionId);
      const annulledAt = new Date(nowMs).toISOString();
      const entitlements = this.entitlements();
      const event: RedemptionAnnulled = {
        type: "redemption.annulled",
        redemption_id: request.redemptionId,
        ticket_code: request.ticketCode,
        function: row.function,
        remaining_uses: entitlements.find((e) => e.function === row.function)?.remaining_uses ?? 0,
        uses_version: version.version,
        operator_id: request.session.operatorId,
        session_id: request.session.sessionId,
        device_id: request.session.deviceId,
        reason: request.reason,
        ts: annulledAt,
      };
      this.events.add(event);
      return {
        result: "annulled",
        redemptionId: request.redemptionId,
        ticketCode: request.ticketCode,
        fn: row.function,
        annulledAt,
        entitlements,
        usesVersion: version.version,
      };
    });
    if (result.result === "annulled") {
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
    await bookAlarm(this.ctx.storage, Date.now() + OUTBOX_FLUSH_DELAY_MS);
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
    if (!(await this.events.send())) {
      await this.ctx.storage.setAlarm(Date.now() + OUTBOX_RETRY_MS);
      return;
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
    this.sql.exec("DELETE FROM offline_scans WHERE reconciled_at_ms <= ?", nowMs - OFFLINE_SCAN_RETENTION_MS);
    // Keys are kept a fixed time from their insertion, so rowid order is expiry order: the expired ones
    // are a prefix, found without an index (which every keyed scan would otherwise have to maintain).
    this.sql.exec(
      `DELETE FROM scan_keys WHERE rowid < coalesce(
         (SELECT rowid FROM scan_keys WHERE keep_until_ms > ? ORDER BY rowid LIMIT 1), ${Number.MAX_SAFE_INTEGER})`,
      nowMs,
    );
  }

  private async scheduleNextAlarm(): Promise<void> {
    // Changes committed while the alarm was sending: forward them at once.
    if (!this.events.isEmpty()) return this.ctx.storage.setAlarm(Date.now());
    const next = this.sql
      .exec<{ at: number | null }>(
        `SELECT MIN(at) AS at FROM (
           SELECT MIN(expires_at_ms) + ${RESENT_SCAN_GRACE_MS} AS at FROM spent_jtis
           UNION ALL SELECT MIN(reconciled_at_ms) + ${OFFLINE_SCAN_RETENTION_MS} FROM offline_scans
           UNION ALL SELECT keep_until_ms FROM (SELECT keep_until_ms FROM scan_keys ORDER BY rowid LIMIT 1))`,
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
  // Redemptions remembered before offline gates were all online ones.
  try {
    sql.exec("SELECT offline FROM redemptions LIMIT 0");
  } catch {
    sql.exec("ALTER TABLE redemptions ADD COLUMN offline INTEGER NOT NULL DEFAULT 0");
  }
  // Entitlements written before annulments existed have no version: their count starts from 0, which
  // the read model (moved only by a newer version) accepts from the next change on.
  try {
    sql.exec("SELECT version FROM entitlements LIMIT 0");
  } catch {
    sql.exec("ALTER TABLE entitlements ADD COLUMN version INTEGER NOT NULL DEFAULT 0");
  }
}
