// Package alerts brings Defender alerts (Microsoft Graph alerts_v2) into a
// Slack channel: one replica polls Graph under a store lease, posts every
// new alert at or above the configured severity exactly once (claims in the
// store survive replicas and restarts), and updates a posted card in place
// when Graph reports a change. Rendering is the Slack edge's job (Poster).
//
// It owns the polling, its cursor and the exactly-once claims. It must not
// import slack-go, gin, bot or handlers: it reads Graph through Source,
// keeps its state through Store (store's AlertStore) and posts through
// Poster.
package alerts

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/defenderbot/defenderbot/graph"
	"github.com/defenderbot/defenderbot/store"
)

// Names in the store.
const (
	// LeaseName is the lease the polling replica holds.
	LeaseName = "alerts-poller"
	// CursorFeed is the feed cursor where the next poll resumes; OriginFeed
	// holds the first start's cursor (alerts created before it are never
	// posted). Positions are RFC 3339 times.
	CursorFeed = "graph-alerts"
	OriginFeed = "graph-alerts-origin"
)

// Source lists alerts; *graph.Client implements it.
type Source interface {
	ListAlerts(ctx context.Context, opts graph.ListAlertsOptions) ([]*graph.Alert, error)
}

// Poster shows alerts in Slack; the Slack edge implements it.
type Poster interface {
	// PostAlert posts a new alert card and returns its message ts.
	PostAlert(ctx context.Context, channel string, a *graph.Alert) (ts string, err error)
	// UpdateAlert rewrites a posted card in place.
	UpdateAlert(ctx context.Context, channel, ts string, a *graph.Alert) error
}

// Store is the state the poller keeps; store.Store implements it.
type Store interface {
	store.AlertStore
	FeedCursor(ctx context.Context, feed string) (string, error)
	SetFeedCursor(ctx context.Context, feed, position string, at time.Time) error
	AcquireLease(ctx context.Context, name, owner string, now time.Time, ttl time.Duration) (bool, error)
	ReleaseLease(ctx context.Context, name, owner string) error
}

// Config configures a Poller.
type Config struct {
	// Channel receives the alert cards. Required.
	Channel string
	// MinSeverity is the lowest severity posted (informational, low,
	// medium, high). Required.
	MinSeverity string
	// ServiceSources keeps only alerts from these products; empty: all.
	ServiceSources []string
	// PollInterval between polls; it must be positive.
	PollInterval time.Duration
	// Backfill is how far back the very first poll looks. Zero: from now.
	Backfill time.Duration
	// Overlap is how far each poll reaches back before the cursor (Graph
	// can list an alert a little after its createdDateTime; the claims make
	// seeing one twice harmless). It must be positive (config.AlertsOverlap).
	Overlap time.Duration
	// Owner names this replica in the lease and the claims. Required.
	Owner string
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Log receives one line per poll that did something, and every error.
	Log *slog.Logger
	// Metrics, if set, is told the outcome of every poll this replica runs
	// as the lease holder; *metrics.Metrics satisfies it.
	Metrics PollObserver
}

// PollObserver receives the outcome of each poll.
type PollObserver interface {
	AlertPoll(ok bool, posted, updated int)
}

// Poller polls Graph and posts alerts. Safe for one Run at a time per
// replica; several replicas share the work through the store.
type Poller struct {
	cfg     Config
	minRank int
	sources map[string]bool
	src     Source
	st      Store
	poster  Poster
}

