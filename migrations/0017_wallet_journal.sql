-- The wallet's Durable Object keeps each wallet's journal of record (src/objects/wallet-journal.ts); D1's
-- wallet_ledger is now its complete, append-only global copy, appended by the queue consumer once per
-- transaction id. `projected_at` says when a row arrived, so the copy's lag behind the journal is measured
-- (GET /reports/transactions) instead of assumed. Rows from before have none.
ALTER TABLE wallet_ledger ADD COLUMN projected_at TEXT;
CREATE INDEX IF NOT EXISTS wallet_ledger_by_projection ON wallet_ledger (projected_at) WHERE projected_at IS NOT NULL;
