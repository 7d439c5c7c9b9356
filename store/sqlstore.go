package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/defenderbot/defenderbot/actions"
	"github.com/defenderbot/defenderbot/approval"
)

// sqlStore implements Store over database/sql for both dialects.
type sqlStore struct {
	db  *sql.DB
	d   *dialect
	log *slog.Logger
	now func() time.Time

	markSeenCalls atomic.Uint64 // drives the opportunistic purge of old seen keys
}

var _ Store = (*sqlStore)(nil)

// querier is what *sql.DB and *sql.Tx share, so helpers compose inside a transaction.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// q rewrites a "?" query for the dialect.
func (s *sqlStore) q(query string) string { return s.d.placeholders(query) }

func (s *sqlStore) t(t time.Time) any { return s.d.timeArg(t) }

// stamp is the stored form of a caller's time, the store's clock when it is zero.
func (s *sqlStore) stamp(t time.Time) time.Time {
	if t = normTime(t); t.IsZero() {
		t = normTime(s.now())
	}
	return t
}

// inTx runs fn in a write transaction and commits it if fn returns nil. A
// non-nil error from fn rolls back, unless fn returns a commitErr, whose
// changes are committed before its error is returned (e.g. "marked expired,
// approval.ErrExpired").
func (s *sqlStore) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	ferr := fn(tx)
	var ce commitErr
	if ferr != nil && !errors.As(ferr, &ce) {
		return ferr
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if ferr != nil {
		return ce.err
	}
	return nil
}

// commitErr asks inTx to commit and then return err.
type commitErr struct{ err error }

func (c commitErr) Error() string { return c.err.Error() }
func (c commitErr) Unwrap() error { return c.err }

func (s *sqlStore) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("ping %s store: %w", s.d.name, err)
	}
	return nil
}

func (s *sqlStore) Close() error { return s.db.Close() }

// ---- requests ----

const requestColumns = `id, action, params, machine_name, requester_id, requester_name, channel_id,
	response_url, approval_channel, approval_ts, state, required_approvals, rejected_by, reject_reason,
	machine_action_id, machine_action_status, result, error, created_at, expires_at, updated_at, progress_ts`

// CreateRequest stores r. An empty ID gets a random UUID, an empty State is
// pending, a zero CreatedAt is now and a zero UpdatedAt is CreatedAt; r is
// updated with these values. A zero ExpiresAt never expires. Approvals in r
// are stored too. It fails with approval.ErrConflict if the ID exists.
func (s *sqlStore) CreateRequest(ctx context.Context, r *approval.Request) error {
	if r == nil {
		return errors.New("create request: nil request")
	}
	if strings.TrimSpace(string(r.Action)) == "" {
		return errors.New("create request: action is required")
	}
	if r.RequiredApprovals < 1 {
		return fmt.Errorf("create request: required approvals must be at least 1, got %d", r.RequiredApprovals)
	}
	if r.State == "" {
		r.State = approval.StatePending
	}
	if !r.State.Valid() {
		return fmt.Errorf("create request: unknown state %q", r.State)
	}
	if r.ID == "" {
		r.ID = uuid.NewString()
	}
	if r.CreatedAt.IsZero() {
		r.CreatedAt = s.now()
	}
	if r.UpdatedAt.IsZero() {
		r.UpdatedAt = r.CreatedAt
	}
	r.CreatedAt, r.UpdatedAt, r.ExpiresAt = normTime(r.CreatedAt), normTime(r.UpdatedAt), normTime(r.ExpiresAt)
	params, err := argsJSON(r.Args)
	if err != nil {
		return fmt.Errorf("create request %s: args: %w", r.ID, err)
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.q(`INSERT INTO requests (`+requestColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (id) DO NOTHING`),
			r.ID, r.Action, params, r.MachineName, r.RequesterID, r.RequesterName, r.ChannelID,
			r.ResponseURL, r.ApprovalChannel, r.ApprovalTS, string(r.State), r.RequiredApprovals, r.RejectedBy, r.RejectReason,
			r.MachineActionID, r.MachineActionStatus, r.Result, r.Error, s.t(r.CreatedAt), s.t(r.ExpiresAt), s.t(r.UpdatedAt), r.ProgressTS)
		if err != nil {
			return fmt.Errorf("create request %s: %w", r.ID, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("create request %s: %w", r.ID, err)
		} else if n == 0 {
			return fmt.Errorf("create request %s: %w", r.ID, approval.ErrConflict)
		}
		for i := range r.Approvals {
			a := &r.Approvals[i]
			a.At = normTime(a.At)
			if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO approvals (request_id, user_id, at) VALUES (?, ?, ?)`),
				r.ID, a.UserID, s.t(a.At)); err != nil {
				return fmt.Errorf("create request %s: approval by %s: %w", r.ID, a.UserID, err)
			}
		}
		return s.insertTargets(ctx, tx, r)
	})
}

