package slackfake_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/defenderbot/defenderbot/internal/slackfake"
)

func TestSocketModeEnvelopesAndAcks(t *testing.T) {
	s := slackfake.NewT(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	_, err := s.SendEnvelope(ctx, slackfake.EnvelopeSlashCommands, "", slack.SlashCommand{Command: "/x"})
	require.ErrorContains(t, err, "no Socket Mode client")

	client := socketmode.New(s.Client(slack.OptionAppLevelToken("xapp-test")))
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	go func() { _ = client.RunContext(runCtx) }()
	go func() {
		for evt := range client.Events {
			switch evt.Type {
			case socketmode.EventTypeSlashCommand:
				cmd := evt.Data.(slack.SlashCommand)
				_ = client.Ack(*evt.Request, map[string]string{"text": "got " + cmd.Text})
			case socketmode.EventTypeInteractive:
				_ = client.Ack(*evt.Request)
			}
		}
	}()
	require.NoError(t, s.WaitSocket(ctx))

	ack, err := s.SendEnvelope(ctx, slackfake.EnvelopeSlashCommands, "", slack.SlashCommand{Command: "/defender", Text: "help", UserID: "U1"})
	require.NoError(t, err)
	var body map[string]string
	require.NoError(t, json.Unmarshal(ack, &body))
	assert.Equal(t, "got help", body["text"])

	ic := slackfake.BlockAction("U2", "approve", "R1", "C1", "1.1", "")
	ack, err = s.SendEnvelope(ctx, slackfake.EnvelopeInteractive, "env-fixed", &ic)
	require.NoError(t, err)
	assert.Nil(t, ack)
}
