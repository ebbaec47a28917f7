-- Login throttling keyed by (username, client address), replacing login_throttle (per username only).
-- Failures from one address never lock the same username out at another address.
--
-- One row per (username, address) with a streak of attempts since the last success. Each attempt is
-- reserved by one upsert BEFORE the password is checked (src/db/login-throttle.ts), so parallel attempts
-- cannot all slip past a read-then-check. Refused attempts are counted here, not audited one by one.
-- Times are epoch milliseconds so the upsert can compute the back-off in SQL.
DROP TABLE IF EXISTS login_throttle;

CREATE TABLE IF NOT EXISTS login_attempts (
  username TEXT NOT NULL COLLATE NOCASE,
  client_address TEXT NOT NULL,
  -- Attempts admitted to the password check in this streak.
  attempts INTEGER NOT NULL CHECK (attempts >= 1),
  -- Attempts refused with 429 in this streak.
  refused INTEGER NOT NULL DEFAULT 0 CHECK (refused >= 0),
  -- Whether the latest attempt was admitted: what the reserving upsert answers through RETURNING.
  latest_admitted INTEGER NOT NULL CHECK (latest_admitted IN (0, 1)),
  -- When the latest admitted attempt was; a streak quiet for long enough starts afresh.
  admitted_at_ms INTEGER NOT NULL,
  -- No attempt is admitted before this time (0: no wait).
  retry_at_ms INTEGER NOT NULL,
  PRIMARY KEY (username, client_address)
);
-- For sweeping streaks that went quiet.
CREATE INDEX IF NOT EXISTS login_attempts_by_admitted_at ON login_attempts (admitted_at_ms);
