-- Events that exhausted their retries on the EVENTS queue land on its dead-letter queue; its consumer keeps
-- them here so an admin can see them (GET /admin/dead-letters) and send them again (POST …/replay).

-- One row per dead-lettered message. `id` is derived from the queue's message id, so a redelivery of the
-- same dead letter to its consumer stores nothing new. `seq` orders the listing (newest first) and is the
-- page cursor: AUTOINCREMENT never hands out a number twice, so a cursor never skips or repeats a row.
CREATE TABLE IF NOT EXISTS dead_letters (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  -- The queue the message was dead-lettered from (not the dead-letter queue itself).
  queue TEXT NOT NULL,
  -- The message body as JSON text, exactly what a replay sends again.
  body TEXT NOT NULL,
  -- The last error the main consumer recorded for it, or 'unknown'.
  error TEXT NOT NULL,
  -- Deliveries on the source queue, as of the last recorded failure; NULL when none was recorded.
  attempts INTEGER CHECK (attempts IS NULL OR attempts >= 1),
  -- When the message was first sent, as the queue stamped it.
  sent_at TEXT,
  received_at TEXT NOT NULL,
  -- Set once, by the first replay; a second replay answers this time and sends nothing.
  replayed_at TEXT
);

-- The main consumer's last failure per message, written before it asks the queue for a retry, so the
-- dead-letter consumer can tell why a message gave up. A row is deleted when its dead letter is stored;
-- rows of messages that later succeeded are pruned once they are older than the queue's retention.
-- `body_hash` (SHA-256 of the body's JSON) finds the failure should the dead-letter queue hand the message
-- on under another id.
CREATE TABLE IF NOT EXISTS event_failures (
  message_id TEXT PRIMARY KEY,
  queue TEXT NOT NULL,
  body_hash TEXT NOT NULL,
  attempts INTEGER NOT NULL CHECK (attempts >= 1),
  error TEXT NOT NULL,
  failed_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS event_failures_by_body_hash ON event_failures (body_hash);
CREATE INDEX IF NOT EXISTS event_failures_by_failed_at ON event_failures (failed_at);
