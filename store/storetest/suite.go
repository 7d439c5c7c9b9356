package storetest

import (
	"context"
	"errors"
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
	"github.com/defenderbot/defenderbot/store"
)

// Run runs the whole behaviour suite. open must return a Store on a fresh,
// empty database for each call (and close it when the test ends).
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Ping", testPing},
		{"CreateAndGetRequest", testCreateAndGet},
		{"CreateRequestInvalid", testCreateInvalid},
		{"ListRequests", testListRequests},
		{"SetApprovalMessage", testSetApprovalMessage},
		{"AddApproval", testAddApproval},
		{"AddApprovalExpiry", testAddApprovalExpiry},
		{"Reject", testReject},
		{"Transition", testTransition},
		{"UpdateRequest", testUpdateRequest},
		{"ExpirePending", testExpirePending},
		{"ConcurrentApprovals", testConcurrentApprovals},
		{"ConcurrentTransition", testConcurrentTransition},
		{"MarkSeen", testMarkSeen},
		{"Leases", testLeases},
		{"Audit", testAudit},
		{"IndicatorRecords", testIndicatorRecords},
		{"SyncRuns", testSyncRuns},
		{"FeedCursors", testFeedCursors},
		{"UndoClaims", testUndoClaims},
		{"CardContexts", testCardContexts},
	}
	for _, tc := range append(append(tests, alertTests...), targetTests...) {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open(t))
		})
	}
}

func testPing(t *testing.T, s store.Store) {
	require.NoError(t, s.Ping(context.Background()))
}

func testCreateAndGet(t *testing.T, s store.Store) {
	ctx := context.Background()
	r := newRequest("r1", 2)
	r.ApprovalChannel, r.ApprovalTS = "C_APPROVE", "1700000000.000100"
	create(t, s, r)
	assert.Equal(t, approval.StatePending, r.State, "empty state defaults to pending")

	got, err := s.GetRequest(ctx, "r1")
	require.NoError(t, err)
	want := *newRequest("r1", 2)
	want.ApprovalChannel, want.ApprovalTS = "C_APPROVE", "1700000000.000100"
	want.State = approval.StatePending
	want.CreatedAt, want.ExpiresAt, want.UpdatedAt = us(T0()), us(T0().Add(time.Hour)), us(T0())
	assert.Equal(t, &want, got)
	assert.Equal(t, time.UTC, got.CreatedAt.Location())

	t.Run("GeneratedIDAndDefaults", func(t *testing.T) {
		r := &approval.Request{Action: "get_machine", RequiredApprovals: 1}
		require.NoError(t, s.CreateRequest(ctx, r))
		require.NotEmpty(t, r.ID)
		require.False(t, r.CreatedAt.IsZero())
		got, err := s.GetRequest(ctx, r.ID)
		require.NoError(t, err)
		assert.Equal(t, actions.Args{}, got.Args)
		assert.True(t, got.ExpiresAt.IsZero(), "no expiry stays zero")
		assert.Equal(t, r.CreatedAt, got.CreatedAt)
		assert.Empty(t, got.Approvals)
	})
	t.Run("Duplicate", func(t *testing.T) {
		err := s.CreateRequest(ctx, newRequest("r1", 1))
		require.ErrorIs(t, err, approval.ErrConflict)
	})
	t.Run("NotFound", func(t *testing.T) {
		_, err := s.GetRequest(ctx, "nope")
		require.ErrorIs(t, err, store.ErrNotFound)
	})
}

