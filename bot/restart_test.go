package bot

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/defenderbot/defenderbot/actions"
	"github.com/defenderbot/defenderbot/approval"
	"github.com/defenderbot/defenderbot/defender"
)

func storeRequest(t *testing.T, h *harness, id string, st approval.State, mod func(*approval.Request)) {
	t.Helper()
	r := &approval.Request{ID: id, Action: "isolate", State: st, RequiredApprovals: 1, RequesterID: analyst,
		Args:            actions.Args{MachineID: machineID, Comment: "c", IsolationType: "Full"},
		ApprovalChannel: approvals, ApprovalTS: "1.1", CreatedAt: t0.Add(-time.Hour), UpdatedAt: t0.Add(-time.Hour), ExpiresAt: t0.Add(time.Hour),
		Approvals: []approval.Vote{{UserID: approver1, At: t0.Add(-time.Hour)}}}
	if mod != nil {
		mod(r)
	}
	require.NoError(t, h.store.CreateRequest(context.Background(), r))
}

func TestRestartResumes(t *testing.T) {
	h := newHarness(t, nil)
	h.def.statuses = []defender.ActionStatus{defender.StatusSucceeded}
	h.def.runStatus = defender.StatusSucceeded
	storeRequest(t, h, "pending-1", approval.StatePending, func(r *approval.Request) { r.Approvals = nil })
	storeRequest(t, h, "approved-1", approval.StateApproved, nil)
	storeRequest(t, h, "executing-found", approval.StateExecuting, nil)
	storeRequest(t, h, "running-1", approval.StateRunning, func(r *approval.Request) { r.MachineActionID, r.MachineActionStatus = "ma-9", "InProgress" })
	h.def.listed = []defender.MachineAction{
		{ID: "other", RequestorComment: "c (defenderbot request someone-else, approved by U)", Status: defender.StatusPending},
		{ID: "ma-found", RequestorComment: "c (" + requestTag("executing-found") + ", approved by U)", Status: defender.StatusSucceeded},
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.svc.Run(ctx) }()
	require.Eventually(t, func() bool {
		r1, _ := h.store.GetRequest(context.Background(), "running-1")
		r2, _ := h.store.GetRequest(context.Background(), "approved-1")
		return r1.State.Final() && r2.State.Final()
	}, 5*time.Second, 5*time.Millisecond)
	cancel()
	require.NoError(t, <-done)
	h.svc.Wait()

	get := func(id string) *approval.Request {
		r, err := h.store.GetRequest(context.Background(), id)
		require.NoError(t, err)
		return r
	}
	assert.Equal(t, approval.StatePending, get("pending-1").State, "pending stays clickable")
	assert.Equal(t, approval.StateSucceeded, get("approved-1").State)
	ex := get("executing-found")
	assert.Equal(t, approval.StateSucceeded, ex.State)
	assert.Equal(t, "ma-found", ex.MachineActionID)
	assert.Equal(t, approval.StateSucceeded, get("running-1").State)
	// Only the approved request called Defender; the executing one was reconciled.
	require.Equal(t, 1, h.def.runCount())
	assert.Contains(t, h.def.runs[0].Params["comment"], requestTag("approved-1"))

	// The pending request can still be approved after the restart.
	h.click(t, approver2, actionApprove, "pending-1")
	assert.Equal(t, 2, h.def.runCount())
}

func TestReconcileNotFoundDoesNotCallAgain(t *testing.T) {
	h := newHarness(t, nil)
	storeRequest(t, h, "executing-lost", approval.StateExecuting, nil)
	h.svc.core.Scan(context.Background())
	h.svc.Wait()
	r, err := h.store.GetRequest(context.Background(), "executing-lost")
	require.NoError(t, err)
	assert.Equal(t, approval.StateFailed, r.State)
	assert.Contains(t, r.Error, "most likely did not run")
	assert.Equal(t, 0, h.def.runCount())
}

func TestFollowUpLeaseHeldElsewhere(t *testing.T) {
	h := newHarness(t, nil)
	storeRequest(t, h, "running-2", approval.StateRunning, func(r *approval.Request) { r.MachineActionID = "ma-2" })
	ok, err := h.store.AcquireLease(context.Background(), "followup:running-2", "other-replica", t0, time.Minute)
	require.NoError(t, err)
	require.True(t, ok)
	h.svc.core.Scan(context.Background())
	h.svc.Wait()
	assert.Equal(t, 0, h.def.polls, "another replica follows it")

	// Once that lease expires this replica takes over.
	h.def.statuses = []defender.ActionStatus{defender.StatusFailed}
	h.clock.Advance(2 * time.Minute)
	h.svc.core.Scan(context.Background())
	h.svc.Wait()
	r, _ := h.store.GetRequest(context.Background(), "running-2")
	assert.Equal(t, approval.StateFailed, r.State)
	assert.Contains(t, r.Error, "Failed")
}

func TestFollowUpTimeout(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.PollTimeout = 10 * time.Second })
	storeRequest(t, h, "running-3", approval.StateRunning, func(r *approval.Request) { r.MachineActionID = "ma-3"; r.MachineActionStatus = "InProgress" })
	h.svc.core.Scan(context.Background())
	h.svc.Wait()
	r, _ := h.store.GetRequest(context.Background(), "running-3")
	assert.Equal(t, approval.StateFailed, r.State)
	assert.Contains(t, r.Error, "stopped following")
	assert.Equal(t, 10, h.def.polls)
}

// A replica that renders "running" late (its chat.update lands after another
// replica already finished the request) must not leave the message saying
// running: the stored final state is rendered again.
func TestStaleApprovalUpdateDoesNotOverwriteFinal(t *testing.T) {
	h := newHarness(t, nil)
	storeRequest(t, h, "late-1", approval.StateSucceeded, func(r *approval.Request) { r.MachineActionID, r.MachineActionStatus = "ma-1", "Succeeded" })
	stale, err := h.store.GetRequest(context.Background(), "late-1")
	require.NoError(t, err)
	stale.State, stale.MachineActionStatus = approval.StateRunning, "Pending"

	h.svc.updateApprovalMessage(context.Background(), stale)

	ups := h.slack.find("chat.update")
	require.Len(t, ups, 2, "the stale render, then the stored final state")
	assert.Contains(t, ups[0].Text, "(running)")
	assert.Contains(t, ups[1].Text, "(succeeded)")
	assert.NotContains(t, ups[1].Blocks, `"type":"actions"`)

	// A render of the current state needs no second update.
	cur, err := h.store.GetRequest(context.Background(), "late-1")
	require.NoError(t, err)
	h.svc.updateApprovalMessage(context.Background(), cur)
	assert.Len(t, h.slack.find("chat.update"), 3)
}
