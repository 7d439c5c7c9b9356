package bot

// Several replicas (bot.Service instances with their own Slack fakes and
// store connections) on one database: races, crashes, takeovers, restarts.

import (
	"context"
	"fmt"
	"slices"
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
)

// trackingDefender shares one fakeDefender between replicas. Each action Run
// creates is listed by ListMachineActions (as Defender would), so reconcile
// can find it. before/after simulate a replica dying around the call.
type trackingDefender struct {
	*fakeDefender
	before func(ctx context.Context) error
	after  func(ctx context.Context)
}

func (d *trackingDefender) Run(ctx context.Context, action actions.Name, params actions.Args) (*actions.Result, error) {
	if d.before != nil {
		if err := d.before(ctx); err != nil {
			return nil, err
		}
	}
	res, err := d.fakeDefender.Run(ctx, action, params)
	if err == nil && res.MachineAction != nil {
		d.mu.Lock()
		d.listed = append([]defender.MachineAction{*res.MachineAction}, d.listed...)
		d.mu.Unlock()
	}
	if d.after != nil {
		d.after(ctx)
	}
	return res, err
}

func clickers(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("UCLICK%02d", i)
	}
	return out
}

// allEphemerals returns every ephemeral text the replicas sent.
func allEphemerals(rps ...*replica) []string {
	var out []string
	for _, rp := range rps {
		for _, c := range rp.slack.find("chat.postEphemeral") {
			out = append(out, c.Text)
		}
	}
	return out
}

func allDMs(user string, rps ...*replica) []string {
	var out []string
	for _, rp := range rps {
		out = append(out, rp.dms(user)...)
	}
	return out
}

func allThread(ts string, rps ...*replica) []string {
	var out []string
	for _, rp := range rps {
		out = append(out, rp.thread(ts)...)
	}
	return out
}

// TestReplicasApproveRace: 50 Approve clicks by distinct approvers, spread
// across two replicas and racing, call Defender exactly once.
func TestReplicasApproveRace(t *testing.T) {
	for _, required := range []int{1, 2} {
		t.Run(fmt.Sprintf("required=%d", required), func(t *testing.T) {
			eachBackend(t, func(t *testing.T, db testDB) {
				clock := &fakeClock{t: t0}
				def := newFakeDefender()
				def.runStatus = defender.StatusSucceeded
				users := clickers(50)
				cfg := func(c *Config) { c.Approvers = append(c.Approvers, users...); c.RequiredApprovals = required }
				a := newReplica(t, "replica-a", db.open(t, clock), def, clock, replicaOpts{cfg: cfg})
				stB := db.open(t, clock)
				b := newReplica(t, "replica-b", stB, def, clock, replicaOpts{cfg: cfg})
				rps := []*replica{a, b}

				a.command(t, analyst, "isolate ws-001.contoso.com full beaconing")
				r := onlyRequest(t, stB)

				start := make(chan struct{})
				var wg sync.WaitGroup
				for i, u := range users {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						_, err := rps[i%2].svc.HandleInteraction(context.Background(), blockAction(u, actionApprove, r.ID))
						assert.NoError(t, err)
					}()
				}
				close(start)
				wg.Wait()
				a.svc.Wait()
				b.svc.Wait()

				require.Equal(t, 1, def.runCount(), "exactly one Defender call")
				got := getRequest(t, stB, r.ID)
				assert.Equal(t, approval.StateSucceeded, got.State)
				assert.Len(t, got.Approvals, required)

				kinds := auditKinds(t, stB, r.ID)
				count := func(k string) int {
					return len(slices.DeleteFunc(slices.Clone(kinds), func(x string) bool { return x != k }))
				}
				assert.Equal(t, 1, count("call"))
				assert.Equal(t, required, count("approve"))
				assert.Equal(t, 50-required, count("refused"))

				// Every clicker but the deciding one was told privately why nothing more happened.
				eph := allEphemerals(a, b)
				eph = slices.DeleteFunc(eph, func(s string) bool { return strings.Contains(s, "is waiting for") }) // the requester's ack
				require.Len(t, eph, 49)
				recorded := 0
				for _, m := range eph {
					switch {
					case strings.Contains(m, "Your approval is recorded (1 of 2)"):
						recorded++
					case strings.Contains(m, "already"):
					default:
						t.Errorf("unexpected message to a clicker: %q", m)
					}
				}
				assert.Equal(t, required-1, recorded)
				assert.Equal(t, 1, countContaining(allDMs(analyst, a, b), "succeeded"), "the requester is told once")
				for _, rp := range rps {
					assert.Empty(t, rp.logs.errors(), "replica %s", rp.id)
				}
			})
		})
	}
}

