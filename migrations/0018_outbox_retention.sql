-- Every audited action now commits an `audit.requested` row to the outbox (src/db/audit.ts), so sent rows
-- are pruned after a retention (src/db/outbox.ts, pruneSentOutbox); this index finds them in sent order.
CREATE INDEX IF NOT EXISTS outbox_sent ON outbox (sent_at) WHERE sent_at IS NOT NULL;
