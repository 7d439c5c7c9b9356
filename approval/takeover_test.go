package approval_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/defenderbot/defenderbot/actions"
	"github.com/defenderbot/defenderbot/approval"
	"github.com/defenderbot/defenderbot/defender"
)

// crashedExecuting leaves r as a dead replica would: claimed (executing)
// and never recorded further.
func (f *fixture) crashedExecuting(t *testing.T) *approval.Request {
	t.Helper()
	ctx := context.Background()
	r := f.create(t)
	_, _, err := f.core.Approve(ctx, "UA1", r.ID)
	require.NoError(t, err)
	ok, err := f.store.Transition(ctx, r.ID, approval.StateApproved, approval.StateExecuting, f.clock.Now())
	require.NoError(t, err)
	require.True(t, ok)
	return r
}

// Issue 11 §6: reconciliation matched the request tag with strings.Contains
// on the comment, so a request whose comment quotes another request's tag
// settled that other request with the wrong Defender action.
func TestReconcileMatchesTheRequestTagExactly(t *testing.T) {
	f := newFixture(t, 1)
	ctx := context.Background()
	crashed := f.crashedExecuting(t)
	quoting := f.create(t)
	// Another analyst's isolation of the same machine, whose comment quotes
	// the crashed request: Defender ran it, not the crashed one.
	f.def.listed = []defender.MachineAction{{ID: "ma-other", Status: defender.StatusSucceeded,
		RequestorComment: approval.TaggedComment("same as defenderbot request "+crashed.ID+", again", quoting.ID, []string{"UA2"})}}

	f.clock.Advance(approval.LeaseTTL(f.core) + time.Second)
	approval.Resume(ctx, f.core)
	f.core.Wait()
	got, err := f.store.GetRequest(ctx, crashed.ID)
	require.NoError(t, err)
	assert.Equal(t, approval.StateFailed, got.State, "no action carries the crashed request's own tag")
	assert.Empty(t, got.MachineActionID, "never settled with another request's action")
	assert.Zero(t, f.def.runs)
}

func TestRequestIDOfTaggedComment(t *testing.T) {
	const a, b = "0b6f3c1e-2d4a-4f5b-9c8d-7e6f5a4b3c2d", "9a1b2c3d-0000-4f5b-9c8d-7e6f5a4b3c2d"
	for _, tt := range []struct {
		comment, want string
	}{
		{approval.TaggedComment("beacon", a, []string{"U1", "U2"}), a},
		{approval.TaggedComment("beacon", a, nil), a},
		{approval.TaggedComment("see (defenderbot request "+b+", approved by U9)", a, []string{"U1"}), a},
		{approval.TaggedComment("defenderbot request "+b, a, []string{"U1"}), a},
		{"quotes defenderbot request " + a + " only", ""},
		{"(defenderbot request " + a + ", approved by U1) and more", ""},
		{"", ""},
	} {
		got, ok := approval.RequestIDOf(tt.comment)
		assert.Equal(t, tt.want, got, tt.comment)
		assert.Equal(t, tt.want != "", ok, tt.comment)
	}
}

// takeoverBound is issue 11 §6's promise: a dead replica's request shows its
// outcome within two minutes of the death, whatever it was doing.
const takeoverBound = 2 * time.Minute

// deadLease is the lease a replica with the production timings (15 s polls)
// holds: 3 polls.
const deadLease = 45 * time.Second

// scanUntil plays the surviving replica's takeover scans, every ScanEvery
// of the injected clock from the death, until done holds; it returns how
// long after the death that was.
func (f *fixture) scanUntil(t *testing.T, death time.Time, done func(*approval.Request) bool, id string) time.Duration {
	t.Helper()
	ctx := context.Background()
	// The survivor runs with the production timings (15 s polls, 1 min sweep).
	survivor := f.replicaWith(t, "survivor", f.store, 15*time.Second)
	for f.clock.Now().Sub(death) <= 10*time.Minute {
		approval.Resume(ctx, survivor)
		survivor.Wait()
		got, err := f.store.GetRequest(ctx, id)
		require.NoError(t, err)
		if done(got) {
			return f.clock.Now().Sub(death)
		}
		f.clock.Advance(approval.ScanEvery(survivor))
	}
	t.Fatalf("request %s never settled", id)
	return 0
}

