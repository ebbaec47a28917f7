-- Payments from the gateway's webhook, tickets with their entitlements, receipts, and the outbox that
-- carries events from a committed batch to the queue. As in 0001, invariants are constraints that throw,
-- so a violating statement rolls back its whole batch.

-- One row per payment the gateway told us about. Both delivery keys are unique: a redelivery (same
-- webhook-id) or a second message about the same payment (same payment_id) fails on insert, and since the
-- insert shares a batch with the payment's effects, those roll back with it.
CREATE TABLE IF NOT EXISTS payments (
  payment_id TEXT PRIMARY KEY,
  webhook_id TEXT NOT NULL UNIQUE,
  reference TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('SUCCESS', 'FAILED')),
  amount_cents INTEGER NOT NULL CHECK (amount_cents >= 0),
  currency TEXT NOT NULL,
  outcome TEXT NOT NULL CHECK (outcome IN ('processed', 'ignored')),
  -- Money arrived for something we can no longer deliver (expired or already settled order).
  needs_refund INTEGER NOT NULL DEFAULT 0 CHECK (needs_refund IN (0, 1)),
  received_at TEXT NOT NULL,
  CHECK (needs_refund = 0 OR status = 'SUCCESS')
);
CREATE INDEX IF NOT EXISTS payments_by_reference ON payments (reference);
CREATE INDEX IF NOT EXISTS payments_needing_refund ON payments (received_at) WHERE needs_refund = 1;

-- Payments that did not match what was due: nothing was applied, a human decides. One row per payment.
CREATE TABLE IF NOT EXISTS payment_reviews (
  payment_id TEXT PRIMARY KEY,
  webhook_id TEXT NOT NULL,
  reference TEXT NOT NULL,
  reason TEXT NOT NULL CHECK (reason IN ('amount_mismatch')),
  amount_cents INTEGER NOT NULL,
  currency TEXT NOT NULL,
  expected_amount_cents INTEGER NOT NULL,
  expected_currency TEXT NOT NULL,
  received_at TEXT NOT NULL
);

-- One ticket per unit bought. (order_id, seq) is unique, so however issuance interleaves, an order can
-- never get a second set of tickets; the code is the random, human-typable identifier.
CREATE TABLE IF NOT EXISTS tickets (
  code TEXT PRIMARY KEY,
  order_id TEXT NOT NULL REFERENCES orders (id),
  seq INTEGER NOT NULL CHECK (seq >= 1),
  product_id TEXT NOT NULL REFERENCES products (id),
  user_id TEXT NOT NULL,
  issued_at TEXT NOT NULL,
  UNIQUE (order_id, seq)
);
CREATE INDEX IF NOT EXISTS tickets_by_user ON tickets (user_id, issued_at);

-- The read model of each ticket's uses. The redemption slice makes the ticket's Durable Object the source
-- of truth and keeps these rows in step.
CREATE TABLE IF NOT EXISTS ticket_entitlements (
  ticket_code TEXT NOT NULL REFERENCES tickets (code),
  function TEXT NOT NULL,
  total_uses INTEGER NOT NULL CHECK (total_uses >= 1),
  remaining_uses INTEGER NOT NULL CHECK (remaining_uses >= 0 AND remaining_uses <= total_uses),
  PRIMARY KEY (ticket_code, function)
);

-- Events written in the same batch as the state change they announce, then sent to the queue. A row whose
-- send failed stays unsent and the every-minute cron sends it again.
CREATE TABLE IF NOT EXISTS outbox (
  id TEXT PRIMARY KEY,
  payload TEXT NOT NULL,
  created_at TEXT NOT NULL,
  sent_at TEXT
);
CREATE INDEX IF NOT EXISTS outbox_unsent ON outbox (created_at) WHERE sent_at IS NULL;

-- One receipt per paid order, written by the queue consumer under a key derived from the order, so a
-- redelivered message writes nothing new.
CREATE TABLE IF NOT EXISTS receipts (
  id TEXT PRIMARY KEY,
  order_id TEXT NOT NULL UNIQUE REFERENCES orders (id),
  user_id TEXT NOT NULL,
  total_cents INTEGER NOT NULL,
  amount_paid_cents INTEGER NOT NULL,
  currency TEXT NOT NULL,
  -- JSON array of { product_id, product_name, quantity, unit_price_cents }.
  lines TEXT NOT NULL,
  paid_at TEXT NOT NULL,
  created_at TEXT NOT NULL,
  -- Set once the mailer accepted it, so a redelivery does not mail the buyer again.
  mailed_at TEXT
);
