package bot

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/defenderbot/defenderbot/graph"
	"github.com/defenderbot/defenderbot/internal/httpwait"
)

// Block and action IDs of an alert card. Each button's value is the alert ID.
const (
	blockAlertActions  = "alert_actions"
	actionAlertIsolate = "alert_isolate"
	actionAlertScan    = "alert_scan"
	actionAlertCollect = "alert_collect"
	actionAlertAssign  = "alert_assign"
	actionAlertResolve = "alert_resolve"
	actionAlertComment = "alert_comment"
)

// AlertCardOptions shapes alert cards.
type AlertCardOptions struct {
	// Collect shows "Collect package" (only when that action exists).
	Collect bool
}

// severityMarks prefix the header so the channel can be scanned by eye.
var severityMarks = map[string]string{
	graph.SeverityHigh: "🔴", graph.SeverityMedium: "🟠", graph.SeverityLow: "🟡", graph.SeverityInformational: "⚪",
}

// words turns Graph's camelCase enum values into words: inProgress → In Progress.
func words(s string) string {
	if s == "" {
		return "—"
	}
	var b strings.Builder
	for i, r := range s {
		switch {
		case i == 0:
			b.WriteString(strings.ToUpper(string(r)))
		case r >= 'A' && r <= 'Z':
			b.WriteString(" " + string(r))
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func alertTime(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return fmtTime(t)
}

// portalURL is the alert's https link in the Defender portal, or "".
func portalURL(a *graph.Alert) string {
	u, err := url.Parse(a.AlertWebURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return ""
	}
	return u.String()
}

// portalLink returns a mrkdwn link to the alert in the Defender portal, or
// "" when Graph gave no https link.
func portalLink(a *graph.Alert) string {
	if u := portalURL(a); u != "" {
		return "<" + escapeMrkdwn(u) + "|Open in Microsoft Defender>"
	}
	return ""
}

// alertCard renders an alert: what it is, where (devices, users), its state
// (who resolved it and why), the portal link and the action buttons.
func alertCard(a *graph.Alert, opt AlertCardOptions) []slack.Block {
	title := a.Title
	if title == "" {
		title = "Untitled alert"
	}
	header := strings.TrimSpace(severityMarks[a.Severity] + " " + words(a.Severity) + " alert: " + title)
	if len([]rune(header)) > 150 { // Slack's header limit
		header = string([]rune(header)[:149]) + "…"
	}
	blocks := []slack.Block{slack.NewHeaderBlock(plain(header))}

	status := words(a.Status)
	if a.AssignedTo != "" {
		status += " · assigned to " + escapeMrkdwn(a.AssignedTo)
	}
	mitre := "—"
	if len(a.MitreTechniques) > 0 {
		mitre = escapeMrkdwn(strings.Join(a.MitreTechniques, ", "))
	}
	blocks = append(blocks, slack.NewSectionBlock(nil, []*slack.TextBlockObject{
		mrkdwn("*Severity*\n" + words(a.Severity)),
		mrkdwn("*Status*\n" + status),
		mrkdwn("*Category*\n" + escapeMrkdwn(words(a.Category))),
		mrkdwn("*Detection source*\n" + escapeMrkdwn(words(a.DetectionSource))),
		mrkdwn("*MITRE techniques*\n" + mitre),
		mrkdwn("*Activity*\n" + alertTime(a.FirstActivityDateTime) + " → " + alertTime(a.LastActivityDateTime)),
	}, nil))
	if d := strings.TrimSpace(a.Description); d != "" {
		if r := []rune(d); len(r) > 600 {
			d = string(r[:600]) + "…"
		}
		blocks = append(blocks, section(quote(d)))
	}
	var devices []string
	for _, d := range a.Devices() {
		name := d.DeviceDNSName
		if name == "" {
			name = "(name unknown)"
		}
		devices = append(devices, fmt.Sprintf("• %s `%s` · risk %s · health %s", escapeMrkdwn(name),
			escapeMrkdwn(d.MdeDeviceID), escapeMrkdwn(words(d.RiskScore)), escapeMrkdwn(words(d.HealthStatus))))
	}
	if len(devices) > 0 {
		blocks = append(blocks, section("*Devices*\n"+listLines(devices)))
	}
	var users []string
	for _, u := range a.Users() {
		if u.UserAccount == nil {
			continue
		}
		acc := u.UserAccount
		name := acc.UserPrincipalName
		if name == "" && acc.AccountName != "" {
			name = acc.AccountName
			if acc.DomainName != "" {
				name = acc.DomainName + `\` + name
			}
		}
		if acc.DisplayName != "" && acc.DisplayName != name {
			name = acc.DisplayName + " (" + name + ")"
		}
		users = append(users, "• "+escapeMrkdwn(name))
	}
	if len(users) > 0 {
		blocks = append(blocks, section("*Users*\n"+listLines(users)))
	}
	if a.Status == graph.StatusResolved {
		blocks = append(blocks, section(resolution(a)))
	}
	ctx := fmt.Sprintf("Alert `%s` · created %s", escapeMrkdwn(a.ID), alertTime(a.CreatedDateTime))
	if l := portalLink(a); l != "" {
		ctx += " · " + l
	}
	blocks = append(blocks, contextBlock(ctx))
	blocks = append(blocks, alertButtons(a, opt))
	return blocks
}

// maxListed bounds the devices and users a card lists: a section's text
// holds 3,000 characters, and the portal has the rest.
const maxListed = 10

// listLines joins at most maxListed lines and says how many were left out.
func listLines(lines []string) string {
	if len(lines) <= maxListed {
		return strings.Join(lines, "\n")
	}
	return strings.Join(lines[:maxListed], "\n") + fmt.Sprintf("\n… and %d more (see the portal)", len(lines)-maxListed)
}

// resolution says who resolved the alert and why: the assignee, the
// classification and determination, and the latest comment.
func resolution(a *graph.Alert) string {
	who := a.AssignedTo
	if who == "" {
		who = "unknown"
	}
	s := fmt.Sprintf("*Resolved* by %s", escapeMrkdwn(who))
	if a.ResolvedDateTime != nil {
		s += " at " + fmtTime(*a.ResolvedDateTime)
	}
	s += fmt.Sprintf("\n*Classification* %s · *Determination* %s", escapeMrkdwn(words(a.Classification)),
		escapeMrkdwn(words(a.Determination)))
	if n := len(a.Comments); n > 0 {
		c := a.Comments[n-1]
		s += "\n" + quote(c.Comment) + "\n— " + escapeMrkdwn(c.CreatedByDisplayName)
	}
	return s
}

func alertButtons(a *graph.Alert, opt AlertCardOptions) *slack.ActionBlock {
	btn := func(id, text string) *slack.ButtonBlockElement {
		return slack.NewButtonBlockElement(id, a.ID, plain(text))
	}
	var els []slack.BlockElement
	if len(a.Devices()) > 0 {
		els = append(els, btn(actionAlertIsolate, "Isolate device").WithStyle(slack.StyleDanger), btn(actionAlertScan, "Run scan"))
		if opt.Collect {
			els = append(els, btn(actionAlertCollect, "Collect package"))
		}
	}
	if a.Status != graph.StatusResolved {
		els = append(els, btn(actionAlertAssign, "Assign to me"), btn(actionAlertResolve, "Resolve…").WithStyle(slack.StylePrimary))
	}
	els = append(els, btn(actionAlertComment, "Comment…"))
	return slack.NewActionBlock(blockAlertActions, els...)
}

// alertFallback is the notification text of a card.
func alertFallback(a *graph.Alert) string {
	return escapeMrkdwn(fmt.Sprintf("%s alert: %s", words(a.Severity), a.Title))
}

// AlertPoster posts alert cards and updates them in place; it implements
// alerts.Poster.
type AlertPoster struct {
	api   SlackAPI
	opt   AlertCardOptions
	retry SlackRetry
	sleep func(context.Context, time.Duration) error
}

// NewAlertPoster returns a poster writing through api, retrying a Slack
// call within retry (SlackRetryFrom).
func NewAlertPoster(api SlackAPI, opt AlertCardOptions, retry SlackRetry) (*AlertPoster, error) {
	if err := retry.check(); err != nil {
		return nil, fmt.Errorf("bot: alert poster: %w", err)
	}
	return &AlertPoster{api: api, opt: opt, retry: retry, sleep: httpwait.Sleep}, nil
}

// PostAlert posts a new card and returns its ts.
func (p *AlertPoster) PostAlert(ctx context.Context, channel string, a *graph.Alert) (string, error) {
	var ts string
	err := slackRetry(ctx, p.sleep, p.retry, func() error {
		var err error
		_, ts, err = p.api.PostMessageContext(ctx, channel, slack.MsgOptionText(alertFallback(a), false),
			slack.MsgOptionBlocks(alertCard(a, p.opt)...))
		return err
	})
	if err != nil {
		return "", fmt.Errorf("post alert %s: %w", a.ID, err)
	}
	return ts, nil
}

// UpdateAlert rewrites the card at channel/ts.
func (p *AlertPoster) UpdateAlert(ctx context.Context, channel, ts string, a *graph.Alert) error {
	err := slackRetry(ctx, p.sleep, p.retry, func() error {
		_, _, _, err := p.api.UpdateMessageContext(ctx, channel, ts, slack.MsgOptionText(alertFallback(a), false),
			slack.MsgOptionBlocks(alertCard(a, p.opt)...))
		return err
	})
	if err != nil {
		return fmt.Errorf("update alert card %s: %w", a.ID, err)
	}
	return nil
}