// TestTakeoverWithinTwoMinutesAtEveryCrashPoint kills replica "dead" (it
// stops renewing its leases and writing) at each point of an execution;
// this replica's periodic scans show the outcome within two minutes and
// never call Defender a second time.
func TestTakeoverWithinTwoMinutesAtEveryCrashPoint(t *testing.T) {
	final := func(r *approval.Request) bool { return r.State.Final() }
	shown := func(r *approval.Request) bool { return r.State == approval.StateRunning || r.State.Final() }

	t.Run("before the call", func(t *testing.T) {
		f := newFixture(t, 1)
		r := f.crashedExecuting(t)
		death := f.clock.Now()
		_, err := f.store.AcquireLease(context.Background(), "execute:"+r.ID, "dead", death, deadLease)
		require.NoError(t, err)
		took := f.scanUntil(t, death, final, r.ID)
		t.Logf("outcome shown %s after the death", took)
		assert.LessOrEqual(t, took, takeoverBound)
		got, err := f.store.GetRequest(context.Background(), r.ID)
		require.NoError(t, err)
		assert.Equal(t, approval.StateFailed, got.State)
		assert.Contains(t, got.Error, "most likely did not run")
		assert.Zero(t, f.def.runs, "never called by the survivor")
		assert.Contains(t, f.events.list(), "finished:failed", "the outcome is shown")
	})

	t.Run("after Defender answered, before the store write", func(t *testing.T) {
		f := newFixture(t, 1)
		r := f.crashedExecuting(t)
		death := f.clock.Now()
		_, err := f.store.AcquireLease(context.Background(), "execute:"+r.ID, "dead", death, deadLease)
		require.NoError(t, err)
		f.def.listed = []defender.MachineAction{{ID: "ma-dead", Status: defender.StatusPending,
			RequestorComment: approval.TaggedComment("beaconing", r.ID, []string{"UA1"})}}
		f.def.polls = []defender.ActionStatus{defender.StatusSucceeded}
		took := f.scanUntil(t, death, shown, r.ID)
		t.Logf("outcome shown %s after the death", took)
		assert.LessOrEqual(t, took, takeoverBound)
		f.core.Wait()
		got, err := f.store.GetRequest(context.Background(), r.ID)
		require.NoError(t, err)
		assert.Equal(t, "ma-dead", got.MachineActionID, "the action the dead replica created")
		assert.Zero(t, f.def.runs, "never called a second time")
		assert.Contains(t, f.events.list(), "running")
	})

	t.Run("during follow-up", func(t *testing.T) {
		f := newFixture(t, 1)
		ctx := context.Background()
		r := f.crashedExecuting(t)
		running, ma, st := approval.StateRunning, "ma-dead", string(defender.StatusInProgress)
		require.NoError(t, f.store.UpdateRequest(ctx, r.ID, approval.RequestUpdate{State: &running, MachineActionID: &ma, MachineActionStatus: &st}, f.clock.Now()))
		death := f.clock.Now()
		_, err := f.store.AcquireLease(ctx, "followup:"+r.ID, "dead", death, deadLease)
		require.NoError(t, err)
		f.def.polls = []defender.ActionStatus{defender.StatusSucceeded}
		took := f.scanUntil(t, death, final, r.ID)
		t.Logf("outcome shown %s after the death", took)
		assert.LessOrEqual(t, took, takeoverBound)
		got, err := f.store.GetRequest(ctx, r.ID)
		require.NoError(t, err)
		assert.Equal(t, approval.StateSucceeded, got.State)
		assert.Zero(t, f.def.runs)
	})
}

// renewals counts a replica's successful AcquireLease calls per lease and
// remembers the clock time of the last one.
type renewals struct {
	approval.Store
	mu   sync.Mutex
	last map[string]time.Time
}

func (s *renewals) AcquireLease(ctx context.Context, name, owner string, now time.Time, ttl time.Duration) (bool, error) {
	ok, err := s.Store.AcquireLease(ctx, name, owner, now, ttl)
	if ok && err == nil {
		s.mu.Lock()
		s.last[name] = now
		s.mu.Unlock()
	}
	return ok, err
}

func (s *renewals) renewedAt(name string) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last[name]
}

// replica is another Core (replica id) on st, with f's clock and Defender.
func (f *fixture) replica(t *testing.T, id string, st approval.Store) *approval.Core {
	t.Helper()
	return f.replicaWith(t, id, st, time.Second)
}

func (f *fixture) replicaWith(t *testing.T, id string, st approval.Store, poll time.Duration) *approval.Core {
	t.Helper()
	core, err := approval.New(approval.Config{
		Approvers: []string{"UA1", "UA2", "UREQ"}, RequiredApprovals: 1, TTL: time.Hour,
		PollInterval: poll, PollTimeout: 30 * time.Minute, ReplicaID: id, SweepEvery: time.Minute, MaxBulk: 20, BulkPace: time.Second,
		ExecuteTimeout: 3 * time.Minute, BulkCallTimeout: time.Minute,
	}, approval.Deps{
		Store: st, Defender: f.def, Directory: directory{}, Notifier: f.events, Now: f.clock.Now,
		Sleep:   func(ctx context.Context, d time.Duration) error { f.clock.Advance(d); return ctx.Err() },
		Explain: func(err error, _ actions.Name) string { return err.Error() },
	})
	require.NoError(t, err)
	t.Cleanup(core.Stop)
	return core
}

