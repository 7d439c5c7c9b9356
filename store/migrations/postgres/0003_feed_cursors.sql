-- Where an incremental feed read got to, per feed (a TAXII collection:
-- the X-TAXII-Date-Added-Last of the last run that read it whole), so the
-- next run asks only for what was added after it.
CREATE TABLE feed_cursors (
	feed       TEXT PRIMARY KEY,
	position   TEXT NOT NULL,
	updated_at TIMESTAMPTZ NOT NULL
);
