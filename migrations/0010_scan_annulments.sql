-- Scans can be given back (POST /redemptions/{id}/annul). Nothing is deleted: the redemption stays and is
-- marked annulled, and reports count only redemptions that were not.

-- The ticket object's count of changes to a function's uses. Annulments move remaining_uses up, so the
-- read model can no longer just take the lowest count it hears of: it takes the state with the newest
-- version, in any delivery order. 0 for rows only ever lowered by events written before versions existed.
ALTER TABLE ticket_entitlements ADD COLUMN uses_version INTEGER NOT NULL DEFAULT 0;

ALTER TABLE redemptions ADD COLUMN annulled_at TEXT;

-- Annulments as they arrive. The queue is unordered, so an annulment may come before the redemption it
-- annuls; a redemption inserted later takes its annulled_at from here.
CREATE TABLE IF NOT EXISTS redemption_annulments (
  redemption_id TEXT PRIMARY KEY,
  annulled_at TEXT NOT NULL,
  operator_id TEXT NOT NULL,
  session_id TEXT NOT NULL,
  device_id TEXT NOT NULL,
  reason TEXT
);

-- The reports' covering index now carries annulled_at, so counting the redemptions that stand still
-- reads one index range and never the table.
DROP INDEX IF EXISTS redemptions_by_ts_function_location;
CREATE INDEX IF NOT EXISTS redemptions_by_ts_function_location_annulled
  ON redemptions (ts, function, location_id, annulled_at);
