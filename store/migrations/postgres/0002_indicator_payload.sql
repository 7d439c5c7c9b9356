-- The payload last attempted for an indicator, kept while its import is
-- failing so the next run can retry it even when the feed no longer brings it.
ALTER TABLE indicator_records ADD COLUMN payload TEXT NOT NULL DEFAULT '';
