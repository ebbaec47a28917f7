import type { LedgerDirection, LedgerType, WalletTransaction } from "../types/domain";

// The wallet object's own SQLite: the journal of record for one wallet. Every change of its money is a
// transfer here, decided and written in one `transactionSync` together with the balance it moves and the
// event that carries it to D1. Everything in this module is synchronous, so a caller composes these
// calls with no await between a check and the change it guards. Orchestration lives in ./wallet.ts.

/**
 * - `posted`: final; a ledger row, announced to D1 by its event. A reversal is a new transfer.
 * - `pending`: a debit set aside (an order's credits) until it is posted or voided, or until its timeout.
 * - `voided`: the pending debit was released; it never reaches the ledger.
 */
export type TransferStatus = "pending" | "posted" | "voided";

/** A transfer: the ledger row it is (or would be, once posted), and where it stands. */
export interface Transfer extends WalletTransaction {
  status: TransferStatus;
  /** When a pending transfer is looked at again (see WalletObject.alarm); null once resolved. */
  timeoutAtMs: number | null;
  /** Of a posted DEDUCT: how much of it later REFUND transfers returned. */
  refundedCents: number;
  /** A credit hold D1's `wallet_holds` placed before this wallet had an owner: D1 resolves it too. */
  legacyHold: boolean;
}

export interface NewTransfer {
  id: string;
  userId: string;
  type: LedgerType;
  direction: LedgerDirection;
  amountCents: number;
  currency: string;
  reference: string | null;
  reversalOf?: string | null;
  eventId?: string | null;
  idempotencyKey: string;
  createdBy: string;
  createdAt: string;
}

export interface StoredOutcome<T> {
  requestHash: string;
  transactionId: string | null;
  /** null once past retention: only the key, its request hash and its transaction are kept. */
  result: T | null;
}

/** A row of `transfers`: the transaction's own fields, then where it stands. */
type TransferRow = WalletTransaction &
  Record<string, SqlStorageValue> & {
    status: TransferStatus;
    timeout_at_ms: number | null;
    refunded_cents: number;
    legacy_hold: number;
  };

const TRANSFER_COLUMNS = `id, user_id, type, direction, amount_cents, currency, reference, reversal_of,
  event_id, idempotency_key, created_at, created_by, status, timeout_at_ms, refunded_cents, legacy_hold`;

export function toTransaction(transfer: WalletTransaction): WalletTransaction {
  return {
    id: transfer.id,
    user_id: transfer.user_id,
    type: transfer.type,
    direction: transfer.direction,
    amount_cents: transfer.amount_cents,
    currency: transfer.currency,
    reference: transfer.reference,
    reversal_of: transfer.reversal_of,
    event_id: transfer.event_id,
    idempotency_key: transfer.idempotency_key,
    created_at: transfer.created_at,
    created_by: transfer.created_by,
  };
}

function toTransfer(row: TransferRow): Transfer {
  return {
    ...toTransaction(row),
    status: row.status,
    timeoutAtMs: row.timeout_at_ms,
    refundedCents: row.refunded_cents,
    legacyHold: row.legacy_hold === 1,
  };
}

/** The wallet's totals; `balance` is the signed sum of posted transfers, `held` that of pending ones. */
export interface Account {
  balanceCents: number;
  heldCents: number;
  availableCents: number;
  updatedAt: string | null;
}

export class WalletJournal {
  private boundUserId: string | undefined;
  private opened = false;

