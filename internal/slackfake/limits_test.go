package slackfake_test

import (
	"context"
	"strings"
	"testing"

	"github.com/slack-go/slack"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/defenderbot/defenderbot/internal/slackfake"
)

func mrkdwnSection(s string) slack.Block {
	return slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, s, false, false), nil, nil)
}

// TestOverLimitMessagesAreRefused checks the stand-in refuses what Slack
// refuses, with Slack's error, and accepts what sits exactly on a limit.
func TestOverLimitMessagesAreRefused(t *testing.T) {
	plainText := func(s string) *slack.TextBlockObject {
		return slack.NewTextBlockObject(slack.PlainTextType, s, false, false)
	}
	fields := func(n, size int) []*slack.TextBlockObject {
		f := make([]*slack.TextBlockObject, n)
		for i := range f {
			f[i] = slack.NewTextBlockObject(slack.MarkdownType, strings.Repeat("f", size), false, false)
		}
		return f
	}
	many := func(n int) []slack.Block {
		b := make([]slack.Block, n)
		for i := range b {
			b[i] = slack.NewDividerBlock()
		}
		return b
	}
	tests := []struct {
		name    string
		blocks  []slack.Block
		pointer string // "" when the message is within limits
	}{
		{"section text at the limit", []slack.Block{mrkdwnSection(strings.Repeat("é", 3000))}, ""},
		{"section text over", []slack.Block{mrkdwnSection(strings.Repeat("&", 3001))}, "/blocks/0/text/text"},
		{"field over", []slack.Block{slack.NewSectionBlock(nil, fields(1, 2001), nil)}, "/blocks/0/fields/0/text"},
		{"eleven fields", []slack.Block{slack.NewSectionBlock(nil, fields(11, 1), nil)}, "/blocks/0/fields"},
		{"header at the limit", []slack.Block{slack.NewHeaderBlock(plainText(strings.Repeat("h", 150)))}, ""},
		{"header over", []slack.Block{slack.NewDividerBlock(), slack.NewHeaderBlock(plainText(strings.Repeat("h", 151)))}, "/blocks/1/text/text"},
		{"50 blocks", many(50), ""},
		{"51 blocks", many(51), "/blocks"},
		{"button value over", []slack.Block{slack.NewActionBlock("a", slack.NewButtonBlockElement("x", strings.Repeat("v", 2001), plainText("Go")))}, "/blocks/0/elements/0/value"},
		{"button text over", []slack.Block{slack.NewActionBlock("a", slack.NewButtonBlockElement("x", "v", plainText(strings.Repeat("t", 76))))}, "/blocks/0/elements/0/text/text"},
		{"context element over", []slack.Block{slack.NewContextBlock("", slack.NewTextBlockObject(slack.MarkdownType, strings.Repeat("c", 3001), false, false))}, "/blocks/0/elements/0/text"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := slackfake.NewT(t)
			api := s.Client()
			ctx := context.Background()
			_, ts, err := api.PostMessageContext(ctx, "C1", slack.MsgOptionBlocks(tt.blocks...))
			_, eerr := api.PostEphemeralContext(ctx, "C1", "U1", slack.MsgOptionBlocks(tt.blocks...))
			if tt.pointer == "" {
				require.NoError(t, err)
				require.NoError(t, eerr)
				_, _, _, err = api.UpdateMessageContext(ctx, "C1", ts, slack.MsgOptionBlocks(tt.blocks...))
				require.NoError(t, err)
				return
			}
			for _, err := range []error{err, eerr} {
				var se slack.SlackErrorResponse
				require.ErrorAs(t, err, &se)
				assert.Equal(t, "invalid_blocks", se.Err)
			}
			calls := s.CallsTo(slackfake.MethodPostMessage)
			require.Len(t, calls, 1)
			assert.Equal(t, "invalid_blocks", calls[0].Error)
			assert.Empty(t, s.Messages("C1"), "a refused message is not posted")
			errs := calls[0].Problems
			require.NotEmpty(t, errs)
			assert.Contains(t, errs[0], "[json-pointer:"+tt.pointer+"]")
		})
	}
}

func TestOverLimitUpdateAndResponseURLRefused(t *testing.T) {
	s := slackfake.NewT(t)
	api := s.Client()
	ctx := context.Background()
	_, ts, err := api.PostMessageContext(ctx, "C1", slack.MsgOptionText("short", false))
	require.NoError(t, err)
	_, _, _, err = api.UpdateMessageContext(ctx, "C1", ts, slack.MsgOptionBlocks(mrkdwnSection(strings.Repeat("x", 3001))))
	var se slack.SlackErrorResponse
	require.ErrorAs(t, err, &se)
	assert.Equal(t, "invalid_blocks", se.Err)
	m, ok := s.Message("C1", ts)
	require.True(t, ok)
	assert.Equal(t, "short", m.Text, "a refused update changes nothing")

	err = slack.PostWebhookContext(ctx, s.ResponseURL("r"), &slack.WebhookMessage{
		Text: "x", Blocks: &slack.Blocks{BlockSet: []slack.Block{mrkdwnSection(strings.Repeat("x", 3001))}}})
	require.Error(t, err)
	calls := s.CallsTo(slackfake.MethodResponseURL)
	require.Len(t, calls, 1)
	assert.Equal(t, "invalid_blocks", calls[0].Error)
}

func TestOverLimitViewsRefused(t *testing.T) {
	plainText := func(s string) *slack.TextBlockObject {
		return slack.NewTextBlockObject(slack.PlainTextType, s, false, false)
	}
	s := slackfake.NewT(t)
	api := s.Client()
	ctx := context.Background()
	ok := slack.ModalViewRequest{Type: slack.VTModal, Title: plainText(strings.Repeat("t", 24)),
		Blocks: slack.Blocks{BlockSet: []slack.Block{mrkdwnSection("hi")}}}
	_, err := api.OpenViewContext(ctx, "trig", ok)
	require.NoError(t, err)

	long := ok
	long.Title = plainText(strings.Repeat("t", 25))
	_, err = api.OpenViewContext(ctx, "trig", long)
	var se slack.SlackErrorResponse
	require.ErrorAs(t, err, &se)
	assert.Equal(t, "invalid_arguments", se.Err)
	assert.Contains(t, strings.Join(se.ResponseMetadata.Messages, "\n"), "[json-pointer:/view/title/text]")

	blocks := make([]slack.Block, 101)
	for i := range blocks {
		blocks[i] = slack.NewDividerBlock()
	}
	tooMany := ok
	tooMany.Blocks = slack.Blocks{BlockSet: blocks}
	_, err = api.OpenViewContext(ctx, "trig", tooMany)
	require.ErrorAs(t, err, &se)
	assert.Contains(t, strings.Join(se.ResponseMetadata.Messages, "\n"), "[json-pointer:/view/blocks]")
	tooMany.Blocks.BlockSet = blocks[:100]
	_, err = api.OpenViewContext(ctx, "trig", tooMany)
	require.NoError(t, err, "a view holds 100 blocks")
}