// New validates cfg and returns a Poller.
func New(cfg Config, src Source, st Store, poster Poster) (*Poller, error) {
	if src == nil || st == nil || poster == nil {
		return nil, errors.New("alerts: source, store and poster are required")
	}
	if cfg.Channel == "" || cfg.Owner == "" {
		return nil, errors.New("alerts: channel and owner are required")
	}
	sev, err := graph.ParseSeverity(cfg.MinSeverity)
	if err != nil {
		return nil, fmt.Errorf("alerts: min severity: %w", err)
	}
	p := &Poller{cfg: cfg, minRank: graph.SeverityRank(sev), src: src, st: st, poster: poster}
	for _, s := range cfg.ServiceSources {
		v, err := graph.ParseServiceSource(s)
		if err != nil {
			return nil, fmt.Errorf("alerts: %w", err)
		}
		if p.sources == nil {
			p.sources = map[string]bool{}
		}
		p.sources[v] = true
	}
	if cfg.PollInterval <= 0 || cfg.Overlap <= 0 {
		return nil, errors.New("alerts: poll interval and overlap must be positive")
	}
	if cfg.Backfill < 0 {
		return nil, errors.New("alerts: backfill must not be negative")
	}
	if p.cfg.Now == nil {
		p.cfg.Now = time.Now
	}
	if p.cfg.Log == nil {
		p.cfg.Log = slog.New(slog.DiscardHandler)
	}
	return p, nil
}

// leaseTTL outlives a missed tick or two, so the leader keeps the work,
// and lets another replica take over soon after the leader dies.
func (p *Poller) leaseTTL() time.Duration { return max(3*p.cfg.PollInterval, 30*time.Second) }

// claimTTL is how long an unposted claim blocks other replicas (a replica
// that died between claiming and posting).
func (p *Poller) claimTTL() time.Duration { return max(2*p.cfg.PollInterval, time.Minute) }

// Result tells what one poll did.
type Result struct {
	// Leader is false when another replica holds the lease (nothing done).
	Leader bool
	// Seen counts the alerts Graph listed; Posted and Updated the cards.
	Seen, Posted, Updated int
	// Cursor is where the next poll resumes (before the overlap).
	Cursor time.Time
}

