package e2e_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/defenderbot/defenderbot/approval"
	"github.com/defenderbot/defenderbot/defender/defendertest"
	"github.com/defenderbot/defenderbot/internal/slackfake"
)

const isolateText = "isolate " + machine1DN + " full suspicious beacon"

// requestPending makes Alice request an isolation and returns the approval
// message and request ID.
func requestPending(t *testing.T, w *world, p *proc) (slackfake.Call, string) {
	t.Helper()
	code, body := p.command(alice, isolateText)
	require.Equal(t, http.StatusOK, code, body)
	msg, id := w.approvalMessage(t, 1)
	// The requester's "waiting for approval" reply comes after the message's
	// ts is stored: only then is the request fully set up for clicks.
	w.responseTo(t, alice, 1)
	return msg, id
}

func TestSelfApprovalRefused(t *testing.T) {
	w := newWorld(t)
	p := w.start(t)
	msg, id := requestPending(t, w, p)

	code, _ := p.click(alice, "approve", id, msg.TS)
	require.Equal(t, http.StatusOK, code)

	e := w.ephemeralTo(t, alice, 1)
	assert.Contains(t, e.Text, "cannot approve your own request")
	assert.Equal(t, channel, e.Channel)
	r, err := p.store.GetRequest(context.Background(), id)
	require.NoError(t, err)
	assert.Equal(t, approval.StatePending, r.State)
	assert.Empty(t, r.Approvals)
	assert.Empty(t, w.defenderWrites())
	assert.Contains(t, p.auditKinds(id), "refused")
}

func TestNonApproverRefused(t *testing.T) {
	w := newWorld(t)
	p := w.start(t)
	msg, id := requestPending(t, w, p)

	for _, action := range []string{"approve", "reject"} {
		code, _ := p.click(mallory, action, id, msg.TS)
		require.Equal(t, http.StatusOK, code)
	}
	e := w.ephemeralTo(t, mallory, 1)
	assert.Contains(t, e.Text, "not an approver")
	w.ephemeralTo(t, mallory, 2)

	r, err := p.store.GetRequest(context.Background(), id)
	require.NoError(t, err)
	assert.Equal(t, approval.StatePending, r.State)
	assert.Empty(t, w.defenderWrites())
	assert.Empty(t, w.slack.CallsTo(slackfake.MethodViewsOpen), "no reject form for a non-approver")
}

func TestRejectionWithReason(t *testing.T) {
	w := newWorld(t)
	p := w.start(t)
	msg, id := requestPending(t, w, p)

	code, _ := p.click(bob, "reject", id, msg.TS)
	require.Equal(t, http.StatusOK, code)
	open := w.waitCall(t, 1, func(c slackfake.Call) bool { return c.Method == slackfake.MethodViewsOpen })
	assert.Equal(t, "trigger-reject-"+bob, open.TriggerID)
	var view slack.View
	require.NoError(t, jsonUnmarshal(open.View, &view))

	// An empty reason is refused inside the modal.
	submit := func(reason string) (int, string) { return p.submitText(bob, view, "reason", reason) }
	code, body := submit("  ")
	require.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, `"response_action":"errors"`)
	assert.Contains(t, body, `"reason"`)

	code, body = submit("not enough evidence")
	require.Equal(t, http.StatusOK, code)
	assert.Empty(t, body, "a valid submission closes the modal")

	r := p.waitState(id, approval.StateRejected)
	assert.Equal(t, bob, r.RejectedBy)
	assert.Equal(t, "not enough evidence", r.RejectReason)
	assert.Empty(t, w.defenderWrites())
	require.Eventually(t, func() bool {
		m, _ := w.slack.Message(channel, msg.TS)
		return strings.Contains(m.Text, "rejected")
	}, 5*time.Second, 5*time.Millisecond, "the approval message shows the rejection")
	m, _ := w.slack.Message(channel, msg.TS)
	assert.NotContains(t, string(m.Blocks), `"action_id":"approve"`)

	// A late Approve click changes nothing.
	p.click(carol, "approve", id, msg.TS)
	w.ephemeralTo(t, carol, 1)
	assert.Empty(t, w.defenderWrites())
	assert.Equal(t, approval.StateRejected, p.waitState(id, approval.StateRejected).State)
}

