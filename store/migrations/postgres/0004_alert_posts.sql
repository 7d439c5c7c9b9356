-- Defender alerts posted to Slack. A row is claimed before its alert is
-- posted, so each alert is posted once across replicas and restarts; ts is
-- empty until the message exists. last_update is the alert's
-- lastUpdateDateTime the card shows.
CREATE TABLE alert_posts (
	alert_id    TEXT PRIMARY KEY,
	channel     TEXT NOT NULL DEFAULT '',
	ts          TEXT NOT NULL DEFAULT '',
	claimed_by  TEXT NOT NULL,
	claimed_at  TIMESTAMPTZ NOT NULL,
	last_update TIMESTAMPTZ,
	posted_at   TIMESTAMPTZ
);

