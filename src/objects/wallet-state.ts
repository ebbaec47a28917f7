import type { LedgerRow } from "../db/wallet";
import type { WalletTransactionPosted } from "../queues/messages";
import type { ObjectOutbox } from "./object-outbox";

// The wallet object's own SQLite: what it knows of the wallet and what D1 has not seen yet. Everything
// here is synchronous, so a caller composes these calls inside one `transactionSync` with no await between
// the check and the change. Orchestration (flushes, RPCs, FIFO) lives in ./wallet.ts.

/**
 * The wallet as the object sees it: the last snapshot D1 gave it plus every pending change. It is never
 * more generous than the truth (see PendingKind), so a deduction it admits always fits in D1.
 */
export interface WalletView {
  balanceCents: number;
  heldCents: number;
  availableCents: number;
  /** The last change the view includes; null for a wallet that never moved. */
  updatedAt: string | null;
}

/**
 * - `unflushed`: a deduction decided here; its ledger row goes to D1 with the next flush.
 * - `reserved`: a debit or hold some D1 batch is about to make (an order's credits, an admin debit);
 *   counted until a snapshot that may include it has been read, so it is never counted zero times.
 * - `confirmed`: that batch committed; counted until a snapshot read after the confirmation replaces it.
 * Credits are never pending: they reach the view through the next snapshot, after they committed.
 */
type PendingKind = "unflushed" | "reserved" | "confirmed";

export interface Snapshot {
  balanceCents: number;
  heldCents: number;
  updatedAt: string | null;
}

export interface StoredOutcome<T> {
  requestHash: string;
  transactionId: string | null;
  /** null once past retention: only the key, its request hash and its transaction are kept. */
  result: T | null;
}

/** A deduction decided here and not yet flushed, with the event that announces it once it is in D1. */
export interface UnflushedDeduction {
  seq: number;
  row: LedgerRow;
  event: WalletTransactionPosted;
}

export class WalletState {
  constructor(
    private readonly sql: SqlStorage,
    /** Where a flush puts the events of the deductions it carried to D1. */
    private readonly events: ObjectOutbox,
  ) {
    sql.exec(`
      CREATE TABLE IF NOT EXISTS wallet (user_id TEXT PRIMARY KEY);
      CREATE TABLE IF NOT EXISTS snapshot (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        balance_cents INTEGER NOT NULL,
        held_cents INTEGER NOT NULL,
        updated_at TEXT,
        read_at_ms INTEGER NOT NULL,
        generation INTEGER NOT NULL,
        -- Σ of the pending rows below, kept with every change to them, so the view is one row read
        -- however many deductions wait for a flush.
        pending_balance INTEGER NOT NULL DEFAULT 0,
        pending_held INTEGER NOT NULL DEFAULT 0,
        pending_at TEXT);
      CREATE TABLE IF NOT EXISTS pending (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL CHECK (kind IN ('unflushed', 'reserved', 'confirmed')),
        balance_delta INTEGER NOT NULL CHECK (balance_delta <= 0),
        held_delta INTEGER NOT NULL CHECK (held_delta >= 0),
        reservation_key TEXT UNIQUE,
        ledger_row TEXT,
        event TEXT,
        expires_at_ms INTEGER,
        confirmed_generation INTEGER,
        created_at TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS pos_outcomes (
        ledger_key TEXT PRIMARY KEY,
        request_hash TEXT NOT NULL,
        transaction_id TEXT,
        result TEXT,
        created_at_ms INTEGER NOT NULL);
      CREATE INDEX IF NOT EXISTS pos_outcomes_to_prune ON pos_outcomes (created_at_ms) WHERE result IS NOT NULL;
      CREATE TABLE IF NOT EXISTS spent_jtis (
        jti TEXT PRIMARY KEY, ledger_key TEXT NOT NULL, expires_at_ms INTEGER NOT NULL);
      CREATE INDEX IF NOT EXISTS spent_jtis_by_expiry ON spent_jtis (expires_at_ms);
      CREATE TABLE IF NOT EXISTS operations (
        ledger_key TEXT PRIMARY KEY, result TEXT NOT NULL, created_at_ms INTEGER NOT NULL);
      CREATE INDEX IF NOT EXISTS operations_by_age ON operations (created_at_ms);
    `);
  }

