-- Redemption events, written by the queue consumer from each ticket object's outbox. The object is the
-- source of truth for remaining uses; this table is the read model reports and exports are built from.
-- The primary key is the object's redemption id, so a redelivered event inserts nothing.
CREATE TABLE IF NOT EXISTS redemptions (
  id TEXT PRIMARY KEY,
  ticket_code TEXT NOT NULL,
  function TEXT NOT NULL,
  operator_id TEXT NOT NULL,
  session_id TEXT NOT NULL,
  device_id TEXT NOT NULL,
  location_id TEXT,
  ts TEXT NOT NULL
);
-- Reports read a time range and group by day/function/location: this index covers that query, so a
-- one-day report reads one index range and never the table, however many years of rows it holds.
CREATE INDEX IF NOT EXISTS redemptions_by_ts_function_location ON redemptions (ts, function, location_id);
CREATE INDEX IF NOT EXISTS redemptions_by_ticket ON redemptions (ticket_code, ts);
