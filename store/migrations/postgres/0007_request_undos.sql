-- The undo of a request (the inverse request made from its thread's button):
-- at most one per original. The row is claimed with the undo request's ID
-- before that request is created, so that concurrent submits create one.
CREATE TABLE request_undos (
	original_id TEXT PRIMARY KEY,
	undo_id     TEXT NOT NULL UNIQUE,
	claimed_at  TIMESTAMPTZ NOT NULL
);
-- Undos requested before this table existed, from the audit trail.
INSERT INTO request_undos (original_id, undo_id, claimed_at)
SELECT undo_of, request_id, at FROM (
	SELECT id, request_id, at, CASE WHEN kind = 'undo' THEN details::jsonb ->> 'undo_of' END AS undo_of
	FROM audit_events WHERE kind = 'undo' AND details IS NOT NULL
) u
WHERE undo_of IS NOT NULL
ORDER BY id
ON CONFLICT DO NOTHING;
