package ioc

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/defenderbot/defenderbot/config"
	"github.com/defenderbot/defenderbot/defender"
	"github.com/defenderbot/defenderbot/store/storetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeClock is a clock tests move by hand; safe for concurrent use.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

// spyLeaser reports every lease renewal (AcquireLease after the first) on renewed.
type spyLeaser struct {
	Leaser
	mu      sync.Mutex
	calls   int
	fail    error // returned by renewals when set
	renewed chan bool
}

func (s *spyLeaser) AcquireLease(ctx context.Context, name, owner string, now time.Time, ttl time.Duration) (bool, error) {
	s.mu.Lock()
	s.calls++
	first, fail := s.calls == 1, s.fail
	s.mu.Unlock()
	if !first && fail != nil {
		s.renewed <- false
		return false, fail
	}
	ok, err := s.Leaser.AcquireLease(ctx, name, owner, now, ttl)
	if !first {
		s.renewed <- ok && err == nil
	}
	return ok, err
}

// slowAPI blocks imports until release is closed or the run is cancelled.
type slowAPI struct {
	IndicatorAPI
	started chan struct{}
	once    sync.Once
	release chan struct{}
}

func (s *slowAPI) ImportIndicators(ctx context.Context, inds []defender.Indicator) ([]defender.ImportResult, error) {
	s.once.Do(func() { close(s.started) })
	select {
	case <-s.release:
		return s.IndicatorAPI.ImportIndicators(ctx, inds)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type leaseRig struct {
	clock   *fakeClock
	slow    *slowAPI
	spy     *spyLeaser
	ticks   chan time.Time
	jobA    func(context.Context) error
	jobB    func(context.Context) error
	reports chan string // B's reports
	st      interface {
		Leaser
		StateStore
	}
}

// newLeaseRig sets up two replicas on one SQLite store: A runs slowly and
// renews its lease when the test ticks; B is a normal replica.
func newLeaseRig(t *testing.T) *leaseRig {
	h := newHarness(t)
	writeFeed(t, h.dir, domains(0, 2))
	r := &leaseRig{clock: &fakeClock{t: testNow}, ticks: make(chan time.Time), reports: make(chan string, 10)}
	r.st = storetest.OpenSQLite(t)
	r.slow = &slowAPI{IndicatorAPI: h.api, started: make(chan struct{}), release: make(chan struct{})}
	r.spy = &spyLeaser{Leaser: r.st, renewed: make(chan bool)}
	opts := Options{StixObjectsPath: h.path, Action: "Block", MaxObjectBytes: config.DefaultMaxObjectBytes, Mode: ModeIncremental, Patterns: PatternsAll, TenantLimit: config.DefaultTenantLimit, Severity: "High", Now: r.clock.Now}
	a, err := NewSyncer(r.slow, r.st, opts, nil)
	require.NoError(t, err)
	b, err := NewSyncer(h.api, r.st, opts, nil)
	require.NoError(t, err)
	r.jobA, err = a.ScheduledJob(JobConfig{Leaser: r.spy, Owner: "replica-a", LeaseTTL: 30 * time.Second, RenewEvery: 10 * time.Second, RunTimeout: time.Hour,
		newTicker: func(d time.Duration) (<-chan time.Time, func()) {
			assert.Equal(t, 10*time.Second, d, "renewal every TTL/3")
			return r.ticks, func() {}
		}})
	require.NoError(t, err)
	r.jobB, err = b.ScheduledJob(JobConfig{Leaser: r.st, Owner: "replica-b", LeaseTTL: 30 * time.Second, RenewEvery: 10 * time.Second, RunTimeout: time.Hour,
		Reporter: ReporterFunc(func(_ context.Context, s string) error { r.reports <- s; return nil })})
	require.NoError(t, err)
	return r
}

// tick moves the clock and lets A renew; it returns the renewal's outcome.
func (r *leaseRig) tick(d time.Duration) bool {
	r.ticks <- r.clock.Advance(d)
	return <-r.spy.renewed
}

func TestScheduledJobRenewsLeaseDuringLongRun(t *testing.T) {
	r := newLeaseRig(t)
	doneA := make(chan error, 1)
	go func() { doneA <- r.jobA(context.Background()) }()
	<-r.slow.started

	// A runs for 100s, 3x its TTL: each renewal keeps the lease, B never starts.
	for range 10 {
		require.True(t, r.tick(10*time.Second), "renewed")
		require.NoError(t, r.jobB(context.Background()))
		assert.Empty(t, r.reports, "B must not run while A is running")
	}
	close(r.slow.release)
	require.NoError(t, <-doneA)

	// A released the lease: B runs now.
	require.NoError(t, r.jobB(context.Background()))
	require.Len(t, r.reports, 1)
	assert.Contains(t, <-r.reports, "2 unchanged")
}

func TestScheduledJobCancelledWhenLeaseLost(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, r *leaseRig)
	}{
		{"taken by another replica", func(t *testing.T, r *leaseRig) {
			// A's renewals stalled past its TTL and another replica took over.
			ok, err := r.st.AcquireLease(context.Background(), LeaseName, "replica-c", r.clock.Advance(31*time.Second), time.Minute)
			require.NoError(t, err)
			require.True(t, ok)
			assert.False(t, r.tick(time.Second))
		}},
		{"renewals fail until it lapses", func(t *testing.T, r *leaseRig) {
			r.spy.mu.Lock()
			r.spy.fail = errors.New("database is locked")
			r.spy.mu.Unlock()
			assert.False(t, r.tick(10*time.Second)) // retried at the next tick
			assert.False(t, r.tick(10*time.Second))
			assert.False(t, r.tick(10*time.Second)) // 30s: lapsed
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newLeaseRig(t)
			doneA := make(chan error, 1)
			go func() { doneA <- r.jobA(context.Background()) }()
			<-r.slow.started
			tt.setup(t, r)
			err := <-doneA
			require.ErrorIs(t, err, ErrLeaseLost)
			last, lerr := r.st.LastSyncRun(context.Background())
			require.NoError(t, lerr)
			assert.False(t, last.OK)
			assert.Contains(t, last.Summary, "lease lost", "the stored run says why it stopped")
		})
	}
}

