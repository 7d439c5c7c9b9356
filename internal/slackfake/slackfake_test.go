package slackfake_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/defenderbot/defenderbot/internal/slackfake"
)

func TestAPIURLHasTrailingSlash(t *testing.T) {
	s := slackfake.NewT(t)
	assert.Regexp(t, `^http://127\.0\.0\.1:\d+/$`, s.APIURL())
}

func TestPostUpdateEphemeralAreRecorded(t *testing.T) {
	s := slackfake.NewT(t)
	api := s.Client()
	ctx := context.Background()

	blocks := slack.MsgOptionBlocks(slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, "*approve?*", false, false), nil, nil))
	ch, ts, err := api.PostMessageContext(ctx, "C1", slack.MsgOptionText("approve?", false), blocks)
	require.NoError(t, err)
	assert.Equal(t, "C1", ch)
	require.NotEmpty(t, ts)

	_, ts2, err := api.PostMessageContext(ctx, "C1", slack.MsgOptionText("reply", false), slack.MsgOptionTS(ts))
	require.NoError(t, err)
	assert.NotEqual(t, ts, ts2, "two posts in the same second must get different ts")

	_, _, _, err = api.UpdateMessageContext(ctx, "C1", ts, slack.MsgOptionText("approved by U2", false))
	require.NoError(t, err)

	_, err = api.PostEphemeralContext(ctx, "C1", "U1", slack.MsgOptionText("only you", false))
	require.NoError(t, err)

	calls := s.Calls()
	require.Len(t, calls, 4)
	assert.Equal(t, []string{slackfake.MethodPostMessage, slackfake.MethodPostMessage, slackfake.MethodUpdate, slackfake.MethodPostEphemeral},
		[]string{calls[0].Method, calls[1].Method, calls[2].Method, calls[3].Method})
	assert.Equal(t, "approve?", calls[0].Text)
	assert.Contains(t, string(calls[0].Blocks), "*approve?*")
	assert.Equal(t, ts, calls[1].ThreadTS)
	assert.Equal(t, ts, calls[2].TS)
	assert.Equal(t, "U1", calls[3].User)
	assert.Empty(t, calls[0].Form.Get("token"), "tokens are not recorded")
	for i, c := range calls {
		assert.Equal(t, i+1, c.Seq)
	}

	m, ok := s.Message("C1", ts)
	require.True(t, ok)
	assert.Equal(t, "approved by U2", m.Text)
	assert.Equal(t, 1, m.Updates)
	assert.Len(t, s.Messages("C1"), 2)
}

func TestUpdateUnknownMessageFails(t *testing.T) {
	s := slackfake.NewT(t)
	_, _, _, err := s.Client().UpdateMessage("C1", "1.000001", slack.MsgOptionText("x", false))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "message_not_found")
	assert.Equal(t, "message_not_found", s.CallsTo(slackfake.MethodUpdate)[0].Error)
}

func TestViewsOpenUsergroupsUsersAuth(t *testing.T) {
	s := slackfake.NewT(t)
	api := s.Client()
	s.SetUsergroup("S1", "U1", "U2")
	s.AddUser(slack.User{ID: "U1", Name: "alice", RealName: "Alice"})

	resp, err := api.OpenView("trig-1", slack.ModalViewRequest{Type: slack.VTModal, CallbackID: "reject",
		Title: slack.NewTextBlockObject(slack.PlainTextType, "Reject", false, false)})
	require.NoError(t, err)
	assert.NotEmpty(t, resp.ID)
	assert.Equal(t, "reject", resp.CallbackID)

	members, err := api.GetUserGroupMembers("S1")
	require.NoError(t, err)
	assert.Equal(t, []string{"U1", "U2"}, members)
	_, err = api.GetUserGroupMembers("S404")
	require.ErrorContains(t, err, "no_such_subteam")

	u, err := api.GetUserInfo("U1")
	require.NoError(t, err)
	assert.Equal(t, "alice", u.Name)
	_, err = api.GetUserInfo("U404")
	require.ErrorContains(t, err, "user_not_found")

	at, err := api.AuthTest()
	require.NoError(t, err)
	assert.Equal(t, "U0BOT", at.UserID)

	views := s.CallsTo(slackfake.MethodViewsOpen)
	require.Len(t, views, 1)
	assert.Equal(t, "trig-1", views[0].TriggerID)
	assert.Contains(t, string(views[0].View), `"callback_id":"reject"`)
	assert.Equal(t, "S1", s.CallsTo(slackfake.MethodGroupMembers)[0].Usergroup)
}

