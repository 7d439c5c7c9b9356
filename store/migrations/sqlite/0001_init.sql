-- Times are TEXT in a fixed-width UTC layout (2006-01-02T15:04:05.000000Z) so
-- that string order is time order; NULL means "not set".

CREATE TABLE requests (
	id                    TEXT PRIMARY KEY,
	action                TEXT NOT NULL,
	params                TEXT,
	machine_name          TEXT NOT NULL DEFAULT '',
	requester_id          TEXT NOT NULL DEFAULT '',
	requester_name        TEXT NOT NULL DEFAULT '',
	channel_id            TEXT NOT NULL DEFAULT '',
	response_url          TEXT NOT NULL DEFAULT '',
	approval_channel      TEXT NOT NULL DEFAULT '',
	approval_ts           TEXT NOT NULL DEFAULT '',
	state                 TEXT NOT NULL,
	required_approvals    INTEGER NOT NULL CHECK (required_approvals >= 1),
	rejected_by           TEXT NOT NULL DEFAULT '',
	reject_reason         TEXT NOT NULL DEFAULT '',
	machine_action_id     TEXT NOT NULL DEFAULT '',
	machine_action_status TEXT NOT NULL DEFAULT '',
	result                TEXT NOT NULL DEFAULT '',
	error                 TEXT NOT NULL DEFAULT '',
	created_at            TEXT NOT NULL,
	expires_at            TEXT,
	updated_at            TEXT NOT NULL
);
CREATE INDEX requests_state_expires ON requests (state, expires_at);
CREATE INDEX requests_created ON requests (created_at, id);

CREATE TABLE approvals (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	request_id TEXT NOT NULL REFERENCES requests (id) ON DELETE CASCADE,
	user_id    TEXT NOT NULL,
	at         TEXT NOT NULL,
	UNIQUE (request_id, user_id)
);

CREATE TABLE audit_events (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	at         TEXT NOT NULL,
	actor      TEXT NOT NULL,
	kind       TEXT NOT NULL,
	request_id TEXT NOT NULL DEFAULT '',
	details    TEXT
);
CREATE INDEX audit_events_at ON audit_events (at, id);

CREATE TABLE seen_keys (
	key     TEXT PRIMARY KEY,
	seen_at TEXT NOT NULL
);
CREATE INDEX seen_keys_seen_at ON seen_keys (seen_at);

CREATE TABLE leases (
	name       TEXT PRIMARY KEY,
	owner      TEXT NOT NULL,
	expires_at TEXT NOT NULL
);

CREATE TABLE indicator_records (
	key            TEXT PRIMARY KEY,
	indicator_type TEXT NOT NULL,
	value          TEXT NOT NULL,
	stix_id        TEXT NOT NULL DEFAULT '',
	defender_id    TEXT NOT NULL DEFAULT '',
	fingerprint    TEXT NOT NULL DEFAULT '',
	severity       TEXT NOT NULL DEFAULT '',
	status         TEXT NOT NULL DEFAULT '',
	failure_reason TEXT NOT NULL DEFAULT '',
	updated_at     TEXT NOT NULL
);

CREATE TABLE sync_runs (
	id          TEXT PRIMARY KEY,
	started_at  TEXT NOT NULL,
	finished_at TEXT,
	run_trigger TEXT NOT NULL DEFAULT '',
	ok          INTEGER NOT NULL DEFAULT 0,
	summary     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX sync_runs_started ON sync_runs (started_at, id);
CREATE INDEX sync_runs_ok_started ON sync_runs (ok, started_at, id);
