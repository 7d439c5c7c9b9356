package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// ClaimUndo makes undoID the undo of originalID unless another undo holds
// it, and returns the undo that does: undoID for exactly one of concurrent
// callers, the earlier one for the others. The caller creates request
// undoID after winning (and calls ReleaseUndo if it cannot). A claim whose
// request was never created (its claimer died) is taken over once older
// than ttl.
func (s *sqlStore) ClaimUndo(ctx context.Context, originalID, undoID string, now time.Time, ttl time.Duration) (string, error) {
	if originalID == "" || undoID == "" || originalID == undoID {
		return "", fmt.Errorf("claim the undo of %q for %q: two different request IDs are required", originalID, undoID)
	}
	if ttl <= 0 {
		return "", fmt.Errorf("claim the undo of %q: ttl must be positive, got %s", originalID, ttl)
	}
	now = s.stamp(now)
	var holder string
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO request_undos (original_id, undo_id, claimed_at) VALUES (?, ?, ?)
			ON CONFLICT (original_id) DO UPDATE SET undo_id = excluded.undo_id, claimed_at = excluded.claimed_at
			WHERE request_undos.claimed_at <= ?
				AND NOT EXISTS (SELECT 1 FROM requests WHERE requests.id = request_undos.undo_id)`),
			originalID, undoID, s.t(now), s.t(now.Add(-ttl))); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, s.q(`SELECT undo_id FROM request_undos WHERE original_id = ?`), originalID).Scan(&holder)
	})
	if err != nil {
		return "", fmt.Errorf("claim the undo of %s: %w", originalID, err)
	}
	return holder, nil
}

// ReleaseUndo gives up undoID's claim on originalID (its request could not
// be created); it does nothing if undoID does not hold it.
func (s *sqlStore) ReleaseUndo(ctx context.Context, originalID, undoID string) error {
	if _, err := s.db.ExecContext(ctx, s.q(`DELETE FROM request_undos WHERE original_id = ? AND undo_id = ?`),
		originalID, undoID); err != nil {
		return fmt.Errorf("release the undo of %s: %w", originalID, err)
	}
	return nil
}

// UndoOf returns the request that undoID undoes, or "" (and no error) when
// it is not an undo.
func (s *sqlStore) UndoOf(ctx context.Context, undoID string) (string, error) {
	var id string
	err := s.db.QueryRowContext(ctx, s.q(`SELECT original_id FROM request_undos WHERE undo_id = ?`), undoID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("original of undo %s: %w", undoID, err)
	}
	return id, nil
}
