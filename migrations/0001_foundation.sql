-- Foundation: catalog, orders with inventory reservations, idempotency records, operators.
-- Invariants live in the schema so that a violating statement throws and rolls back its whole batch
-- (D1 has no interactive transactions, and a guard UPDATE matching 0 rows does not abort a batch).

CREATE TABLE IF NOT EXISTS products (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  description TEXT NOT NULL DEFAULT '',
  price_cents INTEGER NOT NULL CHECK (price_cents >= 0),
  currency TEXT NOT NULL,
  -- JSON array of { function, uses }: the entitlements each ticket of this product carries.
  functions TEXT NOT NULL,
  sellable INTEGER NOT NULL CHECK (sellable >= 0),
  reserved INTEGER NOT NULL DEFAULT 0 CHECK (reserved >= 0),
  sold INTEGER NOT NULL DEFAULT 0 CHECK (sold >= 0),
  active INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  CONSTRAINT inventory_within_sellable CHECK (reserved + sold <= sellable)
);

CREATE TABLE IF NOT EXISTS orders (
  id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('PENDING_PAYMENT', 'PAID', 'PAYMENT_FAILED', 'EXPIRED')),
  total_cents INTEGER NOT NULL CHECK (total_cents >= 0),
  credits_applied_cents INTEGER NOT NULL DEFAULT 0 CHECK (credits_applied_cents >= 0),
  amount_due_cents INTEGER NOT NULL CHECK (amount_due_cents >= 0),
  currency TEXT NOT NULL,
  created_at TEXT NOT NULL,
  expires_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  -- The buyer's Idempotency-Key: unique per buyer forever, so no retry can ever create a second order,
  -- even after the stored response has been purged.
  idempotency_key TEXT NOT NULL,
  CHECK (credits_applied_cents + amount_due_cents = total_cents),
  UNIQUE (user_id, idempotency_key)
);
CREATE INDEX IF NOT EXISTS orders_by_user ON orders (user_id, created_at);
-- The expiry sweep scans only pending orders, oldest deadline first.
CREATE INDEX IF NOT EXISTS orders_pending_by_deadline ON orders (expires_at) WHERE status = 'PENDING_PAYMENT';

CREATE TABLE IF NOT EXISTS order_items (
  order_id TEXT NOT NULL REFERENCES orders (id),
  product_id TEXT NOT NULL REFERENCES products (id),
  quantity INTEGER NOT NULL CHECK (quantity BETWEEN 1 AND 20),
  unit_price_cents INTEGER NOT NULL CHECK (unit_price_cents >= 0),
  PRIMARY KEY (order_id, product_id)
);

-- An order leaves PENDING_PAYMENT exactly once. Every terminal transition inserts here in the same
-- batch as its effects, so a second attempt (a duplicate webhook, a second sweep) fails on the
-- primary key and rolls back with everything it would have done twice.
CREATE TABLE IF NOT EXISTS order_settlements (
  order_id TEXT PRIMARY KEY REFERENCES orders (id),
  outcome TEXT NOT NULL CHECK (outcome IN ('PAID', 'PAYMENT_FAILED', 'EXPIRED')),
  settled_at TEXT NOT NULL
);

-- Stored outcomes of idempotent requests, keyed by (caller + operation, key).
CREATE TABLE IF NOT EXISTS idempotency_records (
  scope TEXT NOT NULL,
  idempotency_key TEXT NOT NULL,
  request_hash TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('IN_PROGRESS', 'DONE')),
  response_status INTEGER,
  response_body TEXT,
  created_at TEXT NOT NULL,
  -- A request that crashed mid-flight leaves IN_PROGRESS behind; after this instant a retry may take over.
  locked_until TEXT NOT NULL,
  PRIMARY KEY (scope, idempotency_key)
);
CREATE INDEX IF NOT EXISTS idempotency_records_by_age ON idempotency_records (created_at);

CREATE TABLE IF NOT EXISTS operators (
  id TEXT PRIMARY KEY,
  username TEXT NOT NULL UNIQUE COLLATE NOCASE,
  password_hash TEXT NOT NULL,
  roles TEXT NOT NULL,
  event_ids TEXT NOT NULL DEFAULT '[]',
  active INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
  created_at TEXT NOT NULL
);

-- Failed logins per username inside a sliding window; used to throttle guessing.
CREATE TABLE IF NOT EXISTS login_throttle (
  username TEXT PRIMARY KEY COLLATE NOCASE,
  failures INTEGER NOT NULL,
  window_started_at TEXT NOT NULL
);