func TestExpiredRequestCannotBeApproved(t *testing.T) {
	w := newWorld(t)
	p := w.start(t)
	msg, id := requestPending(t, w, p)

	w.clock.Advance(time.Hour + time.Minute)
	code, _ := p.click(bob, "approve", id, msg.TS)
	require.Equal(t, http.StatusOK, code)

	e := w.ephemeralTo(t, bob, 1)
	assert.Contains(t, e.Text, "expired")
	p.waitState(id, approval.StateExpired)
	assert.Empty(t, w.defenderWrites())
	require.Eventually(t, func() bool {
		m, _ := w.slack.Message(channel, msg.TS)
		return strings.Contains(m.Text, "expired")
	}, 5*time.Second, 5*time.Millisecond)
}

// TestConcurrentApproveClicksCallDefenderOnce: 50 approvers click Approve at
// the same moment; exactly one vote completes the approval and Defender is
// called exactly once.
func TestConcurrentApproveClicksCallDefenderOnce(t *testing.T) {
	many := numberedApprovers(50)
	w := newWorld(t)
	p := w.start(t, approvers(append(many, alice)...))
	msg, id := requestPending(t, w, p)

	for i, c := range approveTogether(t, []*proc{p}, many, id, msg.TS) {
		assert.Equal(t, http.StatusOK, c, "click %d", i)
	}

	r := p.waitState(id, approval.StateRunning)
	require.Len(t, r.Approvals, 1)
	// Everyone else is told the request was already decided.
	w.waitCall(t, len(many)-1, func(c slackfake.Call) bool { return c.Method == slackfake.MethodPostEphemeral })
	assert.Equal(t, []string{"POST /api/machines/" + machine1 + "/isolate"}, w.defenderWrites())
	assert.Len(t, w.emu.MachineActions(), 1)
}

// TestRestartKeepsPendingRequest: a request made before a restart is
// approved after it, by a new process on the same database.
func TestRestartKeepsPendingRequest(t *testing.T) {
	w := newWorld(t)
	p1 := w.start(t)
	msg, id := requestPending(t, w, p1)
	p1.stop()

	p2 := w.start(t)
	code, _ := p2.click(bob, "approve", id, msg.TS)
	require.Equal(t, http.StatusOK, code)
	p2.waitState(id, approval.StateRunning)
	w.advance(3 * time.Minute)
	p2.waitState(id, approval.StateSucceeded)
	assert.Equal(t, []string{"POST /api/machines/" + machine1 + "/isolate"}, w.defenderWrites())
	assert.Eventually(t, func() bool {
		m, _ := w.slack.Message(channel, msg.TS)
		return strings.Contains(m.Text, "succeeded")
	}, 5*time.Second, 5*time.Millisecond, "the new process updates the message the old one posted")
}

// TestRestartResumesFollowUp: a machine action accepted before a restart is
// followed to its end by the next process.
func TestRestartResumesFollowUp(t *testing.T) {
	w := newWorld(t)
	p1 := w.start(t)
	msg, id := requestPending(t, w, p1)
	p1.click(bob, "approve", id, msg.TS)
	p1.waitState(id, approval.StateRunning)
	p1.stop()

	w.advance(3 * time.Minute)
	p2 := w.start(t)
	p2.waitState(id, approval.StateSucceeded)
	assert.Equal(t, []string{"POST /api/machines/" + machine1 + "/isolate"}, w.defenderWrites(), "resuming never calls Defender again")
}

