package approval_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/defenderbot/defenderbot/actions"
	"github.com/defenderbot/defenderbot/approval"
	"github.com/defenderbot/defenderbot/defender"
)

func bulkMachine(i int) string { return fmt.Sprintf("%040x", i+1) }

func bulkTargets(n int) []approval.Target {
	ts := make([]approval.Target, n)
	for i := range ts {
		ts[i] = approval.Target{MachineID: bulkMachine(i), MachineName: fmt.Sprintf("ws-%02d.contoso.local", i)}
	}
	return ts
}

func (f *fixture) createBulk(t *testing.T, n int) *approval.Request {
	t.Helper()
	f.def.perMachine = true
	r, err := f.core.Create(context.Background(), approval.Submission{Action: actions.Isolate,
		Args: actions.Args{Comment: "outbreak", IsolationType: "Full"}, RequesterID: "UREQ", Targets: bulkTargets(n)})
	require.NoError(t, err)
	return r
}

func (f *fixture) get(t *testing.T, id string) *approval.Request {
	t.Helper()
	r, err := f.store.GetRequest(context.Background(), id)
	require.NoError(t, err)
	return r
}

func targetStates(r *approval.Request) []approval.TargetState {
	out := make([]approval.TargetState, len(r.Targets))
	for i, t := range r.Targets {
		out[i] = t.State
	}
	return out
}

// One approval, then one paced Defender call per machine however many
// callers race to execute, each machine followed to its final state.
func TestBulkRunsOncePerMachinePacedAndFollowed(t *testing.T) {
	f := newFixture(t, 1)
	ctx := context.Background()
	r := f.createBulk(t, 4)
	assert.Equal(t, []approval.TargetState{"queued", "queued", "queued", "queued"}, targetStates(f.get(t, r.ID)))
	r, final, err := f.core.Approve(ctx, "UA1", r.ID)
	require.NoError(t, err)
	require.True(t, final, "one approval for every machine")
	f.def.status = map[string]defender.ActionStatus{"ma-" + bulkMachine(0): defender.StatusSucceeded, "ma-" + bulkMachine(1): defender.StatusSucceeded,
		"ma-" + bulkMachine(2): defender.StatusSucceeded, "ma-" + bulkMachine(3): defender.StatusSucceeded}

	var wg sync.WaitGroup
	for range 5 {
		wg.Go(func() {
			cp := *r
			cp.Targets = slices.Clone(r.Targets)
			assert.NoError(t, f.core.Execute(ctx, &cp))
		})
	}
	wg.Wait()
	f.core.Wait()

	assert.Equal(t, 4, f.def.runs)
	for i := range 4 {
		assert.Equal(t, 1, f.def.byMachine[bulkMachine(i)], "machine %d called once", i)
	}
	assert.Equal(t, time.Second, f.sleeps[0], "paced by BulkPace (injected sleep)")
	got := f.get(t, r.ID)
	assert.Equal(t, approval.StateSucceeded, got.State, got.Error)
	for i, tg := range got.Targets {
		assert.Equal(t, approval.TargetSucceeded, tg.State)
		assert.Equal(t, "ma-"+bulkMachine(i), tg.MachineActionID)
		assert.Equal(t, "Succeeded", tg.MachineActionStatus)
	}
	evs := f.events.list()
	assert.Contains(t, evs, "progress:running queued queued queued", "one update per call, once Defender answered")
	assert.NotContains(t, evs, "progress:calling queued queued queued")
	assert.Contains(t, evs, "progress:running running running running")
	assert.Equal(t, "progress:succeeded succeeded succeeded succeeded", evs[len(evs)-2])
	assert.Equal(t, "finished:succeeded", evs[len(evs)-1])
	assert.NotContains(t, evs, "running", "bulk requests report Progress, not Running")

	// The audit trail has one call line per machine, each naming it.
	audit, err := f.store.ListAudit(ctx, time.Time{})
	require.NoError(t, err)
	var calls []string
	for _, e := range audit {
		if e.Kind == "call" {
			calls = append(calls, fmt.Sprint(e.Details["machine_id"]))
		}
	}
	assert.Equal(t, []string{bulkMachine(0), bulkMachine(1), bulkMachine(2), bulkMachine(3)}, calls)
}

// The pace is the pause between calls: n machines, n-1 pauses before the
// follow-up starts polling.
func TestBulkPace(t *testing.T) {
	f := newFixture(t, 1)
	ctx := context.Background()
	r := f.createBulk(t, 3)
	r, _, err := f.core.Approve(ctx, "UA1", r.ID)
	require.NoError(t, err)
	start := f.clock.Now()
	f.def.during = func() {
		f.def.mu.Lock()
		defer f.def.mu.Unlock()
		f.def.callAt = append(f.def.callAt, f.clock.Now().Sub(start))
	}
	f.def.status = map[string]defender.ActionStatus{}
	for i := range 3 {
		f.def.status["ma-"+bulkMachine(i)] = defender.StatusSucceeded
	}
	require.NoError(t, f.core.Execute(ctx, r))
	f.core.Wait()
	assert.Equal(t, []time.Duration{0, time.Second, 2 * time.Second}, f.def.callAt, "one call per BulkPace")
}