func TestRateLimitInjection(t *testing.T) {
	s := slackfake.NewT(t)
	s.RateLimit(slackfake.MethodPostMessage, 2, 3*time.Second)
	api := s.Client()

	for range 2 {
		_, _, err := api.PostMessage("C1", slack.MsgOptionText("x", false))
		var rl *slack.RateLimitedError
		require.True(t, errors.As(err, &rl), "got %v", err)
		assert.Equal(t, 3*time.Second, rl.RetryAfter)
	}
	_, _, err := api.PostMessage("C1", slack.MsgOptionText("x", false))
	require.NoError(t, err)

	calls := s.CallsTo(slackfake.MethodPostMessage)
	require.Len(t, calls, 3)
	assert.Equal(t, []int{429, 429, 200}, []int{calls[0].Status, calls[1].Status, calls[2].Status})
	assert.Len(t, s.Messages("C1"), 1, "rate-limited posts create nothing")
}

func TestFailWith(t *testing.T) {
	s := slackfake.NewT(t)
	s.FailWith(slackfake.MethodViewsOpen, 1, "expired_trigger_id")
	_, err := s.Client().OpenView("t", slack.ModalViewRequest{Type: slack.VTModal})
	require.ErrorContains(t, err, "expired_trigger_id")
	_, err = s.Client().OpenView("t", slack.ModalViewRequest{Type: slack.VTModal})
	require.NoError(t, err)
}

func TestResponseURL(t *testing.T) {
	s := slackfake.NewT(t)
	err := slack.PostWebhook(s.ResponseURL("cmd-1"), &slack.WebhookMessage{Text: "done", ResponseType: slack.ResponseTypeEphemeral, ReplaceOriginal: true})
	require.NoError(t, err)
	calls := s.CallsTo(slackfake.MethodResponseURL)
	require.Len(t, calls, 1)
	assert.Equal(t, "cmd-1", calls[0].ResponseURL)
	assert.Equal(t, "done", calls[0].Text)
	assert.Equal(t, "ephemeral", calls[0].ResponseType)
	assert.True(t, calls[0].ReplaceOriginal)
}

func TestWaitForWakesOnCallsAndTimesOut(t *testing.T) {
	s := slackfake.NewT(t)
	api := s.Client()
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			_, _, err := api.PostMessage("C1", slack.MsgOptionText("x", false))
			assert.NoError(t, err)
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	calls, err := s.WaitFor(ctx, slackfake.MethodPostMessage, 20)
	require.NoError(t, err)
	assert.Len(t, calls, 20)
	wg.Wait()

	seen := map[string]bool{}
	for _, c := range calls {
		assert.False(t, seen[c.TS], "duplicate ts %s", c.TS)
		seen[c.TS] = true
	}

	short, cancel2 := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel2()
	_, err = s.WaitFor(short, slackfake.MethodUpdate, 1)
	require.ErrorIs(t, err, context.DeadlineExceeded)

	s.Reset()
	assert.Empty(t, s.Calls())
}

