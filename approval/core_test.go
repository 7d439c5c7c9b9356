package approval_test

// The approval core's rules, tested against the real SQLite store with no
// Slack stand-in: a recording Notifier and Directory and a scripted
// Defender are all the core needs.

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/defenderbot/defenderbot/actions"
	"github.com/defenderbot/defenderbot/approval"
	"github.com/defenderbot/defenderbot/defender"
	"github.com/defenderbot/defenderbot/store"
	"github.com/defenderbot/defenderbot/store/storetest"
)

const machineID = "1e5bc9d7e413ddd7902c2932e418702b84d0cc07"

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// directory lists users directly; group look-ups fail when down.
type directory struct{ down bool }

func (d directory) InList(_ context.Context, list []string, user string) (bool, error) {
	if d.down {
		return false, errors.New("directory down")
	}
	for _, u := range list {
		if u == user {
			return true, nil
		}
	}
	return false, nil
}

// events records what the Notifier was told, as "kind:requestID[:detail]".
type events struct {
	mu  sync.Mutex
	got []string
}

func (e *events) add(s string) { e.mu.Lock(); e.got = append(e.got, s); e.mu.Unlock() }
func (e *events) list() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.got...)
}
func (e *events) Changed(_ context.Context, r *approval.Request) { e.add("changed:" + string(r.State)) }
func (e *events) Status(_ context.Context, r *approval.Request, ma *defender.MachineAction) {
	e.add("status:" + string(ma.Status))
}
func (e *events) Running(_ context.Context, r *approval.Request, _ *defender.MachineAction) {
	e.add("running")
}
func (e *events) Finished(_ context.Context, r *approval.Request) {
	e.add("finished:" + string(r.State))
}
func (e *events) Expired(_ context.Context, r *approval.Request) { e.add("expired") }
func (e *events) Rejected(_ context.Context, r *approval.Request) {
	e.add("rejected:" + r.RejectReason)
}
func (e *events) Progress(_ context.Context, r *approval.Request) {
	var b strings.Builder
	for _, t := range r.Targets {
		b.WriteString(" " + string(t.State))
	}
	e.add("progress:" + strings.TrimSpace(b.String()))
}

// fakeDefender creates machine actions whose status follows polls.
type fakeDefender struct {
	mu     sync.Mutex
	runs   int
	polls  []defender.ActionStatus
	listed []defender.MachineAction
	// during, when set, runs inside Run before Defender answers (a slow call).
	during func()
	// Bulk tests: each machine's action is "ma-<machine>" (instead of
	// "ma-1"), reads of it answer status[id] when set, and Run fails for
	// the machines in fail.
	perMachine bool
	byMachine  map[string]int
	status     map[string]defender.ActionStatus
	fail       map[string]error
	listedFor  map[string][]defender.MachineAction
	callAt     []time.Duration
}

