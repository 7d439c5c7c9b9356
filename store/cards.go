package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// SaveCardContext records (or replaces) the context shown on a request's
// approval card; data is opaque to the store.
func (s *sqlStore) SaveCardContext(ctx context.Context, requestID, data string) error {
	if requestID == "" || data == "" {
		return fmt.Errorf("save the card context of %q: request and data are required", requestID)
	}
	if _, err := s.db.ExecContext(ctx, s.q(`INSERT INTO request_cards (request_id, context) VALUES (?, ?)
		ON CONFLICT (request_id) DO UPDATE SET context = excluded.context`), requestID, data); err != nil {
		return fmt.Errorf("save the card context of %s: %w", requestID, err)
	}
	return nil
}

// CardContext returns what SaveCardContext recorded for requestID, or ""
// (and no error) when nothing was.
func (s *sqlStore) CardContext(ctx context.Context, requestID string) (string, error) {
	var data string
	err := s.db.QueryRowContext(ctx, s.q(`SELECT context FROM request_cards WHERE request_id = ?`), requestID).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("card context of %s: %w", requestID, err)
	}
	return data, nil
}