  /** The user this object serves, once read: it never changes, so a request does not re-read it. */
  private boundUserId: string | undefined;
  private snapshotWritten = false;

  /** A wallet object serves exactly one user; it is addressed by the user id, so this only guards bugs. */
  bindTo(userId: string): void {
    const bound = this.boundUser();
    if (bound === undefined) {
      this.sql.exec("INSERT INTO wallet (user_id) VALUES (?)", userId);
      this.boundUserId = userId;
    } else if (bound !== userId) {
      throw new Error("invariant: a wallet object serves exactly one user");
    }
  }

  boundUser(): string | undefined {
    this.boundUserId ??= this.sql
      .exec<{ user_id: string }>("SELECT user_id FROM wallet")
      .toArray()[0]?.user_id;
    return this.boundUserId;
  }

  /** Once written, the snapshot row is only ever updated, so a yes is remembered. */
  hasSnapshot(): boolean {
    this.snapshotWritten ||= this.sql.exec("SELECT 1 FROM snapshot").toArray().length > 0;
    return this.snapshotWritten;
  }

  view(): WalletView {
    const row = this.sql
      .exec<{ balance: number; held: number; snapshot_at: string | null; pending_at: string | null }>(
        `SELECT balance_cents + pending_balance AS balance, held_cents + pending_held AS held,
                updated_at AS snapshot_at, pending_at
         FROM snapshot`,
      )
      .toArray()[0];
    if (!row) throw new Error("invariant: the wallet's view needs a snapshot first");
    const updatedAt =
      row.pending_at !== null && (row.snapshot_at === null || row.pending_at > row.snapshot_at)
        ? row.pending_at
        : row.snapshot_at;
    return {
      balanceCents: row.balance,
      heldCents: row.held,
      availableCents: row.balance - row.held,
      updatedAt,
    };
  }

  /** Recounts the pending totals after rows left `pending` (a flush, a release). */
  private recountPending(): void {
    this.sql.exec(
      `UPDATE snapshot SET
         pending_balance = (SELECT COALESCE(SUM(balance_delta), 0) FROM pending),
         pending_held = (SELECT COALESCE(SUM(held_delta), 0) FROM pending),
         pending_at = (SELECT MAX(created_at) FROM pending WHERE kind = 'unflushed')`,
    );
  }

  /** Adds one pending row's change to the totals; the snapshot exists (a view was read to decide it). */
  private countPending(
    change: { balanceDelta: number; heldDelta: number },
    unflushedAt: string | null,
  ): void {
    const changed = this.sql.exec(
      `UPDATE snapshot SET pending_balance = pending_balance + ?, pending_held = pending_held + ?,
         pending_at = COALESCE(?, pending_at)`,
      change.balanceDelta,
      change.heldDelta,
      unflushedAt,
    ).rowsWritten;
    if (changed < 1) throw new Error("invariant: a pending change needs a snapshot");
  }

  /** The flush generation: bumped as each flush begins, so a confirmation can be placed before or after it. */
  generation(): number {
    return (
      this.sql.exec<{ generation: number }>("SELECT generation FROM snapshot").toArray()[0]?.generation ?? 0
    );
  }

  beginFlush(): number {
    const next = this.generation() + 1;
    this.sql.exec("UPDATE snapshot SET generation = ?", next);
    return next;
  }

