package e2e_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/defenderbot/defenderbot/approval"
	"github.com/defenderbot/defenderbot/internal/slackfake"
)

// isCard matches a post of an approval card (not a thread reply).
func isCard(c slackfake.Call) bool {
	return c.Method == slackfake.MethodPostMessage && c.Channel == channel && c.ThreadTS == ""
}

// TestClickBeforeTheCardsTSIsStored: Slack shows the approval card, and Bob
// approves it, before chat.postMessage has answered the replica that posted
// it (so before its ts is in the store). The click carries the message
// (container.channel_id / message_ts): the card is updated all the same,
// on whichever replica the click arrives, and so is its thread.
func TestClickBeforeTheCardsTSIsStored(t *testing.T) {
	for _, driver := range backends {
		t.Run(driver, func(t *testing.T) {
			w, a, b := twoReplicas(t, driver)
			release := w.slack.HoldPosts(isCard)
			t.Cleanup(release) // before the Slack stand-in closes (cleanups run last first)

			code, body := a.command(alice, isolateText)
			require.Equal(t, http.StatusOK, code, body)
			msg, id := w.approvalMessage(t, 1)
			r, err := b.store.GetRequest(t.Context(), id)
			require.NoError(t, err)
			require.Empty(t, r.ApprovalTS, "the card's ts is not stored yet")

			code, _ = b.click(bob, "approve", id, msg.TS)
			require.Equal(t, http.StatusOK, code)
			b.waitState(id, approval.StateRunning)
			require.Eventually(t, func() bool {
				m, _ := w.slack.Message(channel, msg.TS)
				return m.Updates > 0 && strings.Contains(string(m.Blocks), "Approved") && !strings.Contains(string(m.Blocks), `"action_id":"approve"`)
			}, 10*time.Second, 5*time.Millisecond, "the card shows the approval, without its buttons:\n%s", dumpCalls(w.slack.Calls()))
			w.waitCall(t, 1, func(c slackfake.Call) bool {
				return c.Method == slackfake.MethodPostMessage && c.ThreadTS == msg.TS && strings.Contains(c.Text, "Pending")
			})

			release()
			w.responseTo(t, alice, 1)
			w.advance(3 * time.Minute)
			r = a.waitState(id, approval.StateSucceeded)
			assert.Equal(t, msg.TS, r.ApprovalTS)
			assert.Equal(t, channel, r.ApprovalChannel)
			require.Eventually(t, func() bool {
				m, _ := w.slack.Message(channel, msg.TS)
				return strings.Contains(string(m.Blocks), "succeeded")
			}, 10*time.Second, 5*time.Millisecond)
			assert.Len(t, w.defenderWrites(), 1)
		})
	}
}

// TestRejectBeforeTheCardsTSIsStored: the same race for Reject, whose form
// carries the message it was opened from.
func TestRejectBeforeTheCardsTSIsStored(t *testing.T) {
	w := newWorld(t)
	p := w.start(t)
	release := w.slack.HoldPosts(isCard)
	t.Cleanup(release)
	code, body := p.command(alice, isolateText)
	require.Equal(t, http.StatusOK, code, body)
	msg, id := w.approvalMessage(t, 1)

	code, _ = p.click(bob, "reject", id, msg.TS)
	require.Equal(t, http.StatusOK, code)
	code, body = p.submitReject(t, bob, 1, "not this machine")
	require.Equal(t, http.StatusOK, code, body)
	p.waitState(id, approval.StateRejected)
	require.Eventually(t, func() bool {
		m, _ := w.slack.Message(channel, msg.TS)
		return strings.Contains(string(m.Blocks), "Rejected") && !strings.Contains(string(m.Blocks), `"action_id":"approve"`)
	}, 10*time.Second, 5*time.Millisecond, "the card shows the rejection:\n%s", dumpCalls(w.slack.Calls()))
	release()
}

// submitReject submits, as user, the nth reject form opened, with reason.
func (p *proc) submitReject(t *testing.T, user string, nthForm int, reason string) (int, string) {
	t.Helper()
	return p.submitText(user, p.w.openedForm(t, nthForm), "reason", reason)
}
