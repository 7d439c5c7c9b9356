-- When the current owner took a lease (kept across its renewals), so that a
-- refused caller can say "running since HH:MM".
ALTER TABLE leases ADD COLUMN acquired_at TEXT;
-- The STIX "modified" of the object version an indicator record came from:
-- a feed replaying an older version never overrides a newer one.
ALTER TABLE indicator_records ADD COLUMN stix_modified TEXT;