func (d *fakeDefender) Run(_ context.Context, n actions.Name, a actions.Args) (*actions.Result, error) {
	if d.during != nil {
		d.during()
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.runs++
	if d.byMachine == nil {
		d.byMachine = map[string]int{}
	}
	d.byMachine[a.MachineID]++
	if err := d.fail[a.MachineID]; err != nil {
		return nil, err
	}
	id := "ma-1"
	if d.perMachine {
		id = "ma-" + a.MachineID
	}
	ma := &defender.MachineAction{ID: id, Type: n.MachineActionType(), Status: defender.StatusPending, MachineID: a.MachineID, RequestorComment: a.Comment}
	return &actions.Result{Output: map[string]any{"id": ma.ID}, MachineAction: ma}, nil
}

func (d *fakeDefender) GetMachineAction(_ context.Context, id string) (*defender.MachineAction, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := defender.StatusInProgress
	if s, ok := d.status[id]; ok {
		return &defender.MachineAction{ID: id, Status: s}, nil
	}
	if len(d.polls) > 0 {
		st, d.polls = d.polls[0], d.polls[1:]
	}
	return &defender.MachineAction{ID: id, Status: st}, nil
}

func (d *fakeDefender) ListMachineActions(_ context.Context, machineID, _ string) ([]defender.MachineAction, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if l, ok := d.listedFor[machineID]; ok {
		return l, nil
	}
	return d.listed, nil
}

func (m *metrics) MachineAction(action, status string)               {}
func (m *metrics) PendingApprovals(n int, oldest, ttl time.Duration) {}

type metrics struct {
	mu sync.Mutex
	n  map[string]int
}

func (m *metrics) Approval(state string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.n == nil {
		m.n = map[string]int{}
	}
	m.n[state]++
}

type fixture struct {
	mu     sync.Mutex
	sleeps []time.Duration

	core    *approval.Core
	store   store.Store
	clock   *clock
	def     *fakeDefender
	events  *events
	metrics *metrics
}

func newFixture(t *testing.T, required int) *fixture {
	t.Helper()
	f := &fixture{clock: &clock{t: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}, def: &fakeDefender{}, events: &events{}, metrics: &metrics{}}
	f.store = storetest.OpenSQLite(t, store.WithClock(f.clock.Now))
	core, err := approval.New(approval.Config{
		Approvers: []string{"UA1", "UA2", "UREQ"}, RequiredApprovals: required, TTL: time.Hour,
		ActionsWithoutApproval: []actions.Name{actions.GetAction}, PollInterval: time.Second, PollTimeout: time.Minute,
		ReplicaID: "r1", SweepEvery: time.Minute, MaxBulk: 20, BulkPace: time.Second, ExecuteTimeout: 3 * time.Minute, BulkCallTimeout: time.Minute,
	}, approval.Deps{
		Store: f.store, Defender: f.def, Directory: directory{}, Notifier: f.events, Metrics: f.metrics,
		Now: f.clock.Now,
		Sleep: func(ctx context.Context, d time.Duration) error {
			f.slept(d)
			f.clock.Advance(d)
			return ctx.Err()
		},
		Explain: func(err error, _ actions.Name) string { return err.Error() },
	})
	require.NoError(t, err)
	t.Cleanup(core.Stop)
	f.core = core
	return f
}

func (f *fixture) slept(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sleeps = append(f.sleeps, d)
}

func (f *fixture) create(t *testing.T) *approval.Request {
	t.Helper()
	r, err := f.core.Create(context.Background(), approval.Submission{Action: actions.Isolate,
		Args: actions.Args{MachineID: machineID, Comment: "beaconing", IsolationType: "Full"}, RequesterID: "UREQ"})
	require.NoError(t, err)
	return r
}

func refusal(t *testing.T, err error) approval.Reason {
	t.Helper()
	var ref *approval.Refusal
	require.ErrorAs(t, err, &ref)
	return ref.Reason
}

func TestApprovalNeedsDistinctApproversOtherThanTheRequester(t *testing.T) {
	f := newFixture(t, 2)
	ctx := context.Background()
	r := f.create(t)

	_, _, err := f.core.Approve(ctx, "UREQ", r.ID)
	assert.Equal(t, approval.ReasonSelfApproval, refusal(t, err))
	_, _, err = f.core.Approve(ctx, "UOUT", r.ID)
	assert.Equal(t, approval.ReasonNotApprover, refusal(t, err))
	_, _, err = f.core.Approve(ctx, "UA1", "no-such-request")
	assert.Equal(t, approval.ReasonUnknownRequest, refusal(t, err))

	got, final, err := f.core.Approve(ctx, "UA1", r.ID)
	require.NoError(t, err)
	assert.False(t, final, "one vote of two")
	assert.Len(t, got.Approvals, 1)
	_, _, err = f.core.Approve(ctx, "UA1", r.ID)
	assert.Equal(t, approval.ReasonAlreadyVoted, refusal(t, err))

	got, final, err = f.core.Approve(ctx, "UA2", r.ID)
	require.NoError(t, err)
	assert.True(t, final)
	assert.Equal(t, approval.StateApproved, got.State)
	_, _, err = f.core.Approve(ctx, "UA1", r.ID)
	assert.Equal(t, approval.ReasonNotPending, refusal(t, err))
	assert.Equal(t, 0, f.def.runs, "approving does not run: the caller executes")
	assert.Equal(t, map[string]int{"pending": 1, "refused": 5, "approved": 1}, f.metrics.n)
}

func TestDirectoryFailureRefusesNothingAndIsAnError(t *testing.T) {
	f := newFixture(t, 1)
	r := f.create(t)
	core, err := approval.New(approval.Config{Approvers: []string{"UA1"}, RequiredApprovals: 1, TTL: time.Hour,
		PollInterval: time.Second, PollTimeout: time.Minute, ReplicaID: "r2", SweepEvery: time.Minute, ExecuteTimeout: 3 * time.Minute, BulkCallTimeout: time.Minute},
		approval.Deps{Store: f.store, Defender: f.def, Directory: directory{down: true}, Notifier: f.events, Now: f.clock.Now,
			Sleep: func(context.Context, time.Duration) error { return nil }, Explain: func(error, actions.Name) string { return "" }})
	require.NoError(t, err)
	_, _, err = core.Approve(context.Background(), "UA1", r.ID)
	assert.ErrorIs(t, err, approval.ErrLookup)
	got, err := f.store.GetRequest(context.Background(), r.ID)
	require.NoError(t, err)
	assert.Equal(t, approval.StatePending, got.State, "fails closed")
}

// A vote exactly at ExpiresAt counts (Request.Expired); one a moment later
// is refused and the request is announced expired once.
func TestExpiryIsDefinedOnce(t *testing.T) {
	f := newFixture(t, 1)
	ctx := context.Background()
	inTime, late := f.create(t), f.create(t)
	f.clock.Advance(time.Hour)
	_, final, err := f.core.Approve(ctx, "UA1", inTime.ID)
	require.NoError(t, err)
	assert.True(t, final, "a vote exactly at ExpiresAt still counts")

	f.clock.Advance(time.Nanosecond * 1000)
	_, _, err = f.core.Approve(ctx, "UA1", late.ID)
	assert.Equal(t, approval.ReasonExpired, refusal(t, err))
	got, err := f.store.GetRequest(ctx, late.ID)
	require.NoError(t, err)
	assert.Equal(t, approval.StateExpired, got.State)
	assert.Equal(t, []string{"expired"}, f.events.list())
	approval.Sweep(ctx, f.core)
	assert.Equal(t, []string{"expired"}, f.events.list(), "announced once")
}

func TestRejectTellsTheNotifier(t *testing.T) {
	f := newFixture(t, 1)
	r := f.create(t)
	_, err := f.core.Reject(context.Background(), "UA1", r.ID, "not now")
	require.NoError(t, err)
	assert.Equal(t, []string{"rejected:not now"}, f.events.list())
	_, err = f.core.Reject(context.Background(), "UA2", r.ID, "again")
	assert.Equal(t, approval.ReasonNotPending, refusal(t, err))
}

// However many callers race to execute an approved request, Defender is
// called once; the follow-up then reports each status and the outcome.
func TestExecuteClaimsOnceAndFollowsUp(t *testing.T) {
	f := newFixture(t, 1)
	ctx := context.Background()
	r := f.create(t)
	r, final, err := f.core.Approve(ctx, "UA1", r.ID)
	require.NoError(t, err)
	require.True(t, final)
	f.def.polls = []defender.ActionStatus{defender.StatusInProgress, defender.StatusSucceeded}

	var wg sync.WaitGroup
	var errs atomic.Int32
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cp := *r
			if f.core.Execute(ctx, &cp) != nil {
				errs.Add(1)
			}
		}()
	}
	wg.Wait()
	f.core.Wait()
	assert.Zero(t, errs.Load())
	assert.Equal(t, 1, f.def.runs, "exactly one Defender call")
	got, err := f.store.GetRequest(ctx, r.ID)
	require.NoError(t, err)
	assert.Equal(t, approval.StateSucceeded, got.State)
	assert.Equal(t, "ma-1", got.MachineActionID)
	assert.Equal(t, []string{"changed:executing", "status:Pending", "changed:running", "running", "status:InProgress", "status:Succeeded", "finished:succeeded"}, f.events.list())
	assert.Equal(t, 1, f.metrics.n["succeeded"])
}