// A machine whose call fails does not stop the others; the request fails
// and says how many machines failed, each machine keeping its reason.
func TestBulkPartialFailure(t *testing.T) {
	f := newFixture(t, 1)
	ctx := context.Background()
	r := f.createBulk(t, 3)
	r, _, err := f.core.Approve(ctx, "UA1", r.ID)
	require.NoError(t, err)
	f.def.fail = map[string]error{bulkMachine(1): errors.New("machine is offboarded")}
	f.def.status = map[string]defender.ActionStatus{"ma-" + bulkMachine(0): defender.StatusSucceeded, "ma-" + bulkMachine(2): defender.StatusFailed}
	require.NoError(t, f.core.Execute(ctx, r))
	f.core.Wait()
	got := f.get(t, r.ID)
	assert.Equal(t, approval.StateFailed, got.State)
	assert.Equal(t, "2 of 3 machines failed.", got.Error)
	assert.Equal(t, []approval.TargetState{"succeeded", "failed", "failed"}, targetStates(got))
	assert.Equal(t, "machine is offboarded", got.Targets[1].Error)
	assert.Equal(t, "Defender reports the action as Failed.", got.Targets[2].Error)
	assert.Equal(t, 3, f.def.runs)
}

func TestBulkRules(t *testing.T) {
	f := newFixture(t, 1)
	ctx := context.Background()
	sub := func(n actions.Name, ts []approval.Target) approval.Submission {
		return approval.Submission{Action: n, Args: actions.Args{Comment: "x", IsolationType: "Full"}, RequesterID: "UREQ", Targets: ts}
	}
	_, err := f.core.Create(ctx, sub(actions.Isolate, bulkTargets(21)))
	assert.ErrorIs(t, err, approval.ErrBulk, "over MaxBulk")
	assert.ErrorContains(t, err, "21 machines, at most 20")
	dup := bulkTargets(2)
	dup[1].MachineID = dup[0].MachineID
	_, err = f.core.Create(ctx, sub(actions.Isolate, dup))
	assert.ErrorIs(t, err, approval.ErrBulk, "a machine twice")
	var le *actions.MachineListError // the edges' own rule, in the core's words
	require.ErrorAs(t, err, &le)
	assert.Equal(t, actions.FaultTwice, le.Fault)
	_, err = f.core.Create(ctx, sub(actions.StopAndQuarantineFile, bulkTargets(2)))
	assert.ErrorIs(t, err, approval.ErrBulk, "an action on one machine only")
	_, err = f.core.CreateApproved(ctx, sub(actions.Isolate, bulkTargets(21)))
	assert.ErrorIs(t, err, approval.ErrBulk)
	list, err := f.store.ListRequests(ctx, approval.RequestFilter{})
	require.NoError(t, err)
	assert.Empty(t, list, "nothing created")
	_, err = f.core.Create(ctx, sub(actions.Isolate, bulkTargets(20)))
	assert.NoError(t, err, "MaxBulk machines are allowed")
}

// Replicas racing: several cores execute the same approved bulk request at
// once; each machine is called exactly once.
func TestBulkConcurrentReplicasCallEachMachineOnce(t *testing.T) {
	f := newFixture(t, 1)
	ctx := context.Background()
	r := f.createBulk(t, 6)
	r, _, err := f.core.Approve(ctx, "UA1", r.ID)
	require.NoError(t, err)
	f.def.status = map[string]defender.ActionStatus{}
	for i := range 6 {
		f.def.status["ma-"+bulkMachine(i)] = defender.StatusSucceeded
	}
	cores := []*approval.Core{f.core, f.replica(t, "r2", f.store), f.replica(t, "r3", f.store)}
	var wg sync.WaitGroup
	for _, c := range cores {
		wg.Go(func() {
			cp := *r
			cp.Targets = slices.Clone(r.Targets)
			assert.NoError(t, c.Execute(ctx, &cp))
		})
	}
	wg.Wait()
	for _, c := range cores {
		c.Wait()
	}
	assert.Equal(t, 6, f.def.runs)
	for i := range 6 {
		assert.Equal(t, 1, f.def.byMachine[bulkMachine(i)])
	}
	assert.Equal(t, approval.StateSucceeded, f.get(t, r.ID).State)
}

