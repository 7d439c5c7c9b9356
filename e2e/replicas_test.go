package e2e_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/defenderbot/defenderbot/approval"
	"github.com/defenderbot/defenderbot/internal/slackfake"
)

// Two replicas are two full stacks (gin + bot + their own Defender client
// and store connection) behind one load balancer, sharing one database, one
// Defender tenant and one Slack workspace. These tests run on each backend.

// sendAll delivers one already-signed form to every target at the same
// moment, as a Slack retry racing a load-balancer duplicate does.
func sendAll(t *testing.T, targets []string, ts time.Time, form url.Values) []int {
	t.Helper()
	reqs := make([]*http.Request, len(targets))
	for i, target := range targets {
		req, err := slackfake.SignedRequest(context.Background(), target, secret, ts, form)
		require.NoError(t, err)
		reqs[i] = req
	}
	return sendTogether(t, reqs)
}

func twoReplicas(t *testing.T, driver string, opts ...procOption) (*world, *proc, *proc) {
	w := newWorldOn(t, driver)
	return w, w.start(t, opts...), w.start(t, opts...)
}

func TestReplicasHandleDuplicateDeliveryOnce(t *testing.T) {
	for _, driver := range backends {
		t.Run(driver, func(t *testing.T) {
			w, a, b := twoReplicas(t, driver)
			form := commandForm(w, alice, isolateText)
			at := time.Now()
			// Both replicas get the same signed bytes several times over.
			var targets []string
			for range 4 {
				targets = append(targets, a.srv.URL+"/slack/commands", b.srv.URL+"/slack/commands")
			}
			for i, code := range sendAll(t, targets, at, form) {
				assert.Equal(t, http.StatusOK, code, "delivery %d", i)
			}
			_, id := w.approvalMessage(t, 1)
			a.bot.Wait()
			b.bot.Wait()

			rs, err := a.store.ListRequests(context.Background(), approval.RequestFilter{})
			require.NoError(t, err)
			require.Len(t, rs, 1, "one stored request for 8 deliveries over 2 replicas")
			assert.Equal(t, id, rs[0].ID)
			var approvalPosts int
			for _, c := range w.slack.CallsTo(slackfake.MethodPostMessage) {
				if c.Channel == channel && c.ThreadTS == "" {
					approvalPosts++
				}
			}
			assert.Equal(t, 1, approvalPosts, "one approval message:\n%s", dumpCalls(w.slack.Calls()))
			assert.Len(t, w.slack.CallsTo(slackfake.MethodResponseURL), 1, "one reply to the requester")
			assert.Empty(t, w.defenderWrites())

			// The same holds for a click: both replicas get it, one vote counts.
			msg, _ := w.slack.Message(channel, rs[0].ApprovalTS)
			click, err := slackfake.InteractionForm(slackfake.BlockAction(bob, "approve", id, channel, msg.TS, ""))
			require.NoError(t, err)
			for i, code := range sendAll(t, []string{a.srv.URL + "/slack/interactions", b.srv.URL + "/slack/interactions"}, time.Now(), click) {
				assert.Equal(t, http.StatusOK, code, "click delivery %d", i)
			}
			r := a.waitState(id, approval.StateRunning)
			assert.Len(t, r.Approvals, 1)
			// Let the follow-up finish so that waiting for the bots is quick.
			w.advance(3 * time.Minute)
			b.waitState(id, approval.StateSucceeded)
			a.bot.Wait()
			b.bot.Wait()
			assert.Empty(t, w.slack.CallsTo(slackfake.MethodPostEphemeral), "a duplicate is ignored, not refused")
			assert.Len(t, w.defenderWrites(), 1)
		})
	}
}

func TestReplicasRequestOnOneApproveOnOther(t *testing.T) {
	for _, driver := range backends {
		t.Run(driver, func(t *testing.T) {
			w, a, b := twoReplicas(t, driver)
			msg, id := requestPending(t, w, a)

			code, _ := b.click(bob, "approve", id, msg.TS)
			require.Equal(t, http.StatusOK, code)
			b.waitState(id, approval.StateRunning)
			w.advance(3 * time.Minute)
			r := a.waitState(id, approval.StateSucceeded)
			assert.Equal(t, []string{bob}, approverIDs(r))
			a.bot.Wait()
			b.bot.Wait()
			assert.Equal(t, []string{"POST /api/machines/" + machine1 + "/isolate"}, w.defenderWrites())
			assert.Len(t, w.emu.MachineActions(), 1)
			require.Eventually(t, func() bool {
				m, _ := w.slack.Message(channel, msg.TS)
				return strings.Contains(m.Text, "succeeded")
			}, 10*time.Second, 5*time.Millisecond, "replica B updates the message replica A posted")
		})
	}
}

func TestReplicasFiftyApproveClicksOneDefenderCall(t *testing.T) {
	for _, driver := range backends {
		t.Run(driver, func(t *testing.T) {
			many := numberedApprovers(50)
			w, a, b := twoReplicas(t, driver, approvers(append(many, alice)...))
			msg, id := requestPending(t, w, a)

			for i, c := range approveTogether(t, []*proc{a, b}, many, id, msg.TS) {
				assert.Equal(t, http.StatusOK, c, "click %d", i)
			}

			r := a.waitState(id, approval.StateRunning)
			require.Len(t, r.Approvals, 1)
			// Everyone else is told the request was already decided.
			w.waitCall(t, len(many)-1, func(c slackfake.Call) bool { return c.Method == slackfake.MethodPostEphemeral })
			assert.Equal(t, []string{"POST /api/machines/" + machine1 + "/isolate"}, w.defenderWrites())
			assert.Len(t, w.emu.MachineActions(), 1)

			// The follow-up ends the request once, on whichever replica polls.
			w.advance(3 * time.Minute)
			b.waitState(id, approval.StateSucceeded)
			a.bot.Wait()
			b.bot.Wait()
			assert.Len(t, w.slack.CallsTo(slackfake.MethodPostEphemeral), len(many)-1, "no late refusal or duplicate")
			assert.Len(t, w.defenderWrites(), 1, "following up never calls Defender again")
		})
	}
}

func approverIDs(r *approval.Request) []string {
	var out []string
	for _, a := range r.Approvals {
		out = append(out, a.UserID)
	}
	return out
}