// TestASlowCallIsNotTakenOver: while the executor is alive it renews its
// claim, so a Defender call slower than the lease is never reconciled (which
// would mark it "did not run" while it runs).
func TestASlowCallIsNotTakenOver(t *testing.T) {
	f := newFixture(t, 1)
	ctx := context.Background()
	st := &renewals{Store: f.store, last: map[string]time.Time{}}
	executor := f.replica(t, "r-exec", st)
	approval.SetRenewEvery(executor, time.Millisecond)
	survivor := f.replica(t, "r-other", f.store)
	r := f.create(t)
	r, _, err := f.core.Approve(ctx, "UA1", r.ID)
	require.NoError(t, err)

	inCall, release := make(chan struct{}), make(chan struct{})
	f.def.during = func() { close(inCall); <-release }
	f.def.polls = []defender.ActionStatus{defender.StatusSucceeded}
	done := make(chan error, 1)
	go func() { done <- executor.Execute(ctx, r) }()
	<-inCall
	for range 3 {
		f.clock.Advance(approval.LeaseTTL(f.core))
		now := f.clock.Now()
		require.Eventually(t, func() bool { return !st.renewedAt("execute:" + r.ID).Before(now) }, 5*time.Second, time.Millisecond,
			"the executor renews its claim")
		approval.Resume(ctx, survivor)
		got, err := f.store.GetRequest(ctx, r.ID)
		require.NoError(t, err)
		assert.Equal(t, approval.StateExecuting, got.State, "a live executor's call is left alone")
	}
	close(release)
	require.NoError(t, <-done)
	executor.Wait()
	got, err := f.store.GetRequest(ctx, r.ID)
	require.NoError(t, err)
	assert.Equal(t, approval.StateSucceeded, got.State, got.Error)
	assert.Equal(t, 1, f.def.runs)
	evs, err := f.store.ListAudit(ctx, time.Time{})
	require.NoError(t, err)
	for _, e := range evs {
		assert.NotEqual(t, "reconcile", e.Kind)
	}
}

// A comment of the longest length accepted still runs: the tag is added
// within the limit by shortening the comment, and stays whole.
func TestTaggedCommentFitsTheCommentLimit(t *testing.T) {
	const id = "0b6f3c1e-2d4a-4f5b-9c8d-7e6f5a4b3c2d"
	long := strings.Repeat("é", actions.MaxCommentLen)
	got := approval.TaggedComment(long, id, []string{"U0BOB", "U0CAROL"})
	assert.Equal(t, actions.MaxCommentLen, utf8.RuneCountInString(got))
	assert.True(t, strings.HasSuffix(got, "… (defenderbot request "+id+", approved by U0BOB, U0CAROL)"), got[len(got)-80:])
	gotID, ok := approval.RequestIDOf(got)
	assert.True(t, ok)
	assert.Equal(t, id, gotID)
	_, err := actions.Normalize(actions.Isolate, actions.Args{MachineID: machineID, Comment: got, IsolationType: "Full"})
	assert.NoError(t, err, "Defender gets a comment the registry accepts")
	assert.Equal(t, "short (defenderbot request "+id+", no approval required)", approval.TaggedComment("short", id, nil))
}

// takenButFailed takes the follow-up leases it is asked for but answers
// with an error, as a driver does when the caller's context ends while the
// statement commits (modernc's sqlite reports the cancellation).
type takenButFailed struct{ approval.Store }

func (s *takenButFailed) AcquireLease(ctx context.Context, name, owner string, now time.Time, ttl time.Duration) (bool, error) {
	if _, err := s.Store.AcquireLease(ctx, name, owner, now, ttl); err != nil {
		return false, err
	}
	return false, context.Canceled
}

// TestALeaseTakenDespiteAnErrorIsReleased: a replica whose follow-up lease
// was taken although the store answered with an error gives it back, so
// another replica follows the action at once rather than once it lapses
// (with a stopped clock: never).
func TestALeaseTakenDespiteAnErrorIsReleased(t *testing.T) {
	f := newFixture(t, 1)
	ctx := context.Background()
	r := f.crashedExecuting(t)
	running, ma, st := approval.StateRunning, "ma-1", string(defender.StatusInProgress)
	require.NoError(t, f.store.UpdateRequest(ctx, r.ID, approval.RequestUpdate{State: &running, MachineActionID: &ma, MachineActionStatus: &st}, f.clock.Now()))

	a := f.replica(t, "r-a", &takenButFailed{Store: f.store})
	approval.Resume(ctx, a)
	a.Wait()
	f.def.polls = []defender.ActionStatus{defender.StatusSucceeded}
	b := f.replica(t, "r-b", f.store)
	approval.Resume(ctx, b)
	b.Wait()
	got, err := f.store.GetRequest(ctx, r.ID)
	require.NoError(t, err)
	assert.Equal(t, approval.StateSucceeded, got.State, "the other replica followed it at once")
}
