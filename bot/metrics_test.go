package bot

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/defenderbot/defenderbot/defender"
)

type countingMetrics struct {
	mu      sync.Mutex
	states  map[string]int
	actions map[string]int // "action/status"
	pending []pendingObs
}

type pendingObs struct {
	n           int
	oldest, ttl time.Duration
}

func (m *countingMetrics) MachineAction(action, status string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.actions == nil {
		m.actions = map[string]int{}
	}
	m.actions[action+"/"+status]++
}

func (m *countingMetrics) PendingApprovals(n int, oldest, ttl time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pending = append(m.pending, pendingObs{n, oldest, ttl})
}

func (m *countingMetrics) Approval(state string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.states == nil {
		m.states = map[string]int{}
	}
	m.states[state]++
}

func (m *countingMetrics) snapshot() map[string]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]int{}
	for k, v := range m.states {
		out[k] = v
	}
	return out
}

// TestApprovalMetrics: each state a request enters is counted once.
func TestApprovalMetrics(t *testing.T) {
	eachBackend(t, func(t *testing.T, db testDB) {
		clock := &fakeClock{t: t0}
		st := db.open(t, clock)
		def := newFakeDefender()
		def.runStatus = defender.StatusSucceeded
		m := &countingMetrics{}
		rp := newReplica(t, "r1", st, def, clock, replicaOpts{metrics: m})

		rp.command(t, analyst, "isolate ws-001.contoso.com full beaconing")
		r := onlyRequest(t, st)
		rp.click(t, analyst, actionApprove, r.ID) // self-approval: refused
		rp.click(t, approver1, actionApprove, r.ID)
		rp.svc.Wait()

		assert.Equal(t, map[string]int{"pending": 1, "refused": 1, "approved": 1, "succeeded": 1}, m.snapshot())
		m.mu.Lock()
		defer m.mu.Unlock()
		assert.Equal(t, map[string]int{"isolate/Succeeded": 1}, m.actions, "the machine action is counted once, by its final status")
	})
}

// TestMachineActionMetricsUnknown: an action that outlives poll_timeout is
// counted as Unknown, not by its last (non-final) status.
func TestMachineActionMetricsUnknown(t *testing.T) {
	eachBackend(t, func(t *testing.T, db testDB) {
		clock := &fakeClock{t: t0}
		st := db.open(t, clock)
		def := newFakeDefender()
		def.runStatus = defender.StatusPending
		m := &countingMetrics{}
		rp := newReplica(t, "r1", st, def, clock, replicaOpts{metrics: m, cfg: func(c *Config) { c.PollTimeout = 3 * time.Second }})

		rp.command(t, analyst, "isolate ws-001.contoso.com full beaconing")
		r := onlyRequest(t, st)
		rp.click(t, approver1, actionApprove, r.ID)
		rp.svc.Wait()

		assert.Equal(t, 1, m.snapshot()["failed"])
		m.mu.Lock()
		defer m.mu.Unlock()
		assert.Equal(t, map[string]int{"isolate/Unknown": 1}, m.actions)
	})
}

// TestPendingApprovalMetrics: the sweep reports the backlog and the age of
// the oldest waiting request against the TTL.
func TestPendingApprovalMetrics(t *testing.T) {
	eachBackend(t, func(t *testing.T, db testDB) {
		clock := &fakeClock{t: t0}
		st := db.open(t, clock)
		m := &countingMetrics{}
		rp := newReplica(t, "r1", st, newFakeDefender(), clock, replicaOpts{metrics: m, cfg: func(c *Config) { c.TTL = 20 * time.Minute }})

		rp.command(t, analyst, "isolate ws-001.contoso.com full beaconing")
		clock.Advance(4 * time.Minute)
		rp.command(t, analyst, "scan ws-001.contoso.com quick routine")
		clock.Advance(6 * time.Minute)
		rp.svc.core.Scan(context.Background())
		clock.Advance(15 * time.Minute) // both expire
		rp.svc.core.Scan(context.Background())

		m.mu.Lock()
		defer m.mu.Unlock()
		assert.Equal(t, []pendingObs{
			{n: 2, oldest: 10 * time.Minute, ttl: 20 * time.Minute},
			{n: 0, oldest: 0, ttl: 20 * time.Minute},
		}, m.pending)
	})
}
