package e2e_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/defenderbot/defenderbot/actions"
	"github.com/defenderbot/defenderbot/approval"
	"github.com/defenderbot/defenderbot/internal/slackfake"
)

// TestLongEscapedCommentStillPostsForApproval reproduces issue 11 §7: a
// 1,000-character comment of "&" escapes to 5,000 characters, over Slack's
// 3,000 per section, so Slack refused the approval message and the
// requester was told the bot was not in the channel. The comment is now
// shortened visibly on the card, the request goes through, and the audit
// trail keeps the comment whole.
func TestLongEscapedCommentStillPostsForApproval(t *testing.T) {
	w := newWorld(t)
	p := w.start(t)
	comment := strings.Repeat("&", actions.MaxCommentLen)
	code, body := p.command(alice, "isolate "+machine1DN+" full "+comment)
	require.Equal(t, http.StatusOK, code, body)

	msg, id := w.approvalMessage(t, 1)
	assert.Empty(t, msg.Problems)
	assert.Contains(t, string(msg.Blocks), "truncated")
	reply := w.responseTo(t, alice, 1)
	assert.Contains(t, reply.Text, "is waiting for")
	assert.NotContains(t, reply.Text, "member of that channel")

	r, err := p.store.GetRequest(context.Background(), id)
	require.NoError(t, err)
	assert.Equal(t, approval.StatePending, r.State)
	assert.Equal(t, comment, r.Args.Comment, "the request keeps the whole comment")
	evs, err := p.store.ListAudit(context.Background(), time.Time{})
	require.NoError(t, err)
	var params map[string]any
	for _, e := range evs {
		if e.RequestID == id && e.Kind == "request" {
			params, _ = e.Details["params"].(map[string]any)
		}
	}
	require.NotNil(t, params, "request audit line")
	assert.Equal(t, comment, params["comment"], "the audit trail keeps the whole comment")

	// The card stays within limits through approval and the outcome too.
	code, _ = p.click(bob, "approve", id, msg.TS)
	require.Equal(t, http.StatusOK, code)
	// A comment of the longest length runs: Defender gets it shortened to
	// make room for the request tag (it used to fail, "comment is too long").
	p.waitState(id, approval.StateRunning)
	w.advance(3 * time.Minute)
	p.waitState(id, approval.StateSucceeded)
	w.dmTo(t, alice, 2) // the outcome, told last
	mas := w.emu.MachineActions()
	require.Len(t, mas, 1)
	assert.Equal(t, actions.MaxCommentLen, utf8.RuneCountInString(mas[0].RequestorComment))
	assert.True(t, strings.HasSuffix(mas[0].RequestorComment, "… (defenderbot request "+id+", approved by "+bob+")"))
	for _, c := range w.slack.Calls() {
		assert.Empty(t, c.Error, "Slack refused %s: %v", c.Method, c.Problems)
	}
	final, ok := w.slack.Message(channel, msg.TS)
	require.True(t, ok)
	assert.Contains(t, string(final.Blocks), "truncated")
}

// TestSlackRefusalIsNotBlamedOnTheChannel: when Slack refuses the approval
// message for another reason than the channel, the requester is not told
// to invite the bot.
func TestSlackRefusalIsNotBlamedOnTheChannel(t *testing.T) {
	for _, tt := range []struct{ slackErr, want, notWant string }{
		{"invalid_blocks", "Slack refused the message (`invalid_blocks`)", "member of that channel"},
		{"not_in_channel", "member of that channel", "refused"},
	} {
		t.Run(tt.slackErr, func(t *testing.T) {
			w := newWorld(t)
			p := w.start(t)
			w.slack.FailWith(slackfake.MethodPostMessage, 1, tt.slackErr)
			code, body := p.command(alice, isolateText)
			require.Equal(t, http.StatusOK, code, body)
			reply := w.responseTo(t, alice, 1)
			assert.Contains(t, reply.Text, tt.want)
			assert.NotContains(t, reply.Text, tt.notWant)
			assert.Contains(t, reply.Text, "Nothing was done")
			assert.Empty(t, w.defenderWrites())
		})
	}
}
