-- The credits wallet. D1 is the ledger's source of truth; the wallet's Durable Object only orders the
-- requests of one user and remembers spent wallet-QR jtis. Every invariant below is a constraint or a
-- trigger that THROWS, so a violating statement rolls back its whole batch (D1 has no interactive
-- transactions, and a guard UPDATE matching 0 rows would not abort anything).
--
-- Never write to these tables with INSERT OR IGNORE / OR REPLACE: SQLite hands the outer statement's
-- conflict policy down to trigger bodies, which would turn the balance CHECKs into silent skips.

-- Append-only ledger. amount_cents is always positive; `direction` says which way it moves the balance
-- (PURCHASE and REFUND always credit, DEDUCT always debits, ADJUSTMENT either).
CREATE TABLE IF NOT EXISTS wallet_ledger (
  id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL,
  type TEXT NOT NULL CHECK (type IN ('PURCHASE', 'DEDUCT', 'REFUND', 'ADJUSTMENT')),
  direction TEXT NOT NULL CHECK (direction IN ('credit', 'debit')),
  amount_cents INTEGER NOT NULL CHECK (amount_cents > 0),
  currency TEXT NOT NULL,
  reference TEXT,
  -- Namespaced by operation and caller (e.g. `pos.deduct:<operator>:<key>`, `order:<order id>`), unique per
  -- user forever: no retry can ever post a second row, even after the stored HTTP outcome is purged.
  idempotency_key TEXT NOT NULL,
  reversal_of TEXT REFERENCES wallet_ledger (id),
  event_id TEXT,
  created_at TEXT NOT NULL,
  created_by TEXT NOT NULL,
  CONSTRAINT wallet_ledger_type_direction CHECK (
    (type IN ('PURCHASE', 'REFUND') AND direction = 'credit')
    OR (type = 'DEDUCT' AND direction = 'debit')
    OR type = 'ADJUSTMENT'),
  CONSTRAINT wallet_ledger_refund_reverses CHECK ((type = 'REFUND') = (reversal_of IS NOT NULL)),
  UNIQUE (user_id, idempotency_key)
);
-- A buyer's history, newest first, keyset-paged.
CREATE INDEX IF NOT EXISTS wallet_ledger_by_user ON wallet_ledger (user_id, created_at, id);
-- Reports and exports read a time range in (created_at, id) order, optionally for one event.
CREATE INDEX IF NOT EXISTS wallet_ledger_by_time ON wallet_ledger (created_at, id);
CREATE INDEX IF NOT EXISTS wallet_ledger_by_event ON wallet_ledger (event_id, created_at, id)
  WHERE event_id IS NOT NULL;

CREATE TRIGGER IF NOT EXISTS wallet_ledger_no_update
BEFORE UPDATE ON wallet_ledger
BEGIN
  SELECT RAISE(ABORT, 'wallet_ledger_append_only');
END;

CREATE TRIGGER IF NOT EXISTS wallet_ledger_no_delete
BEFORE DELETE ON wallet_ledger
BEGIN
  SELECT RAISE(ABORT, 'wallet_ledger_append_only');
END;

-- The balance and the credit held for pending orders, per user. Never written directly: the triggers
-- below move it in the very statement that appends a ledger row or places/resolves a hold, so it always
-- equals the signed sum of the ledger, and an overdraft fails the CHECK inside that statement.
CREATE TABLE IF NOT EXISTS wallet_balances (
  user_id TEXT PRIMARY KEY,
  balance_cents INTEGER NOT NULL DEFAULT 0,
  held_cents INTEGER NOT NULL DEFAULT 0,
  currency TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  CONSTRAINT wallet_balance_not_negative CHECK (balance_cents >= 0),
  CONSTRAINT wallet_holds_within_balance CHECK (held_cents >= 0 AND held_cents <= balance_cents)
);

-- What each DEDUCT has had refunded so far: the CHECK makes "refunds never exceed the original" a
-- constraint, so two refunds racing past the original cannot both commit.
CREATE TABLE IF NOT EXISTS wallet_refund_totals (
  deduct_id TEXT PRIMARY KEY REFERENCES wallet_ledger (id),
  original_cents INTEGER NOT NULL CHECK (original_cents > 0),
  refunded_cents INTEGER NOT NULL DEFAULT 0 CHECK (refunded_cents >= 0),
  CONSTRAINT wallet_refund_within_original CHECK (refunded_cents <= original_cents)
);

-- A refund must reverse a DEDUCT of the same wallet, in its currency.
CREATE TRIGGER IF NOT EXISTS wallet_ledger_refund_target
BEFORE INSERT ON wallet_ledger
WHEN NEW.type = 'REFUND' AND NOT EXISTS (
  SELECT 1 FROM wallet_ledger AS d
  WHERE d.id = NEW.reversal_of AND d.type = 'DEDUCT' AND d.user_id = NEW.user_id AND d.currency = NEW.currency)
BEGIN
  SELECT RAISE(ABORT, 'wallet_refund_target_invalid');
END;

CREATE TRIGGER IF NOT EXISTS wallet_ledger_moves_balance
AFTER INSERT ON wallet_ledger
BEGIN
  INSERT INTO wallet_balances (user_id, balance_cents, held_cents, currency, updated_at)
  SELECT NEW.user_id, 0, 0, NEW.currency, NEW.created_at
  WHERE NOT EXISTS (SELECT 1 FROM wallet_balances WHERE user_id = NEW.user_id);
  UPDATE wallet_balances
  SET balance_cents = balance_cents
        + CASE NEW.direction WHEN 'credit' THEN NEW.amount_cents ELSE -NEW.amount_cents END,
      updated_at = NEW.created_at
  WHERE user_id = NEW.user_id;
