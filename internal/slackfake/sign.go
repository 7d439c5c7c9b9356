package slackfake

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/slack-go/slack"
)

// Sign returns the X-Slack-Request-Timestamp and X-Slack-Signature values
// Slack sends with body at time at (HMAC-SHA256 of "v0:ts:body").
func Sign(secret string, at time.Time, body []byte) (timestamp, signature string) {
	timestamp = strconv.FormatInt(at.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	_, _ = fmt.Fprintf(mac, "v0:%s:", timestamp)
	_, _ = mac.Write(body)
	return timestamp, "v0=" + hex.EncodeToString(mac.Sum(nil))
}

// SignedRequest builds a form POST to target signed like Slack signs it.
func SignedRequest(ctx context.Context, target, secret string, at time.Time, form url.Values) (*http.Request, error) {
	body := []byte(form.Encode())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	ts, sig := Sign(secret, at, body)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Slack-Request-Timestamp", ts)
	req.Header.Set("X-Slack-Signature", sig)
	return req, nil
}

// CommandForm is the form Slack posts for a slash command.
func CommandForm(cmd slack.SlashCommand) url.Values {
	v := url.Values{}
	set := func(k, val string) {
		if val != "" {
			v.Set(k, val)
		}
	}
	set("token", cmd.Token)
	set("team_id", cmd.TeamID)
	set("team_domain", cmd.TeamDomain)
	set("channel_id", cmd.ChannelID)
	set("channel_name", cmd.ChannelName)
	set("user_id", cmd.UserID)
	set("user_name", cmd.UserName)
	set("command", cmd.Command)
	v.Set("text", cmd.Text)
	set("response_url", cmd.ResponseURL)
	set("trigger_id", cmd.TriggerID)
	set("api_app_id", cmd.APIAppID)
	return v
}

// InteractionForm is the form Slack posts for an interaction: the callback
// as JSON in the "payload" field.
func InteractionForm(ic slack.InteractionCallback) (url.Values, error) {
	b, err := json.Marshal(&ic)
	if err != nil {
		return nil, fmt.Errorf("encode interaction: %w", err)
	}
	return url.Values{"payload": {string(b)}}, nil
}

// BlockAction builds the block_actions callback of userID clicking the button
// actionID (carrying value) on the message channel/messageTS.
func BlockAction(userID, actionID, value, channel, messageTS, responseURL string) slack.InteractionCallback {
	ic := slack.InteractionCallback{
		Type:        slack.InteractionTypeBlockActions,
		User:        slack.User{ID: userID, Name: userID},
		Channel:     slack.Channel{GroupConversation: slack.GroupConversation{Conversation: slack.Conversation{ID: channel}}},
		ResponseURL: responseURL,
		TriggerID:   "trigger-" + actionID + "-" + userID,
		Container:   slack.Container{Type: "message", ChannelID: channel, MessageTs: messageTS},
		Message:     slack.Message{Msg: slack.Msg{Timestamp: messageTS, Channel: channel}},
	}
	ic.ActionCallback.BlockActions = []*slack.BlockAction{{ActionID: actionID, BlockID: "approval", Value: value, Type: "button"}}
	return ic
}

// BlockActionFromHome builds the block_actions callback of userID clicking
// the button actionID (carrying value) on their Home tab: as Slack sends it,
// with the view and no channel, message or response_url.
func BlockActionFromHome(userID, actionID, value string) slack.InteractionCallback {
	ic := slack.InteractionCallback{
		Type:      slack.InteractionTypeBlockActions,
		User:      slack.User{ID: userID, Name: userID},
		TriggerID: "trigger-home-" + actionID + "-" + userID,
		Container: slack.Container{Type: "view", ViewID: "VHOME" + userID},
		View:      slack.View{ID: "VHOME" + userID, Type: slack.VTHomeTab},
	}
	ic.ActionCallback.BlockActions = []*slack.BlockAction{{ActionID: actionID, BlockID: "home", Value: value, Type: "button"}}
	return ic
}