  constructor(private readonly sql: SqlStorage) {
    sql.exec(`
      CREATE TABLE IF NOT EXISTS wallet (user_id TEXT PRIMARY KEY);
      CREATE TABLE IF NOT EXISTS account (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        -- The invariants every decision relies on, asserted by the store as well: a transaction that
        -- would break one throws and rolls back, whatever the code above believed.
        balance_cents INTEGER NOT NULL CHECK (balance_cents >= 0),
        held_cents INTEGER NOT NULL CHECK (held_cents >= 0 AND held_cents <= balance_cents),
        updated_at TEXT,
        opened_at TEXT NOT NULL);
      -- No AUTOINCREMENT: transfers are never deleted, and it would cost a write to sqlite_sequence on
      -- every deduction. Listing order is (created_at, id), never the rowid.
      CREATE TABLE IF NOT EXISTS transfers (
        id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL,
        type TEXT NOT NULL,
        direction TEXT NOT NULL CHECK (direction IN ('credit', 'debit')),
        amount_cents INTEGER NOT NULL CHECK (amount_cents > 0),
        currency TEXT NOT NULL,
        reference TEXT,
        reversal_of TEXT,
        event_id TEXT,
        -- The transfer's identity for every retry: a key makes at most one transfer, forever.
        idempotency_key TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL,
        created_by TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'posted', 'voided')),
        timeout_at_ms INTEGER,
        refunded_cents INTEGER NOT NULL DEFAULT 0 CHECK (refunded_cents >= 0 AND refunded_cents <= amount_cents),
        legacy_hold INTEGER NOT NULL DEFAULT 0,
        CHECK ((status = 'pending') = (timeout_at_ms IS NOT NULL)),
        -- Only debits wait: a credit is posted when it is known.
        CHECK (status = 'posted' OR direction = 'debit'));
      CREATE INDEX IF NOT EXISTS transfers_posted_newest ON transfers (created_at, id) WHERE status = 'posted';
      CREATE INDEX IF NOT EXISTS transfers_pending_by_timeout ON transfers (timeout_at_ms) WHERE status = 'pending';
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
    `);
  }

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

  /** Whether the journal holds the wallet's history yet (see ./wallet-opening.ts); once yes, always yes. */
  isOpen(): boolean {
    this.opened ||= this.sql.exec("SELECT 1 FROM account").toArray().length > 0;
    return this.opened;
  }

  /** Marks the journal complete: from here on it is the wallet's record, and D1 follows it. */
  open(now: Date): void {
    this.sql.exec(
      `UPDATE transfers SET refunded_cents = (
         SELECT coalesce(sum(r.amount_cents), 0) FROM transfers AS r
         WHERE r.type = 'REFUND' AND r.status = 'posted' AND r.reversal_of = transfers.id)
       WHERE type = 'DEDUCT' AND status = 'posted'`,
    );
    const totals = this.sql
      .exec<{ balance: number; held: number; updated_at: string | null }>(
        `SELECT
           coalesce(sum(CASE WHEN status = 'posted' AND direction = 'credit' THEN amount_cents
                             WHEN status = 'posted' THEN -amount_cents ELSE 0 END), 0) AS balance,
           coalesce(sum(CASE WHEN status = 'pending' THEN amount_cents ELSE 0 END), 0) AS held,
           max(CASE WHEN status = 'posted' THEN created_at END) AS updated_at
         FROM transfers`,
      )
      .one();
    this.sql.exec(
      "INSERT INTO account (id, balance_cents, held_cents, updated_at, opened_at) VALUES (1, ?, ?, ?, ?)",
      totals.balance,
      totals.held,
      totals.updated_at,
      now.toISOString(),
    );
    this.opened = true;
  }

  account(): Account {
    const row = this.sql
      .exec<{ balance_cents: number; held_cents: number; updated_at: string | null }>(
        "SELECT balance_cents, held_cents, updated_at FROM account",
      )
      .toArray()[0];
    if (!row) throw new Error("invariant: the wallet's journal is read only once it is open");
    return {
      balanceCents: row.balance_cents,
      heldCents: row.held_cents,
      availableCents: row.balance_cents - row.held_cents,
      updatedAt: row.updated_at,
    };
  }

  private move(balanceDelta: number, heldDelta: number, at: string | null): void {
    this.sql.exec(
      `UPDATE account SET balance_cents = balance_cents + ?, held_cents = held_cents + ?,
         updated_at = coalesce(?, updated_at)`,
      balanceDelta,
      heldDelta,
      at,
    );
  }

