package bot

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/defenderbot/defenderbot/defender"
)

type countingMetrics struct {
	mu     sync.Mutex
	states map[string]int
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
	})
}
