package e2e_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/defenderbot/defenderbot/actions"
	"github.com/defenderbot/defenderbot/approval"
	"github.com/defenderbot/defenderbot/bot"
	"github.com/defenderbot/defenderbot/defender/defendertest"
)

const (
	machine2 = defendertest.SampleMachineID2
	machine3 = defendertest.SampleMachineID3
)

// TestBulkUndoFromTheThread: a bulk isolation of three machines fails on
// one; its thread offers Release for the two where it succeeded, as one
// inverse request through approval, requested once however many times the
// form is submitted (on two replicas); Defender releases exactly those
// two; the audit links the requests and the original message shows who
// undid it.
func TestBulkUndoFromTheThread(t *testing.T) {
	for _, driver := range backends {
		t.Run(driver, func(t *testing.T) {
			w, p1, p2 := twoReplicas(t, driver, quickBulk)
			w.emu.SetActionOutcome(machine2, "Failed")
			code, body := p1.command(alice, "isolate "+machine1DN+","+machine2+","+machine3+" selective outbreak on floor 3")
			require.Equal(t, http.StatusOK, code, body)
			msg, id := w.approvalMessage(t, 1)
			w.responseTo(t, alice, 1)
			p1.click(bob, "approve", id, msg.TS)
			p1.waitState(id, approval.StateRunning)
			w.advance(3 * time.Minute)
			orig := p1.waitState(id, approval.StateFailed)
			require.Equal(t, approval.TargetFailed, orig.Targets[1].State)

			btn := w.undoButton(t, msg.TS)
			assert.Contains(t, btn.Text, "the 2 of 3 machines where it succeeded")
			// The Home tab lists the two machines still isolated, with Release.
			home := p2.openHome(t, bob, "Ev-bulk-home-1", 1)
			assert.Contains(t, home, "Isolated by defenderbot* (2)")
			assert.Contains(t, home, machine1DN)
			assert.Contains(t, home, machine3)
			assert.NotContains(t, home, machine2, "the isolation failed there")
			assert.Contains(t, home, `"action_id":"undo","value":"`+id+`"`)

			// The Home tab orders isolations and releases by when they
			// ended: the undo happens later than the isolation.
			w.clock.Advance(time.Minute)
			submit := p2.openUndo(t, carol, id, btn.TS, 1)
			code, body = submit("false positive, cleaned")
			require.Equal(t, http.StatusOK, code)
			assert.Empty(t, body)
			undoMsg, undoID := w.approvalMessage(t, 2)
			r := p2.waitState(undoID, approval.StatePending)
			assert.Equal(t, actions.Deisolate, r.Action)
			assert.Equal(t, carol, r.RequesterID)
			var ids []string
			for _, tg := range r.Targets {
				ids = append(ids, tg.MachineID)
			}
			assert.Equal(t, []string{machine1, machine3}, ids, "the machines where the isolation succeeded")
			assert.Len(t, w.defenderWrites(), 3, "nothing runs before approval")

			// Submitted again, on the other replica: already requested.
			code, _ = p1.openUndo(t, bob, id, btn.TS, 2)("me too")
			require.Equal(t, http.StatusOK, code)
			assert.Contains(t, w.ephemeralTo(t, bob, 1).Text, "already requested")
			p1.bot.Wait()
			p2.bot.Wait()
			rs, err := p1.store.ListRequests(context.Background(), approval.RequestFilter{})
			require.NoError(t, err)
			assert.Len(t, rs, 2, "one inverse request")

			p1.click(bob, "approve", undoID, undoMsg.TS)
			p1.waitState(undoID, approval.StateRunning)
			w.advance(3 * time.Minute)
			p1.waitState(undoID, approval.StateSucceeded)
			assert.ElementsMatch(t, []string{
				"POST /api/machines/" + machine1 + "/isolate", "POST /api/machines/" + machine2 + "/isolate", "POST /api/machines/" + machine3 + "/isolate",
				"POST /api/machines/" + machine1 + "/unisolate", "POST /api/machines/" + machine3 + "/unisolate",
			}, w.defenderWrites(), "released where it was isolated, once each")

			require.Eventually(t, func() bool {
				m, _ := w.slack.Message(channel, msg.TS)
				return strings.Contains(string(m.Blocks), "Undone") && strings.Contains(string(m.Blocks), carol) && strings.Contains(string(m.Blocks), undoID)
			}, 5*time.Second, 5*time.Millisecond, "the original message shows who undid it")
			assertUndoLinked(t, p1, id, undoID)
			home = p1.openHome(t, bob, "Ev-bulk-home-2", 2)
			assert.Contains(t, home, "Isolated by defenderbot* (0)", "both released")
		})
	}
}

// TestBulkUndoWithoutApprovalWhenExempt: an exempt inverse action runs at
// once on every machine of the bulk request.
func TestBulkUndoWithoutApprovalWhenExempt(t *testing.T) {
	w := newWorld(t)
	p := w.start(t, quickBulk, func(c *bot.Config) {
		c.ActionsWithoutApproval = []actions.Name{actions.GetAction, actions.UnrestrictCodeExecution}
	})
	msg, id := requestSucceeded(t, w, p, "restrict "+machine1+","+machine3+" ransomware staging")

	btn := w.undoButton(t, msg.TS)
	assert.Contains(t, string(btn.Blocks), "Remove restriction")
	code, _ := p.openUndo(t, alice, id, btn.TS, 1)("contained elsewhere")
	require.Equal(t, http.StatusOK, code)
	require.Eventually(t, func() bool { return len(w.defenderWrites()) == 4 }, 10*time.Second, 5*time.Millisecond)
	assert.ElementsMatch(t, []string{"POST /api/machines/" + machine1 + "/unrestrictCodeExecution", "POST /api/machines/" + machine3 + "/unrestrictCodeExecution"},
		w.defenderWrites()[2:])
	w.advance(3 * time.Minute)
	require.Eventually(t, func() bool {
		m, _ := w.slack.Message(channel, msg.TS)
		return strings.Contains(string(m.Blocks), "Undone")
	}, 10*time.Second, 5*time.Millisecond)
}
