package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/defenderbot/defenderbot/approval"
	"github.com/defenderbot/defenderbot/store"
)

// The machines of a bulk request and their per-machine claim.
var targetTests = []struct {
	name string
	fn   func(t *testing.T, s store.Store)
}{
	{"BulkTargets", testBulkTargets},
	{"BulkTargetsInvalid", testBulkTargetsInvalid},
	{"TransitionTarget", testTransitionTarget},
	{"UpdateTarget", testUpdateTarget},
	{"ConcurrentTargetClaim", testConcurrentTargetClaim},
	{"ProgressMessage", testProgressMessage},
}

func newBulkRequest(id string, n int) *approval.Request {
	r := newRequest(id, 1)
	r.Args.MachineID, r.MachineName = "", ""
	for i := range n {
		r.Targets = append(r.Targets, approval.Target{MachineID: fmt.Sprintf("m-%s-%02d", id, i), MachineName: fmt.Sprintf("ws-%02d.contoso.local", i)})
	}
	return r
}

func testBulkTargets(t *testing.T, s store.Store) {
	ctx := context.Background()
	// Positions beyond 9 keep their order (numeric, not text).
	r := create(t, s, newBulkRequest("b1", 12))
	create(t, s, newRequest("single", 1))
	for _, tg := range r.Targets {
		assert.Equal(t, approval.TargetQueued, tg.State, "an empty state is queued")
	}
	got, err := s.GetRequest(ctx, "b1")
	require.NoError(t, err)
	require.Len(t, got.Targets, 12)
	for i, tg := range got.Targets {
		assert.Equal(t, approval.Target{MachineID: fmt.Sprintf("m-b1-%02d", i), MachineName: fmt.Sprintf("ws-%02d.contoso.local", i),
			State: approval.TargetQueued, UpdatedAt: us(T0())}, tg)
	}
	assert.True(t, got.Bulk())

	single, err := s.GetRequest(ctx, "single")
	require.NoError(t, err)
	assert.Empty(t, single.Targets)
	assert.False(t, single.Bulk())

	list, err := s.ListRequests(ctx, approval.RequestFilter{})
	require.NoError(t, err)
	require.Len(t, list, 2)
	for _, r := range list {
		if r.ID == "b1" {
			assert.Equal(t, got.Targets, r.Targets, "listed with its machines")
		} else {
			assert.Empty(t, r.Targets)
		}
	}
}

func testBulkTargetsInvalid(t *testing.T, s store.Store) {
	ctx := context.Background()
	dup := newBulkRequest("dup", 2)
	dup.Targets[1].MachineID = dup.Targets[0].MachineID
	require.Error(t, s.CreateRequest(ctx, dup))
	empty := newBulkRequest("empty", 2)
	empty.Targets[1].MachineID = " "
	require.Error(t, s.CreateRequest(ctx, empty))
	bad := newBulkRequest("bad", 1)
	bad.Targets[0].State = "dancing"
	require.Error(t, s.CreateRequest(ctx, bad))
	for _, id := range []string{"dup", "empty", "bad"} {
		_, err := s.GetRequest(ctx, id)
		require.ErrorIs(t, err, store.ErrNotFound, "nothing of %s is stored", id)
	}
}

func testTransitionTarget(t *testing.T, s store.Store) {
	ctx := context.Background()
	r := create(t, s, newBulkRequest("b1", 2))
	m0, m1 := r.Targets[0].MachineID, r.Targets[1].MachineID

	ok, err := s.TransitionTarget(ctx, "b1", m0, approval.TargetQueued, approval.TargetCalling, T0().Add(time.Second))
	require.NoError(t, err)
	assert.True(t, ok)
	ok, err = s.TransitionTarget(ctx, "b1", m0, approval.TargetQueued, approval.TargetCalling, T0().Add(time.Second))
	require.NoError(t, err)
	assert.False(t, ok, "claimed once")

	got, err := s.GetRequest(ctx, "b1")
	require.NoError(t, err)
	assert.Equal(t, approval.TargetCalling, got.Targets[0].State)
	assert.Equal(t, us(T0().Add(time.Second)), got.Targets[0].UpdatedAt)
	assert.Equal(t, approval.TargetQueued, got.Targets[1].State, "the other machine is untouched")
	assert.Equal(t, us(T0()), got.UpdatedAt, "the request is untouched")

	_, err = s.TransitionTarget(ctx, "b1", "no-such-machine", approval.TargetQueued, approval.TargetCalling, T0())
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = s.TransitionTarget(ctx, "nope", m1, approval.TargetQueued, approval.TargetCalling, T0())
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = s.TransitionTarget(ctx, "b1", m1, approval.TargetSucceeded, approval.TargetQueued, T0())
	require.ErrorIs(t, err, approval.ErrInvalidTransition)
	_, err = s.TransitionTarget(ctx, "b1", m1, approval.TargetQueued, approval.TargetRunning, T0())
	require.ErrorIs(t, err, approval.ErrInvalidTransition, "a machine is claimed before it runs")
}