// TestReplicaCreatesOtherApproves: a request made through replica A is
// approved through replica B, which runs it and updates A's message.
func TestReplicaCreatesOtherApproves(t *testing.T) {
	eachBackend(t, func(t *testing.T, db testDB) {
		clock := &fakeClock{t: t0}
		def := newFakeDefender()
		def.statuses = []defender.ActionStatus{defender.StatusInProgress, defender.StatusSucceeded}
		stA := db.open(t, clock)
		a := newReplica(t, "replica-a", stA, def, clock, replicaOpts{})
		b := newReplica(t, "replica-b", db.open(t, clock), def, clock, replicaOpts{})

		a.command(t, analyst, "isolate ws-001.contoso.com full beaconing")
		r := onlyRequest(t, stA)
		posted := a.slack.find("chat.postMessage")
		require.Len(t, posted, 1)

		b.click(t, approver1, actionApprove, r.ID)
		require.Equal(t, 1, def.runCount())
		assert.Contains(t, def.runs[0].Params["comment"], requestTag(r.ID))
		assert.Equal(t, approval.StateSucceeded, getRequest(t, stA, r.ID).State)

		// B edits the message A posted and threads under it.
		for _, u := range b.slack.find("chat.update") {
			assert.Equal(t, posted[0].TS, u.TS)
			assert.Equal(t, approvals, u.Channel)
		}
		assert.Contains(t, b.lastUpdate(t), "succeeded")
		assert.Len(t, b.thread(posted[0].TS), 3)
		assert.Empty(t, a.slack.find("chat.update"), "A did nothing after posting")
		assert.Equal(t, 1, countContaining(b.dms(analyst), "succeeded"))
		assert.Empty(t, a.logs.errors())
		assert.Empty(t, b.logs.errors())
	})
}

// crashSetup is a database with a pending request made through replica A,
// whose store dies (kill) when the test says so.
type crashSetup struct {
	clock *fakeClock
	def   *fakeDefender
	dbA   *faultStore
	a     *replica
	db    testDB
	st    store.Store // an independent connection, to inspect
	req   *approval.Request
}

func newCrashSetup(t *testing.T, db testDB, defA *trackingDefender) *crashSetup {
	t.Helper()
	cs := &crashSetup{clock: &fakeClock{t: t0}, def: defA.fakeDefender, db: db}
	cs.dbA = newFaultStore(db.open(t, cs.clock))
	cs.a = newReplica(t, "replica-a", cs.dbA, defA, cs.clock, replicaOpts{})
	cs.st = db.open(t, cs.clock)
	cs.a.command(t, analyst, "isolate ws-001.contoso.com full beaconing")
	cs.req = onlyRequest(t, cs.st)
	return cs
}

// kill: replica A's process is gone; it no longer reaches the database.
func (cs *crashSetup) kill() { cs.dbA.setDown(true) }

func (cs *crashSetup) replicaB(t *testing.T) *replica {
	return newReplica(t, "replica-b", cs.db.open(t, cs.clock), &trackingDefender{fakeDefender: cs.def}, cs.clock, replicaOpts{})
}

