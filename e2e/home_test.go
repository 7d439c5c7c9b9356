package e2e_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/defenderbot/defenderbot/approval"
	"github.com/defenderbot/defenderbot/internal/slackfake"
)

// openHome posts user's signed app_home_opened event to p and waits for
// the nth Home tab published for them.
func (p *proc) openHome(t *testing.T, user, eventID string, n int) string {
	t.Helper()
	req, err := slackfake.SignedJSONRequest(context.Background(), p.srv.URL+"/slack/events", secret, time.Now(), slackfake.AppHomeOpened(eventID, user))
	require.NoError(t, err)
	code, body := p.do(req)
	require.Equal(t, http.StatusOK, code, body)
	c := p.w.waitCall(t, n, func(c slackfake.Call) bool {
		return c.Method == slackfake.MethodViewsPublish && c.User == user && c.Error == ""
	})
	return string(c.View)
}

// TestHomeTabApprovalRacesChannelApproval: Bob approves on his Home tab
// while Carol approves in the channel, on two replicas: exactly one
// decision counts and Defender is called once.
func TestHomeTabApprovalRacesChannelApproval(t *testing.T) {
	for _, driver := range backends {
		t.Run(driver, func(t *testing.T) {
			w, a, b := twoReplicas(t, driver)
			msg, id := requestPending(t, w, a)

			home := b.openHome(t, bob, "Ev-home-1", 1)
			require.Contains(t, home, `"action_id":"approve","value":"`+id+`"`, "Bob's Home tab offers the decision")

			homeClick, err := slackfake.InteractionForm(slackfake.BlockActionFromHome(bob, "approve", id))
			require.NoError(t, err)
			channelClick, err := slackfake.InteractionForm(slackfake.BlockAction(carol, "approve", id, channel, msg.TS, ""))
			require.NoError(t, err)
			r1, err := signedRequest(context.Background(), b.srv.URL+"/slack/interactions", homeClick)
			require.NoError(t, err)
			r2, err := signedRequest(context.Background(), a.srv.URL+"/slack/interactions", channelClick)
			require.NoError(t, err)
			for i, code := range sendTogether(t, []*http.Request{r1, r2}) {
				assert.Equal(t, http.StatusOK, code, "click %d", i)
			}

			r := a.waitState(id, approval.StateRunning)
			require.Len(t, r.Approvals, 1, "exactly one decision")
			winner := r.Approvals[0].UserID
			loser := map[string]string{bob: carol, carol: bob}[winner]
			// The other click is refused, told to its clicker where they clicked.
			var told slackfake.Call
			if loser == bob {
				told = w.dmTo(t, bob, 1)
			} else {
				told = w.ephemeralTo(t, carol, 1)
			}
			assert.Contains(t, told.Text, "already")
			w.advance(3 * time.Minute)
			a.waitState(id, approval.StateSucceeded)
			a.bot.Wait()
			b.bot.Wait()
			assert.Len(t, w.defenderWrites(), 1, "Defender is called once")
			assert.Equal(t, 1, strings.Count(strings.Join(a.auditKinds(id), ","), "approve"), "one approval in the audit trail")

			// Bob's Home tab no longer offers it; it shows among the results.
			home = a.openHome(t, bob, "Ev-home-2", countPublishes(w, bob)+1)
			assert.Contains(t, home, "Waiting for your approval* (0)")
			assert.NotContains(t, home, `"action_id":"approve","value":"`+id+`"`)
			assert.Contains(t, home, `"action_id":"undo","value":"`+id+`"`, "Release, the isolation's undo")
			assert.Contains(t, home, "Isolated by defenderbot* (1)")
		})
	}
}

func countPublishes(w *world, user string) int {
	n := 0
	for _, c := range w.slack.CallsTo(slackfake.MethodViewsPublish) {
		if c.User == user {
			n++
		}
	}
	return n
}