// A request a crash left "executing" is settled from Defender's list (the
// tagged comment) instead of being run again.
func TestResumeReconcilesACrashedExecution(t *testing.T) {
	f := newFixture(t, 1)
	ctx := context.Background()
	r := f.create(t)
	_, _, err := f.core.Approve(ctx, "UA1", r.ID)
	require.NoError(t, err)
	ok, err := f.store.Transition(ctx, r.ID, approval.StateApproved, approval.StateExecuting, f.clock.Now())
	require.NoError(t, err)
	require.True(t, ok)
	f.def.listed = []defender.MachineAction{{ID: "ma-9", Status: defender.StatusSucceeded,
		RequestorComment: "beaconing (defenderbot request " + r.ID + ", approved by UA1)"}}

	approval.Resume(ctx, f.core)
	got, err := f.store.GetRequest(ctx, r.ID)
	require.NoError(t, err)
	assert.Equal(t, approval.StateExecuting, got.State, "a recent execution may be in flight elsewhere")

	f.clock.Advance(approval.LeaseTTL(f.core) + time.Second)
	approval.Resume(ctx, f.core)
	f.core.Wait()
	got, err = f.store.GetRequest(ctx, r.ID)
	require.NoError(t, err)
	assert.Equal(t, approval.StateSucceeded, got.State)
	assert.Equal(t, "ma-9", got.MachineActionID)
	assert.Zero(t, f.def.runs, "Defender is not called again")
}