// TestReplicaKilledMidApproval: replica A dies at a point of the approval;
// replica B's Run resumes the request and the action runs at most once
// (exactly once when Defender shows whether it ran).
func TestReplicaKilledMidApproval(t *testing.T) {
	t.Run("left approved", func(t *testing.T) {
		eachBackend(t, func(t *testing.T, db testDB) {
			def := newFakeDefender()
			def.statuses = []defender.ActionStatus{defender.StatusSucceeded}
			cs := newCrashSetup(t, db, &trackingDefender{fakeDefender: def})
			// A dies after recording the vote, before claiming the request.
			cs.dbA.setHook(func(op string) error {
				if op == "Transition" {
					cs.kill()
				}
				return nil
			})
			cs.a.click(t, approver1, actionApprove, cs.req.ID)
			require.Equal(t, approval.StateApproved, getRequest(t, cs.st, cs.req.ID).State)
			require.Zero(t, def.runCount())

			b := cs.replicaB(t)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- b.svc.Run(ctx) }()
			require.Eventually(t, func() bool {
				return getRequest(t, cs.st, cs.req.ID).State.Final()
			}, 10*time.Second, 5*time.Millisecond)
			cancel()
			require.NoError(t, <-done)
			b.svc.Wait()

			assert.Equal(t, approval.StateSucceeded, getRequest(t, cs.st, cs.req.ID).State)
			assert.Equal(t, 1, def.runCount(), "exactly once")
			assert.Contains(t, def.runs[0].Params["comment"], "approved by "+approver1)
			assert.Equal(t, 1, countContaining(b.dms(analyst), "succeeded"))
			assert.Empty(t, b.logs.errors())
		})
	})

	t.Run("died before calling Defender", func(t *testing.T) {
		eachBackend(t, func(t *testing.T, db testDB) {
			def := newFakeDefender()
			killed, release := make(chan struct{}), make(chan struct{})
			var cs *crashSetup
			defA := &trackingDefender{fakeDefender: def, before: func(ctx context.Context) error {
				cs.kill()
				close(killed)
				<-release // the process is gone: nothing more happens
				return context.Canceled
			}}
			cs = newCrashSetup(t, db, defA)
			t.Cleanup(func() { close(release) })
			_, err := cs.a.svc.HandleInteraction(context.Background(), blockAction(approver1, actionApprove, cs.req.ID))
			require.NoError(t, err)
			<-killed
			require.Equal(t, approval.StateExecuting, getRequest(t, cs.st, cs.req.ID).State)

			b := cs.replicaB(t)
			// Until A's claim is old enough to be presumed dead, B leaves it.
			b.svc.core.Scan(context.Background())
			b.svc.Wait()
			assert.Equal(t, approval.StateExecuting, getRequest(t, cs.st, cs.req.ID).State)

			cs.clock.Advance(time.Minute)
			b.svc.core.Scan(context.Background())
			b.svc.Wait()
			got := getRequest(t, cs.st, cs.req.ID)
			assert.Equal(t, approval.StateFailed, got.State)
			assert.Contains(t, got.Error, "most likely did not run")
			assert.Zero(t, def.runCount(), "never run by B")
			assert.Equal(t, 1, countContaining(b.dms(analyst), "failed"))
			assert.Empty(t, b.logs.errors())
		})
	})

	t.Run("died after calling Defender", func(t *testing.T) {
		eachBackend(t, func(t *testing.T, db testDB) {
			def := newFakeDefender()
			def.statuses = []defender.ActionStatus{defender.StatusSucceeded}
			killed, release := make(chan struct{}), make(chan struct{})
			var cs *crashSetup
			defA := &trackingDefender{fakeDefender: def, after: func(ctx context.Context) {
				cs.kill()
				close(killed)
				<-release
			}}
			cs = newCrashSetup(t, db, defA)
			t.Cleanup(func() { close(release) })
			_, err := cs.a.svc.HandleInteraction(context.Background(), blockAction(approver1, actionApprove, cs.req.ID))
			require.NoError(t, err)
			<-killed
			require.Equal(t, 1, def.runCount())
			require.Equal(t, approval.StateExecuting, getRequest(t, cs.st, cs.req.ID).State)

			// B restarts (startup scan) and, later, scans periodically.
			b := cs.replicaB(t)
			b.svc.core.Scan(context.Background())
			b.svc.Wait()
			cs.clock.Advance(time.Minute)
			b.svc.core.Scan(context.Background())
			b.svc.Wait()

			got := getRequest(t, cs.st, cs.req.ID)
			assert.Equal(t, approval.StateSucceeded, got.State)
			assert.Equal(t, "ma-1", got.MachineActionID, "matched to the action A created")
			assert.Equal(t, 1, def.runCount(), "exactly once")
			assert.Contains(t, auditKinds(t, cs.st, cs.req.ID), "reconcile")
			assert.Equal(t, 1, countContaining(b.dms(analyst), "succeeded"))
			assert.Empty(t, b.logs.errors())
		})
	})

	// A is alive but slow in the Defender call when B starts: B must not
	// decide the request's fate behind A's back.
	t.Run("B starts while A is calling Defender", func(t *testing.T) {
		eachBackend(t, func(t *testing.T, db testDB) {
			def := newFakeDefender()
			def.statuses = []defender.ActionStatus{defender.StatusSucceeded}
			inCall, proceed := make(chan struct{}), make(chan struct{})
			defA := &trackingDefender{fakeDefender: def, before: func(ctx context.Context) error {
				close(inCall)
				<-proceed
				return nil
			}}
			cs := newCrashSetup(t, db, defA)
			_, err := cs.a.svc.HandleInteraction(context.Background(), blockAction(approver1, actionApprove, cs.req.ID))
			require.NoError(t, err)
			<-inCall

			b := cs.replicaB(t)
			b.svc.core.Scan(context.Background())
			b.svc.Wait()
			assert.Equal(t, approval.StateExecuting, getRequest(t, cs.st, cs.req.ID).State, "B leaves A's call alone")

			close(proceed)
			cs.a.svc.Wait()
			got := getRequest(t, cs.st, cs.req.ID)
			assert.Equal(t, approval.StateSucceeded, got.State)
			assert.Empty(t, got.Error)
			assert.Equal(t, 1, def.runCount())
			assert.Empty(t, b.dms(analyst), "B told the requester nothing")
			assert.Empty(t, cs.a.logs.errors())
			assert.Empty(t, b.logs.errors())
		})
	})
}