func testUpdateTarget(t *testing.T, s store.Store) {
	ctx := context.Background()
	r := create(t, s, newBulkRequest("b1", 2))
	m0 := r.Targets[0].MachineID
	_, err := s.TransitionTarget(ctx, "b1", m0, approval.TargetQueued, approval.TargetCalling, T0())
	require.NoError(t, err)

	require.NoError(t, s.UpdateTarget(ctx, "b1", m0, approval.TargetUpdate{State: ptr(approval.TargetRunning),
		MachineActionID: ptr("ma-1"), MachineActionStatus: ptr("Pending")}, T0().Add(time.Minute)))
	require.NoError(t, s.UpdateTarget(ctx, "b1", m0, approval.TargetUpdate{MachineActionStatus: ptr("InProgress")}, T0().Add(2*time.Minute)))
	got, err := s.GetRequest(ctx, "b1")
	require.NoError(t, err)
	assert.Equal(t, approval.Target{MachineID: m0, MachineName: r.Targets[0].MachineName, State: approval.TargetRunning,
		MachineActionID: "ma-1", MachineActionStatus: "InProgress", UpdatedAt: us(T0().Add(2 * time.Minute))}, got.Targets[0])

	require.NoError(t, s.UpdateTarget(ctx, "b1", m0, approval.TargetUpdate{State: ptr(approval.TargetFailed), Error: ptr("boom")}, T0()))
	err = s.UpdateTarget(ctx, "b1", m0, approval.TargetUpdate{State: ptr(approval.TargetRunning)}, T0())
	require.ErrorIs(t, err, approval.ErrInvalidTransition, "a final machine stays final")
	err = s.UpdateTarget(ctx, "b1", m0, approval.TargetUpdate{State: ptr(approval.TargetState("x"))}, T0())
	require.Error(t, err)
	err = s.UpdateTarget(ctx, "b1", "no-such-machine", approval.TargetUpdate{Error: ptr("x")}, T0())
	require.ErrorIs(t, err, store.ErrNotFound)
	got, err = s.GetRequest(ctx, "b1")
	require.NoError(t, err)
	assert.Equal(t, approval.TargetFailed, got.Targets[0].State)
	assert.Equal(t, "boom", got.Targets[0].Error)
}

// However many callers (replicas) race to claim one machine, one wins.
func testConcurrentTargetClaim(t *testing.T, s store.Store) {
	ctx := context.Background()
	r := create(t, s, newBulkRequest("b1", 3))
	for _, tg := range r.Targets {
		oneWins(t, 8, func(int) (bool, error) {
			return s.TransitionTarget(ctx, "b1", tg.MachineID, approval.TargetQueued, approval.TargetCalling, T0())
		})
	}
}

func testProgressMessage(t *testing.T, s store.Store) {
	ctx := context.Background()
	create(t, s, newBulkRequest("b1", 1))
	require.NoError(t, s.SetProgressMessage(ctx, "b1", "1700000000.000200"))
	got, err := s.GetRequest(ctx, "b1")
	require.NoError(t, err)
	assert.Equal(t, "1700000000.000200", got.ProgressTS)
	require.ErrorIs(t, s.SetProgressMessage(ctx, "nope", "1"), store.ErrNotFound)
}