END;

CREATE TRIGGER IF NOT EXISTS wallet_ledger_opens_refund_total
AFTER INSERT ON wallet_ledger
WHEN NEW.type = 'DEDUCT'
BEGIN
  INSERT INTO wallet_refund_totals (deduct_id, original_cents, refunded_cents)
  VALUES (NEW.id, NEW.amount_cents, 0);
END;

CREATE TRIGGER IF NOT EXISTS wallet_ledger_counts_refund
AFTER INSERT ON wallet_ledger
WHEN NEW.type = 'REFUND'
BEGIN
  UPDATE wallet_refund_totals SET refunded_cents = refunded_cents + NEW.amount_cents
  WHERE deduct_id = NEW.reversal_of;
END;

-- Credit set aside for an order that is partly paid by card: PENDING while the order is, then POSTED (a
-- DEDUCT row is appended in the same batch) or VOIDED, exactly once. The order's settlement row already
-- makes that batch run once; the triggers make a second resolution throw regardless.
CREATE TABLE IF NOT EXISTS wallet_holds (
  id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL,
  order_id TEXT NOT NULL UNIQUE REFERENCES orders (id),
  amount_cents INTEGER NOT NULL CHECK (amount_cents > 0),
  currency TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('PENDING', 'POSTED', 'VOIDED')),
  created_at TEXT NOT NULL,
  resolved_at TEXT,
  CHECK ((status = 'PENDING') = (resolved_at IS NULL))
);

CREATE TRIGGER IF NOT EXISTS wallet_holds_start_pending
BEFORE INSERT ON wallet_holds
WHEN NEW.status <> 'PENDING'
BEGIN
  SELECT RAISE(ABORT, 'wallet_hold_must_start_pending');
END;

CREATE TRIGGER IF NOT EXISTS wallet_holds_place
AFTER INSERT ON wallet_holds
BEGIN
  INSERT INTO wallet_balances (user_id, balance_cents, held_cents, currency, updated_at)
  SELECT NEW.user_id, 0, 0, NEW.currency, NEW.created_at
  WHERE NOT EXISTS (SELECT 1 FROM wallet_balances WHERE user_id = NEW.user_id);
  UPDATE wallet_balances SET held_cents = held_cents + NEW.amount_cents, updated_at = NEW.created_at
  WHERE user_id = NEW.user_id;
END;

CREATE TRIGGER IF NOT EXISTS wallet_holds_resolve_once
BEFORE UPDATE ON wallet_holds
WHEN OLD.status <> 'PENDING' OR NEW.status = 'PENDING'
  OR NEW.user_id IS NOT OLD.user_id OR NEW.order_id IS NOT OLD.order_id
  OR NEW.amount_cents IS NOT OLD.amount_cents OR NEW.currency IS NOT OLD.currency
BEGIN
  SELECT RAISE(ABORT, 'wallet_hold_already_resolved');
END;

CREATE TRIGGER IF NOT EXISTS wallet_holds_release
AFTER UPDATE OF status ON wallet_holds
BEGIN
  UPDATE wallet_balances SET held_cents = held_cents - OLD.amount_cents, updated_at = NEW.resolved_at
  WHERE user_id = OLD.user_id;
END;

CREATE TRIGGER IF NOT EXISTS wallet_holds_no_delete
BEFORE DELETE ON wallet_holds
BEGIN
  SELECT RAISE(ABORT, 'wallet_holds_append_only');
END;

-- A buyer's request to add credit; the payment webhook with reference = id settles it once.
CREATE TABLE IF NOT EXISTS wallet_topups (
  id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL,
  amount_cents INTEGER NOT NULL CHECK (amount_cents > 0),
  currency TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('PENDING_PAYMENT', 'PAID', 'FAILED')),
  idempotency_key TEXT NOT NULL,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  UNIQUE (user_id, idempotency_key)
);

CREATE TRIGGER IF NOT EXISTS wallet_topups_settle_once
BEFORE UPDATE OF status ON wallet_topups
WHEN OLD.status <> 'PENDING_PAYMENT' OR NEW.status = 'PENDING_PAYMENT'
BEGIN
  SELECT RAISE(ABORT, 'wallet_topup_already_settled');
END;

-- Receipts for top-ups and POS deductions, written by the queue consumer under an id derived from the
-- transaction, so a redelivered message writes nothing new.
CREATE TABLE IF NOT EXISTS wallet_receipts (
  id TEXT PRIMARY KEY,
  transaction_id TEXT NOT NULL UNIQUE REFERENCES wallet_ledger (id),
  user_id TEXT NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('TOPUP', 'DEDUCTION')),
  amount_cents INTEGER NOT NULL,
  currency TEXT NOT NULL,
  reference TEXT,
  event_id TEXT,
  device_id TEXT,
  created_at TEXT NOT NULL,
  written_at TEXT NOT NULL,
  mailed_at TEXT
);
-- A POS lookup shows the wallet's last receipt at the terminal's event.
CREATE INDEX IF NOT EXISTS wallet_receipts_by_user_event ON wallet_receipts (user_id, event_id, created_at);