// TestFollowUpTakeover: A follows a machine action (holding the lease) and
// dies; once the lease expires B takes over, posts only the statuses A did
// not post, and finishes the request once.
func TestFollowUpTakeover(t *testing.T) {
	eachBackend(t, func(t *testing.T, db testDB) {
		clock := &fakeClock{t: t0}
		def := newFakeDefender()
		def.statuses = []defender.ActionStatus{defender.StatusInProgress, defender.StatusSucceeded}
		dbA := newFaultStore(db.open(t, clock))

		// A polls once, then blocks in its second sleep until it is stopped.
		ctxA, stopA := context.WithCancel(context.Background())
		waiting := make(chan struct{})
		var sleeps atomic.Int32
		sleepA := func(ctx context.Context, d time.Duration) error {
			if sleeps.Add(1) == 1 {
				clock.Advance(d)
				return nil
			}
			close(waiting)
			<-ctx.Done()
			return ctx.Err()
		}
		a := newReplica(t, "replica-a", dbA, def, clock, replicaOpts{sleep: sleepA})
		runA := make(chan error, 1)
		go func() { runA <- a.svc.Run(ctxA) }()

		st := db.open(t, clock)
		a.command(t, analyst, "isolate ws-001.contoso.com full beaconing")
		r := onlyRequest(t, st)
		_, err := a.svc.HandleInteraction(context.Background(), blockAction(approver1, actionApprove, r.ID))
		require.NoError(t, err)
		<-waiting
		got := getRequest(t, st, r.ID)
		require.Equal(t, approval.StateRunning, got.State)
		require.Equal(t, "InProgress", got.MachineActionStatus)

		// A dies: no more database, and Run stops (which ends its follow-up).
		dbA.setDown(true)
		stopA()
		require.NoError(t, <-runA)
		a.svc.Wait()

		b := newReplica(t, "replica-b", db.open(t, clock), def, clock, replicaOpts{})
		b.svc.core.Scan(context.Background())
		b.svc.Wait()
		assert.Equal(t, approval.StateRunning, getRequest(t, st, r.ID).State, "A's lease still holds")
		assert.Empty(t, b.thread(r.ApprovalTS))

		clock.Advance(time.Minute) // past the follow-up lease (30 s with a 1 s poll)
		b.svc.core.Scan(context.Background())
		b.svc.Wait()

		got = getRequest(t, st, r.ID)
		assert.Equal(t, approval.StateSucceeded, got.State)
		assert.Equal(t, "Succeeded", got.MachineActionStatus)
		thread := allThread(r.ApprovalTS, a, b)
		require.Len(t, thread, 3, "thread: %q", thread)
		assert.Contains(t, thread[0], "*Pending*")
		assert.Contains(t, thread[1], "*InProgress*")
		assert.Contains(t, thread[2], "*Succeeded*")
		assert.Len(t, b.thread(r.ApprovalTS), 1, "B posts only the new status")
		assert.Equal(t, 1, countContaining(allDMs(analyst, a, b), "succeeded"))
		assert.Contains(t, b.lastUpdate(t), "succeeded")
		assert.Empty(t, b.logs.errors())
	})
}

