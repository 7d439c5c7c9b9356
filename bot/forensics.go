package bot

import (
	"context"
	"fmt"
	"slices"

	"github.com/slack-go/slack"

	"github.com/defenderbot/defenderbot/actions"
	"github.com/defenderbot/defenderbot/approval"
)

// sendPackageLink sends the download link of a succeeded investigation
// package collection by direct message to the request's requester and
// approvers, and to no one else: the package is forensic data. The link is
// never posted in a channel or thread and never logged; the audit records
// to whom it was sent, not the link.
func (s *Service) sendPackageLink(ctx context.Context, r *approval.Request) {
	s.sendPackageLinkOf(ctx, r, r.MachineActionID, "")
}

// sendPackageLinks sends the link of each machine's package of a bulk
// collection that succeeded.
func (s *Service) sendPackageLinks(ctx context.Context, r *approval.Request) {
	for _, t := range r.Targets {
		if t.State == approval.TargetSucceeded && t.MachineActionID != "" {
			s.sendPackageLinkOf(ctx, r, t.MachineActionID, cmpOr(t.MachineName, t.MachineID))
		}
	}
}

// sendPackageLinkOf sends the link of the package collected by machine
// action maID (of machine, for a bulk request).
func (s *Service) sendPackageLinkOf(ctx context.Context, r *approval.Request, maID, machine string) {
	ref := requestRef(r)
	if machine != "" {
		ref += " for " + escapeMrkdwn(machine)
	}
	recipients := []string{r.RequesterID}
	for _, a := range r.Approvals {
		if !slices.Contains(recipients, a.UserID) {
			recipients = append(recipients, a.UserID)
		}
	}
	res, err := s.deps.Defender.Run(ctx, actions.GetPackageURI, actions.Args{ActionID: maID})
	if err != nil || res.PackageURI == "" {
		msg := "Defender returned no link"
		if err != nil {
			msg = explainDefenderError(err, actions.GetPackageURI)
		}
		s.log.WarnContext(ctx, "getting the investigation package link failed", "request", r.ID, "machine_action_id", maID, "error", err)
		s.core.Audit(ctx, "system", "package_link", r.ID, map[string]any{"machine_action_id": maID, "sent": false, "error": msg})
		s.dm(ctx, r.RequesterID, fmt.Sprintf(":warning: The investigation package of request %s is collected, but its download link could not be fetched: %s Get it with `defenderbot action get-package-uri --action-id %s`.",
			ref, escapeMrkdwn(msg), escapeMrkdwn(maID)))
		return
	}
	text := fmt.Sprintf(":package: The investigation package of request %s is ready. This link works only for a short time and is for you alone; do not share it in a channel:\n%s",
		ref, escapeMrkdwn(res.PackageURI))
	var sent, failed []string
	for _, u := range recipients {
		err := s.slackRetry(ctx, func() error {
			_, _, err := s.deps.Slack.PostMessageContext(ctx, u, slack.MsgOptionText(text, false))
			return err
		})
		if err != nil {
			// The error is Slack's (it does not quote the message).
			s.log.ErrorContext(ctx, "direct message with the package link failed", "request", r.ID, "user", u, "error", err)
			failed = append(failed, u)
			continue
		}
		sent = append(sent, u)
	}
	d := map[string]any{"machine_action_id": maID, "sent": len(sent) > 0, "sent_to": sent}
	if len(failed) > 0 {
		d["failed"] = failed
	}
	s.core.Audit(ctx, "system", "package_link", r.ID, d)
}
