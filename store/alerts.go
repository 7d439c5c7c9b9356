package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// AlertPost is a Defender alert defenderbot posted (or is posting) to Slack.
type AlertPost struct {
	AlertID string
	Channel string
	// TS is the Slack message; empty while the alert is claimed but not posted.
	TS string
	// LastUpdate is the alert's lastUpdateDateTime that the card shows.
	LastUpdate time.Time
	ClaimedBy  string
	ClaimedAt  time.Time
	PostedAt   time.Time // zero until posted
}

// AlertStore keeps which alerts are posted where (the poller's position is
// a feed cursor).
type AlertStore interface {
	// ClaimAlertPost reserves alertID for owner to post. ok is true for
	// exactly one caller across replicas: when the alert was never claimed,
	// or its claim is older than ttl and no message was recorded (the
	// claimer died before posting).
	ClaimAlertPost(ctx context.Context, alertID, owner string, now time.Time, ttl time.Duration) (ok bool, err error)
	// ReleaseAlertClaim drops owner's claim on an alert that was not posted,
	// so that the next poll tries again at once.
	ReleaseAlertClaim(ctx context.Context, alertID, owner string) error
	// SetAlertPosted records the message of a claimed alert; ErrNotFound
	// if the alert was never claimed.
	SetAlertPosted(ctx context.Context, alertID, channel, ts string, lastUpdate, at time.Time) error
	// SetAlertLastUpdate records that the card now shows lastUpdate; it
	// never moves back. ErrNotFound for an alert never claimed.
	SetAlertLastUpdate(ctx context.Context, alertID string, lastUpdate time.Time) error
	// GetAlertPost returns ErrNotFound for an alert never claimed.
	GetAlertPost(ctx context.Context, alertID string) (*AlertPost, error)
	// LinkRequestAlert records that a request was started from an alert.
	LinkRequestAlert(ctx context.Context, requestID, alertID string) error
	// RequestAlert returns the alert a request was started from, or ""
	// (and no error) when it was not started from an alert.
	RequestAlert(ctx context.Context, requestID string) (string, error)
}

func (s *sqlStore) ClaimAlertPost(ctx context.Context, alertID, owner string, now time.Time, ttl time.Duration) (bool, error) {
	if alertID == "" || owner == "" {
		return false, fmt.Errorf("claim alert %q for %q: alert and owner are required", alertID, owner)
	}
	if ttl <= 0 {
		return false, fmt.Errorf("claim alert %q: ttl must be positive, got %s", alertID, ttl)
	}
	now = s.stamp(now)
	res, err := s.db.ExecContext(ctx, s.q(`INSERT INTO alert_posts (alert_id, claimed_by, claimed_at) VALUES (?, ?, ?)
		ON CONFLICT (alert_id) DO UPDATE SET claimed_by = excluded.claimed_by, claimed_at = excluded.claimed_at
		WHERE alert_posts.ts = '' AND alert_posts.claimed_at <= ?`),
		alertID, owner, s.t(now), s.t(now.Add(-ttl)))
	if err != nil {
		return false, fmt.Errorf("claim alert %q: %w", alertID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("claim alert %q: %w", alertID, err)
	}
	return n == 1, nil
}

func (s *sqlStore) ReleaseAlertClaim(ctx context.Context, alertID, owner string) error {
	if _, err := s.db.ExecContext(ctx, s.q(`DELETE FROM alert_posts WHERE alert_id = ? AND claimed_by = ? AND ts = ''`),
		alertID, owner); err != nil {
		return fmt.Errorf("release alert claim %q: %w", alertID, err)
	}
	return nil
}

func (s *sqlStore) SetAlertPosted(ctx context.Context, alertID, channel, ts string, lastUpdate, at time.Time) error {
	if channel == "" || ts == "" {
		return fmt.Errorf("set alert %q posted: channel and ts are required", alertID)
	}
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE alert_posts SET channel = ?, ts = ?, last_update = ?, posted_at = ?
		WHERE alert_id = ?`), channel, ts, s.t(lastUpdate), s.t(s.stamp(at)), alertID)
	if err != nil {
		return fmt.Errorf("set alert %q posted: %w", alertID, err)
	}
	return notFoundIfNone(res, "alert "+alertID)
}

func (s *sqlStore) SetAlertLastUpdate(ctx context.Context, alertID string, lastUpdate time.Time) error {
	if _, err := s.GetAlertPost(ctx, alertID); err != nil {
		return err
	}
	if _, err := s.db.ExecContext(ctx, s.q(`UPDATE alert_posts SET last_update = ?
		WHERE alert_id = ? AND (last_update IS NULL OR last_update < ?)`),
		s.t(lastUpdate), alertID, s.t(lastUpdate)); err != nil {
		return fmt.Errorf("set alert %q last update: %w", alertID, err)
	}
	return nil
}

func (s *sqlStore) GetAlertPost(ctx context.Context, alertID string) (*AlertPost, error) {
	p := AlertPost{AlertID: alertID}
	err := s.db.QueryRowContext(ctx, s.q(`SELECT channel, ts, claimed_by, claimed_at, last_update, posted_at
		FROM alert_posts WHERE alert_id = ?`), alertID).
		Scan(&p.Channel, &p.TS, &p.ClaimedBy, dbTime{&p.ClaimedAt}, dbTime{&p.LastUpdate}, dbTime{&p.PostedAt})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("alert %s: %w", alertID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get alert post %q: %w", alertID, err)
	}
	return &p, nil
}

func (s *sqlStore) LinkRequestAlert(ctx context.Context, requestID, alertID string) error {
	if requestID == "" || alertID == "" {
		return fmt.Errorf("link request %q to alert %q: both are required", requestID, alertID)
	}
	if _, err := s.db.ExecContext(ctx, s.q(`INSERT INTO request_alerts (request_id, alert_id) VALUES (?, ?)
		ON CONFLICT (request_id) DO UPDATE SET alert_id = excluded.alert_id`), requestID, alertID); err != nil {
		return fmt.Errorf("link request %s to alert %s: %w", requestID, alertID, err)
	}
	return nil
}

func (s *sqlStore) RequestAlert(ctx context.Context, requestID string) (string, error) {
	var id string
	err := s.db.QueryRowContext(ctx, s.q(`SELECT alert_id FROM request_alerts WHERE request_id = ?`), requestID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("alert of request %s: %w", requestID, err)
	}
	return id, nil
}
