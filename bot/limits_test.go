package bot

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/slack-go/slack"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/defenderbot/defenderbot/actions"
	"github.com/defenderbot/defenderbot/approval"
	"github.com/defenderbot/defenderbot/internal/slackfake"
)

func messageProblems(t *testing.T, blocks []slack.Block) []string {
	t.Helper()
	raw, err := json.Marshal(blocks)
	require.NoError(t, err)
	return slackfake.MessageProblems(raw)
}

// TestRenderedMessagesStayWithinBlockKitLimits renders every card with the
// longest inputs defenderbot accepts, made of the characters that grow most
// when escaped, and checks Slack would accept each.
func TestRenderedMessagesStayWithinBlockKitLimits(t *testing.T) {
	worst := strings.Repeat("&", actions.MaxCommentLen)
	long := func(state approval.State) *approval.Request {
		r := sampleRequest(state)
		r.Args.Comment = worst
		r.MachineName = strings.Repeat("<", 300)
		r.RejectReason = worst
		r.RejectedBy = approver1
		r.Error = strings.Repeat("&", 4000)
		r.MachineActionID = strings.Repeat(">", 100)
		r.MachineActionStatus = "Pending"
		for i := range 40 {
			r.Approvals = append(r.Approvals, approval.Vote{UserID: fmt.Sprintf("U%010d", i)})
		}
		return r
	}
	for _, st := range []approval.State{approval.StatePending, approval.StateApproved, approval.StateExecuting, approval.StateRunning,
		approval.StateSucceeded, approval.StateFailed, approval.StateRejected, approval.StateExpired} {
		blocks := renderApproval(long(st))
		assert.Empty(t, messageProblems(t, blocks), "approval card in state %s", st)
		assert.Contains(t, blocksJSON(t, blocks), "truncated", "the cut is visible (%s)", st)
	}
	upd := long(approval.StatePending)
	upd.Action, upd.Args = actions.UpdateAlert, actions.Args{AlertID: "da1", Status: "Resolved",
		Classification: strings.Repeat("&", 1500), Determination: strings.Repeat("<", 2500), Owner: "a@b.c", Comment: worst}
	assert.Empty(t, messageProblems(t, renderApproval(upd)), "every argument long")

	out := map[string]any{}
	for i := range 35 {
		out[fmt.Sprintf("field%02d", i)] = strings.Repeat("&", 900)
	}
	blocks := renderOutput(strings.Repeat("&", 1000), out)
	assert.Empty(t, messageProblems(t, blocks), "35 long output fields")
	assert.Len(t, blocks, 5, "a title and four sections of at most ten fields")
	assert.Empty(t, messageProblems(t, renderHelp(strings.Repeat("/", 200))))
	assert.Empty(t, messageProblems(t, renderParseError("/defender", &ParseError{Msg: worst + worst + worst + worst, Verb: "isolate"})))
}

// TestEveryModalWithinLimits opens the form of every verb: a modal title
// holds 24 characters ("Unrestrict code execution" has 25).
func TestEveryModalWithinLimits(t *testing.T) {
	for _, spec := range actions.All() {
		for _, verb := range append([]string{spec.Verb}, spec.VerbAliases...) {
			if verb == "" {
				continue
			}
			v, ok := commandModal(verb, Command{Args: actions.Args{Comment: strings.Repeat("&", actions.MaxCommentLen)}}, invocation{ResponseURL: "https://hooks.slack.com/commands/T0/1/" + strings.Repeat("x", 60)})
			if !ok {
				continue
			}
			raw, err := json.Marshal(v)
			require.NoError(t, err)
			assert.Empty(t, slackfake.ViewProblems(raw), "modal of %q", verb)
			assert.LessOrEqual(t, utf8.RuneCountInString(v.Title.Text), 24)
		}
	}
	raw, err := json.Marshal(rejectModal(newID(), "C0123", "", false))
	require.NoError(t, err)
	assert.Empty(t, slackfake.ViewProblems(raw))
}

func TestCutMrkdwnNeverBreaksEntitiesOrMentions(t *testing.T) {
	for _, s := range []string{
		strings.Repeat("&amp;", 1000),
		strings.Repeat("a<@U0123456789>", 300),
		strings.Repeat("x", 2990) + "<https://example.com|a link>" + strings.Repeat("y", 100),
		strings.Repeat("é", 5000),
	} {
		for _, limit := range []int{150, 2000, 3000} {
			got := cutMrkdwn(s, limit)
			assert.LessOrEqual(t, utf8.RuneCountInString(got), limit)
			body := strings.TrimSuffix(strings.TrimSuffix(got, truncatedNote), "…")
			if i := strings.LastIndexByte(body, '&'); i >= 0 {
				assert.Contains(t, body[i:], ";", "cut inside an entity: …%q", body[max(0, len(body)-20):])
			}
			if i := strings.LastIndexByte(body, '<'); i >= 0 {
				assert.Contains(t, body[i:], ">", "cut inside a mention or link")
			}
		}
	}
	assert.Equal(t, "short", clampText(mrkdwn("short"), 10).Text, "within the limit: unchanged")
	h := clampText(plain(strings.Repeat("h", 200)), maxHeaderText)
	assert.Equal(t, maxHeaderText, utf8.RuneCountInString(h.Text))
	assert.True(t, strings.HasSuffix(h.Text, "…"))
}

func TestTooManyBlocksKeepsTheButtons(t *testing.T) {
	var blocks []slack.Block
	for range 70 {
		blocks = append(blocks, section("x"))
	}
	blocks = append(blocks, slack.NewActionBlock(blockDecision, slack.NewButtonBlockElement(actionApprove, "id", plain("Approve"))))
	got := fitMessage(blocks)
	require.Len(t, got, maxMessageBlocks)
	assert.IsType(t, &slack.ActionBlock{}, got[len(got)-1], "the buttons survive")
	assert.Contains(t, blocksJSON(t, got[len(got)-2]), "22 more blocks not shown")
	assert.Empty(t, messageProblems(t, got))
}