func testCreateInvalid(t *testing.T, s store.Store) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		r    *approval.Request
		msg  string
	}{
		{"Nil", nil, "nil request"},
		{"NoAction", &approval.Request{RequiredApprovals: 1}, "action is required"},
		{"ZeroApprovals", &approval.Request{Action: "isolate"}, "required approvals must be at least 1"},
		{"BadState", &approval.Request{Action: "isolate", RequiredApprovals: 1, State: "bogus"}, `unknown state "bogus"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.CreateRequest(ctx, tc.r)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.msg)
		})
	}
	list, err := s.ListRequests(ctx, approval.RequestFilter{})
	require.NoError(t, err)
	assert.Empty(t, list)
}

func ids(rs []*approval.Request) []string {
	out := make([]string, 0, len(rs))
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return out
}

func testListRequests(t *testing.T, s store.Store) {
	ctx := context.Background()
	for i := range 5 {
		r := newRequest(fmt.Sprintf("r%d", i), 2)
		r.CreatedAt = T0().Add(time.Duration(i) * time.Minute)
		switch i {
		case 2:
			r.Action = actions.Deisolate
		case 4:
			r.Action = actions.Scan
		}
		create(t, s, r)
	}
	_, _, err := s.AddApproval(ctx, "r1", "U1", T0())
	require.NoError(t, err)
	_, err = s.Reject(ctx, "r3", "U2", "no", T0())
	require.NoError(t, err)

	for _, tc := range []struct {
		name string
		f    approval.RequestFilter
		want []string
	}{
		{"All", approval.RequestFilter{}, []string{"r4", "r3", "r2", "r1", "r0"}},
		{"Limit", approval.RequestFilter{Limit: 2}, []string{"r4", "r3"}},
		{"Pending", approval.RequestFilter{States: []approval.State{approval.StatePending}}, []string{"r4", "r2", "r1", "r0"}},
		{"Rejected", approval.RequestFilter{States: []approval.State{approval.StateRejected}}, []string{"r3"}},
		{"TwoStates", approval.RequestFilter{States: []approval.State{approval.StateRejected, approval.StatePending}, Limit: 3}, []string{"r4", "r3", "r2"}},
		{"None", approval.RequestFilter{States: []approval.State{approval.StateRunning}}, []string{}},
		{"Action", approval.RequestFilter{Actions: []actions.Name{actions.Deisolate}}, []string{"r2"}},
		{"TwoActions", approval.RequestFilter{Actions: []actions.Name{actions.Isolate, actions.Deisolate}}, []string{"r3", "r2", "r1", "r0"}},
		{"ActionsAndStates", approval.RequestFilter{Actions: []actions.Name{actions.Isolate, actions.Scan},
			States: []approval.State{approval.StatePending}, Limit: 2}, []string{"r4", "r1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.ListRequests(ctx, tc.f)
			require.NoError(t, err)
			assert.Equal(t, tc.want, ids(got))
		})
	}
	got, err := s.ListRequests(ctx, approval.RequestFilter{States: []approval.State{approval.StatePending}})
	require.NoError(t, err)
	require.Len(t, got, 4)
	assert.Equal(t, []approval.Vote{{UserID: "U1", At: us(T0())}}, got[2].Approvals, "approvals are loaded")
	assert.Equal(t, "m-r1", got[2].Args.MachineID)

	_, err = s.ListRequests(ctx, approval.RequestFilter{Limit: -1})
	require.ErrorContains(t, err, "negative limit")
	_, err = s.ListRequests(ctx, approval.RequestFilter{States: []approval.State{"bogus"}})
	require.ErrorContains(t, err, `unknown state "bogus"`)
	_, err = s.ListRequests(ctx, approval.RequestFilter{Actions: []actions.Name{"reboot"}})
	require.ErrorContains(t, err, `unknown action "reboot"`)
}

func testSetApprovalMessage(t *testing.T, s store.Store) {
	ctx := context.Background()
	create(t, s, newRequest("r1", 1))
	require.NoError(t, s.SetApprovalMessage(ctx, "r1", "C_APPROVE", "1712345678.000200"))
	got, err := s.GetRequest(ctx, "r1")
	require.NoError(t, err)
	assert.Equal(t, "C_APPROVE", got.ApprovalChannel)
	assert.Equal(t, "1712345678.000200", got.ApprovalTS)
	require.ErrorIs(t, s.SetApprovalMessage(ctx, "nope", "C", "1"), store.ErrNotFound)
}

func testAddApproval(t *testing.T, s store.Store) {
	ctx := context.Background()
	create(t, s, newRequest("r1", 2))

	r, dec, err := s.AddApproval(ctx, "r1", "U1", T0().Add(time.Minute))
	require.NoError(t, err)
	assert.False(t, dec.Approved)
	assert.Equal(t, approval.StatePending, r.State)
	assert.Equal(t, []approval.Vote{{UserID: "U1", At: us(T0().Add(time.Minute))}}, r.Approvals)
	assert.Equal(t, us(T0().Add(time.Minute)), r.UpdatedAt)

	_, _, err = s.AddApproval(ctx, "r1", "U1", T0().Add(2*time.Minute))
	require.ErrorIs(t, err, approval.ErrAlreadyVoted)

	r, dec, err = s.AddApproval(ctx, "r1", "U2", T0().Add(3*time.Minute))
	require.NoError(t, err)
	assert.True(t, dec.Approved)
	assert.Equal(t, approval.StateApproved, r.State)
	assert.Equal(t, []approval.Vote{
		{UserID: "U1", At: us(T0().Add(time.Minute))},
		{UserID: "U2", At: us(T0().Add(3 * time.Minute))},
	}, r.Approvals)

	got, err := s.GetRequest(ctx, "r1")
	require.NoError(t, err)
	assert.Equal(t, r, got)

	_, _, err = s.AddApproval(ctx, "r1", "U3", T0().Add(4*time.Minute))
	require.ErrorIs(t, err, approval.ErrNotPending)
	assert.NotErrorIs(t, err, approval.ErrExpired)

	_, _, err = s.AddApproval(ctx, "nope", "U1", T0())
	require.ErrorIs(t, err, store.ErrNotFound)
	_, _, err = s.AddApproval(ctx, "r1", "", T0())
	require.ErrorContains(t, err, "empty user id")
}

func testAddApprovalExpiry(t *testing.T, s store.Store) {
	ctx := context.Background()
	r := create(t, s, newRequest("r1", 2))

	_, _, err := s.AddApproval(ctx, "r1", "U1", r.ExpiresAt)
	require.NoError(t, err, "a vote exactly at ExpiresAt still counts")

	_, _, err = s.AddApproval(ctx, "r1", "U2", r.ExpiresAt.Add(time.Millisecond))
	require.ErrorIs(t, err, approval.ErrExpired)
	got, err := s.GetRequest(ctx, "r1")
	require.NoError(t, err)
	assert.Equal(t, approval.StateExpired, got.State, "a late vote marks the request expired")
	assert.Len(t, got.Approvals, 1, "the late vote is not recorded")

	_, _, err = s.AddApproval(ctx, "r1", "U3", r.ExpiresAt.Add(time.Hour))
	require.ErrorIs(t, err, approval.ErrExpired)
	require.ErrorIs(t, err, approval.ErrNotPending)
}

func testReject(t *testing.T, s store.Store) {
	ctx := context.Background()
	create(t, s, newRequest("r1", 2))
	_, _, err := s.AddApproval(ctx, "r1", "U1", T0())
	require.NoError(t, err)

	r, err := s.Reject(ctx, "r1", "U2", "wrong host", T0().Add(time.Minute))
	require.NoError(t, err)
	assert.Equal(t, approval.StateRejected, r.State)
	assert.Equal(t, "U2", r.RejectedBy)
	assert.Equal(t, "wrong host", r.RejectReason)
	assert.Equal(t, us(T0().Add(time.Minute)), r.UpdatedAt)
	assert.Len(t, r.Approvals, 1)

	_, _, err = s.AddApproval(ctx, "r1", "U3", T0().Add(2*time.Minute))
	require.ErrorIs(t, err, approval.ErrNotPending)
	_, err = s.Reject(ctx, "r1", "U3", "again", T0().Add(2*time.Minute))
	require.ErrorIs(t, err, approval.ErrNotPending)

	r2 := create(t, s, newRequest("r2", 1))
	_, err = s.Reject(ctx, "r2", "U2", "late", r2.ExpiresAt.Add(time.Second))
	require.ErrorIs(t, err, approval.ErrExpired)
	got, err := s.GetRequest(ctx, "r2")
	require.NoError(t, err)
	assert.Equal(t, approval.StateExpired, got.State)
	assert.Empty(t, got.RejectedBy)

	_, err = s.Reject(ctx, "nope", "U2", "", T0())
	require.ErrorIs(t, err, store.ErrNotFound)
}

func testTransition(t *testing.T, s store.Store) {
	ctx := context.Background()
	create(t, s, newRequest("r1", 1))
	_, dec, err := s.AddApproval(ctx, "r1", "U1", T0())
	require.NoError(t, err)
	require.True(t, dec.Approved)

	ok, err := s.Transition(ctx, "r1", approval.StatePending, approval.StateApproved, T0())
	require.NoError(t, err)
	assert.False(t, ok, "not in the from state")

	ok, err = s.Transition(ctx, "r1", approval.StateApproved, approval.StateExecuting, T0().Add(time.Second))
	require.NoError(t, err)
	assert.True(t, ok)
	got, err := s.GetRequest(ctx, "r1")
	require.NoError(t, err)
	assert.Equal(t, approval.StateExecuting, got.State)
	assert.Equal(t, us(T0().Add(time.Second)), got.UpdatedAt)

	_, err = s.Transition(ctx, "nope", approval.StateApproved, approval.StateExecuting, T0())
	require.ErrorIs(t, err, store.ErrNotFound)

	_, err = s.Transition(ctx, "r1", approval.StateSucceeded, approval.StatePending, T0())
	require.ErrorIs(t, err, approval.ErrInvalidTransition)
	_, err = s.Transition(ctx, "r1", approval.StateExecuting, approval.StateExecuting, T0())
	require.ErrorIs(t, err, approval.ErrInvalidTransition)
}

func ptr[T any](v T) *T { return &v }

func testUpdateRequest(t *testing.T, s store.Store) {
	ctx := context.Background()
	create(t, s, newRequest("r1", 1))
	_, _, err := s.AddApproval(ctx, "r1", "U1", T0())
	require.NoError(t, err)
	ok, err := s.Transition(ctx, "r1", approval.StateApproved, approval.StateExecuting, T0())
	require.NoError(t, err)
	require.True(t, ok)

	at := T0().Add(time.Minute)
	require.NoError(t, s.UpdateRequest(ctx, "r1", approval.RequestUpdate{
		State:               ptr(approval.StateRunning),
		MachineActionID:     ptr("ma-1"),
		MachineActionStatus: ptr("Pending"),
	}, at))
	got, err := s.GetRequest(ctx, "r1")
	require.NoError(t, err)
	assert.Equal(t, approval.StateRunning, got.State)
	assert.Equal(t, "ma-1", got.MachineActionID)
	assert.Equal(t, "Pending", got.MachineActionStatus)
	assert.Empty(t, got.Result)
	assert.Equal(t, us(at), got.UpdatedAt)

	// Same state is allowed (status refresh); nil fields stay.
	require.NoError(t, s.UpdateRequest(ctx, "r1", approval.RequestUpdate{
		State: ptr(approval.StateRunning), MachineActionStatus: ptr("InProgress"),
	}, at))
	require.NoError(t, s.UpdateRequest(ctx, "r1", approval.RequestUpdate{
		State: ptr(approval.StateSucceeded), MachineActionStatus: ptr("Succeeded"), Result: ptr(`{"id":"ma-1"}`),
	}, at.Add(time.Minute)))
	got, err = s.GetRequest(ctx, "r1")
	require.NoError(t, err)
	assert.Equal(t, approval.StateSucceeded, got.State)
	assert.Equal(t, "ma-1", got.MachineActionID)
	assert.Equal(t, "Succeeded", got.MachineActionStatus)
	assert.Equal(t, `{"id":"ma-1"}`, got.Result)
	assert.Empty(t, got.Error)

	err = s.UpdateRequest(ctx, "r1", approval.RequestUpdate{State: ptr(approval.StateFailed), Error: ptr("x")}, at)
	require.ErrorIs(t, err, approval.ErrInvalidTransition, "a final state does not change")
	got, err = s.GetRequest(ctx, "r1")
	require.NoError(t, err)
	assert.Empty(t, got.Error, "a refused update changes nothing")

	require.ErrorIs(t, s.UpdateRequest(ctx, "nope", approval.RequestUpdate{Error: ptr("x")}, at), store.ErrNotFound)
	require.ErrorContains(t, s.UpdateRequest(ctx, "r1", approval.RequestUpdate{State: ptr(approval.State("bogus"))}, at), "unknown state")
}

func testExpirePending(t *testing.T, s store.Store) {
	ctx := context.Background()
	early := newRequest("early", 1)
	early.ExpiresAt = T0().Add(time.Minute)
	create(t, s, early)
	late := newRequest("late", 1)
	late.ExpiresAt = T0().Add(time.Hour)
	create(t, s, late)
	never := newRequest("never", 1)
	never.ExpiresAt = time.Time{}
	create(t, s, never)
	done := newRequest("done", 1)
	done.ExpiresAt = T0().Add(time.Second)
	create(t, s, done)
	_, err := s.Reject(ctx, "done", "U1", "", T0())
	require.NoError(t, err)

	now := T0().Add(2 * time.Minute)
	got, err := s.ExpirePending(ctx, now)
	require.NoError(t, err)
	require.Equal(t, []string{"early"}, ids(got))
	assert.Equal(t, approval.StateExpired, got[0].State)
	assert.Equal(t, us(now), got[0].UpdatedAt)

	got, err = s.ExpirePending(ctx, now)
	require.NoError(t, err)
	assert.Empty(t, got, "already expired requests are not returned again")

	for id, want := range map[string]approval.State{
		"early": approval.StateExpired, "late": approval.StatePending, "never": approval.StatePending, "done": approval.StateRejected,
	} {
		r, err := s.GetRequest(ctx, id)
		require.NoError(t, err)
		assert.Equal(t, want, r.State, id)
	}
}

// race runs fn(i) for i in [0,n) as simultaneously as goroutines allow.
func race(n int, fn func(i int)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			fn(i)
		}()
	}
	close(start)
	wg.Wait()
}

// oneWins has n callers call try at once and checks that none failed and
// exactly one got true.
func oneWins(t *testing.T, n int, try func(i int) (bool, error)) {
	t.Helper()
	var wins, fails atomic.Int32
	race(n, func(i int) {
		ok, err := try(i)
		if err != nil {
			fails.Add(1)
		} else if ok {
			wins.Add(1)
		}
	})
	assert.Zero(t, fails.Load())
	assert.EqualValues(t, 1, wins.Load())
}

// approvalRace has n voters call vote at once and checks exactly-once approval.
func approvalRace(t *testing.T, required, n int, vote func(i int) (approval.Decision, error)) {
	var approved, notPending, accepted atomic.Int32
	var mu sync.Mutex
	var unexpected []error
	race(n, func(i int) {
		dec, err := vote(i)
		switch {
		case err == nil:
			accepted.Add(1)
			if dec.Approved {
				approved.Add(1)
			}
		case errors.Is(err, approval.ErrNotPending):
			notPending.Add(1)
		default:
			mu.Lock()
			unexpected = append(unexpected, err)
			mu.Unlock()
		}
	})
	require.Empty(t, unexpected)
	assert.EqualValues(t, 1, approved.Load(), "exactly one caller approves")
	assert.EqualValues(t, required, accepted.Load(), "votes accepted until the request is approved")
	assert.EqualValues(t, n-required, notPending.Load())
}

func testConcurrentApprovals(t *testing.T, s store.Store) {
	ctx := context.Background()
	const n = 50
	for _, required := range []int{1, 2} {
		t.Run(fmt.Sprintf("Required%d", required), func(t *testing.T) {
			id := fmt.Sprintf("r-%d", required)
			create(t, s, newRequest(id, required))
			approvalRace(t, required, n, func(i int) (approval.Decision, error) {
				_, dec, err := s.AddApproval(ctx, id, userID(i), T0())
				return dec, err
			})
			got, err := s.GetRequest(ctx, id)
			require.NoError(t, err)
			assert.Equal(t, approval.StateApproved, got.State)
			assert.Len(t, got.Approvals, required)
		})
	}
	t.Run("SameUser", func(t *testing.T) {
		create(t, s, newRequest("same", 2))
		var ok, dup atomic.Int32
		race(n, func(int) {
			_, _, err := s.AddApproval(ctx, "same", "U1", T0())
			if err == nil {
				ok.Add(1)
			} else if errors.Is(err, approval.ErrAlreadyVoted) {
				dup.Add(1)
			}
		})
		assert.EqualValues(t, 1, ok.Load())
		assert.EqualValues(t, n-1, dup.Load())
	})
}

func testConcurrentTransition(t *testing.T, s store.Store) {
	ctx := context.Background()
	create(t, s, newRequest("r1", 1))
	_, _, err := s.AddApproval(ctx, "r1", "U1", T0())
	require.NoError(t, err)
	oneWins(t, 50, func(int) (bool, error) {
		return s.Transition(ctx, "r1", approval.StateApproved, approval.StateExecuting, T0())
	})
}

func testMarkSeen(t *testing.T, s store.Store) {
	ctx := context.Background()
	ttl := 10 * time.Minute
	first, err := s.MarkSeen(ctx, "k1", T0(), ttl)
	require.NoError(t, err)
	assert.True(t, first)
	first, err = s.MarkSeen(ctx, "k1", T0().Add(ttl), ttl)
	require.NoError(t, err)
	assert.False(t, first, "still remembered at exactly ttl")
	first, err = s.MarkSeen(ctx, "k2", T0(), ttl)
	require.NoError(t, err)
	assert.True(t, first, "other keys are independent")
	first, err = s.MarkSeen(ctx, "k1", T0().Add(ttl+time.Second), ttl)
	require.NoError(t, err)
	assert.True(t, first, "forgotten after ttl")
	first, err = s.MarkSeen(ctx, "k1", T0().Add(ttl+2*time.Second), ttl)
	require.NoError(t, err)
	assert.False(t, first)

	_, err = s.MarkSeen(ctx, "", T0(), ttl)
	require.ErrorContains(t, err, "empty key")
	_, err = s.MarkSeen(ctx, "k3", T0(), 0)
	require.ErrorContains(t, err, "ttl must be positive")

	oneWins(t, 50, func(int) (bool, error) {
		return s.MarkSeen(ctx, "race", T0(), ttl)
	})

	// Many distinct keys, enough to trigger the opportunistic purge, stay correct.
	for i := range 300 {
		f, err := s.MarkSeen(ctx, fmt.Sprintf("bulk-%d", i), T0().Add(time.Hour), ttl)
		require.NoError(t, err)
		require.True(t, f)
	}
	first, err = s.MarkSeen(ctx, "bulk-0", T0().Add(time.Hour), ttl)
	require.NoError(t, err)
	assert.False(t, first)
}

func testLeases(t *testing.T, s store.Store) {
	ctx := context.Background()
	ttl := time.Minute
	acquire := func(owner string, now time.Time) bool {
		t.Helper()
		ok, err := s.AcquireLease(ctx, "iocs", owner, now, ttl)
		require.NoError(t, err)
		return ok
	}
	assert.True(t, acquire("a", T0()))
	assert.False(t, acquire("b", T0().Add(30*time.Second)), "held by a")
	assert.True(t, acquire("a", T0().Add(50*time.Second)), "owner renews")
	assert.False(t, acquire("b", T0().Add(100*time.Second)), "renewal extended the lease")
	assert.True(t, acquire("b", T0().Add(110*time.Second)), "expired at renewal+ttl")
	assert.False(t, acquire("a", T0().Add(120*time.Second)))

	require.NoError(t, s.ReleaseLease(ctx, "iocs", "a"), "releasing a lease one does not hold is a no-op")
	assert.False(t, acquire("a", T0().Add(121*time.Second)))
	require.NoError(t, s.ReleaseLease(ctx, "iocs", "b"))
	assert.True(t, acquire("a", T0().Add(122*time.Second)), "released lease is free")

	ok, err := s.AcquireLease(ctx, "other", "b", T0(), ttl)
	require.NoError(t, err)
	assert.True(t, ok, "leases are per name")

	_, err = s.AcquireLease(ctx, "", "a", T0(), ttl)
	require.ErrorContains(t, err, "name and owner are required")
	_, err = s.AcquireLease(ctx, "x", "a", T0(), 0)
	require.ErrorContains(t, err, "ttl must be positive")

	oneWins(t, 50, func(i int) (bool, error) {
		return s.AcquireLease(ctx, "contended", userID(i), T0(), ttl)
	})

	// LeaseHolder: who holds it and since when, renewals keeping the start.
	_, err = s.LeaseHolder(ctx, "held", T0())
	require.ErrorIs(t, err, store.ErrNotFound, "never taken")
	require.True(t, func() bool {
		ok, err := s.AcquireLease(ctx, "held", "a", T0(), ttl)
		require.NoError(t, err)
		return ok
	}())
	require.True(t, func() bool {
		ok, err := s.AcquireLease(ctx, "held", "a", T0().Add(40*time.Second), ttl)
		require.NoError(t, err)
		return ok
	}())
	h, err := s.LeaseHolder(ctx, "held", T0().Add(90*time.Second))
	require.NoError(t, err)
	assert.Equal(t, store.Lease{Name: "held", Owner: "a", Since: us(T0()), ExpiresAt: us(T0().Add(100 * time.Second))}, h, "a renewal keeps Since")
	_, err = s.LeaseHolder(ctx, "held", T0().Add(100*time.Second))
	require.ErrorIs(t, err, store.ErrNotFound, "expired")
	require.True(t, func() bool {
		ok, err := s.AcquireLease(ctx, "held", "b", T0().Add(101*time.Second), ttl)
		require.NoError(t, err)
		return ok
	}())
	h, err = s.LeaseHolder(ctx, "held", T0().Add(101*time.Second))
	require.NoError(t, err)
	assert.Equal(t, "b", h.Owner)
	assert.Equal(t, us(T0().Add(101*time.Second)), h.Since, "a takeover starts afresh")
	require.True(t, func() bool {
		ok, err := s.AcquireLease(ctx, "held", "b", T0().Add(300*time.Second), ttl)
		require.NoError(t, err)
		return ok
	}())
	h, err = s.LeaseHolder(ctx, "held", T0().Add(300*time.Second))
	require.NoError(t, err)
	assert.Equal(t, us(T0().Add(300*time.Second)), h.Since, "retaking one's own expired lease starts afresh")
	require.NoError(t, s.ReleaseLease(ctx, "held", "b"))
	_, err = s.LeaseHolder(ctx, "held", T0().Add(300*time.Second))
	require.ErrorIs(t, err, store.ErrNotFound, "released")
}

func testAudit(t *testing.T, s store.Store) {
	ctx := context.Background()
	events := []approval.AuditEvent{
		{At: T0().Add(2 * time.Second), Actor: "U1", Kind: "approve", RequestID: "r1", Details: map[string]any{"n": 1.0}},
		{At: T0(), Actor: "U0", Kind: "request", RequestID: "r1", Details: map[string]any{"action": "isolate", "tags": []any{"a", "b"}}},
		{At: T0().Add(2 * time.Second), Actor: "system", Kind: "call", RequestID: "r1"},
		{At: T0().Add(time.Second), Actor: "cli", Kind: "iocs_sync", Details: map[string]any{"ok": true, "nested": map[string]any{"x": "y"}}},
	}
	for _, e := range events {
		require.NoError(t, s.AppendAudit(ctx, e))
	}
	got, err := s.ListAudit(ctx, time.Time{})
	require.NoError(t, err)
	require.Len(t, got, 4)
	kinds := func(es []approval.AuditEvent) []string {
		var out []string
		for _, e := range es {
			out = append(out, e.Kind)
		}
		return out
	}
	assert.Equal(t, []string{"request", "iocs_sync", "approve", "call"}, kinds(got), "by time, then insertion")
	assert.Less(t, got[2].ID, got[3].ID)
	assert.Equal(t, us(T0()), got[0].At)
	assert.Equal(t, events[1].Details, got[0].Details)
	assert.Equal(t, events[3].Details, got[1].Details)
	assert.Nil(t, got[3].Details)
	assert.Equal(t, "r1", got[0].RequestID)
	assert.Equal(t, "U0", got[0].Actor)

	since, err := s.ListAudit(ctx, T0().Add(time.Second))
	require.NoError(t, err)
	assert.Equal(t, []string{"iocs_sync", "approve", "call"}, kinds(since), "since is inclusive")

	require.NoError(t, s.AppendAudit(ctx, approval.AuditEvent{Actor: "system", Kind: "expire"}))
	all, err := s.ListAudit(ctx, time.Time{})
	require.NoError(t, err)
	require.Len(t, all, 5)
	assert.False(t, all[4].At.IsZero(), "zero At is stamped with the clock")

	// A time in another zone is the same instant: read back in UTC, to the
	// microsecond, and a since in yet another zone compares instants.
	at := T0().Add(time.Hour).In(time.FixedZone("IST", 5*3600+1800))
	require.NoError(t, s.AppendAudit(ctx, approval.AuditEvent{At: at, Actor: "U9", Kind: "zone"}))
	late, err := s.ListAudit(ctx, at.In(time.FixedZone("PST", -8*3600)))
	require.NoError(t, err)
	require.NotEmpty(t, late)
	assert.Equal(t, "zone", late[0].Kind, "events before since are left out")
	assert.Equal(t, us(at), late[0].At)
	assert.Equal(t, time.UTC, late[0].At.Location())

	require.ErrorContains(t, s.AppendAudit(ctx, approval.AuditEvent{Actor: "x"}), "kind is required")
	require.ErrorContains(t, s.AppendAudit(ctx, approval.AuditEvent{Kind: "x"}), "actor is required")
	err = s.AppendAudit(ctx, approval.AuditEvent{Actor: "x", Kind: "x", Details: map[string]any{"f": func() {}}})
	require.ErrorContains(t, err, "details")
	// Audit is AppendAudit from the line's fields.
	require.NoError(t, s.Audit(ctx, T0().Add(2*time.Hour), "scheduler", "iocs_sync", map[string]any{"ok": true}))
	all, err = s.ListAudit(ctx, time.Time{})
	require.NoError(t, err)
	i := slices.IndexFunc(all, func(e approval.AuditEvent) bool { return e.Actor == "scheduler" })
	require.GreaterOrEqual(t, i, 0)
	assert.Equal(t, approval.AuditEvent{ID: all[i].ID, At: us(T0().Add(2 * time.Hour)), Actor: "scheduler", Kind: "iocs_sync",
		Details: map[string]any{"ok": true}}, all[i])
	require.ErrorContains(t, s.Audit(ctx, T0(), "", "x", nil), "actor is required")
}

func testIndicatorRecords(t *testing.T, s store.Store) {
	ctx := context.Background()
	list, err := s.ListIndicatorRecords(ctx)
	require.NoError(t, err)
	assert.Empty(t, list)

	recs := []store.IndicatorRecord{
		{Key: "IpAddress|1.2.3.4", IndicatorType: "IpAddress", Value: "1.2.3.4", StixID: "indicator--1",
			Fingerprint: "f1", Severity: "High", Status: "imported", UpdatedAt: T0(), StixModified: T0().Add(-time.Hour + 1234*time.Microsecond)},
		{Key: "DomainName|evil.test", IndicatorType: "DomainName", Value: "evil.test", StixID: "indicator--2",
			Status: "failed", FailureReason: "400 InvalidValue", UpdatedAt: T0(),
			Payload: `{"indicatorValue":"evil.test","title":"ünïcode 'quoted' \"x\"","description":"` + strings.Repeat("d", 4000) + `"}`},
	}
	require.NoError(t, s.UpsertIndicatorRecords(ctx, recs))
	list, err = s.ListIndicatorRecords(ctx)
	require.NoError(t, err)
	recs[0].UpdatedAt, recs[1].UpdatedAt = us(T0()), us(T0())
	recs[0].StixModified = us(recs[0].StixModified)
	assert.Equal(t, []store.IndicatorRecord{recs[1], recs[0]}, list, "ordered by key")
	assert.True(t, list[0].StixModified.IsZero(), "no STIX modified: zero")

	assert.Equal(t, recs[1].Payload, list[0].Payload, "payload round-trips byte for byte")

	// A later success clears the payload: an upsert replaces every field.
	upd := recs[1]
	upd.DefenderID, upd.Status, upd.FailureReason, upd.Fingerprint, upd.Payload = "42", "imported", "", "f2", ""
	upd.UpdatedAt = T0().Add(time.Hour)
	third := store.IndicatorRecord{Key: "FileSha256|ab", IndicatorType: "FileSha256", Value: "ab"}
	require.NoError(t, s.UpsertIndicatorRecords(ctx, []store.IndicatorRecord{upd, third}))
	list, err = s.ListIndicatorRecords(ctx)
	require.NoError(t, err)
	require.Len(t, list, 3)
	upd.UpdatedAt = us(upd.UpdatedAt)
	assert.Equal(t, upd, list[0])
	assert.Equal(t, "FileSha256|ab", list[1].Key)
	assert.False(t, list[1].UpdatedAt.IsZero())

	require.NoError(t, s.DeleteIndicatorRecords(ctx, []string{"DomainName|evil.test", "unknown"}))
	require.NoError(t, s.DeleteIndicatorRecords(ctx, nil))
	list, err = s.ListIndicatorRecords(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{"FileSha256|ab", "IpAddress|1.2.3.4"}, []string{list[0].Key, list[1].Key})

	err = s.UpsertIndicatorRecords(ctx, []store.IndicatorRecord{{Key: "Url|x", Value: "x"}, {Value: "no key"}})
	require.ErrorContains(t, err, "record 1 has an empty key")
	list, err = s.ListIndicatorRecords(ctx)
	require.NoError(t, err)
	assert.Len(t, list, 2, "all or nothing")
}

func testSyncRuns(t *testing.T, s store.Store) {
	ctx := context.Background()
	_, err := s.LastSyncRun(ctx)
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = s.LastSuccessfulSyncRun(ctx)
	require.ErrorIs(t, err, store.ErrNotFound)

	ok1 := store.SyncRun{ID: "s1", StartedAt: T0(), FinishedAt: T0().Add(time.Minute), Trigger: "schedule", OK: true, Summary: `{"created":3}`}
	require.NoError(t, s.SaveSyncRun(ctx, ok1))
	started := store.SyncRun{ID: "s2", StartedAt: T0().Add(time.Hour), Trigger: "slack"}
	require.NoError(t, s.SaveSyncRun(ctx, started))

	last, err := s.LastSyncRun(ctx)
	require.NoError(t, err)
	want := started
	want.StartedAt = us(want.StartedAt)
	assert.Equal(t, &want, last)
	assert.True(t, last.FinishedAt.IsZero())

	good, err := s.LastSuccessfulSyncRun(ctx)
	require.NoError(t, err)
	want = ok1
	want.StartedAt, want.FinishedAt = us(want.StartedAt), us(want.FinishedAt)
	assert.Equal(t, &want, good)

	// Saving the same ID again completes the run.
	started.FinishedAt, started.OK, started.Summary = T0().Add(time.Hour+time.Minute), false, `{"error":"throttled"}`
	require.NoError(t, s.SaveSyncRun(ctx, started))
	last, err = s.LastSyncRun(ctx)
	require.NoError(t, err)
	assert.Equal(t, "s2", last.ID)
	assert.False(t, last.OK)
	assert.Equal(t, `{"error":"throttled"}`, last.Summary)
	good, err = s.LastSuccessfulSyncRun(ctx)
	require.NoError(t, err)
	assert.Equal(t, "s1", good.ID)

	// Runs that started at the same instant: the greatest ID is the last,
	// whatever order they were saved in (time-ordered IDs make it the newest).
	same := T0().Add(2 * time.Hour)
	for _, order := range [][]string{{"s3a", "s3b"}, {"s4b", "s4a"}} {
		for _, id := range order {
			require.NoError(t, s.SaveSyncRun(ctx, store.SyncRun{ID: id, StartedAt: same, Trigger: "cli", OK: true}))
		}
		same = same.Add(time.Hour)
	}
	for range 3 {
		last, err = s.LastSyncRun(ctx)
		require.NoError(t, err)
		assert.Equal(t, "s4b", last.ID, "saved first, greater ID")
		good, err = s.LastSuccessfulSyncRun(ctx)
		require.NoError(t, err)
		assert.Equal(t, "s4b", good.ID)
	}
	require.NoError(t, s.SaveSyncRun(ctx, store.SyncRun{ID: "s4c", StartedAt: same.Add(-time.Hour), Trigger: "cli"}))
	last, err = s.LastSyncRun(ctx)
	require.NoError(t, err)
	assert.Equal(t, "s4c", last.ID)
	good, err = s.LastSuccessfulSyncRun(ctx)
	require.NoError(t, err)
	assert.Equal(t, "s4b", good.ID, "the last successful one is still s4b")

	require.ErrorContains(t, s.SaveSyncRun(ctx, store.SyncRun{StartedAt: T0()}), "id is required")
	require.ErrorContains(t, s.SaveSyncRun(ctx, store.SyncRun{ID: "x"}), "started_at is required")
}

func testFeedCursors(t *testing.T, s store.Store) {
	ctx := context.Background()
	const a, b = "taxii https://taxii.example/api1/ c1", "taxii https://taxii.example/api1/ c2"
	_, err := s.FeedCursor(ctx, a)
	require.ErrorIs(t, err, store.ErrNotFound)

	require.NoError(t, s.SetFeedCursor(ctx, a, "2026-03-01T00:00:01.000001Z", time.Now()))
	require.NoError(t, s.SetFeedCursor(ctx, b, "2026-03-02T00:00:00.000000Z", time.Time{}))
	require.NoError(t, s.SetFeedCursor(ctx, a, "2026-03-01T00:00:02.123456Z", time.Now()))
	got, err := s.FeedCursor(ctx, a)
	require.NoError(t, err)
	assert.Equal(t, "2026-03-01T00:00:02.123456Z", got, "kept as given, microseconds included")
	got, err = s.FeedCursor(ctx, b)
	require.NoError(t, err)
	assert.Equal(t, "2026-03-02T00:00:00.000000Z", got, "one position per feed")

	assert.Error(t, s.SetFeedCursor(ctx, "", "x", time.Now()))
	assert.Error(t, s.SetFeedCursor(ctx, a, "", time.Now()))
}
