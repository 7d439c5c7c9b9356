package e2e_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/defenderbot/defenderbot/alerts"
	"github.com/defenderbot/defenderbot/bot"
	"github.com/defenderbot/defenderbot/defender"
	"github.com/defenderbot/defenderbot/defender/defendertest"
	"github.com/defenderbot/defenderbot/graph"
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
	c, err := graph.New(graph.Config{BaseURL: w.emu.URL, MaxRetries: 1}, tokens, graph.WithHTTPClient(w.emu.HTTPClient()))
	require.NoError(t, err)
	return c
}

// alertPoller is the alert feed of process p, as serve wires it.
func (p *proc) alertPoller(t testing.TB, owner string) *alerts.Poller {
	t.Helper()
	pl, err := alerts.New(alerts.Config{Channel: alertsChannel, MinSeverity: "medium", PollInterval: time.Minute,
		Backfill: time.Hour, Owner: owner, Now: p.w.emu.Now},
		p.w.graphClient(t), p.store, bot.NewAlertPoster(p.w.slack.Client(), bot.AlertCardOptions{}))
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
			w.emu.Advance(time.Minute)
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
			w.emu.Advance(time.Minute)
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
			w.emu.Advance(5 * time.Minute) // past the old leader's lease
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