func TestSignVerifiesWithSlackGo(t *testing.T) {
	body := []byte("command=%2Fdefender&text=help")
	ts, sig := slackfake.Sign("s3cret", time.Now(), body)
	h := http.Header{}
	h.Set("X-Slack-Request-Timestamp", ts)
	h.Set("X-Slack-Signature", sig)
	v, err := slack.NewSecretsVerifier(h, "s3cret")
	require.NoError(t, err)
	_, _ = v.Write(body)
	require.NoError(t, v.Ensure())

	v, err = slack.NewSecretsVerifier(h, "other")
	require.NoError(t, err)
	_, _ = v.Write(body)
	require.ErrorIs(t, v.Ensure(), slack.ErrInvalidSignature)
}

func TestFormsParseBack(t *testing.T) {
	ctx := context.Background()
	cmdForm := slackfake.CommandForm(slack.SlashCommand{Command: "/defender", Text: "isolate m1 full x", UserID: "U1", ChannelID: "C1", ResponseURL: "http://r"})
	req, err := slackfake.SignedRequest(ctx, "http://x/slack/commands", "k", time.Now(), cmdForm)
	require.NoError(t, err)
	cmd, err := slack.SlashCommandParse(req)
	require.NoError(t, err)
	assert.Equal(t, "isolate m1 full x", cmd.Text)
	assert.Equal(t, "U1", cmd.UserID)

	form, err := slackfake.InteractionForm(slackfake.BlockAction("U2", "approve", "req-1", "C9", "1.000002", "http://r"))
	require.NoError(t, err)
	req, err = slackfake.SignedRequest(ctx, "http://x/slack/interactions", "k", time.Now(), form)
	require.NoError(t, err)
	ic, err := slack.InteractionCallbackParse(req)
	require.NoError(t, err)
	assert.Equal(t, slack.InteractionTypeBlockActions, ic.Type)
	assert.Equal(t, "U2", ic.User.ID)
	require.Len(t, ic.ActionCallback.BlockActions, 1)
	assert.Equal(t, "approve", ic.ActionCallback.BlockActions[0].ActionID)
	assert.Equal(t, "req-1", ic.ActionCallback.BlockActions[0].Value)
	assert.Equal(t, "1.000002", ic.Container.MessageTs)
	assert.Equal(t, "C9", ic.Channel.ID)
}

func TestUnknownMethodIs404(t *testing.T) {
	s := slackfake.NewT(t)
	resp, err := http.Post(s.APIURL()+"conversations.replies", "application/x-www-form-urlencoded", nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
}

func TestWaitNth(t *testing.T) {
	s := slackfake.NewT(t)
	api := s.Client()
	for _, ch := range []string{"C1", "C2", "C1", "C1"} {
		_, _, err := api.PostMessage(ch, slack.MsgOptionText("to "+ch, false))
		require.NoError(t, err)
	}
	inC1 := func(c slackfake.Call) bool { return c.Channel == "C1" }
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := s.WaitNth(ctx, 2, inC1)
	require.NoError(t, err)
	assert.Equal(t, 3, c.Seq, "the second call to C1 is the third call")

	short, cancel2 := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel2()
	_, err = s.WaitNth(short, 4, inC1)
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestButtonValue(t *testing.T) {
	blocks, err := json.Marshal(slack.Blocks{BlockSet: []slack.Block{
		slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, "approve?", false, false), nil, nil),
		slack.NewActionBlock("approval",
			slack.NewButtonBlockElement("approve", "req-1", slack.NewTextBlockObject(slack.PlainTextType, "Approve", false, false)),
			slack.NewButtonBlockElement("reject", "req-1-no", slack.NewTextBlockObject(slack.PlainTextType, "Reject", false, false))),
	}})
	require.NoError(t, err)
	for actionID, want := range map[string]string{"approve": "req-1", "reject": "req-1-no", "missing": ""} {
		got, err := slackfake.ButtonValue(blocks, actionID)
		require.NoError(t, err)
		assert.Equal(t, want, got, actionID)
	}
	_, err = slackfake.ButtonValue([]byte("not json"), "approve")
	assert.Error(t, err)
}