  /**
   * What D1 reported after a flush whose generation is `generation`: the carried rows are in it, and so is
   * every confirmation made before that flush began, and every reservation that had expired by then (it
   * is in D1 now or never will be).
   */
  applySnapshot(
    snapshot: Snapshot,
    flushed: { generation: number; carriedSeqs: number[]; expiredSeqs: number[]; readAtMs: number },
  ): void {
    this.sql.exec(
      `INSERT INTO snapshot (id, balance_cents, held_cents, updated_at, read_at_ms, generation)
       VALUES (1, ?, ?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET balance_cents = excluded.balance_cents,
         held_cents = excluded.held_cents, updated_at = excluded.updated_at, read_at_ms = excluded.read_at_ms`,
      snapshot.balanceCents,
      snapshot.heldCents,
      snapshot.updatedAt,
      flushed.readAtMs,
      flushed.generation,
    );
    const carried = JSON.stringify(flushed.carriedSeqs);
    const events = this.sql
      .exec<{ event: string | null }>(
        "SELECT event FROM pending WHERE seq IN (SELECT value FROM json_each(?)) ORDER BY seq",
        carried,
      )
      .toArray();
    for (const { event } of events) {
      if (event !== null) this.events.addSerialized(event);
    }
    this.sql.exec("DELETE FROM pending WHERE seq IN (SELECT value FROM json_each(?))", carried);
    this.sql.exec(
      "DELETE FROM pending WHERE kind = 'reserved' AND seq IN (SELECT value FROM json_each(?))",
      JSON.stringify(flushed.expiredSeqs),
    );
    this.sql.exec(
      "DELETE FROM pending WHERE kind = 'confirmed' AND confirmed_generation < ?",
      flushed.generation,
    );
    this.recountPending();
  }

  appendDeduction(row: LedgerRow, event: WalletTransactionPosted): void {
    this.sql.exec(
      `INSERT INTO pending (kind, balance_delta, held_delta, ledger_row, event, created_at)
       VALUES ('unflushed', ?, 0, ?, ?, ?)`,
      -row.amountCents,
      JSON.stringify(row),
      JSON.stringify(event),
      row.createdAt,
    );
    this.countPending({ balanceDelta: -row.amountCents, heldDelta: 0 }, row.createdAt);
  }

  unflushed(limit: number): UnflushedDeduction[] {
    return this.sql
      .exec<{ seq: number; ledger_row: string; event: string }>(
        "SELECT seq, ledger_row, event FROM pending WHERE kind = 'unflushed' ORDER BY seq LIMIT ?",
        limit,
      )
      .toArray()
      .map((row) => ({
        seq: row.seq,
        row: JSON.parse(row.ledger_row) as LedgerRow,
        event: JSON.parse(row.event) as WalletTransactionPosted,
      }));
  }

  /** Changes of any kind that D1 may not show yet (or that a batch outside the object is about to make). */
  pendingCount(): number {
    return this.sql.exec<{ n: number }>("SELECT count(*) AS n FROM pending").one().n;
  }

  hasUnflushed(): boolean {
    return this.sql.exec("SELECT 1 FROM pending WHERE kind = 'unflushed' LIMIT 1").toArray().length > 0;
  }

  /** Reservations past their expiry, judged now, before the flush that may drop them reads its snapshot. */
  expiredReservations(nowMs: number): number[] {
    return this.sql
      .exec<{ seq: number }>("SELECT seq FROM pending WHERE kind = 'reserved' AND expires_at_ms <= ?", nowMs)
      .toArray()
      .map((row) => row.seq);
  }

  /** The earliest moment a reservation expires, for the alarm. */
  nextReservationExpiry(): number | null {
    return (
      this.sql
        .exec<{ at: number | null }>("SELECT MIN(expires_at_ms) AS at FROM pending WHERE kind = 'reserved'")
        .toArray()[0]?.at ?? null
    );
  }

  findReservation(key: string): { kind: PendingKind; balanceDelta: number; heldDelta: number } | undefined {
    const row = this.sql
      .exec<{ kind: PendingKind; balance_delta: number; held_delta: number }>(
        "SELECT kind, balance_delta, held_delta FROM pending WHERE reservation_key = ?",
        key,
      )
      .toArray()[0];
    return row && { kind: row.kind, balanceDelta: row.balance_delta, heldDelta: row.held_delta };
  }

  reserve(
    key: string,
    change: { balanceDelta: number; heldDelta: number },
    expiresAtMs: number,
    now: Date,
  ): void {
    this.sql.exec(
      `INSERT INTO pending (kind, balance_delta, held_delta, reservation_key, expires_at_ms, created_at)
       VALUES ('reserved', ?, ?, ?, ?, ?)`,
      change.balanceDelta,
      change.heldDelta,
      key,
      expiresAtMs,
      now.toISOString(),
    );
    this.countPending(change, null);
  }

  /** The reserving batch committed. Returns false when there is no reservation under `key` (any more). */
  confirm(key: string): boolean {
    return (
      this.sql.exec(
        "UPDATE pending SET kind = 'confirmed', confirmed_generation = ? WHERE reservation_key = ? AND kind = 'reserved'",
        this.generation(),
        key,
      ).rowsWritten > 0
    );
  }

