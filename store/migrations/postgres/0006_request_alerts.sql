-- The alert a request was started from (an alert card's button), so that
-- defenderbot can comment on the alert once the action succeeded.
CREATE TABLE request_alerts (
	request_id TEXT PRIMARY KEY,
	alert_id   TEXT NOT NULL
);
