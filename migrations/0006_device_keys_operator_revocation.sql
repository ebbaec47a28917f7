-- Venue trust: devices prove themselves with a key pair, and operators can be revoked.

-- A device's public key (a JWK, never with a private part) and its algorithm, set by enrollment.
-- NULL until the device has enrolled: such a device cannot open sessions.
ALTER TABLE devices ADD COLUMN public_jwk TEXT;
ALTER TABLE devices ADD COLUMN key_alg TEXT CHECK (key_alg IS NULL OR key_alg IN ('ES256', 'EdDSA'));
ALTER TABLE devices ADD COLUMN enrolled_at TEXT;

-- One-time enrollment codes. Only the code's SHA-256 is stored: the table never holds a usable code.
-- A code is used once (used_at set by the enrollment that consumes it, guarded by the trigger below).
CREATE TABLE IF NOT EXISTS device_enrollments (
  code_hash TEXT PRIMARY KEY,
  device_id TEXT NOT NULL REFERENCES devices (id),
  created_at TEXT NOT NULL,
  expires_at TEXT NOT NULL,
  used_at TEXT,
  CHECK (expires_at > created_at)
);
CREATE INDEX IF NOT EXISTS device_enrollments_by_device ON device_enrollments (device_id, created_at);

-- Using a code twice throws, which rolls back the whole enrollment batch (a guarded UPDATE matching
-- 0 rows would not).
CREATE TRIGGER IF NOT EXISTS device_enrollments_use_once
BEFORE UPDATE OF used_at ON device_enrollments
WHEN OLD.used_at IS NOT NULL
BEGIN
  SELECT RAISE(ABORT, 'device_enrollment_already_used');
END;

-- Spent device-proof jtis. A proof is spent by the batch that opens its session, so the primary key
-- refuses a replay in the same atomic write that would have opened a second session.
CREATE TABLE IF NOT EXISTS device_proofs (
  device_id TEXT NOT NULL,
  jti TEXT NOT NULL,
  expires_at TEXT NOT NULL,
  PRIMARY KEY (device_id, jti)
);
CREATE INDEX IF NOT EXISTS device_proofs_by_expiry ON device_proofs (expires_at);

-- Operators: a token carries the credential version it was issued under; deactivation and a password
-- reset bump it, so every earlier token is refused. updated_at records the last admin change.
ALTER TABLE operators ADD COLUMN credential_version INTEGER NOT NULL DEFAULT 1;
ALTER TABLE operators ADD COLUMN updated_at TEXT;