// A run that outlives its run timeout (iocs.run_timeout; an hour in the
// rig) is cancelled at the next renewal tick, says why, and gives the lease
// up, so the next replica's run starts at once.
func TestRunLongerThanRunTimeoutIsCancelled(t *testing.T) {
	r := newLeaseRig(t)
	doneA := make(chan error, 1)
	go func() { doneA <- r.jobA(context.Background()) }()
	<-r.slow.started
	require.True(t, r.tick(59*time.Minute), "renewed within the run timeout")
	r.ticks <- r.clock.Advance(time.Minute) // an hour since the run started
	err := <-doneA
	require.ErrorIs(t, err, ErrRunTimeout)
	last, lerr := r.st.LastSyncRun(context.Background())
	require.NoError(t, lerr)
	assert.False(t, last.OK)
	assert.Contains(t, last.Summary, "iocs.run_timeout")

	require.NoError(t, r.jobB(context.Background()))
	require.Len(t, r.reports, 1, "B ran: A gave the lease up")
	assert.Contains(t, <-r.reports, "2 imported")
}

func TestScheduledJobRejectsRenewalNotShorterThanTTL(t *testing.T) {
	h := newHarness(t)
	_, err := h.syncer(t, nil).ScheduledJob(JobConfig{Leaser: h.st, Owner: "a", LeaseTTL: time.Minute, RenewEvery: time.Minute, RunTimeout: time.Hour})
	require.ErrorContains(t, err, "must be shorter than the lease TTL")
	// No defaults of its own (config.IOCLeaseTTL, config.IOCLeaseRenewEvery).
	_, err = h.syncer(t, nil).ScheduledJob(JobConfig{Leaser: h.st, Owner: "a"})
	require.ErrorContains(t, err, "lease TTL and renewal interval must be positive")
	_, err = h.syncer(t, nil).ScheduledJob(JobConfig{Leaser: h.st, Owner: "a", LeaseTTL: time.Minute, RenewEvery: time.Second})
	require.ErrorContains(t, err, "positive run timeout (iocs.run_timeout)")
}

