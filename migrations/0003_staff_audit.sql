-- Staff: registered devices, validator sessions, and the hash-chained, append-only audit log.

-- A device is registered by an admin under the id printed on it (`dev-gate-1`), so the id is chosen,
-- not generated.
CREATE TABLE IF NOT EXISTS devices (
  id TEXT PRIMARY KEY,
  kind TEXT NOT NULL CHECK (kind IN ('gate', 'pos')),
  location_id TEXT,
  event_id TEXT,
  -- JSON array of function names a gate may validate; NULL means every function.
  functions TEXT,
  active INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  -- A POS device sells for one event: its sessions are checked against the operator's event_ids.
  CONSTRAINT pos_device_has_event CHECK (kind <> 'pos' OR event_id IS NOT NULL)
);

CREATE TABLE IF NOT EXISTS validator_sessions (
  id TEXT PRIMARY KEY,
  operator_id TEXT NOT NULL REFERENCES operators (id),
  device_id TEXT NOT NULL REFERENCES devices (id),
  kind TEXT NOT NULL CHECK (kind IN ('gate', 'pos')),
  location_id TEXT,
  event_id TEXT,
  opened_at TEXT NOT NULL,
  expires_at TEXT NOT NULL,
  closed_at TEXT,
  CHECK (expires_at > opened_at),
  CHECK (closed_at IS NULL OR closed_at >= opened_at)
);
CREATE INDEX IF NOT EXISTS validator_sessions_by_operator ON validator_sessions (operator_id, opened_at);
CREATE INDEX IF NOT EXISTS validator_sessions_by_device ON validator_sessions (device_id, opened_at);

-- A session is closed once. Closing writes its audit entry in the same batch; re-closing throws here,
-- which rolls that entry back too (a guard `WHERE closed_at IS NULL` matching 0 rows would not).
CREATE TRIGGER IF NOT EXISTS validator_sessions_close_once
BEFORE UPDATE OF closed_at ON validator_sessions
WHEN OLD.closed_at IS NOT NULL
BEGIN
  SELECT RAISE(ABORT, 'validator_session_already_closed');
END;

-- The audit log. Each entry's hash covers its content and the previous entry's hash, so editing or
-- removing an entry breaks every later link. seq is the chain position: entry n links to entry n - 1.
CREATE TABLE IF NOT EXISTS audit_log (
  seq INTEGER PRIMARY KEY CHECK (seq >= 1),
  id TEXT NOT NULL UNIQUE,
  ts TEXT NOT NULL,
  actor TEXT NOT NULL,
  action TEXT NOT NULL,
  target TEXT,
  -- Canonical JSON (sorted keys), hashed exactly as stored.
  details TEXT NOT NULL,
  -- UNIQUE: two writers that read the same tail cannot both chain onto it; the loser re-reads and retries.
  prev_hash TEXT NOT NULL UNIQUE,
  hash TEXT NOT NULL UNIQUE
);
CREATE INDEX IF NOT EXISTS audit_log_by_ts ON audit_log (ts);

-- Appends must link to the current tail: next seq, the tail's hash (the genesis value, 64 zeros, for
-- the first entry; keep in step with AUDIT_GENESIS_HASH in src/db/audit.ts), and a ts not before it.
CREATE TRIGGER IF NOT EXISTS audit_log_append_links_tail
BEFORE INSERT ON audit_log
WHEN NEW.seq IS NOT (SELECT coalesce(max(seq), 0) + 1 FROM audit_log)
  OR NEW.prev_hash IS NOT coalesce(
    (SELECT hash FROM audit_log WHERE seq = NEW.seq - 1),
    '0000000000000000000000000000000000000000000000000000000000000000')
  OR NEW.ts < coalesce((SELECT ts FROM audit_log WHERE seq = NEW.seq - 1), '')
BEGIN
  SELECT RAISE(ABORT, 'audit_log_chain_conflict');
END;

-- Append-only, enforced by the database rather than by convention.
CREATE TRIGGER IF NOT EXISTS audit_log_no_update
BEFORE UPDATE ON audit_log
BEGIN
  SELECT RAISE(ABORT, 'audit_log_append_only');
END;

CREATE TRIGGER IF NOT EXISTS audit_log_no_delete
BEFORE DELETE ON audit_log
BEGIN
  SELECT RAISE(ABORT, 'audit_log_append_only');
END;
