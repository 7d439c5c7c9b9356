package e2e_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/defenderbot/defenderbot/actions"
	"github.com/defenderbot/defenderbot/approval"
	"github.com/defenderbot/defenderbot/bot"
	"github.com/defenderbot/defenderbot/internal/slackfake"
)

// undoButton waits for the undo offer in the thread of messageTS.
// requestSucceeded has alice ask for command, bob approve it and Defender
// finish it: the request's approval message and ID once it succeeded.
func requestSucceeded(t *testing.T, w *world, p *proc, command string) (slackfake.Call, string) {
	t.Helper()
	code, _ := p.command(alice, command)
	require.Equal(t, http.StatusOK, code)
	msg, id := w.approvalMessage(t, 1)
	w.responseTo(t, alice, 1)
	p.click(bob, "approve", id, msg.TS)
	p.waitState(id, approval.StateRunning)
	w.advance(3 * time.Minute)
	p.waitState(id, approval.StateSucceeded)
	return msg, id
}

func (w *world) undoButton(t *testing.T, messageTS string) slackfake.Call {
	t.Helper()
	return w.waitCall(t, 1, func(c slackfake.Call) bool {
		return c.Method == slackfake.MethodPostMessage && c.ThreadTS == messageTS && strings.Contains(string(c.Blocks), `"action_id":"undo"`)
	})
}

// openUndo clicks the undo button as user and returns a function that
// submits the form it opened with a comment.
func (p *proc) openUndo(t *testing.T, user, origID, buttonTS string, nthForm int) func(comment string) (int, string) {
	t.Helper()
	code, _ := p.click(user, "undo", origID, buttonTS)
	require.Equal(t, http.StatusOK, code)
	view := p.w.openedForm(t, nthForm)
	return func(comment string) (int, string) { return p.submitText(user, view, "comment", comment) }
}

// TestUndoFromTheThread: a succeeded isolation offers Release in its thread;
// the form creates the inverse request, which needs approval; the audit
// links the two; the original message shows who undid it. State is shared
// by two replicas.
func TestUndoFromTheThread(t *testing.T) {
	for _, driver := range backends {
		t.Run(driver, func(t *testing.T) {
			w := newWorldOn(t, driver)
			p1, p2 := w.start(t), w.start(t)
			msg, id := requestPending(t, w, p1)
			p1.click(bob, "approve", id, msg.TS)
			p1.waitState(id, approval.StateRunning)
			w.advance(3 * time.Minute)
			p1.waitState(id, approval.StateSucceeded)

			btn := w.undoButton(t, msg.TS)
			assert.Contains(t, btn.Text, "Release")

			// an empty comment is refused inside the form
			submit := p2.openUndo(t, carol, id, btn.TS, 1)
			code, body := submit(" ")
			require.Equal(t, http.StatusOK, code)
			assert.Contains(t, body, `"response_action":"errors"`)

			code, body = submit("false positive, cleaned")
			require.Equal(t, http.StatusOK, code)
			assert.Empty(t, body)

			undoMsg, undoID := w.approvalMessage(t, 2)
			assert.Contains(t, undoMsg.Text, "Deisolate")
			assert.NotEqual(t, id, undoID)
			r := p2.waitState(undoID, approval.StatePending)
			assert.Equal(t, actions.Deisolate, r.Action)
			assert.Equal(t, machine1, r.Args.MachineID)
			assert.Equal(t, carol, r.RequesterID)
			assert.Equal(t, []string{"POST /api/machines/" + machine1 + "/isolate"}, w.defenderWrites(), "nothing runs before approval")

			// the button now says who asked
			require.Eventually(t, func() bool {
				m, _ := w.slack.Message(channel, btn.TS)
				return strings.Contains(m.Text, carol) && !strings.Contains(string(m.Blocks), `"action_id":"undo"`)
			}, 5*time.Second, 5*time.Millisecond)

			// a second undo of the same request is refused
			code, _ = p1.openUndo(t, bob, id, btn.TS, 2)("me too")
			require.Equal(t, http.StatusOK, code)
			assert.Contains(t, w.ephemeralTo(t, bob, 1).Text, "already requested")

			p1.click(bob, "approve", undoID, undoMsg.TS)
			p1.waitState(undoID, approval.StateRunning)
			w.advance(3 * time.Minute)
			p1.waitState(undoID, approval.StateSucceeded)
			assert.Equal(t, []string{"POST /api/machines/" + machine1 + "/isolate", "POST /api/machines/" + machine1 + "/unisolate"}, w.defenderWrites())

			require.Eventually(t, func() bool {
				m, _ := w.slack.Message(channel, msg.TS)
				return strings.Contains(string(m.Blocks), "Undone") && strings.Contains(string(m.Blocks), carol) && strings.Contains(string(m.Blocks), undoID)
			}, 5*time.Second, 5*time.Millisecond, "the original message shows who undid it")

			assertUndoLinked(t, p1, id, undoID)
		})
	}
}

