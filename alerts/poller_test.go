package alerts_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/defenderbot/defenderbot/alerts"
	"github.com/defenderbot/defenderbot/config"
	"github.com/defenderbot/defenderbot/defender"
	"github.com/defenderbot/defenderbot/defender/defendertest"
	"github.com/defenderbot/defenderbot/graph"
	"github.com/defenderbot/defenderbot/store"
	"github.com/defenderbot/defenderbot/store/storetest"
)

const machineID = "1e5bc9d7e413ddd7902c2932e418702b84d0cc07"

// recPoster records cards; fail makes the next posts fail.
type recPoster struct {
	mu      sync.Mutex
	posts   []string // alert ids, in order
	updates []*graph.Alert
	fail    int
	n       int
}

func (r *recPoster) PostAlert(_ context.Context, channel string, a *graph.Alert) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail > 0 {
		r.fail--
		return "", errors.New("slack is down")
	}
	r.posts = append(r.posts, a.ID)
	r.n++
	return fmt.Sprintf("1700000000.%06d", r.n), nil
}

func (r *recPoster) UpdateAlert(_ context.Context, channel, ts string, a *graph.Alert) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.updates = append(r.updates, a)
	return nil
}

func (r *recPoster) posted() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.posts...)
}

type env struct {
	emu    *defendertest.Server
	client *graph.Client
	st     store.Store
}

func newEnv(t *testing.T) *env {
	t.Helper()
	s := defendertest.NewServer(t, defendertest.WithRateLimits(false))
	s.AddMachine(defendertest.Machine{ID: machineID, ComputerDNSName: "host1.contoso.com"})
	tokens, err := defender.NewTokenProvider(defender.Config{AuthorityHost: s.URL, TenantID: defendertest.TenantID,
		ClientID: defendertest.ClientID, ClientSecret: defendertest.ClientSecret, Scope: graph.DefaultScope},
		defender.WithHTTPClient(s.HTTPClient()))
	require.NoError(t, err)
	gcfg := config.Default().Defender.GraphClient()
	gcfg.BaseURL, gcfg.PerMinute = s.URL, -1
	c, err := graph.New(gcfg, tokens, graph.WithHTTPClient(s.HTTPClient()))
	require.NoError(t, err)
	return &env{emu: s, client: c, st: storetest.OpenSQLite(t)}
}

// poller is a replica polling with the emulator's clock.
func (e *env) poller(t *testing.T, owner string, p alerts.Poster, mutate ...func(*alerts.Config)) *alerts.Poller {
	t.Helper()
	cfg := alerts.Config{Channel: "C0ALERTS", MinSeverity: "medium", PollInterval: time.Minute, Backfill: time.Hour,
		Overlap: config.AlertsOverlap, Owner: owner, Now: e.emu.Now}
	for _, m := range mutate {
		m(&cfg)
	}
	pl, err := alerts.New(cfg, e.client, e.st, p)
	require.NoError(t, err)
	return pl
}

func poll(t *testing.T, p *alerts.Poller) alerts.Result {
	t.Helper()
	res, err := p.PollOnce(t.Context())
	require.NoError(t, err)
	return res
}