func (s *sqlStore) GetRequest(ctx context.Context, id string) (*approval.Request, error) {
	r, err := s.getRequest(ctx, s.db, id, false)
	if err != nil {
		return nil, fmt.Errorf("get request %s: %w", id, err)
	}
	return r, nil
}

// getRequest loads one request and its approvals; lock adds the dialect's row lock.
func (s *sqlStore) getRequest(ctx context.Context, q querier, id string, lock bool) (*approval.Request, error) {
	query := `SELECT ` + requestColumns + ` FROM requests WHERE id = ?`
	if lock {
		query += s.d.forUpdate
	}
	r, err := scanRequest(q.QueryRowContext(ctx, s.q(query), id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	if err := s.loadApprovals(ctx, q, []*approval.Request{r}); err != nil {
		return nil, err
	}
	if err := s.loadTargets(ctx, q, []*approval.Request{r}); err != nil {
		return nil, err
	}
	return r, nil
}

type rowScanner interface{ Scan(dest ...any) error }

func scanRequest(row rowScanner) (*approval.Request, error) {
	var (
		r      approval.Request
		params sql.NullString
		state  string
	)
	err := row.Scan(&r.ID, &r.Action, &params, &r.MachineName, &r.RequesterID, &r.RequesterName, &r.ChannelID,
		&r.ResponseURL, &r.ApprovalChannel, &r.ApprovalTS, &state, &r.RequiredApprovals, &r.RejectedBy, &r.RejectReason,
		&r.MachineActionID, &r.MachineActionStatus, &r.Result, &r.Error,
		dbTime{&r.CreatedAt}, dbTime{&r.ExpiresAt}, dbTime{&r.UpdatedAt}, &r.ProgressTS)
	if err != nil {
		return nil, err
	}
	r.State = approval.State(state)
	if params.Valid {
		if err := json.Unmarshal([]byte(params.String), &r.Args); err != nil {
			return nil, fmt.Errorf("request %s: decode params: %w", r.ID, err)
		}
	}
	return &r, nil
}

// loadApprovals fills the Approvals of rs, in vote order.
func (s *sqlStore) loadApprovals(ctx context.Context, q querier, rs []*approval.Request) error {
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
		rows, err := q.QueryContext(ctx, s.q(`SELECT request_id, user_id, at FROM approvals
			WHERE request_id IN (`+marks(len(args))+`) ORDER BY at, id`), args...)
		if err != nil {
			return fmt.Errorf("load approvals: %w", err)
		}
		for rows.Next() {
			var (
				rid string
				a   approval.Vote
			)
			if err := rows.Scan(&rid, &a.UserID, dbTime{&a.At}); err != nil {
				_ = rows.Close()
				return fmt.Errorf("load approvals: %w", err)
			}
			if r := byID[rid]; r != nil {
				r.Approvals = append(r.Approvals, a)
			}
		}
		if err := rows.Close(); err != nil {
			return fmt.Errorf("load approvals: %w", err)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("load approvals: %w", err)
		}
	}
	return nil
}

func marks(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// whereIn adds "col IN (…)" of vals to a query's conditions and arguments
// (nothing when vals is empty), refusing a value valid does not know.
func whereIn[T ~string](where *[]string, args *[]any, col string, vals []T, valid func(T) bool) error {
	if len(vals) == 0 {
		return nil
	}
	for _, v := range vals {
		if !valid(v) {
			return fmt.Errorf("unknown %s %q", col, v)
		}
		*args = append(*args, string(v))
	}
	*where = append(*where, col+` IN (`+marks(len(vals))+`)`)
	return nil
}

// ListRequests returns the requests in f.States (any state if empty) of
// f.Actions (any action if empty), newest first, at most f.Limit of them
// (all if 0).
func (s *sqlStore) ListRequests(ctx context.Context, f approval.RequestFilter) ([]*approval.Request, error) {
	if f.Limit < 0 {
		return nil, fmt.Errorf("list requests: negative limit %d", f.Limit)
	}
	query := `SELECT ` + requestColumns + ` FROM requests`
	var args []any
	var where []string
	if err := whereIn(&where, &args, "state", f.States, approval.State.Valid); err != nil {
		return nil, fmt.Errorf("list requests: %w", err)
	}
	if err := whereIn(&where, &args, "action", f.Actions, actions.Name.Valid); err != nil {
		return nil, fmt.Errorf("list requests: %w", err)
	}
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, ` AND `)
	}
	query += ` ORDER BY created_at DESC, id DESC`
	if f.Limit > 0 {
		query += ` LIMIT ?`
		args = append(args, f.Limit)
	}
	rows, err := s.db.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("list requests: %w", err)
	}
	var out []*approval.Request
	for rows.Next() {
		r, err := scanRequest(rows)
		if err != nil {
			_ = rows.Close()
			return nil, fmt.Errorf("list requests: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Close(); err != nil {
		return nil, fmt.Errorf("list requests: %w", err)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list requests: %w", err)
	}
	if err := s.loadApprovals(ctx, s.db, out); err != nil {
		return nil, fmt.Errorf("list requests: %w", err)
	}
	if err := s.loadTargets(ctx, s.db, out); err != nil {
		return nil, fmt.Errorf("list requests: %w", err)
	}
	return out, nil
}

// SetApprovalMessage records where the approval message was posted.
func (s *sqlStore) SetApprovalMessage(ctx context.Context, id, channel, ts string) error {
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE requests SET approval_channel = ?, approval_ts = ?, updated_at = ? WHERE id = ?`),
		channel, ts, s.t(s.now()), id)
	if err != nil {
		return fmt.Errorf("set approval message of %s: %w", id, err)
	}
	return notFoundIfNone(res, "set approval message of "+id)
}

func notFoundIfNone(res sql.Result, what string) error {
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return nil
}

// pendingCheck returns nil if r can take a vote at `at`. A request past its
// ExpiresAt is marked expired in tx and a commitErr wrapping approval.ErrExpired is
// returned; a request already expired gets an error matching both
// approval.ErrNotPending and approval.ErrExpired.
func (s *sqlStore) pendingCheck(ctx context.Context, tx *sql.Tx, r *approval.Request, at time.Time) error {
	switch {
	case r.State == approval.StateExpired:
		return fmt.Errorf("request %s: %w (%w)", r.ID, approval.ErrNotPending, approval.ErrExpired)
	case r.State != approval.StatePending:
		return fmt.Errorf("request %s is %s: %w", r.ID, r.State, approval.ErrNotPending)
	case r.Expired(at):
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE requests SET state = ?, updated_at = ? WHERE id = ? AND state = ?`),
			string(approval.StateExpired), s.t(at), r.ID, string(approval.StatePending)); err != nil {
			return fmt.Errorf("request %s: mark expired: %w", r.ID, err)
		}
		return commitErr{fmt.Errorf("request %s expired at %s: %w", r.ID, r.ExpiresAt.Format(time.RFC3339), approval.ErrExpired)}
	}
	return nil
}