// Run polls at once and then every PollInterval until ctx ends, then
// releases the lease. Errors are logged; a throttled Graph postpones the
// next poll by its Retry-After when that is longer than the interval.
func (p *Poller) Run(ctx context.Context) error {
	defer func() {
		// The lease is released even though ctx is done.
		_ = p.st.ReleaseLease(context.WithoutCancel(ctx), LeaseName, p.cfg.Owner)
	}()
	for {
		wait := p.cfg.PollInterval
		res, err := p.PollOnce(ctx)
		if p.cfg.Metrics != nil && ctx.Err() == nil && (res.Leader || err != nil) {
			p.cfg.Metrics.AlertPoll(err == nil, res.Posted, res.Updated)
		}
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			p.cfg.Log.WarnContext(ctx, "alert poll failed", "error", err)
			wait = max(wait, graph.RetryAfterOf(err))
		case res.Posted+res.Updated > 0:
			p.cfg.Log.InfoContext(ctx, "alert poll", "seen", res.Seen, "posted", res.Posted, "updated", res.Updated)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// PollOnce runs one poll if this replica holds (or takes) the lease. The
// cursor advances only when every alert of the window was handled, so a
// failed post or update is retried by the next poll.
func (p *Poller) PollOnce(ctx context.Context) (Result, error) {
	now := p.cfg.Now()
	ok, err := p.st.AcquireLease(ctx, LeaseName, p.cfg.Owner, now, p.leaseTTL())
	if err != nil || !ok {
		return Result{}, err
	}
	res := Result{Leader: true}
	origin, err := p.cursor(ctx, OriginFeed, now)
	if err != nil {
		return res, err
	}
	cursor, err := p.cursor(ctx, CursorFeed, origin)
	if err != nil {
		return res, err
	}
	res.Cursor = cursor
	since := cursor.Add(-p.cfg.Overlap)

	created, err := p.src.ListAlerts(ctx, graph.ListAlertsOptions{CreatedSince: since})
	if err != nil {
		return res, fmt.Errorf("alerts: listing new alerts: %w", err)
	}
	changed, err := p.src.ListAlerts(ctx, graph.ListAlertsOptions{UpdatedSince: since})
	if err != nil {
		return res, fmt.Errorf("alerts: listing changed alerts: %w", err)
	}
	all := merge(created, changed)
	res.Seen = len(all)

	var errs []error
	for _, a := range all {
		posted, updated, err := p.handle(ctx, a, origin, now)
		if err != nil {
			errs = append(errs, fmt.Errorf("alert %s: %w", a.ID, err))
			continue
		}
		if posted {
			res.Posted++
		}
		if updated {
			res.Updated++
		}
	}
	if len(errs) > 0 {
		return res, errors.Join(errs...)
	}
	if err := p.st.SetFeedCursor(ctx, CursorFeed, now.UTC().Format(time.RFC3339Nano), now); err != nil {
		return res, err
	}
	res.Cursor = now
	return res, nil
}

// cursor returns the named cursor, storing def on first use.
func (p *Poller) cursor(ctx context.Context, name string, def time.Time) (time.Time, error) {
	pos, err := p.st.FeedCursor(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		if name == OriginFeed {
			def = def.Add(-p.cfg.Backfill)
		}
		return def, p.st.SetFeedCursor(ctx, name, def.UTC().Format(time.RFC3339Nano), p.cfg.Now())
	}
	if err != nil {
		return time.Time{}, err
	}
	t, err := time.Parse(time.RFC3339Nano, pos)
	if err != nil {
		return time.Time{}, fmt.Errorf("alerts: cursor %s: %w", name, err)
	}
	return t, nil
}

// merge returns each alert once (its latest version), oldest first.
func merge(lists ...[]*graph.Alert) []*graph.Alert {
	byID := map[string]*graph.Alert{}
	for _, l := range lists {
		for _, a := range l {
			if old, ok := byID[a.ID]; !ok || a.LastUpdateDateTime.After(old.LastUpdateDateTime) {
				byID[a.ID] = a
			}
		}
	}
	out := make([]*graph.Alert, 0, len(byID))
	for _, a := range byID {
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b *graph.Alert) int {
		return cmp.Or(a.CreatedDateTime.Compare(b.CreatedDateTime), cmp.Compare(a.ID, b.ID))
	})
	return out
}

// wanted reports whether a new alert is to be posted.
func (p *Poller) wanted(a *graph.Alert, origin time.Time) bool {
	if a.CreatedDateTime.Before(origin) || graph.SeverityRank(a.Severity) < p.minRank {
		return false
	}
	return p.sources == nil || p.sources[a.ServiceSource]
}

// stamp is the store's precision (Graph's times have 100 ns).
func stamp(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// handle posts a new alert or updates a posted card that is out of date.
func (p *Poller) handle(ctx context.Context, a *graph.Alert, origin, now time.Time) (posted, updated bool, err error) {
	post, err := p.st.GetAlertPost(ctx, a.ID)
	switch {
	case err == nil && post.TS != "":
		if !stamp(a.LastUpdateDateTime).After(post.LastUpdate) {
			return false, false, nil
		}
		if err := p.poster.UpdateAlert(ctx, post.Channel, post.TS, a); err != nil {
			return false, false, fmt.Errorf("updating the card: %w", err)
		}
		return false, true, p.st.SetAlertLastUpdate(ctx, a.ID, stamp(a.LastUpdateDateTime))
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return false, false, err
	}
	// Never posted (or claimed by a replica that may have died).
	if !p.wanted(a, origin) {
		return false, false, nil
	}
	ok, err := p.st.ClaimAlertPost(ctx, a.ID, p.cfg.Owner, now, p.claimTTL())
	if err != nil || !ok {
		return false, false, err
	}
	ts, err := p.poster.PostAlert(ctx, p.cfg.Channel, a)
	if err != nil {
		if rerr := p.st.ReleaseAlertClaim(context.WithoutCancel(ctx), a.ID, p.cfg.Owner); rerr != nil {
			p.cfg.Log.WarnContext(ctx, "release alert claim", "alert_id", a.ID, "error", rerr)
		}
		return false, false, fmt.Errorf("posting the card: %w", err)
	}
	if err := p.st.SetAlertPosted(ctx, a.ID, p.cfg.Channel, ts, stamp(a.LastUpdateDateTime), now); err != nil {
		// Posted but not recorded: the claim keeps other replicas off; log
		// loudly, since the card will not be updated in place.
		p.cfg.Log.ErrorContext(ctx, "alert posted but not recorded", "alert_id", a.ID, "ts", ts, "error", err)
		return true, false, err
	}
	return true, false, nil
}
