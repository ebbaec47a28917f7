-- Indexes for two staff listings, so each stays one index range scan however large the tables grow.

-- GET /admin/audit?action=…&actor=…: entries of one action (or one actor) in a time range, in chain order.
-- The keyset cursor is (ts, seq), so both columns follow the filter's.
CREATE INDEX IF NOT EXISTS audit_log_by_action ON audit_log (action, ts, seq);
CREATE INDEX IF NOT EXISTS audit_log_by_actor ON audit_log (actor, ts, seq);

-- GET /pos/sessions/{session_id}/sales: a till's deduction receipts since its session opened, newest first.
CREATE INDEX IF NOT EXISTS wallet_receipts_by_device ON wallet_receipts (device_id, created_at, transaction_id)
WHERE device_id IS NOT NULL;

-- …and the refunds of those deductions. Only REFUND rows carry reversal_of, so the index stays small.
CREATE INDEX IF NOT EXISTS wallet_ledger_by_reversal ON wallet_ledger (reversal_of)
WHERE reversal_of IS NOT NULL;