  /**
   * Copies a transfer from the wallet's earlier record (D1, or the object's old layout) while the journal
   * is being opened: nothing moves, `open` adds everything up once.
   */
  importTransfer(
    entry: NewTransfer,
    status: "posted" | "pending",
    timeoutAtMs: number | null,
    legacyHold: boolean,
  ): void {
    if (this.isOpen()) throw new Error("invariant: history is imported only before the journal opens");
    this.insert(entry, status, timeoutAtMs, legacyHold);
  }

  private insert(
    entry: NewTransfer,
    status: "posted" | "pending",
    timeoutAtMs: number | null,
    legacyHold: boolean,
  ): void {
    this.sql.exec(
      `INSERT INTO transfers (${TRANSFER_COLUMNS})
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?)`,
      entry.id,
      entry.userId,
      entry.type,
      entry.direction,
      entry.amountCents,
      entry.currency,
      entry.reference,
      entry.reversalOf ?? null,
      entry.eventId ?? null,
      entry.idempotencyKey,
      entry.createdAt,
      entry.createdBy,
      status,
      status === "pending" ? timeoutAtMs : null,
      legacyHold ? 1 : 0,
    );
  }

  hasTransfer(id: string): boolean {
    return this.sql.exec("SELECT 1 FROM transfers WHERE id = ?", id).toArray().length > 0;
  }

  /** Records a transfer. A posted one moves the balance, a pending one the held amount. */
  record(entry: NewTransfer, status: "posted" | "pending", timeoutAtMs: number | null = null): Transfer {
    this.insert(entry, status, timeoutAtMs, false);
    const signed = entry.direction === "credit" ? entry.amountCents : -entry.amountCents;
    if (status === "posted") {
      this.move(signed, 0, entry.createdAt);
      if (entry.type === "REFUND") this.countRefund(entry.reversalOf ?? "", entry.amountCents);
    } else {
      this.move(0, entry.amountCents, null);
    }
    // Built from what was written rather than read back: one statement less on every deduction.
    return {
      id: entry.id,
      user_id: entry.userId,
      type: entry.type,
      direction: entry.direction,
      amount_cents: entry.amountCents,
      currency: entry.currency,
      reference: entry.reference,
      reversal_of: entry.reversalOf ?? null,
      event_id: entry.eventId ?? null,
      idempotency_key: entry.idempotencyKey,
      created_at: entry.createdAt,
      created_by: entry.createdBy,
      status,
      timeoutAtMs: status === "pending" ? timeoutAtMs : null,
      refundedCents: 0,
      legacyHold: false,
    };
  }

  private countRefund(deductionId: string, amountCents: number): void {
    // RETURNING counts the rows matched; rowsWritten would count index writes too.
    const changed = this.sql
      .exec(
        `UPDATE transfers SET refunded_cents = refunded_cents + ?
       WHERE id = ? AND type = 'DEDUCT' AND status = 'posted' RETURNING id`,
        amountCents,
        deductionId,
      )
      .toArray().length;
    if (changed !== 1) throw new Error(`invariant: refund of ${deductionId}, which is no posted deduction`);
  }

  /** Posts a pending transfer at `at`: its hold becomes the debit. */
  post(transfer: Transfer, at: string): Transfer {
    this.resolve(transfer, "posted", at);
    this.move(-transfer.amount_cents, -transfer.amount_cents, at);
    return { ...transfer, status: "posted", created_at: at, timeoutAtMs: null };
  }

  /** Voids a pending transfer: its hold is released, and it never reaches the ledger. */
  void(transfer: Transfer): void {
    this.resolve(transfer, "voided", null);
    this.move(0, -transfer.amount_cents, null);
  }

  private resolve(transfer: Transfer, status: "posted" | "voided", at: string | null): void {
    const changed = this.sql
      .exec(
        `UPDATE transfers SET status = ?, timeout_at_ms = NULL, created_at = coalesce(?, created_at)
       WHERE id = ? AND status = 'pending' RETURNING id`,
        status,
        at,
        transfer.id,
      )
      .toArray().length;
    if (changed !== 1) throw new Error(`invariant: transfer ${transfer.id} is resolved once`);
  }