// TestSlackRunDuringScheduledRun: a run asked for while this process's
// scheduled run is going is refused by the local lock before it touches the
// lease (same owner), says since when and where the sync runs, and leaves
// the running sync's lease alone: another replica still cannot start.
func TestSlackRunDuringScheduledRun(t *testing.T) {
	h := newHarness(t)
	writeFeed(t, h.dir, domains(0, 2))
	clock := &fakeClock{t: time.Date(2026, 1, 15, 14, 5, 0, 0, time.UTC)}
	slow := &slowAPI{IndicatorAPI: h.api, started: make(chan struct{}), release: make(chan struct{})}
	opts := Options{StixObjectsPath: h.path, Action: "Block", MaxObjectBytes: config.DefaultMaxObjectBytes, Mode: ModeIncremental, Patterns: PatternsAll, TenantLimit: config.DefaultTenantLimit, Severity: "High", Now: clock.Now}
	a, err := NewSyncer(slow, h.st, opts, nil)
	require.NoError(t, err)
	never := func(time.Duration) (<-chan time.Time, func()) { return nil, func() {} }
	cfg := JobConfig{Leaser: h.st, Owner: "replica-a", LeaseTTL: config.IOCLeaseTTL, RenewEvery: config.IOCLeaseRenewEvery, RunTimeout: config.DefaultIOCRunTimeout, newTicker: never}
	job, err := a.ScheduledJob(cfg)
	require.NoError(t, err)
	onDemand, err := a.Leased(cfg)
	require.NoError(t, err)

	done := make(chan error, 1)
	go func() { done <- job(context.Background()) }()
	<-slow.started
	clock.Advance(30 * time.Second)

	_, err = onDemand.RunNow(context.Background(), "slack")
	require.ErrorIs(t, err, ErrRunning)
	var running *RunningError
	require.ErrorAs(t, err, &running)
	assert.Equal(t, "replica-a", running.Replica)
	assert.Equal(t, time.Date(2026, 1, 15, 14, 5, 0, 0, time.UTC), running.Since)
	assert.Equal(t, "an IOC sync is already running since 14:05 UTC (replica replica-a); try again when it has finished", err.Error())

	// The running sync's lease is intact: replica B is refused.
	b, err := NewSyncer(h.api, h.st, opts, nil)
	require.NoError(t, err)
	other, err := b.Leased(JobConfig{Leaser: h.st, Owner: "replica-b", LeaseTTL: config.IOCLeaseTTL, RenewEvery: config.IOCLeaseRenewEvery, RunTimeout: config.DefaultIOCRunTimeout})
	require.NoError(t, err)
	_, err = other.Run(context.Background(), "slack")
	require.ErrorIs(t, err, ErrLeaseHeld)
	require.ErrorAs(t, err, &running)
	assert.Equal(t, "replica-a", running.Replica, "the lease holder is named")
	assert.Equal(t, time.Date(2026, 1, 15, 14, 5, 0, 0, time.UTC), running.Since.UTC(), "since the lease was taken")
	assert.Equal(t, time.Date(2026, 1, 15, 14, 6, 30, 0, time.UTC), running.Expires.UTC(), "its last renewal and the TTL")
	assert.Equal(t, "an IOC sync holds the lease since 14:05 UTC (replica replica-a); if that run is dead, the lease expires at 14:06:30 UTC: "+
		"try again after that, or once the run has finished (a live run renews its lease)", err.Error())
	assert.Zero(t, h.api.count(), "B sent nothing")

	close(slow.release)
	require.NoError(t, <-done)
	_, err = other.Run(context.Background(), "slack")
	require.NoError(t, err, "A released its lease at the end of its run")
}

// TestDeadRunLeaseTakenOverWithinTwoMinutes: a run that stops renewing (its
// process was killed) holds the lease for at most the default TTL; after 2
// minutes another replica, or the restarted process under its new name,
// runs the sync. The dead run's late release does not free the new lease.
func TestDeadRunLeaseTakenOverWithinTwoMinutes(t *testing.T) {
	h := newHarness(t)
	writeFeed(t, h.dir, domains(0, 2))
	clock := &fakeClock{t: testNow}
	slow := &slowAPI{IndicatorAPI: h.api, started: make(chan struct{}), release: make(chan struct{})}
	opts := Options{StixObjectsPath: h.path, Action: "Block", MaxObjectBytes: config.DefaultMaxObjectBytes, Mode: ModeIncremental, Patterns: PatternsAll, TenantLimit: config.DefaultTenantLimit, Severity: "High", Now: clock.Now}
	dead, err := NewSyncer(slow, h.st, opts, nil)
	require.NoError(t, err)
	// Default lease timing; its renewals never come (the process is frozen).
	deadJob, err := dead.Leased(JobConfig{Leaser: h.st, Owner: "host-101", LeaseTTL: config.IOCLeaseTTL, RenewEvery: config.IOCLeaseRenewEvery, RunTimeout: config.DefaultIOCRunTimeout,
		newTicker: func(time.Duration) (<-chan time.Time, func()) { return nil, func() {} }})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { _, err := deadJob.Run(context.Background(), "schedule"); done <- err }()
	<-slow.started

	restarted, err := NewSyncer(h.api, h.st, opts, nil)
	require.NoError(t, err)
	var reports []string
	job, err := restarted.ScheduledJob(JobConfig{Leaser: h.st, Owner: "host-202", LeaseTTL: config.IOCLeaseTTL, RenewEvery: config.IOCLeaseRenewEvery, RunTimeout: config.DefaultIOCRunTimeout,
		Reporter: ReporterFunc(func(_ context.Context, s string) error { reports = append(reports, s); return nil })})
	require.NoError(t, err)

	clock.Advance(time.Minute)
	require.NoError(t, job(context.Background()))
	assert.Empty(t, reports, "within the TTL the dead run's lease still holds")

	clock.Advance(time.Minute)
	require.NoError(t, job(context.Background()))
	require.Len(t, reports, 1, "2 minutes after the last renewal the sync runs again")
	assert.Contains(t, reports[0], "2 imported")

	// The new holder keeps its lease against the dead run's release.
	ok, err := h.st.AcquireLease(context.Background(), LeaseName, "host-202", clock.Now(), time.Hour)
	require.NoError(t, err)
	require.True(t, ok)
	close(slow.release)
	<-done
	holder, err := h.st.LeaseHolder(context.Background(), LeaseName, clock.Now())
	require.NoError(t, err)
	assert.Equal(t, "host-202", holder.Owner)
}

