package handlers_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slacktest"
	"github.com/slack-go/slack/socketmode"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/defenderbot/defenderbot/handlers"
)

type envelope struct {
	Type       string `json:"type"`
	EnvelopeID string `json:"envelope_id,omitempty"`
	Payload    any    `json:"payload,omitempty"`
}

type ack struct {
	EnvelopeID string          `json:"envelope_id"`
	Payload    json.RawMessage `json:"payload"`
}

// TestSocketModeFeedsTheSameBot plays Slack's side of a Socket Mode
// connection: it sends envelopes (one of them twice, as Slack redelivers) and
// collects the acknowledgements.
func TestSocketModeFeedsTheSameBot(t *testing.T) {
	cmd := slack.SlashCommand{Command: "/defender", Text: "status", UserID: "U1", ChannelID: "C1"}
	click := slack.InteractionCallback{Type: slack.InteractionTypeBlockActions, User: slack.User{ID: "U2"}}
	click.ActionCallback.BlockActions = []*slack.BlockAction{{ActionID: "approve", Value: "R1", BlockID: "b"}}
	closed := slack.InteractionCallback{Type: slack.InteractionTypeViewClosed, User: slack.User{ID: "U2"}}
	sends := []envelope{
		{Type: "hello"},
		{Type: "slash_commands", EnvelopeID: "E1", Payload: cmd},
		{Type: "slash_commands", EnvelopeID: "E1", Payload: cmd}, // redelivery
		{Type: "interactive", EnvelopeID: "E2", Payload: &click},
		{Type: "interactive", EnvelopeID: "E3", Payload: &closed},
	}
	acks := make(chan ack, 10)
	srv := slacktest.NewTestServer(func(c slacktest.Customize) {
		c.Handle("/ws", slacktest.Websocket(func(conn *websocket.Conn) {
			for _, e := range sends {
				if err := conn.WriteJSON(e); err != nil {
					return
				}
			}
			for {
				var a ack
				if err := conn.ReadJSON(&a); err != nil {
					return
				}
				acks <- a
			}
		}))
	})
	srv.Start()
	t.Cleanup(srv.Stop)

	api := slack.New("xoxb-test", slack.OptionAppLevelToken("xapp-test"), slack.OptionAPIURL(srv.GetAPIURL()))
	client := socketmode.New(api)
	bot := &fakeBot{reply: &slack.Msg{ResponseType: slack.ResponseTypeEphemeral, Text: "all quiet"}}
	seen := newMemSeen()
	metrics := &recMetrics{}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- handlers.RunSocketMode(ctx, client, testConfig(), handlers.Deps{Bot: bot, Seen: seen, Metrics: metrics, Logger: slog.New(slog.DiscardHandler)})
	}()

	got := map[string][]json.RawMessage{}
	timeout := time.After(10 * time.Second)
	for n := 0; n < 4; n++ {
		select {
		case a := <-acks:
			got[a.EnvelopeID] = append(got[a.EnvelopeID], a.Payload)
		case <-timeout:
			t.Fatalf("only %d acks arrived: %v", n, got)
		}
	}
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("RunSocketMode did not return after cancel")
	}

	require.Len(t, got["E1"], 2, "both deliveries are acknowledged")
	require.Len(t, got["E2"], 1)
	require.Len(t, got["E3"], 1)
	c, i := bot.counts()
	assert.Equal(t, 1, c, "a redelivered envelope does not act twice")
	assert.Equal(t, 1, i, "view_closed does not reach the bot")
	assert.Equal(t, "status", bot.commands[0].Text)
	assert.Equal(t, "R1", bot.interactions[0].ActionCallback.BlockActions[0].Value)

	var replied []string
	for _, p := range got["E1"] {
		if len(p) > 0 {
			var m slack.Msg
			require.NoError(t, json.Unmarshal(p, &m))
			replied = append(replied, m.Text)
		}
	}
	assert.Equal(t, []string{"all quiet"}, replied, "only the first delivery carries the reply")
	assert.ElementsMatch(t, []string{"ok", "replay"}, metrics.outcomes("socket:slash_commands"))
	assert.ElementsMatch(t, []string{"ok", "ignored"}, metrics.outcomes("socket:interactive"))
}

func TestSocketModeNeedsDeps(t *testing.T) {
	err := handlers.RunSocketMode(context.Background(), nil, testConfig(), handlers.Deps{})
	require.Error(t, err)
}
