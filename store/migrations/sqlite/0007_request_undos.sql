-- The undo of a request (the inverse request made from its thread's button):
-- at most one per original. The row is claimed with the undo request's ID
-- before that request is created, so that concurrent submits create one.
CREATE TABLE request_undos (
	original_id TEXT PRIMARY KEY,
	undo_id     TEXT NOT NULL UNIQUE,
	claimed_at  TEXT NOT NULL
);
-- Undos requested before this table existed, from the audit trail.
INSERT INTO request_undos (original_id, undo_id, claimed_at)
SELECT json_extract(details, '$.undo_of'), request_id, at FROM audit_events
WHERE kind = 'undo' AND json_valid(details) AND json_extract(details, '$.undo_of') IS NOT NULL
ORDER BY id
ON CONFLICT DO NOTHING;