func TestBackfillSeverityAndRestart(t *testing.T) {
	e := newEnv(t)
	now := e.emu.Now()
	e.emu.AddGraphAlert(defendertest.GraphAlert{Title: "too old", Severity: "high", CreatedDateTime: now.Add(-2 * time.Hour)})
	recent := e.emu.AddGraphAlert(defendertest.GraphAlert{Title: "recent", Severity: "high", CreatedDateTime: now.Add(-30 * time.Minute)})
	e.emu.AddGraphAlert(defendertest.GraphAlert{Title: "low", Severity: "low"})
	medium := e.emu.NewDeviceAlert(machineID, "medium", "medium")

	rec := &recPoster{}
	res := poll(t, e.poller(t, "r1", rec))
	assert.True(t, res.Leader)
	assert.Equal(t, []string{recent.ID, medium.ID}, rec.posted(), "backfill 1h, min severity medium, oldest first")
	assert.Equal(t, 2, res.Posted)

	e.emu.Advance(time.Minute)
	assert.Zero(t, poll(t, e.poller(t, "r1", rec)).Posted, "the overlap sees them again; nothing twice")

	// A restart after downtime resumes from the stored cursor: alerts
	// created meanwhile are posted, the old ones are not re-posted.
	e.emu.Advance(3 * time.Hour)
	during := e.emu.AddGraphAlert(defendertest.GraphAlert{Title: "while down", Severity: "high", CreatedDateTime: e.emu.Now().Add(-2 * time.Hour)})
	rec2 := &recPoster{}
	res = poll(t, e.poller(t, "r1-restarted", rec2, func(c *alerts.Config) { c.Backfill = 0 }))
	assert.Equal(t, []string{during.ID}, rec2.posted())
	post, err := e.st.GetAlertPost(t.Context(), during.ID)
	require.NoError(t, err)
	assert.Equal(t, "C0ALERTS", post.Channel)
	assert.NotEmpty(t, post.TS)
}

func TestTwoReplicasPostOnce(t *testing.T) {
	e := newEnv(t)
	rec1, rec2 := &recPoster{}, &recPoster{}
	p1, p2 := e.poller(t, "r1", rec1), e.poller(t, "r2", rec2)
	a := e.emu.NewDeviceAlert(machineID, "x", "high")

	var wg sync.WaitGroup
	results := make([]alerts.Result, 2)
	for i, p := range []*alerts.Poller{p1, p2} {
		wg.Go(func() {
			res, err := p.PollOnce(context.Background())
			assert.NoError(t, err)
			results[i] = res
		})
	}
	wg.Wait()
	assert.NotEqual(t, results[0].Leader, results[1].Leader, "one leader")
	assert.Equal(t, []string{a.ID}, append(rec1.posted(), rec2.posted()...))

	// The leader dies: the other takes over once the lease lapses.
	follower, frec := p2, rec2
	if results[1].Leader {
		follower, frec = p1, rec1
	}
	b := e.emu.NewDeviceAlert(machineID, "y", "high")
	assert.False(t, poll(t, follower).Leader)
	e.emu.Advance(4 * time.Minute)
	res := poll(t, follower)
	assert.True(t, res.Leader)
	assert.Contains(t, frec.posted(), b.ID)
	assert.NotContains(t, frec.posted(), a.ID)
}

func TestChangesUpdateTheCardInPlace(t *testing.T) {
	e := newEnv(t)
	rec := &recPoster{}
	p := e.poller(t, "r1", rec)
	a := e.emu.NewDeviceAlert(machineID, "x", "high")
	poll(t, p)

	e.emu.Advance(time.Minute)
	status, cls := "resolved", "truePositive"
	_, err := e.client.UpdateAlert(t.Context(), a.ID, graph.AlertUpdate{Status: &status, Classification: &cls})
	require.NoError(t, err)
	e.emu.Advance(time.Minute)
	res := poll(t, p)
	assert.Equal(t, 1, res.Updated)
	require.Len(t, rec.updates, 1)
	assert.Equal(t, "resolved", rec.updates[0].Status)
	assert.Equal(t, "truePositive", rec.updates[0].Classification)

	e.emu.Advance(time.Minute)
	assert.Zero(t, poll(t, p).Updated, "no change, no update")
	assert.Len(t, rec.posted(), 1)

	// A change to an alert that was never posted (below the threshold) posts nothing.
	low := e.emu.AddGraphAlert(defendertest.GraphAlert{Severity: "low"})
	poll(t, p)
	_, err = e.client.UpdateAlert(t.Context(), low.ID, graph.AlertUpdate{Status: &status})
	require.NoError(t, err)
	res = poll(t, p)
	assert.Zero(t, res.Posted+res.Updated)
}