// TestSweepOnTwoReplicas: both replicas' expiry sweeps race; the requester
// is told once.
func TestSweepOnTwoReplicas(t *testing.T) {
	eachBackend(t, func(t *testing.T, db testDB) {
		clock := &fakeClock{t: t0}
		def := newFakeDefender()
		st := db.open(t, clock)
		a := newReplica(t, "replica-a", st, def, clock, replicaOpts{})
		b := newReplica(t, "replica-b", db.open(t, clock), def, clock, replicaOpts{})
		a.command(t, analyst, "isolate ws-001.contoso.com full beaconing")
		a.command(t, analyst, "scan ws-001.contoso.com quick check")
		clock.Advance(2 * time.Hour)

		var wg sync.WaitGroup
		for _, rp := range []*replica{a, b, a, b} {
			wg.Add(1)
			go func() { defer wg.Done(); rp.svc.core.Scan(context.Background()) }()
		}
		wg.Wait()
		rs, err := st.ListRequests(context.Background(), approval.RequestFilter{States: []approval.State{approval.StateExpired}})
		require.NoError(t, err)
		assert.Len(t, rs, 2)
		assert.Equal(t, 2, countContaining(allDMs(analyst, a, b), "expired"))
	})
}

// TestRestartWithPendingRequest: the service and its store are closed with a
// request pending; a new process on the same database approves it.
func TestRestartWithPendingRequest(t *testing.T) {
	eachBackend(t, func(t *testing.T, db testDB) {
		clock := &fakeClock{t: t0}
		def := newFakeDefender()
		def.runStatus = defender.StatusSucceeded
		ctx := context.Background()

		st1, err := store.Open(ctx, db.driver, db.dsn, store.WithClock(clock.Now))
		require.NoError(t, err)
		first := newReplica(t, "process-1", st1, def, clock, replicaOpts{})
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- first.svc.Run(runCtx) }()
		first.command(t, analyst, "isolate ws-001.contoso.com full beaconing")
		r := onlyRequest(t, st1)
		ts := r.ApprovalTS
		stop()
		require.NoError(t, <-done)
		first.svc.Wait()
		require.NoError(t, st1.Close())

		clock.Advance(10 * time.Minute)
		st2, err := store.Open(ctx, db.driver, db.dsn, store.WithClock(clock.Now))
		require.NoError(t, err)
		t.Cleanup(func() { _ = st2.Close() })
		second := newReplica(t, "process-2", st2, def, clock, replicaOpts{})
		runCtx, stop = context.WithCancel(ctx)
		done = make(chan error, 1)
		go func() { done <- second.svc.Run(runCtx) }()
		t.Cleanup(func() { stop(); <-done })

		second.click(t, approver1, actionApprove, r.ID)
		// Run's own resume scan may be the one that claims the approved
		// request (it races the click's goroutine): wait for either.
		require.Eventually(t, func() bool {
			return getRequest(t, st2, r.ID).State == approval.StateSucceeded
		}, 10*time.Second, 5*time.Millisecond)
		assert.Equal(t, 1, def.runCount())
		ups := second.slack.find("chat.update")
		require.NotEmpty(t, ups)
		assert.Equal(t, ts, ups[len(ups)-1].TS, "the message posted before the restart is updated")
		assert.Equal(t, []string{"request", "approve", "call", "result"}, auditKinds(t, st2, r.ID))
		assert.Empty(t, second.logs.errors())
	})
}

// requestTag is the tag the approval core puts in Defender comments.
func requestTag(id string) string { return "defenderbot request " + id }
