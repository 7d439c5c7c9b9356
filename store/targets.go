package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/defenderbot/defenderbot/approval"
)

// The machines of a bulk request (table request_targets), each with its
// own execution state.

const targetColumns = `request_id, machine_id, machine_name, state, machine_action_id, machine_action_status, error, updated_at`

// insertTargets stores r's targets in tx, in order. An empty state is
// queued and a zero UpdatedAt is the request's CreatedAt; r is updated
// with these values. A machine listed twice is an error.
func (s *sqlStore) insertTargets(ctx context.Context, tx *sql.Tx, r *approval.Request) error {
	seen := make(map[string]bool, len(r.Targets))
	for i := range r.Targets {
		t := &r.Targets[i]
		if strings.TrimSpace(t.MachineID) == "" {
			return fmt.Errorf("create request %s: target %d: empty machine id", r.ID, i+1)
		}
		if seen[t.MachineID] {
			return fmt.Errorf("create request %s: machine %s listed twice", r.ID, t.MachineID)
		}
		seen[t.MachineID] = true
		if t.State == "" {
			t.State = approval.TargetQueued
		}
		if !t.State.Valid() {
			return fmt.Errorf("create request %s: machine %s: unknown state %q", r.ID, t.MachineID, t.State)
		}
		if t.UpdatedAt.IsZero() {
			t.UpdatedAt = r.CreatedAt
		}
		t.UpdatedAt = normTime(t.UpdatedAt)
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO request_targets (request_id, position, machine_id, machine_name, state,
			machine_action_id, machine_action_status, error, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			r.ID, i, t.MachineID, t.MachineName, string(t.State), t.MachineActionID, t.MachineActionStatus, t.Error, s.t(t.UpdatedAt)); err != nil {
			return fmt.Errorf("create request %s: machine %s: %w", r.ID, t.MachineID, err)
		}
	}
	return nil
}

// loadTargets fills the Targets of rs, in the order given at creation.
func (s *sqlStore) loadTargets(ctx context.Context, q querier, rs []*approval.Request) error {
	const chunk = 500 // stays far below both engines' parameter limits
	byID := make(map[string]*approval.Request, len(rs))
	for _, r := range rs {
		byID[r.ID] = r
	}
	for start := 0; start < len(rs); start += chunk {
		end := min(start+chunk, len(rs))
		args := make([]any, 0, end-start)
		for _, r := range rs[start:end] {
			args = append(args, r.ID)
		}
		rows, err := q.QueryContext(ctx, s.q(`SELECT `+targetColumns+` FROM request_targets
			WHERE request_id IN (`+marks(len(args))+`) ORDER BY request_id, position`), args...)
		if err != nil {
			return fmt.Errorf("load targets: %w", err)
		}
		for rows.Next() {
			var (
				rid, state string
				t          approval.Target
			)
			if err := rows.Scan(&rid, &t.MachineID, &t.MachineName, &state, &t.MachineActionID, &t.MachineActionStatus,
				&t.Error, dbTime{&t.UpdatedAt}); err != nil {
				_ = rows.Close()
				return fmt.Errorf("load targets: %w", err)
			}
			t.State = approval.TargetState(state)
			if r := byID[rid]; r != nil {
				r.Targets = append(r.Targets, t)
			}
		}
		if err := rows.Close(); err != nil {
			return fmt.Errorf("load targets: %w", err)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("load targets: %w", err)
		}
	}
	return nil
}

// TransitionTarget is the per-machine compare-and-set: ok is true only for
// the caller that found the machine in `from`.
func (s *sqlStore) TransitionTarget(ctx context.Context, id, machineID string, from, to approval.TargetState, at time.Time) (bool, error) {
	if !from.CanTransitionTo(to) {
		return false, fmt.Errorf("transition machine %s of request %s: %s -> %s: %w", machineID, id, from, to, approval.ErrInvalidTransition)
	}
	at = s.stamp(at)
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE request_targets SET state = ?, updated_at = ?
		WHERE request_id = ? AND machine_id = ? AND state = ?`), string(to), s.t(at), id, machineID, string(from))
	if err != nil {
		return false, fmt.Errorf("transition machine %s of request %s: %w", machineID, id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("transition machine %s of request %s: %w", machineID, id, err)
	}
	if n == 1 {
		return true, nil
	}
	var one int
	err = s.db.QueryRowContext(ctx, s.q(`SELECT 1 FROM request_targets WHERE request_id = ? AND machine_id = ?`), id, machineID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, fmt.Errorf("transition machine %s of request %s: %w", machineID, id, ErrNotFound)
	}
	if err != nil {
		return false, fmt.Errorf("transition machine %s of request %s: %w", machineID, id, err)
	}
	return false, nil
}

// UpdateTarget sets the non-nil fields of u. A new State must be the current
// one or a legal transition from it (approval.ErrInvalidTransition otherwise).
func (s *sqlStore) UpdateTarget(ctx context.Context, id, machineID string, u approval.TargetUpdate, at time.Time) error {
	at = s.stamp(at)
	sets := []string{"updated_at = ?"}
	args := []any{s.t(at)}
	add := func(col string, v *string) {
		if v != nil {
			sets = append(sets, col+" = ?")
			args = append(args, *v)
		}
	}
	if u.State != nil {
		if !u.State.Valid() {
			return fmt.Errorf("update machine %s of request %s: unknown state %q", machineID, id, *u.State)
		}
		st := string(*u.State)
		add("state", &st)
	}
	add("machine_action_id", u.MachineActionID)
	add("machine_action_status", u.MachineActionStatus)
	add("error", u.Error)
	args = append(args, id, machineID)
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var cur string
		err := tx.QueryRowContext(ctx, s.q(`SELECT state FROM request_targets WHERE request_id = ? AND machine_id = ?`+s.d.forUpdate),
			id, machineID).Scan(&cur)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if u.State != nil && *u.State != approval.TargetState(cur) && !approval.TargetState(cur).CanTransitionTo(*u.State) {
			return fmt.Errorf("%s -> %s: %w", cur, *u.State, approval.ErrInvalidTransition)
		}
		_, err = tx.ExecContext(ctx, s.q(`UPDATE request_targets SET `+strings.Join(sets, ", ")+` WHERE request_id = ? AND machine_id = ?`), args...)
		return err
	})
	if err != nil {
		return fmt.Errorf("update machine %s of request %s: %w", machineID, id, err)
	}
	return nil
}

// SetProgressMessage records where a bulk request's progress is shown.
func (s *sqlStore) SetProgressMessage(ctx context.Context, id, ts string) error {
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE requests SET progress_ts = ? WHERE id = ?`), ts, id)
	if err != nil {
		return fmt.Errorf("set progress message of %s: %w", id, err)
	}
	return notFoundIfNone(res, "set progress message of "+id)
}
