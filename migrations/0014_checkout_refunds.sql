-- Hosted checkout (Stripe Checkout) and refunds of payments that arrived for something already settled.

-- Which provider took a payment: a refund goes back through the same one. Rows before this migration came
-- from the Standard Webhooks gateway.
ALTER TABLE payments ADD COLUMN provider TEXT NOT NULL DEFAULT 'standard' CHECK (provider IN ('standard', 'stripe'));

-- One hosted checkout session per order or top-up. The reference is the key, so a second click (or a
-- parallel one) finds the first session instead of opening another; the provider's idempotency key is
-- derived from the same reference, so even two requests that both reach the provider get one session.
CREATE TABLE IF NOT EXISTS checkout_sessions (
  reference TEXT PRIMARY KEY,
  provider TEXT NOT NULL CHECK (provider IN ('stripe')),
  session_id TEXT NOT NULL UNIQUE,
  url TEXT NOT NULL,
  amount_cents INTEGER NOT NULL CHECK (amount_cents > 0),
  currency TEXT NOT NULL,
  expires_at TEXT NOT NULL,
  created_at TEXT NOT NULL,
  -- Set once the page can take no more money: its order was settled or expired, and the page was closed
  -- at the provider (so a buyer cannot pay an expired order there), or it lapsed by itself.
  closed_at TEXT
);
-- The every-minute sweep looks only at orders' pages still open (a top-up's page is never closed early:
-- it holds nothing, so it would otherwise stay in this index for ever).
CREATE INDEX IF NOT EXISTS checkout_sessions_open_orders ON checkout_sessions (created_at)
WHERE closed_at IS NULL AND substr(reference, 1, 4) = 'ord_';

-- Which attempt at opening a reference's page is current. Stripe stores the first answer to an
-- idempotency key for 24 hours, failures included: a request that failed once would fail again under the
-- same key. So a failed attempt moves the key on (`checkout:<reference>:<attempt>`); clicks that race still
-- share one attempt, hence one key and one session. A session an abandoned attempt may have created was
-- never handed to anyone, so nobody can pay on it.
CREATE TABLE IF NOT EXISTS checkout_attempts (
  reference TEXT PRIMARY KEY,
  attempt INTEGER NOT NULL CHECK (attempt >= 1)
);

-- A refund of a payment owed one (payments.needs_refund). The payment id is the key: a payment is
-- refunded at most once, however often an admin presses the button. `requested` is written before the
-- provider is called, so a crash between the two is finished by the next attempt, under the same
-- provider idempotency key. `issued`: the provider accepted it (provider_refund_id). `failed`: it
-- refused (failure); a later attempt tries again. `recorded`: the standard gateway has no refund API, so
-- the admin refunds in its dashboard and notes it here.
CREATE TABLE IF NOT EXISTS payment_refunds (
  payment_id TEXT PRIMARY KEY REFERENCES payments (payment_id),
  provider TEXT NOT NULL CHECK (provider IN ('standard', 'stripe')),
  status TEXT NOT NULL CHECK (status IN ('requested', 'issued', 'failed', 'recorded')),
  amount_cents INTEGER NOT NULL CHECK (amount_cents > 0),
  currency TEXT NOT NULL,
  provider_refund_id TEXT,
  failure TEXT,
  -- The current attempt, as in checkout_attempts: the provider's key is `refund:<payment_id>:<attempt>`,
  -- and an attempt after a failed one first looks for a refund the earlier one may have made.
  attempt INTEGER NOT NULL DEFAULT 1 CHECK (attempt >= 1),
  requested_by TEXT NOT NULL,
  note TEXT,
  requested_at TEXT NOT NULL,
  completed_at TEXT
);