func TestFailedPostIsRetriedAndCursorHolds(t *testing.T) {
	e := newEnv(t)
	rec := &recPoster{fail: 1}
	p := e.poller(t, "r1", rec)
	a := e.emu.NewDeviceAlert(machineID, "x", "high")
	start := e.emu.Now()
	_, err := p.PollOnce(t.Context())
	require.ErrorContains(t, err, "slack is down")
	pos, err := e.st.FeedCursor(t.Context(), alerts.CursorFeed)
	require.NoError(t, err)
	cur, err := time.Parse(time.RFC3339Nano, pos)
	require.NoError(t, err)
	assert.True(t, cur.Before(start), "the cursor did not pass the failed alert")

	e.emu.Advance(2 * time.Hour) // far beyond the overlap
	res := poll(t, p)
	assert.Equal(t, []string{a.ID}, rec.posted())
	assert.Equal(t, 1, res.Posted)
}

func TestLateArrivalWithinOverlap(t *testing.T) {
	e := newEnv(t)
	rec := &recPoster{}
	p := e.poller(t, "r1", rec)
	poll(t, p)
	e.emu.Advance(time.Minute)
	// Listed only now, created before the last poll's cursor.
	late := e.emu.AddGraphAlert(defendertest.GraphAlert{Severity: "high", CreatedDateTime: e.emu.Now().Add(-5 * time.Minute)})
	poll(t, p)
	assert.Equal(t, []string{late.ID}, rec.posted())
}

func TestServiceSourcesAndScanFinding(t *testing.T) {
	e := newEnv(t)
	e.emu.SetScanFinding(machineID, defendertest.GraphAlert{Title: "EICAR", Severity: "medium"})
	rec := &recPoster{}
	p := e.poller(t, "r1", rec, func(c *alerts.Config) { c.ServiceSources = []string{"MicrosoftDefenderForEndpoint"} })
	e.emu.AddGraphAlert(defendertest.GraphAlert{Severity: "high", ServiceSource: "microsoftDefenderForIdentity"})
	poll(t, p)
	assert.Empty(t, rec.posted())

	c, err := defender.New(e.emu.ClientConfig(), defender.WithHTTPClient(e.emu.HTTPClient()))
	require.NoError(t, err)
	_, err = c.RunAntivirusScan(t.Context(), machineID, "scan", defender.ScanQuick)
	require.NoError(t, err)
	e.emu.Advance(5 * time.Minute)
	poll(t, p)
	require.Len(t, rec.posted(), 1)
	got, _ := e.emu.GraphAlert(rec.posted()[0])
	assert.Equal(t, "EICAR", got.Title)
}

func TestRunReleasesTheLease(t *testing.T) {
	e := newEnv(t)
	rec := &recPoster{}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	p := e.poller(t, "r1", rec, func(c *alerts.Config) { c.PollInterval = time.Hour })
	e.emu.NewDeviceAlert(machineID, "x", "high")
	go func() { done <- p.Run(ctx) }()
	require.Eventually(t, func() bool { return len(rec.posted()) == 1 }, 5*time.Second, 10*time.Millisecond)
	cancel()
	require.NoError(t, <-done)
	ok, err := e.st.AcquireLease(t.Context(), alerts.LeaseName, "r2", e.emu.Now(), time.Minute)
	require.NoError(t, err)
	assert.True(t, ok, "released on shutdown")
}

func TestNewValidates(t *testing.T) {
	e := newEnv(t)
	for _, cfg := range []alerts.Config{{Owner: "r1"}, {Channel: "C1"}, {Channel: "C1", Owner: "r1", MinSeverity: "urgent"},
		{Channel: "C1", Owner: "r1", ServiceSources: []string{"mde"}}, {Channel: "C1", Owner: "r1", Backfill: -1},
		{Channel: "C1", Owner: "r1", MinSeverity: "medium", Overlap: time.Minute}, {Channel: "C1", Owner: "r1", MinSeverity: "medium", PollInterval: time.Minute}} {
		_, err := alerts.New(cfg, e.client, e.st, &recPoster{})
		assert.Error(t, err, "%+v", cfg)
	}
}

// pollCounter records AlertPoll calls.
type pollCounter struct {
	mu    sync.Mutex
	polls []string
}

func (c *pollCounter) AlertPoll(ok bool, posted, updated int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.polls = append(c.polls, fmt.Sprintf("ok=%v posted=%d updated=%d", ok, posted, updated))
}

