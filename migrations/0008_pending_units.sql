-- A cap on the units one buyer holds in unpaid orders, so that stock cannot be hoarded without paying.
--
-- One row per buyer with the units of their PENDING_PAYMENT orders. An order adds its units with an
-- upsert in its own batch, which also writes the cap in force (MAX_PENDING_UNITS_PER_BUYER) into
-- max_units: past the cap the CHECK throws and the whole order rolls back, so parallel orders of one
-- buyer, serialized by D1, can never together pass it. Every batch that moves an order out of
-- PENDING_PAYMENT (paid, failed, expired) takes its units off again; an order paid in full with credits
-- at creation is never pending and never counted. See src/db/pending-units.ts.
CREATE TABLE IF NOT EXISTS buyer_pending_units (
  user_id TEXT PRIMARY KEY,
  units INTEGER NOT NULL,
  -- The cap written by the latest order: decrements leave it alone, so they can never trip the CHECK.
  max_units INTEGER NOT NULL CHECK (max_units >= 0),
  updated_at TEXT NOT NULL,
  CONSTRAINT pending_units_not_negative CHECK (units >= 0),
  CONSTRAINT pending_units_within_cap CHECK (units <= max_units)
);

-- A buyer's pending orders by deadline: an order refused at the cap first expires the buyer's own
-- lapsed orders (not yet swept), so nobody is blocked by orders that no longer hold anything.
CREATE INDEX IF NOT EXISTS orders_pending_by_user ON orders (user_id, expires_at)
WHERE status = 'PENDING_PAYMENT';

-- Orders already pending when this runs count too. max_units = units keeps their row valid whatever the
-- cap; the buyer's next order writes the real cap.
INSERT OR IGNORE INTO buyer_pending_units (user_id, units, max_units, updated_at)
SELECT o.user_id, SUM(i.quantity), SUM(i.quantity), strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
FROM orders AS o JOIN order_items AS i ON i.order_id = o.id
WHERE o.status = 'PENDING_PAYMENT'
GROUP BY o.user_id;
