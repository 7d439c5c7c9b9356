package bot

// Fault tests: the store becomes unreachable for a while, then recovers.
// faultStore is also how replicas_test.go "kills" a replica: a dead process
// no longer reaches the database.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/defenderbot/defenderbot/approval"
	"github.com/defenderbot/defenderbot/defender"
)

var errStoreDown = errors.New("dial tcp 127.0.0.1:5432: connect: connection refused")

// faultStore decorates a Store: while down, every call fails; hook, if set,
// is asked first and may fail a call (or bring the store down) by name.
type faultStore struct {
	inner Store

	mu     sync.Mutex
	down   bool
	hook   func(op string) error
	failed map[string]int
}

func newFaultStore(inner Store) *faultStore {
	return &faultStore{inner: inner, failed: map[string]int{}}
}

func (f *faultStore) setDown(down bool) {
	f.mu.Lock()
	f.down = down
	f.mu.Unlock()
}

func (f *faultStore) setHook(h func(op string) error) {
	f.mu.Lock()
	f.hook = h
	f.mu.Unlock()
}

func (f *faultStore) failures() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.failed {
		n += c
	}
	return n
}

func (f *faultStore) check(op string) error {
	f.mu.Lock()
	hook := f.hook
	f.mu.Unlock()
	var err error
	if hook != nil {
		err = hook(op) // outside the lock: a hook may call setDown
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil && f.down {
		err = errStoreDown
	}
	if err != nil {
		f.failed[op]++
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

func (f *faultStore) CreateRequest(ctx context.Context, r *approval.Request) error {
	if err := f.check("CreateRequest"); err != nil {
		return err
	}
	return f.inner.CreateRequest(ctx, r)
}

func (f *faultStore) GetRequest(ctx context.Context, id string) (*approval.Request, error) {
	if err := f.check("GetRequest"); err != nil {
		return nil, err
	}
	return f.inner.GetRequest(ctx, id)
}

func (f *faultStore) ListRequests(ctx context.Context, fl approval.RequestFilter) ([]*approval.Request, error) {
	if err := f.check("ListRequests"); err != nil {
		return nil, err
	}
	return f.inner.ListRequests(ctx, fl)
}

func (f *faultStore) SetApprovalMessage(ctx context.Context, id, channel, ts string) error {
	if err := f.check("SetApprovalMessage"); err != nil {
		return err
	}
	return f.inner.SetApprovalMessage(ctx, id, channel, ts)
}

func (f *faultStore) AddApproval(ctx context.Context, id, userID string, at time.Time) (*approval.Request, approval.Decision, error) {
	if err := f.check("AddApproval"); err != nil {
		return nil, approval.Decision{}, err
	}
	return f.inner.AddApproval(ctx, id, userID, at)
}

func (f *faultStore) Reject(ctx context.Context, id, userID, reason string, at time.Time) (*approval.Request, error) {
	if err := f.check("Reject"); err != nil {
		return nil, err
	}
	return f.inner.Reject(ctx, id, userID, reason, at)
}

func (f *faultStore) Transition(ctx context.Context, id string, from, to approval.State, at time.Time) (bool, error) {
	if err := f.check("Transition"); err != nil {
		return false, err
	}
	return f.inner.Transition(ctx, id, from, to, at)
}

func (f *faultStore) UpdateRequest(ctx context.Context, id string, u approval.RequestUpdate, at time.Time) error {
	if err := f.check("UpdateRequest"); err != nil {
		return err
	}
	return f.inner.UpdateRequest(ctx, id, u, at)
}

func (f *faultStore) SetProgressMessage(ctx context.Context, id, ts string) error {
	if err := f.check("SetProgressMessage"); err != nil {
		return err
	}
	return f.inner.SetProgressMessage(ctx, id, ts)
}

func (f *faultStore) TransitionTarget(ctx context.Context, id, machineID string, from, to approval.TargetState, at time.Time) (bool, error) {
	if err := f.check("TransitionTarget"); err != nil {
		return false, err
	}
	return f.inner.TransitionTarget(ctx, id, machineID, from, to, at)
}

func (f *faultStore) UpdateTarget(ctx context.Context, id, machineID string, u approval.TargetUpdate, at time.Time) error {
	if err := f.check("UpdateTarget"); err != nil {
		return err
	}
	return f.inner.UpdateTarget(ctx, id, machineID, u, at)
}

func (f *faultStore) ExpirePending(ctx context.Context, now time.Time) ([]*approval.Request, error) {
	if err := f.check("ExpirePending"); err != nil {
		return nil, err
	}
	return f.inner.ExpirePending(ctx, now)
}

func (f *faultStore) AcquireLease(ctx context.Context, name, owner string, now time.Time, ttl time.Duration) (bool, error) {
	if err := f.check("AcquireLease"); err != nil {
		return false, err
	}
	return f.inner.AcquireLease(ctx, name, owner, now, ttl)
}

func (f *faultStore) ReleaseLease(ctx context.Context, name, owner string) error {
	if err := f.check("ReleaseLease"); err != nil {
		return err
	}
	return f.inner.ReleaseLease(ctx, name, owner)
}

func (f *faultStore) AppendAudit(ctx context.Context, e approval.AuditEvent) error {
	if err := f.check("AppendAudit"); err != nil {
		return err
	}
	return f.inner.AppendAudit(ctx, e)
}

func (f *faultStore) ClaimUndo(ctx context.Context, originalID, undoID string, now time.Time, ttl time.Duration) (string, error) {
	if err := f.check("ClaimUndo"); err != nil {
		return "", err
	}
	return f.inner.ClaimUndo(ctx, originalID, undoID, now, ttl)
}

func (f *faultStore) ReleaseUndo(ctx context.Context, originalID, undoID string) error {
	if err := f.check("ReleaseUndo"); err != nil {
		return err
	}
	return f.inner.ReleaseUndo(ctx, originalID, undoID)
}

func (f *faultStore) UndoOf(ctx context.Context, undoID string) (string, error) {
	if err := f.check("UndoOf"); err != nil {
		return "", err
	}
	return f.inner.UndoOf(ctx, undoID)
}

func (f *faultStore) SaveCardContext(ctx context.Context, requestID, data string) error {
	if err := f.check("SaveCardContext"); err != nil {
		return err
	}
	return f.inner.SaveCardContext(ctx, requestID, data)
}

func (f *faultStore) CardContext(ctx context.Context, requestID string) (string, error) {
	if err := f.check("CardContext"); err != nil {
		return "", err
	}
	return f.inner.CardContext(ctx, requestID)
}

var _ Store = (*faultStore)(nil)

// TestStoreOutageCommandAndClick: during an outage a slash command and an
// Approve click each get a clear private message and nothing is half done
// (no request, no approval post, no Defender call); after recovery the same
// command and click work.
func TestStoreOutageCommandAndClick(t *testing.T) {
	eachBackend(t, func(t *testing.T, db testDB) {
		clock := &fakeClock{t: t0}
		st := db.open(t, clock)
		fs := newFaultStore(st)
		def := newFakeDefender()
		def.runStatus = defender.StatusSucceeded
		rp := newReplica(t, "r1", fs, def, clock, replicaOpts{})

		fs.setDown(true)
		rp.command(t, analyst, "isolate ws-001.contoso.com full beaconing")
		msgs := rp.slack.ephemeralTo(analyst)
		require.Len(t, msgs, 1)
		assert.Contains(t, msgs[0], "Could not record the request (database error); nothing was done")
		assert.NotContains(t, msgs[0], "127.0.0.1", "internal error details are not shown in Slack")
		assert.Empty(t, rp.slack.find("chat.postMessage"), "no approval message for an unrecorded request")
		assert.Zero(t, def.runCount())
		assert.Positive(t, fs.failures())

		fs.setDown(false)
		rs, err := st.ListRequests(context.Background(), approval.RequestFilter{})
		require.NoError(t, err)
		assert.Empty(t, rs, "nothing half-recorded")

		// Same command after recovery.
		rp.command(t, analyst, "isolate ws-001.contoso.com full beaconing")
		r := onlyRequest(t, st)
		require.Equal(t, approval.StatePending, r.State)
		require.Len(t, rp.slack.find("chat.postMessage"), 1)

		// Click during an outage.
		fs.setDown(true)
		rp.click(t, approver1, actionApprove, r.ID)
		msgs = rp.slack.ephemeralTo(approver1)
		require.Len(t, msgs, 1)
		assert.Contains(t, msgs[0], "database error")
		assert.Contains(t, msgs[0], "Try again")
		assert.Zero(t, def.runCount())
		fs.setDown(false)
		assert.Equal(t, approval.StatePending, getRequest(t, st, r.ID).State)
		assert.Empty(t, getRequest(t, st, r.ID).Approvals, "no vote recorded during the outage")

		// The same click after recovery runs it once.
		rp.click(t, approver1, actionApprove, r.ID)
		assert.Equal(t, 1, def.runCount())
		assert.Equal(t, approval.StateSucceeded, getRequest(t, st, r.ID).State)
	})
}

// TestStoreOutageAtEachStepOfApproval brings the store down just before
// each store call an Approve click makes: nothing runs twice, nothing runs
// unapproved, and once the store is back the work completes (if the vote was
// recorded, the resume scan executes it; otherwise a new click does).
func TestStoreOutageAtEachStepOfApproval(t *testing.T) {
	steps := []struct {
		op       string
		nth      int // fail the nth call of op during the click (1-based)
		voteSeen bool
	}{
		{op: "GetRequest", nth: 1},
		{op: "AddApproval", nth: 1},
		{op: "Transition", nth: 1, voteSeen: true},
	}
	for _, step := range steps {
		t.Run(step.op, func(t *testing.T) {
			eachBackend(t, func(t *testing.T, db testDB) {
				clock := &fakeClock{t: t0}
				st := db.open(t, clock)
				fs := newFaultStore(st)
				def := newFakeDefender()
				def.runStatus = defender.StatusSucceeded
				rp := newReplica(t, "r1", fs, def, clock, replicaOpts{})
				rp.command(t, analyst, "isolate ws-001.contoso.com full beaconing")
				r := onlyRequest(t, st)

				seen := 0
				fs.setHook(func(op string) error {
					if op == step.op {
						seen++
						if seen == step.nth {
							fs.setDown(true) // the outage starts here and lasts
						}
					}
					return nil
				})
				rp.click(t, approver1, actionApprove, r.ID)
				fs.setHook(nil)
				fs.setDown(false)
				assert.Zero(t, def.runCount(), "nothing runs while the store is down")

				got := getRequest(t, st, r.ID)
				if step.voteSeen {
					require.Equal(t, approval.StateApproved, got.State)
					msgs := rp.slack.ephemeralTo(approver1)
					require.Len(t, msgs, 1, "the approver is told")
					assert.Contains(t, msgs[0], "approval is recorded, but the action could not be started")
				} else {
					require.Equal(t, approval.StatePending, got.State)
					msgs := rp.slack.ephemeralTo(approver1)
					require.NotEmpty(t, msgs)
					assert.Contains(t, msgs[len(msgs)-1], "database error")
					rp.click(t, approver1, actionApprove, r.ID)
				}
				// The periodic scan picks up an approved request left behind.
				rp.svc.core.Scan(context.Background())
				rp.svc.Wait()
				assert.Equal(t, 1, def.runCount())
				assert.Equal(t, approval.StateSucceeded, getRequest(t, st, r.ID).State)
			})
		})
	}
}

// TestStoreOutageWhenRecordingARejection: a rejection the store could not
// record is told to the approver as such and changes nothing; submitted again
// after recovery, it is recorded.
func TestStoreOutageWhenRecordingARejection(t *testing.T) {
	eachBackend(t, func(t *testing.T, db testDB) {
		clock := &fakeClock{t: t0}
		st := db.open(t, clock)
		fs := newFaultStore(st)
		def := newFakeDefender()
		rp := newReplica(t, "r1", fs, def, clock, replicaOpts{})
		rp.command(t, analyst, "isolate ws-001.contoso.com full beaconing")
		r := onlyRequest(t, st)

		rp.click(t, approver1, actionReject, r.ID)
		views := rp.slack.find("views.open")
		require.Len(t, views, 1)
		submit := func() {
			resp, err := rp.svc.HandleInteraction(context.Background(), viewSubmission(approver1, views[0].View, map[string]string{blockReason: "no evidence"}))
			require.NoError(t, err)
			require.Nil(t, resp)
			rp.svc.Wait()
		}

		fs.setHook(func(op string) error {
			if op == "Reject" {
				return errStoreDown
			}
			return nil
		})
		submit()
		msgs := rp.slack.ephemeralTo(approver1)
		require.Len(t, msgs, 1)
		assert.Contains(t, msgs[0], "Could not record your rejection (database error)")
		assert.NotContains(t, msgs[0], "127.0.0.1", "internal error details are not shown in Slack")
		assert.Equal(t, approval.StatePending, getRequest(t, st, r.ID).State)
		assert.NotContains(t, auditKinds(t, st, r.ID), "reject")

		fs.setHook(nil)
		submit()
		got := getRequest(t, st, r.ID)
		assert.Equal(t, approval.StateRejected, got.State)
		assert.Equal(t, "no evidence", got.RejectReason)
		assert.Contains(t, auditKinds(t, st, r.ID), "reject")
		assert.Zero(t, def.runCount())
	})
}

// TestStoreOutageDuringFollowUp: a follow-up in progress survives an outage
// and keeps polling after it, and posts each status once.
func TestStoreOutageDuringFollowUp(t *testing.T) {
	eachBackend(t, func(t *testing.T, db testDB) {
		clock := &fakeClock{t: t0}
		st := db.open(t, clock)
		fs := newFaultStore(st)
		def := newFakeDefender()
		def.runStatus = defender.StatusPending
		def.statuses = []defender.ActionStatus{defender.StatusInProgress, defender.StatusInProgress, defender.StatusInProgress,
			defender.StatusInProgress, defender.StatusSucceeded}

		// Sleeps drive the outage: down from the 2nd sleep to the 5th.
		var mu sync.Mutex
		sleeps := 0
		sleep := func(ctx context.Context, d time.Duration) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			mu.Lock()
			sleeps++
			n := sleeps
			mu.Unlock()
			switch n {
			case 2:
				fs.setDown(true)
			case 5:
				fs.setDown(false)
			}
			clock.Advance(d)
			return nil
		}
		rp := newReplica(t, "r1", fs, def, clock, replicaOpts{sleep: sleep})
		rp.command(t, analyst, "isolate ws-001.contoso.com full beaconing")
		r := onlyRequest(t, st)
		rp.click(t, approver1, actionApprove, r.ID) // Wait drains the follow-up too

		assert.Positive(t, fs.failures(), "the outage happened during the follow-up")
		got := getRequest(t, st, r.ID)
		assert.Equal(t, approval.StateSucceeded, got.State, "the follow-up resumed after the outage")
		assert.Equal(t, "Succeeded", got.MachineActionStatus)
		thread := rp.thread(r.ApprovalTS)
		require.Len(t, thread, 3, "thread: %q", thread)
		assert.Contains(t, thread[0], "*Pending*")
		assert.Contains(t, thread[1], "*InProgress*")
		assert.Contains(t, thread[2], "*Succeeded*")
		dms := rp.dms(analyst)
		require.NotEmpty(t, dms)
		assert.Contains(t, dms[len(dms)-1], "succeeded")
		assert.Equal(t, 1, countContaining(dms, "succeeded"))
	})
}

func countContaining(ss []string, sub string) int {
	n := 0
	for _, s := range ss {
		if strings.Contains(s, sub) {
			n++
		}
	}
	return n
}

// TestNoDefenderCallWithoutAuditRecord: when the audit line that precedes a
// Defender call cannot be written, Defender is not called and the request
// fails with a message saying why.
func TestNoDefenderCallWithoutAuditRecord(t *testing.T) {
	eachBackend(t, func(t *testing.T, db testDB) {
		clock := &fakeClock{t: t0}
		st := db.open(t, clock)
		fs := newFaultStore(st)
		def := newFakeDefender()
		def.runStatus = defender.StatusSucceeded
		rp := newReplica(t, "r1", fs, def, clock, replicaOpts{})
		rp.command(t, analyst, "isolate ws-001.contoso.com full beaconing")
		r := onlyRequest(t, st)

		fs.setHook(func(op string) error {
			if op == "AppendAudit" {
				return errStoreDown
			}
			return nil
		})
		rp.click(t, approver1, actionApprove, r.ID)
		fs.setHook(nil)

		assert.Zero(t, def.runCount(), "Defender is never called without an audit record")
		got := getRequest(t, st, r.ID)
		assert.Equal(t, approval.StateFailed, got.State)
		assert.Contains(t, got.Error, "audit trail could not be written")
	})
}