func (c *pollCounter) snapshot() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.polls...)
}

// TestRunReportsPollsToMetrics: the lease holder reports each poll with the
// cards it posted; a replica without the lease reports nothing.
func TestRunReportsPollsToMetrics(t *testing.T) {
	e := newEnv(t)
	rec := &recPoster{}
	leader, follower := &pollCounter{}, &pollCounter{}
	e.emu.NewDeviceAlert(machineID, "x", "high")

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	p := e.poller(t, "r1", rec, func(c *alerts.Config) { c.PollInterval = time.Hour; c.Metrics = leader })
	go func() { done <- p.Run(ctx) }()
	require.Eventually(t, func() bool { return len(leader.snapshot()) == 1 }, 5*time.Second, 10*time.Millisecond)
	assert.Equal(t, []string{"ok=true posted=1 updated=0"}, leader.snapshot())

	ctx2, cancel2 := context.WithCancel(t.Context())
	done2 := make(chan error, 1)
	// The follower polls every millisecond; its second lease attempt shows
	// that its first poll, and whatever it reported, is over.
	spy := &leaseSpy{Store: e.st, tried: make(chan bool, 2)}
	cfg := alerts.Config{Channel: "C0ALERTS", MinSeverity: "medium", PollInterval: time.Millisecond, Backfill: time.Hour,
		Overlap: config.AlertsOverlap, Owner: "r2", Now: e.emu.Now, Metrics: follower}
	p2, err := alerts.New(cfg, e.client, spy, rec)
	require.NoError(t, err)
	go func() { done2 <- p2.Run(ctx2) }()
	require.False(t, <-spy.tried, "the follower's first poll finds the lease taken")
	require.False(t, <-spy.tried, "and so does its second")
	cancel2()
	require.NoError(t, <-done2)
	assert.Empty(t, follower.snapshot(), "a replica without the lease polled nothing")

	cancel()
	require.NoError(t, <-done)
}

// leaseSpy reports the outcome of the first lease attempts, so a test can
// wait for a follower's polls instead of sleeping.
type leaseSpy struct {
	alerts.Store
	tried chan bool
}

func (l *leaseSpy) AcquireLease(ctx context.Context, name, owner string, now time.Time, ttl time.Duration) (bool, error) {
	ok, err := l.Store.AcquireLease(ctx, name, owner, now, ttl)
	select {
	case l.tried <- ok:
	default:
	}
	return ok, err
}

// cancelledWhileTaking takes the lease, then the poller's context ends and
// the store answers with the cancellation, as modernc's sqlite does for a
// statement that committed.
type cancelledWhileTaking struct {
	alerts.Store
	cancel context.CancelFunc
}

func (s *cancelledWhileTaking) AcquireLease(ctx context.Context, name, owner string, now time.Time, ttl time.Duration) (bool, error) {
	if _, err := s.Store.AcquireLease(ctx, name, owner, now, ttl); err != nil {
		return false, err
	}
	s.cancel()
	return false, context.Canceled
}

// TestRunReleasesALeaseTakenDespiteAnError: the poller holds its lease
// between polls (it is the leader), so a lease taken despite an error is
// only a leak once Run ends; Run releases it then, and another replica
// polls at once instead of after the lease's TTL.
func TestRunReleasesALeaseTakenDespiteAnError(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(t.Context())
	cfg := alerts.Config{Channel: "C0ALERTS", MinSeverity: "medium", PollInterval: time.Hour, Backfill: time.Hour,
		Overlap: config.AlertsOverlap, Owner: "r1", Now: e.emu.Now}
	p, err := alerts.New(cfg, e.client, &cancelledWhileTaking{Store: e.st, cancel: cancel}, &recPoster{})
	require.NoError(t, err)
	require.NoError(t, p.Run(ctx))
	ok, err := e.st.AcquireLease(t.Context(), alerts.LeaseName, "r2", e.emu.Now(), time.Minute)
	require.NoError(t, err)
	assert.True(t, ok, "released although the store answered with an error")
}
