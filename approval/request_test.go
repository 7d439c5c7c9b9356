package approval

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestStateTransitions(t *testing.T) {
	assert.True(t, StatePending.CanTransitionTo(StateApproved))
	assert.True(t, StateExecuting.CanTransitionTo(StateSucceeded))
	assert.False(t, StateSucceeded.CanTransitionTo(StateFailed))
	assert.False(t, StatePending.CanTransitionTo(StateExecuting))
	assert.False(t, StateApproved.CanTransitionTo(StatePending))
	assert.True(t, StateRunning.Valid())
	assert.False(t, State("").Valid())
}

// Expired is the one definition of expiry; the store applies the same
// rule (a vote exactly at ExpiresAt still counts) and the contract suite
// checks it.
func TestExpired(t *testing.T) {
	at := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	r := &Request{ExpiresAt: at}
	assert.False(t, r.Expired(at.Add(-time.Second)))
	assert.False(t, r.Expired(at), "exactly at ExpiresAt is still in time")
	assert.True(t, r.Expired(at.Add(time.Nanosecond)))
	assert.False(t, (&Request{}).Expired(at.Add(1000*time.Hour)), "a zero ExpiresAt never expires")
}
