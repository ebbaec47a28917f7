-- Offline gates (CONTRACT Part 2, "Offline gates with a bounded risk").

-- A redemption a gate decided without the network and uploaded later: dated when the holder went in,
-- counted once like any other.
ALTER TABLE redemptions ADD COLUMN offline INTEGER NOT NULL DEFAULT 0;

-- When the read model last moved a ticket+function's count, so an offline kit can send only what changed
-- since the gate's last one. NULL for rows last moved before this column existed (a full kit still lists
-- them).
ALTER TABLE ticket_entitlements ADD COLUMN uses_changed_at TEXT;
-- The kit reads the used-up (and nearly used-up) entries, newest change first.
CREATE INDEX IF NOT EXISTS ticket_entitlements_by_remaining_changed
  ON ticket_entitlements (remaining_uses, uses_changed_at);

-- What reconciliation flagged: an offline accept that found no use left (`conflict`, both sides kept), an
-- accept applied although its device was over its budget (`over_budget`), or an upload whose QR token or
-- device signature is not genuine (`invalid`, an alert).
CREATE TABLE IF NOT EXISTS offline_conflicts (
  id TEXT PRIMARY KEY,
  outcome TEXT NOT NULL CHECK (outcome IN ('conflict', 'over_budget', 'invalid')),
  reason TEXT NOT NULL,
  scan_id TEXT NOT NULL,
  ticket_code TEXT,
  function TEXT NOT NULL,
  device_id TEXT NOT NULL,
  operator_id TEXT NOT NULL,
  session_id TEXT NOT NULL,
  location_id TEXT,
  scanned_at TEXT NOT NULL,
  recorded_at TEXT NOT NULL,
  over_budget INTEGER NOT NULL DEFAULT 0,
  -- The other side of a conflict: the redemption that took the last use.
  other_redemption_id TEXT,
  other_device_id TEXT,
  other_scanned_at TEXT,
  other_offline INTEGER
);
CREATE INDEX IF NOT EXISTS offline_conflicts_by_scanned_at ON offline_conflicts (scanned_at, id);