// TestUndoWithoutApprovalWhenExempt: an exempt inverse action runs at once.
func TestUndoWithoutApprovalWhenExempt(t *testing.T) {
	w := newWorld(t)
	p := w.start(t, func(c *bot.Config) {
		c.ActionsWithoutApproval = []actions.Name{actions.GetAction, actions.UnrestrictCodeExecution}
	})
	msg, id := requestSucceeded(t, w, p, "restrict "+machine1DN+" ransomware staging")

	btn := w.undoButton(t, msg.TS)
	assert.Contains(t, string(btn.Blocks), "Remove restriction")
	code, _ := p.openUndo(t, alice, id, btn.TS, 1)("contained elsewhere")
	require.Equal(t, http.StatusOK, code)
	require.Eventually(t, func() bool { return len(w.defenderWrites()) == 2 }, 10*time.Second, 5*time.Millisecond)
	assert.Equal(t, "POST /api/machines/"+machine1+"/unrestrictCodeExecution", w.defenderWrites()[1])
	w.advance(3 * time.Minute)
	require.Eventually(t, func() bool {
		m, _ := w.slack.Message(channel, msg.TS)
		return strings.Contains(string(m.Blocks), "Undone")
	}, 10*time.Second, 5*time.Millisecond)
}

// TestConcurrentUndoSubmitsCreateOneInverse: the undo form submitted several
// times at once for one original (a double click, two analysts, on two
// replicas) creates exactly one inverse request; every other submitter is
// told which request already undoes it.
func TestConcurrentUndoSubmitsCreateOneInverse(t *testing.T) {
	for _, driver := range backends {
		t.Run(driver, func(t *testing.T) {
			w := newWorldOn(t, driver)
			p1 := w.start(t)
			msg, id := requestPending(t, w, p1)
			p1.click(bob, "approve", id, msg.TS)
			p1.waitState(id, approval.StateRunning)
			w.advance(3 * time.Minute)
			p1.waitState(id, approval.StateSucceeded)
			btn := w.undoButton(t, msg.TS)
			p2 := w.start(t) // the second replica, where the other forms are submitted

			// Carol's form on p1 (submitted twice: a double click) and Bob's
			// on p2, three times each, all at once.
			submits := []func(string) (int, string){p1.openUndo(t, carol, id, btn.TS, 1), p2.openUndo(t, bob, id, btn.TS, 2)}
			const each = 3
			var wg sync.WaitGroup
			start := make(chan struct{})
			codes := make([]int, len(submits)*each)
			for i := range codes {
				wg.Go(func() {
					<-start
					// Distinct comments: identical bodies signed in the same
					// second are one delivery to the replay check.
					codes[i], _ = submits[i%len(submits)](fmt.Sprintf("false positive (%d)", i))
				})
			}
			close(start)
			wg.Wait()
			for _, c := range codes {
				require.Equal(t, http.StatusOK, c)
			}
			p1.bot.Wait()
			p2.bot.Wait()

			rs, err := p1.store.ListRequests(context.Background(), approval.RequestFilter{})
			require.NoError(t, err)
			var inverses []string
			for _, r := range rs {
				if r.Action == actions.Deisolate {
					inverses = append(inverses, r.ID)
				}
			}
			require.Len(t, inverses, 1, "one inverse request")
			_, undoID := w.approvalMessage(t, 2)
			assert.Equal(t, inverses[0], undoID)
			cards := 0
			for _, c := range w.slack.CallsTo(slackfake.MethodPostMessage) {
				if c.Channel == channel && c.ThreadTS == "" && c.Error == "" {
					cards++
				}
			}
			assert.Equal(t, 2, cards, "one approval card for the undo")
			already := 0
			for _, c := range w.slack.CallsTo(slackfake.MethodPostEphemeral) {
				if strings.Contains(c.Text, "already requested") && strings.Contains(c.Text, undoID) {
					already++
				}
			}
			assert.Equal(t, len(codes)-1, already, "every other submitter is told which request undoes it:\n%s", dumpCalls(w.slack.Calls()))
		})
	}
}

// assertUndoLinked: the audit links undoID to id both ways.
func assertUndoLinked(t *testing.T, p *proc, id, undoID string) {
	t.Helper()
	evs, err := p.store.ListAudit(context.Background(), time.Time{})
	require.NoError(t, err)
	var linked, requested bool
	for _, e := range evs {
		if e.RequestID == undoID && e.Kind == "undo" && e.Details["undo_of"] == id {
			linked = true
		}
		if e.RequestID == id && e.Kind == "undo_requested" && e.Details["undo_request"] == undoID {
			requested = true
		}
	}
	assert.True(t, linked, "the undo request names the original")
	assert.True(t, requested, "the original names its undo")
}