  /** Looks at a pending transfer again later. */
  postpone(transfer: Transfer, timeoutAtMs: number): void {
    this.sql.exec(
      "UPDATE transfers SET timeout_at_ms = ? WHERE id = ? AND status = 'pending'",
      timeoutAtMs,
      transfer.id,
    );
  }

  byKey(idempotencyKey: string): Transfer | undefined {
    const row = this.sql
      .exec<TransferRow>(
        `SELECT ${TRANSFER_COLUMNS} FROM transfers WHERE idempotency_key = ?`,
        idempotencyKey,
      )
      .toArray()[0];
    return row && toTransfer(row);
  }

  byId(id: string): Transfer | undefined {
    const row = this.sql
      .exec<TransferRow>(`SELECT ${TRANSFER_COLUMNS} FROM transfers WHERE id = ?`, id)
      .toArray()[0];
    return row && toTransfer(row);
  }

  /** Pending transfers whose timeout has come, oldest first. */
  timedOut(nowMs: number, limit: number): Transfer[] {
    return this.sql
      .exec<TransferRow>(
        `SELECT ${TRANSFER_COLUMNS} FROM transfers
         WHERE status = 'pending' AND timeout_at_ms <= ? ORDER BY timeout_at_ms LIMIT ?`,
        nowMs,
        limit,
      )
      .toArray()
      .map(toTransfer);
  }

  nextTimeout(): number | null {
    return (
      this.sql
        .exec<{ at: number | null }>(
          "SELECT min(timeout_at_ms) AS at FROM transfers WHERE status = 'pending'",
        )
        .toArray()[0]?.at ?? null
    );
  }

  /** One page of posted transfers, newest first, before the (created_at, id) position `before`. */
  postedPage(
    before: { createdAt: string; id: string } | undefined,
    limit: number,
  ): { transactions: WalletTransaction[]; next: { createdAt: string; id: string } | null } {
    const rows = this.sql
      .exec<TransferRow>(
        `SELECT ${TRANSFER_COLUMNS} FROM transfers
         WHERE status = 'posted' ${before ? "AND (created_at, id) < (?, ?)" : ""}
         ORDER BY created_at DESC, id DESC LIMIT ?`,
        ...(before ? [before.createdAt, before.id] : []),
        limit + 1,
      )
      .toArray();
    const page = rows.slice(0, limit);
    const last = page.at(-1);
    return {
      transactions: page.map((row) => toTransaction(row)),
      next: rows.length > limit && last ? { createdAt: last.created_at, id: last.id } : null,
    };
  }

  /** For reconciliation: how many transfers are posted, and when the newest was. */
  postedTotals(): { count: number; newestAt: string | null } {
    const row = this.sql
      .exec<{ count: number; newest: string | null }>(
        "SELECT count(*) AS count, max(created_at) AS newest FROM transfers WHERE status = 'posted'",
      )
      .one();
    return { count: row.count, newestAt: row.newest };
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

  jtiSpent(jti: string): boolean {
    return this.sql.exec("SELECT 1 FROM spent_jtis WHERE jti = ?", jti).toArray().length > 0;
  }

  spendJti(jti: string, ledgerKey: string, expiresAtMs: number): void {
    this.sql.exec(
      "INSERT INTO spent_jtis (jti, ledger_key, expires_at_ms) VALUES (?, ?, ?)",
      jti,
      ledgerKey,
      expiresAtMs,
    );
  }

  /**
   * Forgets what can no longer matter: jtis of expired tokens and POS outcomes past retention. A POS key
   * that made a transaction keeps its hash and transaction id for good, and its transfer keeps the key.
   */
  prune(nowMs: number, retentionMs: number): void {
    const cutoff = nowMs - retentionMs;
    this.sql.exec("DELETE FROM spent_jtis WHERE expires_at_ms <= ?", nowMs);
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
             UNION ALL SELECT MIN(created_at_ms) + ${retentionMs} FROM pos_outcomes WHERE result IS NOT NULL)`,
        )
        .toArray()[0]?.at ?? null
    );
  }
}
