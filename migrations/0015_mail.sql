-- Receipts that are really sent: the buyer's address, what each mailer sent, and receipts for POS refunds.

-- The buyer's address as their identity provider last gave it (the optional OIDC `email` claim), written
-- with the order or top-up the buyer starts. The queue consumer reads it when it mails a receipt.
CREATE TABLE IF NOT EXISTS buyer_contacts (
  user_id TEXT PRIMARY KEY,
  email TEXT NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
  updated_at TEXT NOT NULL
);

-- Every email a mailer handed over, written once the provider accepted it. `id` is the receipt's id, which
-- is also the provider's idempotency key: a resend after a crash finds this row instead of adding one.
-- The development page /dev/messages lists the newest.
CREATE TABLE IF NOT EXISTS email_messages (
  id TEXT PRIMARY KEY,
  recipient TEXT NOT NULL,
  subject TEXT NOT NULL,
  text TEXT NOT NULL,
  html TEXT NOT NULL,
  provider TEXT NOT NULL CHECK (provider IN ('log', 'resend')),
  provider_message_id TEXT,
  sent_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS email_messages_by_sent_at ON email_messages (sent_at);

-- A receipt whose buyer has no known address is not an error, and no retry would find one: it is marked
-- here instead of mailed_at, so that it is neither mailed nor tried again.
ALTER TABLE receipts ADD COLUMN mail_skipped_at TEXT;
ALTER TABLE wallet_receipts ADD COLUMN mail_skipped_at TEXT;

-- Receipts of POS refunds (the `wallet.refunded` event). Not in wallet_receipts: its `kind` CHECK allows
-- only TOPUP and DEDUCTION, and SQLite cannot alter a CHECK without rebuilding the table (and its indexes,
-- which the tills' sales listing reads). The id is derived from the refund's transaction like the others'.
CREATE TABLE IF NOT EXISTS refund_receipts (
  id TEXT PRIMARY KEY,
  transaction_id TEXT NOT NULL UNIQUE REFERENCES wallet_ledger (id),
  user_id TEXT NOT NULL,
  -- The DEDUCT this refund reverses.
  reversal_of TEXT NOT NULL REFERENCES wallet_ledger (id),
  amount_cents INTEGER NOT NULL CHECK (amount_cents > 0),
  currency TEXT NOT NULL,
  reference TEXT,
  event_id TEXT,
  created_at TEXT NOT NULL,
  written_at TEXT NOT NULL,
  mailed_at TEXT,
  mail_skipped_at TEXT
);