// takenButFailed takes the lease it is asked for but answers with an error,
// as a driver does when the caller's context ends while the statement
// commits (modernc's sqlite then reports the cancellation).
type takenButFailed struct{ Leaser }

func (s takenButFailed) AcquireLease(ctx context.Context, name, owner string, now time.Time, ttl time.Duration) (bool, error) {
	if _, err := s.Leaser.AcquireLease(ctx, name, owner, now, ttl); err != nil {
		return false, err
	}
	return false, context.Canceled
}

// TestALeaseTakenDespiteAnErrorIsReleased: a run whose lease was taken
// although the store answered with an error does not start, and gives the
// lease back, so another replica (or push-iocs) can sync at once rather
// than once the lease lapses.
func TestALeaseTakenDespiteAnErrorIsReleased(t *testing.T) {
	h := newHarness(t)
	writeFeed(t, h.dir, domains(0, 2))
	clock := &fakeClock{t: testNow}
	opts := Options{StixObjectsPath: h.path, Action: "Block", MaxObjectBytes: config.DefaultMaxObjectBytes, Mode: ModeIncremental, Patterns: PatternsAll, TenantLimit: config.DefaultTenantLimit, Severity: "High", Now: clock.Now}
	leased := func(owner string, l Leaser) *LeasedSyncer {
		s, err := NewSyncer(h.api, h.st, opts, nil)
		require.NoError(t, err)
		ls, err := s.Leased(JobConfig{Leaser: l, Owner: owner, LeaseTTL: config.IOCLeaseTTL, RenewEvery: config.IOCLeaseRenewEvery, RunTimeout: config.DefaultIOCRunTimeout})
		require.NoError(t, err)
		return ls
	}

	_, err := leased("replica-a", takenButFailed{h.st}).Run(context.Background(), "schedule")
	require.ErrorIs(t, err, context.Canceled)
	assert.Zero(t, h.api.count(), "the run did not start")

	rep, err := leased("replica-b", h.st).Run(context.Background(), "slack")
	require.NoError(t, err, "replica-a's lease was given back (the clock has not moved)")
	assert.Equal(t, 2, rep.Imported)
}

// TestRunningErrorSaysWhatIsKnown: a refusal by another holder's lease
// does not claim that a sync is running (its holder may be dead): it says
// who holds the lease since when, when it expires if that run is dead, and
// what to do; without the holder's record, how long the lease can last.
func TestRunningErrorSaysWhatIsKnown(t *testing.T) {
	since := time.Date(2026, 1, 15, 14, 5, 12, 0, time.UTC)
	tests := []struct {
		err  *RunningError
		want string
	}{
		{&RunningError{Since: since, Replica: "host-101", local: true},
			"an IOC sync is already running since 14:05 UTC (replica host-101); try again when it has finished"},
		{&RunningError{Since: since, Replica: "cli-host-101", Expires: since.Add(90 * time.Second)},
			"an IOC sync holds the lease since 14:05 UTC (replica cli-host-101); if that run is dead, the lease expires at 14:06:42 UTC: " +
				"try again after that, or once the run has finished (a live run renews its lease)"},
		{&RunningError{ttl: 90 * time.Second},
			"an IOC sync holds the lease; if that run is dead, the lease expires within 1m30s: " +
				"try again after that, or once the run has finished (a live run renews its lease)"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, tt.err.Error())
	}
}
