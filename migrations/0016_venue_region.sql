-- Where a product is used: the region of its venue, as a Durable Objects location hint. A ticket's object
-- (which decides every scan of it) is created near its venue, so a gate there reaches it in one short hop,
-- whoever first touches it (often the buyer's phone listing its tickets, anywhere in the world). NULL:
-- created near whoever calls it first (for a scan, the gate).
ALTER TABLE products ADD COLUMN venue_region TEXT
  CHECK (venue_region IS NULL OR venue_region IN ('wnam', 'enam', 'sam', 'weur', 'eeur', 'apac', 'oc', 'afr', 'me'));