// TestForgedAndStaleSignaturesHaveNoEffect sends a valid-looking command and
// click that fail verification: 401, and nothing happens anywhere.
func TestForgedAndStaleSignaturesHaveNoEffect(t *testing.T) {
	w := newWorld(t)
	p := w.start(t)
	click, err := slackfake.InteractionForm(slackfake.BlockAction(bob, "approve", "x", channel, "1.1", ""))
	require.NoError(t, err)
	cases := []struct {
		name string
		key  string
		at   time.Time
		path string
		form url.Values
	}{
		{"forged command", "attacker-guess", time.Now(), "/slack/commands", commandForm(w, alice, isolateText)},
		{"stale command", secret, time.Now().Add(-6 * time.Minute), "/slack/commands", commandForm(w, alice, isolateText)},
		{"future command", secret, time.Now().Add(6 * time.Minute), "/slack/commands", commandForm(w, alice, isolateText)},
		{"forged click", "attacker-guess", time.Now(), "/slack/interactions", click},
		{"stale click", secret, time.Now().Add(-10 * time.Minute), "/slack/interactions", click},
	}
	for _, tc := range cases {
		code, _ := p.post(tc.path, tc.key, tc.at, tc.form)
		assert.Equal(t, http.StatusUnauthorized, code, tc.name)
	}
	p.bot.Wait()
	assert.Empty(t, w.slack.Calls(), "no Slack call")
	assert.Empty(t, w.defenderWrites(), "no Defender call")
	rs, err := p.store.ListRequests(context.Background(), approval.RequestFilter{})
	require.NoError(t, err)
	assert.Empty(t, rs, "no request stored")
	evs, err := p.store.ListAudit(context.Background(), time.Time{})
	require.NoError(t, err)
	assert.Empty(t, evs, "nothing audited")
}

// TestReplayHasNoSecondEffect replays a captured command and a captured
// Approve click byte for byte.
func TestReplayHasNoSecondEffect(t *testing.T) {
	w := newWorld(t)
	p := w.start(t)
	now := time.Now()
	form := commandForm(w, alice, isolateText)
	for range 3 {
		code, _ := p.post("/slack/commands", secret, now, form)
		require.Equal(t, http.StatusOK, code)
	}
	msg, id := w.approvalMessage(t, 1)
	p.bot.Wait()
	rs, err := p.store.ListRequests(context.Background(), approval.RequestFilter{})
	require.NoError(t, err)
	assert.Len(t, rs, 1, "one request for three deliveries")

	click, err := slackfake.InteractionForm(slackfake.BlockAction(bob, "approve", id, channel, msg.TS, ""))
	require.NoError(t, err)
	at := time.Now()
	for range 3 {
		code, body := p.post("/slack/interactions", secret, at, click)
		require.Equal(t, http.StatusOK, code)
		assert.Empty(t, body)
	}
	p.waitState(id, approval.StateRunning)
	assert.Equal(t, []string{"POST /api/machines/" + machine1 + "/isolate"}, w.defenderWrites())
	assert.Empty(t, w.slack.CallsTo(slackfake.MethodPostEphemeral), "replays are not even refused: they are ignored")
}

