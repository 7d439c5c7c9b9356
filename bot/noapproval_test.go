package bot

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/defenderbot/defenderbot/actions"
	"github.com/defenderbot/defenderbot/approval"
	"github.com/defenderbot/defenderbot/defender"
)

// TestStateChangingActionWithoutApproval: an action an administrator lists in
// actions_without_approval runs at once, but still through the store (one
// claim, audit trail) and is followed to its outcome like an approved one.
func TestStateChangingActionWithoutApproval(t *testing.T) {
	eachBackend(t, func(t *testing.T, db testDB) {
		clock := &fakeClock{t: t0}
		st := db.open(t, clock)
		def := newFakeDefender()
		def.runStatus = defender.StatusPending
		def.statuses = []defender.ActionStatus{defender.StatusInProgress, defender.StatusSucceeded}
		rp := newReplica(t, "r1", st, def, clock, replicaOpts{cfg: func(c *Config) {
			c.ActionsWithoutApproval = []actions.Name{actions.GetAction, actions.Scan}
		}})

		rp.command(t, analyst, "scan ws-001.contoso.com quick weekly check")
		rp.svc.Wait() // the follow-up polls on the fake clock, so it finishes here
		r := onlyRequest(t, st)
		require.Equal(t, approval.StateSucceeded, r.State, r.Error)
		assert.Equal(t, 1, def.runCount(), "run once, without any click")
		assert.Empty(t, r.Approvals)
		for _, c := range rp.slack.find("chat.postMessage") {
			assert.NotEqual(t, approvals, c.Channel, "no approval message is posted")
		}
		assert.Equal(t, []string{"request", "call", "result", "status", "status", "result"}, auditKinds(t, st, r.ID))
		dms := rp.dms(analyst)
		require.NotEmpty(t, dms)
		assert.Contains(t, dms[len(dms)-1], "succeeded")
	})
}
