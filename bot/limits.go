package bot

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/slack-go/slack"
)

// Slack refuses a whole message or view (invalid_blocks) when one block
// breaks a Block Kit limit. The limits count characters after escaping, and
// user text grows when escaped ("&" is "&amp;"), so every rendered message
// and view passes through fitMessage or fitView: over-long text is cut
// visibly, and the full text stays in the store and the audit trail.
const (
	maxMessageBlocks  = 50
	maxViewBlocks     = 100
	maxSectionText    = 3000
	maxSectionFields  = 10
	maxFieldText      = 2000
	maxHeaderText     = 150
	maxContextItems   = 10
	maxTextObject     = 3000
	maxButtonText     = 75
	maxInputLabel     = 2000
	maxModalTitleText = 24 // title, submit and close
)

// truncatedNote ends a cut mrkdwn text.
const truncatedNote = "… _(truncated; the full text is in the audit trail)_"

// fitMessage returns blocks cut to a message's limits.
func fitMessage(blocks []slack.Block) []slack.Block { return fitBlocks(blocks, maxMessageBlocks) }

// fitView returns v cut to a modal's or Home tab's limits.
func fitView(v slack.ModalViewRequest) slack.ModalViewRequest {
	v.Title = clampText(v.Title, maxModalTitleText)
	v.Submit = clampText(v.Submit, maxModalTitleText)
	v.Close = clampText(v.Close, maxModalTitleText)
	v.Blocks.BlockSet = fitBlocks(v.Blocks.BlockSet, maxViewBlocks)
	return v
}

// fitBlocks cuts every text to its block's limit, splits a section with
// more than ten fields, and keeps at most max blocks: the first ones, a note
// saying how many were left out, and the last one (the buttons).
func fitBlocks(blocks []slack.Block, max int) []slack.Block {
	out := make([]slack.Block, 0, len(blocks))
	for _, b := range blocks {
		switch b := b.(type) {
		case *slack.SectionBlock:
			b.Text = clampText(b.Text, maxSectionText)
			for i := range b.Fields {
				b.Fields[i] = clampText(b.Fields[i], maxFieldText)
			}
			fields := b.Fields
			if len(fields) > maxSectionFields {
				b.Fields = fields[:maxSectionFields]
			}
			out = append(out, b)
			for fields = fields[min(len(fields), maxSectionFields):]; len(fields) > 0; {
				n := min(len(fields), maxSectionFields)
				out = append(out, slack.NewSectionBlock(nil, fields[:n], nil))
				fields = fields[n:]
			}
			continue
		case *slack.HeaderBlock:
			b.Text = clampText(b.Text, maxHeaderText)
		case *slack.ContextBlock:
			els := b.ContextElements.Elements
			if len(els) > maxContextItems {
				els = els[:maxContextItems]
			}
			for i, e := range els {
				if t, ok := e.(*slack.TextBlockObject); ok {
					els[i] = clampText(t, maxTextObject)
				}
			}
			b.ContextElements.Elements = els
		case *slack.ActionBlock:
			if b.Elements != nil {
				for _, e := range b.Elements.ElementSet {
					if btn, ok := e.(*slack.ButtonBlockElement); ok {
						btn.Text = clampText(btn.Text, maxButtonText)
					}
				}
			}
		case *slack.InputBlock:
			b.Label = clampText(b.Label, maxInputLabel)
		}
		out = append(out, b)
	}
	if len(out) > max {
		left := len(out) - (max - 2)
		last := out[len(out)-1]
		out = append(out[:max-2], contextBlock(fmt.Sprintf("_%d more blocks not shown (Slack shows at most %d)._", left-1, max)), last)
	}
	return out
}

// clampText returns t, or a copy cut to max characters.
func clampText(t *slack.TextBlockObject, max int) *slack.TextBlockObject {
	if t == nil || utf8.RuneCountInString(t.Text) <= max {
		return t
	}
	c := *t
	if c.Type == slack.MarkdownType {
		c.Text = cutMrkdwn(c.Text, max)
	} else {
		c.Text = string([]rune(c.Text)[:max-1]) + "…"
	}
	return &c
}

// cutMrkdwn cuts escaped mrkdwn to at most max characters ending with
// truncatedNote, never in the middle of an entity (&amp;) or of a <…>
// mention or link.
func cutMrkdwn(s string, max int) string {
	note := truncatedNote
	if utf8.RuneCountInString(note)*4 > max {
		note = "…"
	}
	r := []rune(s)[:max-utf8.RuneCountInString(note)]
	kept := string(r)
	if i := strings.LastIndexByte(kept, '&'); i >= 0 && !strings.Contains(kept[i:], ";") {
		kept = kept[:i]
	}
	if i := strings.LastIndexByte(kept, '<'); i >= 0 && !strings.Contains(kept[i:], ">") {
		kept = kept[:i]
	}
	return kept + note
}

// notInChannelErrors are Slack's answers when the bot cannot post in a
// channel because of where it is (not what it sent).
var notInChannelErrors = []string{"channel_not_found", "not_in_channel", "is_archived", "restricted_action"}

// isChannelError reports whether err means the bot cannot post in the channel.
func isChannelError(err error) bool {
	var se slack.SlackErrorResponse
	if !errors.As(err, &se) {
		return false
	}
	return slices.Contains(notInChannelErrors, se.Err)
}

// slackErrorCode is Slack's error code in err, or "" when it has none.
func slackErrorCode(err error) string {
	var se slack.SlackErrorResponse
	if errors.As(err, &se) {
		return se.Err
	}
	return ""
}

// approvalPostFailed tells the requester why their request could not be
// posted for approval: only a channel error is blamed on the channel.
func approvalPostFailed(err error, channel string) string {
	if isChannelError(err) {
		return fmt.Sprintf(":warning: Could not post the approval request in <#%s> (is the bot a member of that channel?). Nothing was done.", escapeMrkdwn(channel))
	}
	why := "Slack could not be reached"
	if code := slackErrorCode(err); code != "" {
		why = "Slack refused the message (`" + escapeMrkdwn(code) + "`)"
	}
	return fmt.Sprintf(":warning: Could not post the approval request in <#%s>: %s. Nothing was done; the cause is in defenderbot's log.", escapeMrkdwn(channel), why)
}