// TestDefenderErrorsReachTheRequester: Defender refusing the approved call
// fails the request with a plain explanation, in Slack and in the store.
func TestDefenderErrorsReachTheRequester(t *testing.T) {
	t.Run("404 unknown machine action", func(t *testing.T) {
		w := newWorld(t)
		p := w.start(t)
		p.command(alice, "cancel 00000000-0000-0000-0000-000000000404 stop it")
		msg, id := w.approvalMessage(t, 1)
		p.click(bob, "approve", id, msg.TS)
		r := p.waitState(id, approval.StateFailed)
		assert.NotEmpty(t, r.Error)
		dm := w.dmTo(t, alice, 1)
		assert.Contains(t, dm.Text, "failed")
		assert.Equal(t, []string{"POST /api/machineactions/00000000-0000-0000-0000-000000000404/cancel"}, w.defenderWrites())
	})
	t.Run("400 ActiveRequestAlreadyExists", func(t *testing.T) {
		w := newWorld(t)
		p := w.start(t)
		msg, id := requestPending(t, w, p)
		p.click(bob, "approve", id, msg.TS)
		p.waitState(id, approval.StateRunning)

		p.command(alice, isolateText+" again")
		msg2, id2 := w.approvalMessage(t, 2)
		p.click(carol, "approve", id2, msg2.TS)
		r := p.waitState(id2, approval.StateFailed)
		assert.Contains(t, strings.ToLower(r.Error), "already")
		assert.Len(t, w.emu.MachineActions(), 1, "Defender kept one isolation")
		assert.Len(t, w.defenderWrites(), 2)
	})
	t.Run("403 missing role", func(t *testing.T) {
		w := newWorld(t, defendertest.WithRoles(defendertest.RoleMachineReadAll, defendertest.RoleAlertReadAll))
		p := w.start(t)
		msg, id := requestPending(t, w, p)
		p.click(bob, "approve", id, msg.TS)
		r := p.waitState(id, approval.StateFailed)
		assert.NotEmpty(t, r.Error)
		assert.NotContains(t, r.Error, defendertest.ClientSecret)
		assert.Empty(t, w.emu.MachineActions())
		dm := w.dmTo(t, alice, 1)
		assert.Contains(t, dm.Text, "failed")
	})
}

func TestReadinessThroughHTTP(t *testing.T) {
	w := newWorld(t)
	p := w.start(t)
	get := func() (int, string) {
		resp, err := p.srv.Client().Get(p.srv.URL + "/readyz")
		require.NoError(t, err)
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	code, body := get()
	assert.Equal(t, http.StatusOK, code, body)
	assert.Contains(t, body, `"defender_token":"ok"`, "a real token was obtained from the emulated Azure AD")

	require.NoError(t, p.store.Close())
	code, body = get()
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Contains(t, body, `"failed":["store"]`)
}

// TestSlackRateLimitIsRetried: Slack answering 429 to the approval post is
// waited out (Retry-After) and the post goes through.
func TestSlackRateLimitIsRetried(t *testing.T) {
	w := newWorld(t)
	p := w.start(t)
	w.slack.RateLimit(slackfake.MethodPostMessage, 1, time.Second)
	code, _ := p.command(alice, isolateText)
	require.Equal(t, http.StatusOK, code)

	_, id := w.approvalMessage(t, 1)
	posts := w.slack.CallsTo(slackfake.MethodPostMessage)
	require.GreaterOrEqual(t, len(posts), 2)
	assert.Equal(t, http.StatusTooManyRequests, posts[0].Status)
	assert.Equal(t, http.StatusOK, posts[1].Status)
	r, err := p.store.GetRequest(context.Background(), id)
	require.NoError(t, err)
	assert.Equal(t, approval.StatePending, r.State)
}

// TestApprovalChannelUnreachableWithdrawsRequest: a request nobody can see
// cannot be approved, so it is withdrawn and the requester told.
func TestApprovalChannelUnreachableWithdrawsRequest(t *testing.T) {
	w := newWorld(t)
	p := w.start(t)
	w.slack.FailWith(slackfake.MethodPostMessage, 1, "not_in_channel")
	code, _ := p.command(alice, isolateText)
	require.Equal(t, http.StatusOK, code)

	reply := w.responseTo(t, alice, 1)
	assert.Contains(t, reply.Text, "Could not post the approval request")
	p.bot.Wait()
	rs, err := p.store.ListRequests(context.Background(), approval.RequestFilter{})
	require.NoError(t, err)
	require.Len(t, rs, 1)
	assert.Equal(t, approval.StateRejected, rs[0].State)
	assert.Empty(t, w.defenderWrites())
}