func TestRoutes(t *testing.T) {
	f := newFixture(t, 1)
	assert.Equal(t, approval.RouteDirect, f.core.RouteOf(actions.GetAction))
	assert.Equal(t, approval.RouteApproval, f.core.RouteOf(actions.Isolate))
}

// One Scan does both halves of Run's schedule: an overdue pending request
// is expired and announced, and an approved one left by a previous process
// is executed, exactly once however often it is scanned.
func TestScanExpiresAndResumes(t *testing.T) {
	f := newFixture(t, 1)
	ctx := context.Background()
	approved := f.create(t)
	_, final, err := f.core.Approve(ctx, "UA1", approved.ID)
	require.NoError(t, err)
	require.True(t, final)
	f.clock.Advance(30 * time.Minute)
	overdue := f.create(t)
	f.clock.Advance(time.Hour + time.Second) // past its ExpiresAt (a vote at ExpiresAt still counts)
	f.def.polls = []defender.ActionStatus{defender.StatusSucceeded}

	f.core.Scan(ctx)
	f.core.Scan(ctx)
	f.core.Wait()

	got, err := f.store.GetRequest(ctx, overdue.ID)
	require.NoError(t, err)
	assert.Equal(t, approval.StateExpired, got.State)
	got, err = f.store.GetRequest(ctx, approved.ID)
	require.NoError(t, err)
	assert.Equal(t, approval.StateSucceeded, got.State)
	assert.Equal(t, 1, f.def.runs)
	assert.Equal(t, 1, f.metrics.n["expired"])
}

// The core has no execution bounds of its own: a missing one is refused
// with its name (config.ExecuteTimeout and config.BulkCallTimeout own them).
func TestNewRefusesMissingExecutionBounds(t *testing.T) {
	base := approval.Config{Approvers: []string{"UA1"}, RequiredApprovals: 1, TTL: time.Hour,
		PollInterval: time.Second, PollTimeout: time.Minute, ReplicaID: "r1", SweepEvery: time.Minute,
		ExecuteTimeout: 3 * time.Minute, BulkCallTimeout: time.Minute}
	deps := approval.Deps{Store: storetest.OpenSQLite(t), Defender: &fakeDefender{}, Directory: directory{}, Notifier: &events{},
		Now: time.Now, Sleep: func(context.Context, time.Duration) error { return nil }, Explain: func(error, actions.Name) string { return "" }}
	core, err := approval.New(base, deps)
	require.NoError(t, err)
	core.Stop()
	for name, unset := range map[string]func(*approval.Config){
		"ExecuteTimeout":  func(c *approval.Config) { c.ExecuteTimeout = 0 },
		"BulkCallTimeout": func(c *approval.Config) { c.BulkCallTimeout = -time.Second },
	} {
		c := base
		unset(&c)
		_, err := approval.New(c, deps)
		assert.ErrorContains(t, err, "Config.ExecuteTimeout and BulkCallTimeout must be positive", name)
	}
}
