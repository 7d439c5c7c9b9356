-- What the approval card showed about the machine (the context looked up
-- when the request was made, as JSON), so that every replica re-renders the
-- same card when it updates it.
CREATE TABLE request_cards (
	request_id TEXT PRIMARY KEY,
	context    TEXT NOT NULL
);