func (s *sqlStore) AddApproval(ctx context.Context, id, userID string, at time.Time) (*approval.Request, approval.Decision, error) {
	if strings.TrimSpace(userID) == "" {
		return nil, approval.Decision{}, fmt.Errorf("approve request %s: empty user id", id)
	}
	at = s.stamp(at)
	var (
		out *approval.Request
		dec approval.Decision
	)
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		r, err := s.getRequest(ctx, tx, id, true)
		if err != nil {
			return err
		}
		if err := s.pendingCheck(ctx, tx, r, at); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, s.q(`INSERT INTO approvals (request_id, user_id, at) VALUES (?, ?, ?)
			ON CONFLICT (request_id, user_id) DO NOTHING`), id, userID, s.t(at))
		if err != nil {
			return fmt.Errorf("record vote: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("record vote: %w", err)
		} else if n == 0 {
			return fmt.Errorf("user %s: %w", userID, approval.ErrAlreadyVoted)
		}
		var votes int
		if err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM approvals WHERE request_id = ?`), id).Scan(&votes); err != nil {
			return fmt.Errorf("count votes: %w", err)
		}
		if votes >= r.RequiredApprovals {
			res, err := tx.ExecContext(ctx, s.q(`UPDATE requests SET state = ?, updated_at = ? WHERE id = ? AND state = ?`),
				string(approval.StateApproved), s.t(at), id, string(approval.StatePending))
			if err != nil {
				return fmt.Errorf("approve: %w", err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return fmt.Errorf("approve: %w", err)
			}
			dec.Approved = n == 1
		} else if _, err := tx.ExecContext(ctx, s.q(`UPDATE requests SET updated_at = ? WHERE id = ?`), s.t(at), id); err != nil {
			return fmt.Errorf("touch request: %w", err)
		}
		out, err = s.getRequest(ctx, tx, id, false)
		return err
	})
	if err != nil {
		return nil, approval.Decision{}, fmt.Errorf("approve request %s: %w", id, err)
	}
	return out, dec, nil
}

func (s *sqlStore) Reject(ctx context.Context, id, userID, reason string, at time.Time) (*approval.Request, error) {
	if strings.TrimSpace(userID) == "" {
		return nil, fmt.Errorf("reject request %s: empty user id", id)
	}
	at = s.stamp(at)
	var out *approval.Request
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		r, err := s.getRequest(ctx, tx, id, true)
		if err != nil {
			return err
		}
		if err := s.pendingCheck(ctx, tx, r, at); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE requests SET state = ?, rejected_by = ?, reject_reason = ?, updated_at = ?
			WHERE id = ? AND state = ?`), string(approval.StateRejected), userID, reason, s.t(at), id, string(approval.StatePending)); err != nil {
			return fmt.Errorf("reject: %w", err)
		}
		out, err = s.getRequest(ctx, tx, id, false)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("reject request %s: %w", id, err)
	}
	return out, nil
}

