-- A session is opened for the device as it was when its proof was checked: active, with the key enrolled
-- at `device_enrolled_at`. The check and the insert are separate round trips, so a re-enrollment or a
-- revocation committing between them could otherwise leave a session opened with a replaced key, or on a
-- revoked device. This trigger re-checks inside the inserting batch, which D1 serializes with every other
-- write: the session exists only if the device is still what the proof was checked against.
ALTER TABLE validator_sessions ADD COLUMN device_enrolled_at TEXT;

CREATE TRIGGER IF NOT EXISTS validator_sessions_device_unchanged
BEFORE INSERT ON validator_sessions
WHEN NOT EXISTS (
  SELECT 1 FROM devices
  WHERE id = NEW.device_id AND active = 1 AND enrolled_at IS NEW.device_enrolled_at
)
BEGIN
  SELECT RAISE(ABORT, 'validator_session_device_changed');
END;
