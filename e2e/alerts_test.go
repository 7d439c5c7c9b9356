package e2e_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/defenderbot/defenderbot/alerts"
	"github.com/defenderbot/defenderbot/approval"
	"github.com/defenderbot/defenderbot/bot"
	"github.com/defenderbot/defenderbot/config"
	"github.com/defenderbot/defenderbot/defender"
	"github.com/defenderbot/defenderbot/defender/defendertest"
	"github.com/defenderbot/defenderbot/graph"
	"github.com/defenderbot/defenderbot/internal/slackfake"
)

const alertsChannel = "C0ALERTS"

// graphClient is a Graph alerts client on the world's emulator, with MSAL
// tokens for Graph from the same app registration.
func (w *world) graphClient(t testing.TB) *graph.Client {
	t.Helper()
	tokens, err := defender.NewTokenProvider(defender.Config{AuthorityHost: w.emu.URL, TenantID: defendertest.TenantID,
		ClientID: defendertest.ClientID, ClientSecret: defendertest.ClientSecret, Scope: graph.Scope(w.emu.URL)},
		defender.WithHTTPClient(w.emu.HTTPClient()))
	require.NoError(t, err)
	gcfg := config.Default().Defender.GraphClient()
	gcfg.BaseURL, gcfg.MaxRetries = w.emu.URL, 1
	c, err := graph.New(gcfg, tokens, graph.WithHTTPClient(w.emu.HTTPClient()))
	require.NoError(t, err)
	return c
}

// alertPoller is the alert feed of process p, as serve wires it.
func (p *proc) alertPoller(t testing.TB, owner string) *alerts.Poller {
	t.Helper()
	poster, err := bot.NewAlertPoster(p.w.slack.Client(), bot.AlertCardOptions{}, bot.SlackRetryFrom())
	require.NoError(t, err)
	pl, err := alerts.New(alerts.Config{Channel: alertsChannel, MinSeverity: "medium", PollInterval: time.Minute,
		Backfill: time.Hour, Overlap: config.AlertsOverlap, Owner: owner, Now: p.w.emu.Now},
		p.w.graphClient(t), p.store, poster)
	require.NoError(t, err)
	return pl
}

func TestAlertFeedPostsOnceAcrossReplicasAndRestarts(t *testing.T) {
	for _, driver := range backends {
		t.Run(driver, func(t *testing.T) {
			w := newWorldOn(t, driver)
			p1, p2 := w.start(t), w.start(t)
			a1, a2 := p1.alertPoller(t, "replica-1"), p2.alertPoller(t, "replica-2")
			high := w.emu.NewDeviceAlert(machine1, "Ransomware behavior detected", "high")
			low := w.emu.NewDeviceAlert(machine1, "Unwanted software", "low")

			pollBoth := func() {
				t.Helper()
				var wg sync.WaitGroup
				for _, a := range []*alerts.Poller{a1, a2} {
					wg.Go(func() {
						_, err := a.PollOnce(context.Background())
						assert.NoError(t, err)
					})
				}
				wg.Wait()
			}
			pollBoth()
			w.advance(time.Minute)
			pollBoth()
			msgs := w.slack.Messages(alertsChannel)
			require.Len(t, msgs, 1, "the high alert, once")
			card := string(msgs[0].Blocks)
			assert.Contains(t, card, high.ID)
			assert.Contains(t, card, machine1)
			assert.Contains(t, card, machine1DN)
			assert.NotContains(t, card, low.ID)

			// A change in Graph updates the card in place.
			status, cls := "resolved", "falsePositive"
			_, err := w.graphClient(t).UpdateAlert(t.Context(), high.ID, graph.AlertUpdate{Status: &status, Classification: &cls})
			require.NoError(t, err)
			w.advance(time.Minute)
			pollBoth()
			msgs = w.slack.Messages(alertsChannel)
			require.Len(t, msgs, 1)
			assert.Equal(t, 1, msgs[0].Updates)
			assert.Contains(t, string(msgs[0].Blocks), "*Resolved*")
			assert.Contains(t, string(msgs[0].Blocks), "False Positive")

			// Restart both replicas: nothing is posted twice.
			p1.stop()
			p2.stop()
			p3 := w.start(t)
			w.advance(5 * time.Minute) // past the old leader's lease
			res, err := p3.alertPoller(t, "replica-3").PollOnce(t.Context())
			require.NoError(t, err)
			assert.True(t, res.Leader)
			assert.Len(t, w.slack.Messages(alertsChannel), 1)
			for _, c := range w.slack.CallsTo("chat.postMessage") {
				if c.Channel == alertsChannel {
					assert.False(t, strings.Contains(c.Text, "Unwanted"), "the low alert is never posted")
				}
			}
		})
	}
}

// clickCard clicks a button of an alert card, signed like Slack does.
func (p *proc) clickCard(user, actionID, alertID, cardTS string) {
	p.t.Helper()
	ic := slackfake.BlockAction(user, actionID, alertID, alertsChannel, cardTS, p.w.slack.ResponseURL("card-"+user))
	ic.User.Name = strings.ToLower(strings.TrimPrefix(user, "U0"))
	form, err := slackfake.InteractionForm(ic)
	require.NoError(p.t, err)
	code, body := p.post("/slack/interactions", secret, time.Now(), form)
	require.Equal(p.t, http.StatusOK, code, body)
}

