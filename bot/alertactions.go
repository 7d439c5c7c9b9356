package bot

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/slack-go/slack"

	"github.com/defenderbot/defenderbot/actions"
	"github.com/defenderbot/defenderbot/approval"
	"github.com/defenderbot/defenderbot/defender"
	"github.com/defenderbot/defenderbot/graph"
)

// AlertSource reads the alert behind a card's button; *graph.Client
// implements it.
type AlertSource interface {
	GetAlert(ctx context.Context, id string) (*graph.Alert, error)
}

// AlertLinks remembers which alert a request was started from, so that the
// alert gets a comment once the action succeeded; store.Store implements it.
type AlertLinks interface {
	LinkRequestAlert(ctx context.Context, requestID, alertID string) error
	// RequestAlert returns "" for a request not started from an alert.
	RequestAlert(ctx context.Context, requestID string) (string, error)
}

// alertIDRe accepts Graph and Defender alert IDs (da637551227677560813_-961444813).
var alertIDRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$`)

// collectSpec returns the registry's investigation-package action, if any.
func collectSpec() (actions.Spec, bool) {
	for _, sp := range actions.All() {
		if sp.MachineActionType == "CollectInvestigationPackage" {
			return sp, true
		}
	}
	return actions.Spec{}, false
}

// AlertCardOptionsFromRegistry shows "Collect package" only when the
// registry has that action.
func AlertCardOptionsFromRegistry() AlertCardOptions {
	_, ok := collectSpec()
	return AlertCardOptions{Collect: ok}
}

// handleAlertAction handles a click on an alert card; false when a is not
// an alert card's button. Every state-changing click becomes an ordinary
// request: the same checks, approval (or approval.actions_without_approval)
// and audit as the slash command.
func (s *Service) handleAlertAction(ctx context.Context, cb slack.InteractionCallback, inv invocation, a *slack.BlockAction) bool {
	switch a.ActionID {
	case actionAlertIsolate, actionAlertScan, actionAlertCollect, actionAlertAssign, actionAlertResolve, actionAlertComment:
	default:
		return false
	}
	id := a.Value
	if !alertIDRe.MatchString(id) {
		return true
	}
	inv.AlertID = id
	switch a.ActionID {
	case actionAlertResolve, actionAlertComment:
		verb, title, status, inputs := "alert comment", "Comment on alert", "", []string{actions.ArgComment}
		if a.ActionID == actionAlertResolve {
			verb, title, status = "alert update", "Resolve alert", string(defender.AlertResolved)
			inputs = []string{actions.ArgClassification, actions.ArgDetermination, actions.ArgComment}
		}
		trigger := cb.TriggerID
		s.goAsync(ctx, "alert form", func(ctx context.Context) {
			v, ok := alertModal(verb, title, id, status, inputs, inv)
			if !ok {
				return
			}
			if err := s.slackRetry(ctx, func() error {
				_, err := s.deps.Slack.OpenViewContext(ctx, trigger, v)
				return err
			}); err != nil {
				s.log.ErrorContext(ctx, "views.open (alert) failed", "error", err)
				s.postEphemeral(ctx, inv, ":warning: Could not open the form; click again.")
			}
		})
	case actionAlertAssign:
		c := Command{Verb: "alert update", Action: actions.UpdateAlert, Args: actions.Args{AlertID: id, Owner: cmpOr(inv.UserName, inv.UserID)}}
		s.goAsync(ctx, "alert assign", func(ctx context.Context) { s.submitValid(ctx, inv, c) })
	default:
		s.goAsync(ctx, "alert "+a.ActionID, func(ctx context.Context) { s.deviceActionFromAlert(ctx, inv, a.ActionID, id) })
	}
	return true
}

// deviceActionFromAlert requests Isolate, Run scan or Collect package on
// the alert's device, read afresh from Graph (never from the click).
func (s *Service) deviceActionFromAlert(ctx context.Context, inv invocation, actionID, alertID string) {
	if s.deps.Alerts == nil {
		s.postEphemeral(ctx, inv, ":warning: The alert feed is not configured here (alerts.enabled).")
		return
	}
	al, err := s.deps.Alerts.GetAlert(ctx, alertID)
	if err != nil {
		s.log.ErrorContext(ctx, "reading the alert failed", "alert_id", alertID, "error", err)
		s.postEphemeral(ctx, inv, fmt.Sprintf(":warning: Could not read alert `%s` from Microsoft Graph; try again.", escapeMrkdwn(alertID)))
		return
	}
	devices := al.Devices()
	if len(devices) == 0 || devices[0].MdeDeviceID == "" {
		s.postEphemeral(ctx, inv, fmt.Sprintf(":information_source: Alert `%s` names no Defender device.", escapeMrkdwn(alertID)))
		return
	}
	c := Command{Machine: devices[0].MdeDeviceID, Args: actions.Args{Comment: alertComment(al)}}
	switch actionID {
	case actionAlertIsolate:
		c.Action, c.Args.IsolationType = actions.Isolate, string(defender.IsolationFull)
	case actionAlertScan:
		c.Action, c.Args.ScanType = actions.Scan, string(defender.ScanQuick)
	case actionAlertCollect:
		sp, ok := collectSpec()
		if !ok {
			return
		}
		c.Action = sp.Name
	}
	sp, _ := c.Action.Spec()
	c.Verb = sp.Verb
	s.submitValid(ctx, inv, c)
}

// cmpOr returns the first non-empty string.
func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// alertComment is the comment of an action started from an alert: the
// alert, for the approvers and for Defender's action log.
func alertComment(a *graph.Alert) string {
	s := fmt.Sprintf("From Defender alert %s: %s", a.ID, a.Title)
	if u := portalURL(a); u != "" {
		s += " " + u
	}
	if r := []rune(s); len(r) > actions.MaxCommentLen {
		s = string(r[:actions.MaxCommentLen-1]) + "…"
	}
	return s
}

// submitValid validates c like a slash command and submits it.
func (s *Service) submitValid(ctx context.Context, inv invocation, c Command) {
	if errs := validateCommand(&c); len(errs) > 0 {
		msgs := make([]string, len(errs))
		for i, e := range errs {
			msgs[i] = e.msg
		}
		s.postEphemeral(ctx, inv, ":warning: "+escapeMrkdwn(strings.Join(msgs, "; ")))
		return
	}
	s.submit(ctx, inv, c)
}

// linkAlert remembers the alert a request came from.
func (s *Service) linkAlert(ctx context.Context, inv invocation, requestID string) {
	if inv.AlertID == "" || s.deps.AlertLinks == nil {
		return
	}
	if err := s.deps.AlertLinks.LinkRequestAlert(ctx, requestID, inv.AlertID); err != nil {
		s.log.WarnContext(ctx, "linking the request to its alert failed", "request", requestID, "alert_id", inv.AlertID, "error", err)
	}
}

// commentOnAlert adds a comment to the alert a succeeded request came from:
// what was done, the request ID and who approved. It goes through the
// comment-alert action, so defender.alerts_api chooses the API.
func (s *Service) commentOnAlert(ctx context.Context, r *approval.Request) {
	if s.deps.AlertLinks == nil || r.Action == actions.CommentAlert || r.Action == actions.UpdateAlert {
		return
	}
	alertID, err := s.deps.AlertLinks.RequestAlert(ctx, r.ID)
	if err != nil {
		s.log.WarnContext(ctx, "reading the request's alert failed", "request", r.ID, "error", err)
		return
	}
	if alertID == "" {
		return
	}
	approvers := r.Approvers()
	approved := "no approval required"
	if len(approvers) > 0 {
		approved = "approved by Slack user " + strings.Join(approvers, ", ")
	}
	who := r.RequesterName
	if who == "" {
		who = r.RequesterID
	}
	target := ""
	if r.MachineName != "" {
		target = " on " + r.MachineName
	}
	text := fmt.Sprintf("defenderbot: %s%s succeeded (request %s; requested by %s, %s).",
		r.Action.Title(), target, r.ID, who, approved)
	if _, err := s.deps.Defender.Run(ctx, actions.CommentAlert, actions.Args{AlertID: alertID, Comment: text}); err != nil {
		s.log.WarnContext(ctx, "commenting on the alert failed", "request", r.ID, "alert_id", alertID, "error", err)
		return
	}
	s.core.Audit(ctx, "system", "alert_comment", r.ID, map[string]any{"alert_id": alertID})
}
