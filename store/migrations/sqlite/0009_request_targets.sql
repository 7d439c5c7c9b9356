-- The machines of a bulk request ("isolate ws-1,ws-2 …"), each with its own
-- execution state: queued -> calling is the per-machine claim that keeps a
-- takeover from calling Defender twice for one machine. progress_ts is the
-- thread message that shows the request's per-machine progress.
CREATE TABLE request_targets (
	request_id            TEXT NOT NULL REFERENCES requests (id) ON DELETE CASCADE,
	position              INTEGER NOT NULL,
	machine_id            TEXT NOT NULL,
	machine_name          TEXT NOT NULL DEFAULT '',
	state                 TEXT NOT NULL,
	machine_action_id     TEXT NOT NULL DEFAULT '',
	machine_action_status TEXT NOT NULL DEFAULT '',
	error                 TEXT NOT NULL DEFAULT '',
	updated_at            TEXT NOT NULL,
	PRIMARY KEY (request_id, machine_id)
);

ALTER TABLE requests ADD COLUMN progress_ts TEXT NOT NULL DEFAULT '';