// postCard polls once and returns the alert's card.
func postCard(t *testing.T, w *world, p *proc, alertID string) slackfake.Message {
	t.Helper()
	_, err := p.alertPoller(t, "replica-1").PollOnce(t.Context())
	require.NoError(t, err)
	for _, m := range w.slack.Messages(alertsChannel) {
		if strings.Contains(string(m.Blocks), alertID) {
			return m
		}
	}
	t.Fatalf("no card for alert %s", alertID)
	return slackfake.Message{}
}

func TestAlertCardIsolateGoesThroughApproval(t *testing.T) {
	w := newWorld(t)
	w.graphAlerts = true
	p := w.start(t)
	al := w.emu.NewDeviceAlert(machine1, "Ransomware behavior detected", "high")
	card := postCard(t, w, p, al.ID)

	p.clickCard(alice, "alert_isolate", al.ID, card.TS)
	msg, id := w.approvalMessage(t, 1)
	assert.Contains(t, string(msg.Blocks), al.ID, "the approval card names the alert")
	assert.Contains(t, string(msg.Blocks), machine1)
	assert.Empty(t, w.defenderWrites(), "nothing runs before approval")

	code, _ := p.click(bob, "approve", id, msg.TS)
	require.Equal(t, http.StatusOK, code)
	p.waitState(id, approval.StateRunning)
	w.advance(3 * time.Minute)
	r := p.waitState(id, approval.StateSucceeded)

	var isolations []defendertest.MachineAction
	for _, ma := range w.emu.MachineActions() {
		if ma.Type == "Isolate" {
			isolations = append(isolations, ma)
		}
	}
	require.Len(t, isolations, 1, "one isolate call")
	assert.Equal(t, machine1, isolations[0].MachineID, "on the alert's device")
	require.Eventually(t, func() bool {
		got, _ := w.emu.GraphAlert(al.ID)
		return len(got.Comments) == 1
	}, 5*time.Second, 5*time.Millisecond, "a comment on the alert")
	got, _ := w.emu.GraphAlert(al.ID)
	c := got.Comments[0].Comment
	assert.Contains(t, c, "Isolate a machine")
	assert.Contains(t, c, r.ID)
	assert.Contains(t, c, "approved by Slack user "+bob)
}

func TestAlertCardResolveUpdatesGraphAndTheCard(t *testing.T) {
	w := newWorld(t)
	w.graphAlerts = true
	p := w.start(t)
	al := w.emu.NewDeviceAlert(machine1, "Suspicious PowerShell", "high")
	card := postCard(t, w, p, al.ID)

	p.clickCard(alice, "alert_resolve", al.ID, card.TS)
	open := w.waitCall(t, 1, func(c slackfake.Call) bool { return c.Method == slackfake.MethodViewsOpen })
	var view slack.View
	require.NoError(t, jsonUnmarshal(open.View, &view))
	assert.Contains(t, string(open.View), "classification")
	assert.NotContains(t, string(open.View), `"block_id":"alert_id"`, "the alert is the card's, not an input")

	ic := slack.InteractionCallback{Type: slack.InteractionTypeViewSubmission, User: slack.User{ID: alice, Name: "alice"},
		View: slack.View{ID: "V1", CallbackID: view.CallbackID, PrivateMetadata: view.PrivateMetadata, Blocks: view.Blocks,
			State: &slack.ViewState{Values: map[string]map[string]slack.BlockAction{
				"classification": {"classification": {Type: "static_select", SelectedOption: slack.OptionBlockObject{Value: "TruePositive"}}},
				"determination":  {"determination": {Type: "static_select", SelectedOption: slack.OptionBlockObject{Value: "Malware"}}},
				"comment":        {"comment": {Type: "plain_text_input", Value: "reimaged the laptop"}},
			}}}}
	form, err := slackfake.InteractionForm(ic)
	require.NoError(t, err)
	code, body := p.post("/slack/interactions", secret, time.Now(), form)
	require.Equal(t, http.StatusOK, code)
	assert.Empty(t, body, "a valid form closes")

	msg, id := w.approvalMessage(t, 1)
	code, _ = p.click(bob, "approve", id, msg.TS)
	require.Equal(t, http.StatusOK, code)
	p.waitState(id, approval.StateSucceeded)
	got, _ := w.emu.GraphAlert(al.ID)
	assert.Equal(t, "resolved", got.Status)
	assert.Equal(t, "truePositive", got.Classification)
	assert.Equal(t, "malware", got.Determination)
	require.NotEmpty(t, got.Comments)
	assert.Contains(t, got.Comments[len(got.Comments)-1].Comment, "reimaged the laptop")
	assert.Contains(t, got.Comments[len(got.Comments)-1].Comment, "approved by "+bob)

	w.advance(time.Minute)
	card = postCard(t, w, p, al.ID)
	assert.Equal(t, 1, card.Updates, "the card is updated in place")
	assert.Contains(t, string(card.Blocks), "*Resolved*")
	assert.Contains(t, string(card.Blocks), "reimaged the laptop", "why")
	assert.Contains(t, string(card.Blocks), "*Resolved* by alice", "who")
	assert.NotContains(t, string(card.Blocks), `"action_id":"alert_resolve"`)
}
