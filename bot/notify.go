package bot

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"

	"github.com/slack-go/slack"

	"github.com/defenderbot/defenderbot/approval"
)

// invocation is who asked, and where to answer them.
type invocation struct {
	// AlertID is the alert card a click came from, if any.
	AlertID     string
	UserID      string
	UserName    string
	ChannelID   string
	ResponseURL string
	FromHome    bool // clicked on the Home tab (no channel, no response_url)
}

// responseURLAllowed reports whether raw is an https URL on one of
// Config.ResponseURLHosts (plain http only for a loopback host listed there,
// as the demo's and tests' Slack stand-in is).
func (s *Service) responseURLAllowed(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.User != nil || !slices.Contains(s.cfg.ResponseURLHosts, u.Host) {
		return false
	}
	switch u.Scheme {
	case "https":
		return true
	case "http":
		ip := net.ParseIP(u.Hostname())
		return ip != nil && ip.IsLoopback()
	}
	return false
}

// reply answers the user privately: through the slash command's
// response_url when there is one (works in any channel, even where the bot
// is not a member), else chat.postEphemeral.
func (s *Service) reply(ctx context.Context, inv invocation, text string, blocks ...slack.Block) {
	if inv.ResponseURL != "" && !s.responseURLAllowed(inv.ResponseURL) {
		// It came signed from Slack, but it is stored and carried in modal
		// metadata: never let it point the bot at another host.
		s.log.WarnContext(ctx, "response_url is not a Slack address: replying with chat.postEphemeral instead")
		inv.ResponseURL = ""
	}
	if inv.ResponseURL != "" {
		msg := &slack.WebhookMessage{ResponseType: slack.ResponseTypeEphemeral, Text: text}
		if len(blocks) > 0 {
			msg.Blocks = &slack.Blocks{BlockSet: blocks}
		}
		err := slack.PostWebhookCustomHTTPContext(ctx, inv.ResponseURL, s.deps.HTTPClient, msg)
		if err == nil {
			return
		}
		// A response_url lets anyone post into the channel for 30 minutes:
		// keep it out of the log.
		s.log.WarnContext(ctx, "response_url post failed; falling back to chat.postEphemeral",
			"error", strings.ReplaceAll(err.Error(), inv.ResponseURL, "<response_url>"))
	}
	if inv.ChannelID == "" {
		// Nowhere to answer privately (a Home tab click): a direct message.
		s.dm(ctx, inv.UserID, text)
		return
	}
	if inv.UserID == "" {
		return
	}
	opts := []slack.MsgOption{slack.MsgOptionText(text, false)}
	if len(blocks) > 0 {
		opts = append(opts, slack.MsgOptionBlocks(blocks...))
	}
	err := s.slackRetry(ctx, func() error {
		_, err := s.deps.Slack.PostEphemeralContext(ctx, inv.ChannelID, inv.UserID, opts...)
		return err
	})
	if err != nil {
		s.log.ErrorContext(ctx, "chat.postEphemeral failed", "channel", inv.ChannelID, "user", inv.UserID, "error", err)
	}
}

// dm tells a user something by direct message (used for outcomes that arrive
// long after their response_url expired).
func (s *Service) dm(ctx context.Context, userID, text string) {
	if userID == "" {
		return
	}
	err := s.slackRetry(ctx, func() error {
		_, _, err := s.deps.Slack.PostMessageContext(ctx, userID, slack.MsgOptionText(text, false))
		return err
	})
	if err != nil {
		s.log.ErrorContext(ctx, "direct message failed", "user", userID, "error", err)
	}
}

// updateApprovalMessage re-renders the approval message from r's state.
// Another goroutine or replica may finish the request while a non-final
// render is in flight, and Slack keeps whichever chat.update lands last: so
// after a non-final update the stored request is re-read, and if it has
// become final the message is rendered again from it. The final state thus
// always wins, whatever order the updates reach Slack in.
func (s *Service) updateApprovalMessage(ctx context.Context, r *approval.Request) {
	if r.ApprovalChannel == "" || r.ApprovalTS == "" {
		return
	}
	s.chatUpdate(ctx, r)
	if r.State.Final() {
		return
	}
	cur, err := s.core.Get(ctx, r.ID)
	if err != nil {
		s.log.WarnContext(ctx, "re-reading the request after chat.update failed", "request", r.ID, "error", err)
		return
	}
	if cur.State.Final() && cur.ApprovalTS != "" {
		s.chatUpdate(ctx, cur)
	}
}

func (s *Service) chatUpdate(ctx context.Context, r *approval.Request) {
	err := s.slackRetry(ctx, func() error {
		_, _, _, err := s.deps.Slack.UpdateMessageContext(ctx, r.ApprovalChannel, r.ApprovalTS, s.cardMsg(ctx, r)...)
		return err
	})
	if err != nil {
		s.log.ErrorContext(ctx, "chat.update of the approval message failed", "request", r.ID, "error", err)
	}
	if r.State.Final() {
		s.dropCardInfo(r.ID)
	}
}

// threadReply posts text under the approval message.
func (s *Service) threadReply(ctx context.Context, r *approval.Request, text string) {
	if r.ApprovalChannel == "" || r.ApprovalTS == "" {
		return
	}
	err := s.slackRetry(ctx, func() error {
		_, _, err := s.deps.Slack.PostMessageContext(ctx, r.ApprovalChannel,
			slack.MsgOptionText(text, false), slack.MsgOptionTS(r.ApprovalTS))
		return err
	})
	if err != nil {
		s.log.ErrorContext(ctx, "thread reply failed", "request", r.ID, "error", err)
	}
}

func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}
