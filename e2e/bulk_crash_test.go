package e2e_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/defenderbot/defenderbot/approval"
	"github.com/defenderbot/defenderbot/defender"
	"github.com/defenderbot/defenderbot/defender/defendertest"
	"github.com/defenderbot/defenderbot/store"
)

// TestBulkTakeoverAfterACrashNeverCallsTwice: replica A dies in the middle
// of a bulk isolation of three machines: the first machine's action was
// created and recorded, the second was sent to Defender but A died before
// recording it, the third was never reached. Replica B, started on the same
// database, settles the second from Defender's list (the request tag) and
// calls only the third: each machine gets exactly one isolate.
func TestBulkTakeoverAfterACrashNeverCallsTwice(t *testing.T) {
	for _, driver := range backends {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			w := newWorldOn(t, driver)
			a := w.start(t, quickBulk)
			code, body := a.command(alice, "isolate "+machine1DN+",web-srv-02.contoso.com,dev-linux-03 outbreak")
			require.Equal(t, http.StatusOK, code, body)
			_, id := w.approvalMessage(t, 1)
			w.responseTo(t, alice, 1)
			a.stop() // A's process is gone; its database rows are what a crash leaves.

			// The state A left: approved, claimed, machine 1 running,
			// machine 2 sent but not recorded, machine 3 queued.
			st := a.reopen(t)
			_, dec, err := st.AddApproval(ctx, id, bob, w.clock.Now())
			require.NoError(t, err)
			require.True(t, dec.Approved)
			ok, err := st.Transition(ctx, id, approval.StateApproved, approval.StateExecuting, w.clock.Now())
			require.NoError(t, err)
			require.True(t, ok)
			client := w.defenderClient(t)
			comment := approval.TaggedComment("outbreak", id, []string{bob})
			var recorded string
			for i, m := range []string{machine1, defendertest.SampleMachineID2} {
				ok, err := st.TransitionTarget(ctx, id, m, approval.TargetQueued, approval.TargetCalling, w.clock.Now())
				require.NoError(t, err)
				require.True(t, ok)
				ma, err := client.IsolateMachine(ctx, m, comment, defender.IsolationFull)
				require.NoError(t, err)
				if i == 0 {
					running, status := approval.TargetRunning, string(ma.Status)
					recorded = ma.ID
					require.NoError(t, st.UpdateTarget(ctx, id, m, approval.TargetUpdate{State: &running, MachineActionID: &recorded, MachineActionStatus: &status}, w.clock.Now()))
				}
			}
			require.Len(t, w.defenderWrites(), 2)
			require.NoError(t, st.Close())

			// A's claim lapsed long ago when B starts.
			w.clock.Advance(5 * time.Minute)
			b := w.start(t, quickBulk)
			r := b.waitState(id, approval.StateRunning)
			assert.ElementsMatch(t, []string{
				"POST /api/machines/" + machine1 + "/isolate",
				"POST /api/machines/" + defendertest.SampleMachineID2 + "/isolate",
				"POST /api/machines/" + defendertest.SampleMachineID3 + "/isolate",
			}, w.defenderWrites(), "only the machine never reached is called")
			assert.Equal(t, recorded, r.Targets[0].MachineActionID)
			assert.NotEmpty(t, r.Targets[1].MachineActionID, "found by its tag")
			w.advance(3 * time.Minute)
			r = b.waitState(id, approval.StateSucceeded)
			b.bot.Wait()
			assert.Len(t, w.defenderWrites(), 3)
			for _, tg := range r.Targets {
				assert.Equal(t, approval.TargetSucceeded, tg.State, tg.MachineID)
			}
			assert.Contains(t, b.auditKinds(id), "reconcile")
		})
	}
}

// reopen opens p's database again (p stopped), as a crashed replica's rows.
func (p *proc) reopen(t *testing.T) store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), p.w.driver, p.w.db, store.WithClock(p.w.clock.Now))
	require.NoError(t, err)
	return st
}

// defenderClient is a Defender client of the world's emulator, standing in
// for a replica's own calls.
func (w *world) defenderClient(t *testing.T) *defender.Client {
	t.Helper()
	cfg := w.emu.ClientConfig()
	cfg.MaxRetries, cfg.Limits = 1, w.limits
	c, err := defender.New(cfg, defender.WithHTTPClient(w.emu.HTTPClient()))
	require.NoError(t, err)
	return c
}