  /** The reserving batch did not commit: the reservation goes. */
  release(key: string): void {
    if (
      this.sql.exec("DELETE FROM pending WHERE reservation_key = ? AND kind = 'reserved'", key).rowsWritten >
      0
    ) {
      this.recountPending();
    }
  }

  posOutcome<T>(ledgerKey: string): StoredOutcome<T> | undefined {
    const row = this.sql
      .exec<{ request_hash: string; transaction_id: string | null; result: string | null }>(
        "SELECT request_hash, transaction_id, result FROM pos_outcomes WHERE ledger_key = ?",
        ledgerKey,
      )
      .toArray()[0];
    return (
      row && {
        requestHash: row.request_hash,
        transactionId: row.transaction_id,
        result: row.result === null ? null : (JSON.parse(row.result) as T),
      }
    );
  }

  storePosOutcome(
    ledgerKey: string,
    outcome: { requestHash: string; transactionId: string | null; result: unknown },
    nowMs: number,
  ): void {
    this.sql.exec(
      `INSERT INTO pos_outcomes (ledger_key, request_hash, transaction_id, result, created_at_ms)
       VALUES (?, ?, ?, ?, ?)`,
      ledgerKey,
      outcome.requestHash,
      outcome.transactionId,
      JSON.stringify(outcome.result),
      nowMs,
    );
  }

  jtiSpentBy(jti: string): string | undefined {
    return this.sql
      .exec<{ ledger_key: string }>("SELECT ledger_key FROM spent_jtis WHERE jti = ?", jti)
      .toArray()[0]?.ledger_key;
  }

  spendJti(jti: string, ledgerKey: string, expiresAtMs: number): void {
    this.sql.exec(
      "INSERT INTO spent_jtis (jti, ledger_key, expires_at_ms) VALUES (?, ?, ?)",
      jti,
      ledgerKey,
      expiresAtMs,
    );
  }

  previousResult<T>(ledgerKey: string): T | undefined {
    const row = this.sql
      .exec<{ result: string }>("SELECT result FROM operations WHERE ledger_key = ?", ledgerKey)
      .toArray()[0];
    return row ? (JSON.parse(row.result) as T) : undefined;
  }

  remember(ledgerKey: string, result: unknown, nowMs: number): void {
    this.sql.exec(
      "INSERT OR REPLACE INTO operations (ledger_key, result, created_at_ms) VALUES (?, ?, ?)",
      ledgerKey,
      JSON.stringify(result),
      nowMs,
    );
  }

  /**
   * Forgets what can no longer matter: jtis of expired tokens, RPC results past retention, and POS outcomes
   * past retention. A POS key that made a transaction keeps its hash and transaction id for good: the
   * ledger's uniqueness on the key is forever, and a late retry is answered from the ledger.
   */
  prune(nowMs: number, retentionMs: number): void {
    const cutoff = nowMs - retentionMs;
    this.sql.exec("DELETE FROM spent_jtis WHERE expires_at_ms <= ?", nowMs);
    this.sql.exec("DELETE FROM operations WHERE created_at_ms <= ?", cutoff);
    this.sql.exec(
      "DELETE FROM pos_outcomes WHERE created_at_ms <= ? AND result IS NOT NULL AND transaction_id IS NULL",
      cutoff,
    );
    this.sql.exec(
      "UPDATE pos_outcomes SET result = NULL WHERE created_at_ms <= ? AND result IS NOT NULL",
      cutoff,
    );
  }

  /** The next moment prune has something to forget, or null. */
  nextPruneAt(retentionMs: number): number | null {
    return (
      this.sql
        .exec<{ at: number | null }>(
          `SELECT MIN(at) AS at FROM (
             SELECT MIN(expires_at_ms) AS at FROM spent_jtis
             UNION ALL SELECT MIN(created_at_ms) + ${retentionMs} FROM operations
             UNION ALL SELECT MIN(created_at_ms) + ${retentionMs} FROM pos_outcomes WHERE result IS NOT NULL)`,
        )
        .toArray()[0]?.at ?? null
    );
  }
}