func (s *sqlStore) Transition(ctx context.Context, id string, from, to approval.State, at time.Time) (bool, error) {
	if !from.CanTransitionTo(to) {
		return false, fmt.Errorf("transition request %s: %s -> %s: %w", id, from, to, approval.ErrInvalidTransition)
	}
	at = s.stamp(at)
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE requests SET state = ?, updated_at = ? WHERE id = ? AND state = ?`),
		string(to), s.t(at), id, string(from))
	if err != nil {
		return false, fmt.Errorf("transition request %s: %w", id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("transition request %s: %w", id, err)
	}
	if n == 1 {
		return true, nil
	}
	var one int
	err = s.db.QueryRowContext(ctx, s.q(`SELECT 1 FROM requests WHERE id = ?`), id).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, fmt.Errorf("transition request %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return false, fmt.Errorf("transition request %s: %w", id, err)
	}
	return false, nil
}

// UpdateRequest sets the non-nil fields of u. A new State must be the current
// one or a legal transition from it (approval.ErrInvalidTransition otherwise).
func (s *sqlStore) UpdateRequest(ctx context.Context, id string, u approval.RequestUpdate, at time.Time) error {
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
			return fmt.Errorf("update request %s: unknown state %q", id, *u.State)
		}
		st := string(*u.State)
		add("state", &st)
	}
	add("machine_action_id", u.MachineActionID)
	add("machine_action_status", u.MachineActionStatus)
	add("result", u.Result)
	add("error", u.Error)
	args = append(args, id)
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var cur string
		err := tx.QueryRowContext(ctx, s.q(`SELECT state FROM requests WHERE id = ?`+s.d.forUpdate), id).Scan(&cur)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if u.State != nil && *u.State != approval.State(cur) && !approval.State(cur).CanTransitionTo(*u.State) {
			return fmt.Errorf("%s -> %s: %w", cur, *u.State, approval.ErrInvalidTransition)
		}
		_, err = tx.ExecContext(ctx, s.q(`UPDATE requests SET `+strings.Join(sets, ", ")+` WHERE id = ?`), args...)
		return err
	})
	if err != nil {
		return fmt.Errorf("update request %s: %w", id, err)
	}
	return nil
}

// ExpirePending marks pending requests whose ExpiresAt is before now as
// expired and returns them (oldest first).
func (s *sqlStore) ExpirePending(ctx context.Context, now time.Time) ([]*approval.Request, error) {
	now = s.stamp(now)
	var out []*approval.Request
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, s.q(`UPDATE requests SET state = ?, updated_at = ?
			WHERE state = ? AND expires_at IS NOT NULL AND expires_at < ? RETURNING id`),
			string(approval.StateExpired), s.t(now), string(approval.StatePending), s.t(now))
		if err != nil {
			return err
		}
		var ids []string
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				_ = rows.Close()
				return err
			}
			ids = append(ids, id)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if err := rows.Err(); err != nil {
			return err
		}
		for _, id := range ids {
			r, err := s.getRequest(ctx, tx, id, false)
			if err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("expire pending requests: %w", err)
	}
	sortRequestsOldestFirst(out)
	return out, nil
}

func sortRequestsOldestFirst(rs []*approval.Request) {
	// Few items; insertion sort keeps it dependency-free and stable.
	for i := 1; i < len(rs); i++ {
		for j := i; j > 0 && requestBefore(rs[j], rs[j-1]); j-- {
			rs[j], rs[j-1] = rs[j-1], rs[j]
		}
	}
}

func requestBefore(a, b *approval.Request) bool {
	if !a.CreatedAt.Equal(b.CreatedAt) {
		return a.CreatedAt.Before(b.CreatedAt)
	}
	return a.ID < b.ID
}

// ---- dedup and leases ----

// purgeEvery is how many MarkSeen calls run between purges of expired keys.
const purgeEvery = 256

func (s *sqlStore) MarkSeen(ctx context.Context, key string, now time.Time, ttl time.Duration) (bool, error) {
	if key == "" {
		return false, errors.New("mark seen: empty key")
	}
	if ttl <= 0 {
		return false, fmt.Errorf("mark seen %q: ttl must be positive, got %s", key, ttl)
	}
	now = s.stamp(now)
	cutoff := now.Add(-ttl)
	// One statement: insert, or take over a key older than ttl. The row
	// count says whether this caller was first.
	res, err := s.db.ExecContext(ctx, s.q(`INSERT INTO seen_keys (key, seen_at) VALUES (?, ?)
		ON CONFLICT (key) DO UPDATE SET seen_at = excluded.seen_at WHERE seen_keys.seen_at < ?`),
		key, s.t(now), s.t(cutoff))
	if err != nil {
		return false, fmt.Errorf("mark seen %q: %w", key, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("mark seen %q: %w", key, err)
	}
	if s.markSeenCalls.Add(1)%purgeEvery == 0 {
		if _, err := s.db.ExecContext(ctx, s.q(`DELETE FROM seen_keys WHERE seen_at < ?`), s.t(cutoff)); err != nil {
			// The key is recorded; a failed purge only delays cleanup.
			s.log.LogAttrs(ctx, slog.LevelWarn, "purge seen keys", slog.String("error", err.Error()))
		}
	}
	return n == 1, nil
}

func (s *sqlStore) AcquireLease(ctx context.Context, name, owner string, now time.Time, ttl time.Duration) (bool, error) {
	if name == "" || owner == "" {
		return false, fmt.Errorf("acquire lease %q for %q: name and owner are required", name, owner)
	}
	if ttl <= 0 {
		return false, fmt.Errorf("acquire lease %q: ttl must be positive, got %s", name, ttl)
	}
	now = s.stamp(now)
	// acquired_at is kept while the same owner renews an unexpired lease.
	res, err := s.db.ExecContext(ctx, s.q(`INSERT INTO leases (name, owner, expires_at, acquired_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at,
			acquired_at = CASE WHEN leases.owner = excluded.owner AND leases.expires_at > ? AND leases.acquired_at IS NOT NULL
				THEN leases.acquired_at ELSE excluded.acquired_at END
		WHERE leases.owner = excluded.owner OR leases.expires_at <= ?`),
		name, owner, s.t(now.Add(ttl)), s.t(now), s.t(now), s.t(now))
	if err != nil {
		return false, fmt.Errorf("acquire lease %q: %w", name, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("acquire lease %q: %w", name, err)
	}
	return n == 1, nil
}

// LeaseHolder returns who holds the named lease at now and since when;
// ErrNotFound when nobody does (never taken, released or expired).
func (s *sqlStore) LeaseHolder(ctx context.Context, name string, now time.Time) (Lease, error) {
	l := Lease{Name: name}
	err := s.db.QueryRowContext(ctx, s.q(`SELECT owner, acquired_at, expires_at FROM leases WHERE name = ? AND expires_at > ?`),
		name, s.t(s.stamp(now))).Scan(&l.Owner, dbTime{&l.Since}, dbTime{&l.ExpiresAt})
	if errors.Is(err, sql.ErrNoRows) {
		return Lease{}, fmt.Errorf("lease %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return Lease{}, fmt.Errorf("lease %q: %w", name, err)
	}
	return l, nil
}

// ReleaseLease gives the lease up if owner holds it; otherwise it does nothing.
func (s *sqlStore) ReleaseLease(ctx context.Context, name, owner string) error {
	if _, err := s.db.ExecContext(ctx, s.q(`DELETE FROM leases WHERE name = ? AND owner = ?`), name, owner); err != nil {
		return fmt.Errorf("release lease %q: %w", name, err)
	}
	return nil
}

// ---- audit ----

// AppendAudit stores e; a zero At is now. e.ID is assigned by the store.
// Details are stored as JSON: numbers read back as float64.
func (s *sqlStore) AppendAudit(ctx context.Context, e AuditEvent) error {
	if e.Kind == "" {
		return errors.New("append audit: kind is required")
	}
	if e.Actor == "" {
		return fmt.Errorf("append audit %s: actor is required", e.Kind)
	}
	if e.At.IsZero() {
		e.At = s.now()
	}
	details, err := jsonArg(e.Details)
	if err != nil {
		return fmt.Errorf("append audit %s: details: %w", e.Kind, err)
	}
	if _, err := s.db.ExecContext(ctx, s.q(`INSERT INTO audit_events (at, actor, kind, request_id, details) VALUES (?, ?, ?, ?, ?)`),
		s.t(e.At), e.Actor, e.Kind, e.RequestID, details); err != nil {
		return fmt.Errorf("append audit %s: %w", e.Kind, err)
	}
	return nil
}

// Audit appends the line the fields describe.
func (s *sqlStore) Audit(ctx context.Context, at time.Time, actor, kind string, details map[string]any) error {
	return s.AppendAudit(ctx, AuditEvent{At: at, Actor: actor, Kind: kind, Details: details})
}

// ListAudit returns the events at or after since (all if zero), ordered by
// time then insertion.
func (s *sqlStore) ListAudit(ctx context.Context, since time.Time) ([]AuditEvent, error) {
	query := `SELECT id, at, actor, kind, request_id, details FROM audit_events`
	var args []any
	if !since.IsZero() {
		query += ` WHERE at >= ?`
		args = append(args, s.t(since))
	}
	query += ` ORDER BY at, id`
	rows, err := s.db.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("list audit: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var out []AuditEvent
	for rows.Next() {
		var (
			e       AuditEvent
			details sql.NullString
		)
		if err := rows.Scan(&e.ID, dbTime{&e.At}, &e.Actor, &e.Kind, &e.RequestID, &details); err != nil {
			return nil, fmt.Errorf("list audit: %w", err)
		}
		if details.Valid {
			if err := json.Unmarshal([]byte(details.String), &e.Details); err != nil {
				return nil, fmt.Errorf("list audit: event %d: decode details: %w", e.ID, err)
			}
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list audit: %w", err)
	}
	return out, nil
}

// argsJSON encodes a request's arguments as a JSON object keyed by argument
// name; no arguments is NULL.
func argsJSON(a actions.Args) (any, error) {
	if a == (actions.Args{}) {
		return nil, nil
	}
	b, err := json.Marshal(a)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

// jsonArg encodes a map as JSON text; a nil map is NULL.
func jsonArg[M ~map[string]V, V any](m M) (any, error) {
	if m == nil {
		return nil, nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

// ---- indicators ----

func (s *sqlStore) ListIndicatorRecords(ctx context.Context) ([]IndicatorRecord, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT key, indicator_type, value, stix_id, defender_id, fingerprint,
		severity, status, failure_reason, payload, updated_at, stix_modified FROM indicator_records ORDER BY key`)
	if err != nil {
		return nil, fmt.Errorf("list indicator records: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var out []IndicatorRecord
	for rows.Next() {
		var r IndicatorRecord
		if err := rows.Scan(&r.Key, &r.IndicatorType, &r.Value, &r.StixID, &r.DefenderID, &r.Fingerprint,
			&r.Severity, &r.Status, &r.FailureReason, &r.Payload, dbTime{&r.UpdatedAt}, dbTime{&r.StixModified}); err != nil {
			return nil, fmt.Errorf("list indicator records: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list indicator records: %w", err)
	}
	return out, nil
}

// UpsertIndicatorRecords inserts or replaces records by Key, all or none. A
// zero UpdatedAt is now.
func (s *sqlStore) UpsertIndicatorRecords(ctx context.Context, recs []IndicatorRecord) error {
	for i, r := range recs {
		if r.Key == "" {
			return fmt.Errorf("upsert indicator records: record %d has an empty key", i)
		}
	}
	if len(recs) == 0 {
		return nil
	}
	now := s.now()
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, s.q(`INSERT INTO indicator_records (key, indicator_type, value, stix_id,
			defender_id, fingerprint, severity, status, failure_reason, payload, updated_at, stix_modified)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (key) DO UPDATE SET indicator_type = excluded.indicator_type, value = excluded.value,
				stix_id = excluded.stix_id, defender_id = excluded.defender_id, fingerprint = excluded.fingerprint,
				severity = excluded.severity, status = excluded.status, failure_reason = excluded.failure_reason,
				payload = excluded.payload, updated_at = excluded.updated_at, stix_modified = excluded.stix_modified`))
		if err != nil {
			return err
		}
		defer func() { _ = stmt.Close() }()
		for _, r := range recs {
			at := r.UpdatedAt
			if at.IsZero() {
				at = now
			}
			if _, err := stmt.ExecContext(ctx, r.Key, r.IndicatorType, r.Value, r.StixID, r.DefenderID, r.Fingerprint,
				r.Severity, r.Status, r.FailureReason, r.Payload, s.t(at), s.t(r.StixModified)); err != nil {
				return fmt.Errorf("key %q: %w", r.Key, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("upsert indicator records: %w", err)
	}
	return nil
}

// DeleteIndicatorRecords deletes the records with these keys; unknown keys are ignored.
func (s *sqlStore) DeleteIndicatorRecords(ctx context.Context, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, s.q(`DELETE FROM indicator_records WHERE key = ?`))
		if err != nil {
			return err
		}
		defer func() { _ = stmt.Close() }()
		for _, k := range keys {
			if _, err := stmt.ExecContext(ctx, k); err != nil {
				return fmt.Errorf("key %q: %w", k, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete indicator records: %w", err)
	}
	return nil
}

// ---- sync runs ----

// SaveSyncRun inserts the run or replaces the one with the same ID, so a run
// can be saved when it starts and again when it ends. ID and StartedAt are required.
func (s *sqlStore) SaveSyncRun(ctx context.Context, r SyncRun) error {
	if r.ID == "" {
		return errors.New("save sync run: id is required")
	}
	if r.StartedAt.IsZero() {
		return fmt.Errorf("save sync run %s: started_at is required", r.ID)
	}
	if _, err := s.db.ExecContext(ctx, s.q(`INSERT INTO sync_runs (id, started_at, finished_at, run_trigger, ok, summary)
		VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET started_at = excluded.started_at, finished_at = excluded.finished_at,
			run_trigger = excluded.run_trigger, ok = excluded.ok, summary = excluded.summary`),
		r.ID, s.t(r.StartedAt), s.t(r.FinishedAt), r.Trigger, r.OK, r.Summary); err != nil {
		return fmt.Errorf("save sync run %s: %w", r.ID, err)
	}
	return nil
}

func (s *sqlStore) LastSyncRun(ctx context.Context) (*SyncRun, error) {
	r, err := s.lastSyncRun(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("last sync run: %w", err)
	}
	return r, nil
}

func (s *sqlStore) LastSuccessfulSyncRun(ctx context.Context) (*SyncRun, error) {
	r, err := s.lastSyncRun(ctx, ` WHERE ok = ?`, true)
	if err != nil {
		return nil, fmt.Errorf("last successful sync run: %w", err)
	}
	return r, nil
}

func (s *sqlStore) lastSyncRun(ctx context.Context, where string, args ...any) (*SyncRun, error) {
	var r SyncRun
	err := s.db.QueryRowContext(ctx, s.q(`SELECT id, started_at, finished_at, run_trigger, ok, summary FROM sync_runs`+
		where+` ORDER BY started_at DESC, id DESC LIMIT 1`), args...).
		Scan(&r.ID, dbTime{&r.StartedAt}, dbTime{&r.FinishedAt}, &r.Trigger, &r.OK, &r.Summary)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// FeedCursor returns feed's recorded position, or ErrNotFound.
func (s *sqlStore) FeedCursor(ctx context.Context, feed string) (string, error) {
	var pos string
	err := s.db.QueryRowContext(ctx, s.q(`SELECT position FROM feed_cursors WHERE feed = ?`), feed).Scan(&pos)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("read feed cursor: %w", err)
	}
	return pos, nil
}

// SetFeedCursor inserts or replaces feed's position.
func (s *sqlStore) SetFeedCursor(ctx context.Context, feed, position string, at time.Time) error {
	if feed == "" || position == "" {
		return errors.New("set feed cursor: feed and position are required")
	}
	if _, err := s.db.ExecContext(ctx, s.q(`INSERT INTO feed_cursors (feed, position, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (feed) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at`),
		feed, position, s.t(s.stamp(at))); err != nil {
		return fmt.Errorf("set feed cursor: %w", err)
	}
	return nil
}