// A replica dies in the middle of a bulk execution: machine 0 was called
// and recorded, machine 1 called but not recorded (Defender has it),
// machine 2 claimed but not called, machine 3 never reached. The survivor
// settles 1 and 2 from Defender's list, calls only machine 3, and shows the
// outcome within two minutes; no machine is called twice.
func TestBulkTakeoverNeverCallsAMachineTwice(t *testing.T) {
	f := newFixture(t, 1)
	ctx := context.Background()
	r := f.createBulk(t, 4)
	_, _, err := f.core.Approve(ctx, "UA1", r.ID)
	require.NoError(t, err)
	ok, err := f.store.Transition(ctx, r.ID, approval.StateApproved, approval.StateExecuting, f.clock.Now())
	require.NoError(t, err)
	require.True(t, ok)
	now := f.clock.Now()
	for i := range 3 {
		ok, err := f.store.TransitionTarget(ctx, r.ID, bulkMachine(i), approval.TargetQueued, approval.TargetCalling, now)
		require.NoError(t, err)
		require.True(t, ok)
	}
	running, ma0, pending := approval.TargetRunning, "ma-"+bulkMachine(0), "Pending"
	require.NoError(t, f.store.UpdateTarget(ctx, r.ID, bulkMachine(0), approval.TargetUpdate{State: &running, MachineActionID: &ma0, MachineActionStatus: &pending}, now))
	death := f.clock.Now()
	_, err = f.store.AcquireLease(ctx, "execute:"+r.ID, "dead", death, deadLease)
	require.NoError(t, err)
	tagged := approval.TaggedComment("outbreak", r.ID, []string{"UA1"})
	f.def.listedFor = map[string][]defender.MachineAction{
		bulkMachine(1): {{ID: "ma-dead-1", Status: defender.StatusInProgress, RequestorComment: tagged}},
		// Machine 2: only another request's action, quoting this one.
		bulkMachine(2): {{ID: "ma-other", Status: defender.StatusSucceeded,
			RequestorComment: approval.TaggedComment("like "+r.ID, "0b6f3c1e-2d4a-4f5b-9c8d-7e6f5a4b3c2d", []string{"UA2"})}},
	}
	f.def.status = map[string]defender.ActionStatus{ma0: defender.StatusSucceeded, "ma-dead-1": defender.StatusSucceeded,
		"ma-" + bulkMachine(3): defender.StatusSucceeded}

	took := f.scanUntil(t, death, func(r *approval.Request) bool { return r.State.Final() }, r.ID)
	t.Logf("outcome shown %s after the death", took)
	assert.LessOrEqual(t, took, takeoverBound)
	got := f.get(t, r.ID)
	assert.Equal(t, map[string]int{bulkMachine(3): 1}, f.def.byMachine, "only the machine never claimed is called")
	assert.Equal(t, []approval.TargetState{"succeeded", "succeeded", "failed", "succeeded"}, targetStates(got))
	assert.Equal(t, "ma-dead-1", got.Targets[1].MachineActionID, "the action the dead replica created")
	assert.Contains(t, got.Targets[2].Error, "most likely did not run")
	assert.Equal(t, approval.StateFailed, got.State)
	assert.Equal(t, "1 of 4 machines failed.", got.Error)
}

// A dead replica during a bulk follow-up: the survivor follows every
// machine still running, without calling any again.
func TestBulkTakeoverDuringFollowUp(t *testing.T) {
	f := newFixture(t, 1)
	ctx := context.Background()
	r := f.createBulk(t, 2)
	_, _, err := f.core.Approve(ctx, "UA1", r.ID)
	require.NoError(t, err)
	now := f.clock.Now()
	_, err = f.store.Transition(ctx, r.ID, approval.StateApproved, approval.StateExecuting, now)
	require.NoError(t, err)
	for i := range 2 {
		_, err := f.store.TransitionTarget(ctx, r.ID, bulkMachine(i), approval.TargetQueued, approval.TargetCalling, now)
		require.NoError(t, err)
		running, ma, st := approval.TargetRunning, "ma-"+bulkMachine(i), "InProgress"
		require.NoError(t, f.store.UpdateTarget(ctx, r.ID, bulkMachine(i), approval.TargetUpdate{State: &running, MachineActionID: &ma, MachineActionStatus: &st}, now))
	}
	st := approval.StateRunning
	require.NoError(t, f.store.UpdateRequest(ctx, r.ID, approval.RequestUpdate{State: &st}, now))
	_, err = f.store.AcquireLease(ctx, "followup:"+r.ID, "dead", now, deadLease)
	require.NoError(t, err)
	f.def.status = map[string]defender.ActionStatus{"ma-" + bulkMachine(0): defender.StatusSucceeded, "ma-" + bulkMachine(1): defender.StatusSucceeded}
	took := f.scanUntil(t, now, func(r *approval.Request) bool { return r.State.Final() }, r.ID)
	assert.LessOrEqual(t, took, takeoverBound)
	assert.Equal(t, approval.StateSucceeded, f.get(t, r.ID).State)
	assert.Zero(t, f.def.runs)
}
