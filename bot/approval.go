package bot

// This file is the Slack edge of the approval workflow: it hands requests,
// votes and rejections to the approval core (package approval, which makes
// every decision) and words what the core reports for the people involved.
// It never trusts anything from a button but the request ID.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/defenderbot/defenderbot/actions"
	"github.com/defenderbot/defenderbot/approval"
	"github.com/defenderbot/defenderbot/defender"
)

// auditIOCSync names the on-demand IOC sync in audit lines.
const auditIOCSync = "iocs-sync"

// auditAction names a command's action in audit lines: the action, or the
// bot's own verb as it was always recorded ("iocs-sync").
func auditAction(c Command) string {
	if c.Action != "" {
		return string(c.Action)
	}
	return strings.ReplaceAll(c.Verb, " ", "-")
}

// submit is the common path of a valid command, from a slash command or a
// modal. It runs asynchronously and answers the user through inv.
func (s *Service) submit(ctx context.Context, inv invocation, c Command) {
	if err := s.core.CheckRequester(ctx, inv.UserID, auditAction(c)); err != nil {
		var ref *approval.Refusal
		if errors.As(err, &ref) {
			s.reply(ctx, inv, ":no_entry: You are not allowed to request Defender actions. Ask an administrator to add you (or your user group) to approval.requesters.")
			return
		}
		s.reply(ctx, inv, ":warning: Could not check whether you may request Defender actions (Slack user group look-up failed). Try again in a minute.")
		return
	}
	switch c.Verb {
	case verbIOCStatus:
		s.iocStatus(ctx, inv)
		return
	case verbIOCSync:
		s.iocSync(ctx, inv)
		return
	}
	sub := approval.Submission{Action: c.Action, Args: c.Args, RequesterID: inv.UserID, RequesterName: inv.UserName,
		ChannelID: inv.ChannelID, ResponseURL: inv.ResponseURL, ApprovalChannel: s.cfg.ApprovalChannel}
	if len(c.Machines) > 0 {
		s.submitBulk(ctx, inv, c, sub)
		return
	}
	var machine *defender.Machine
	if c.Action.TargetsMachine() {
		m, msg := s.resolveMachine(ctx, c.Machine)
		if m == nil {
			s.reply(ctx, inv, msg)
			return
		}
		sub.Args.MachineID = m.ID
		sub.MachineName = m.ComputerDNSName
		machine = m
	}
	switch s.core.RouteOf(c.Action) {
	case approval.RouteDirect:
		s.runDirect(ctx, inv, c.Action, sub.Args)
	case approval.RouteNoApproval:
		s.runUnapproved(ctx, inv, sub)
	default:
		s.createRequest(ctx, inv, sub, machine)
	}
}

// notRecordedText is told when the store could not record a new request.
const notRecordedText = ":warning: Could not record the request (database error); nothing was done. Try again."

// runDirect runs a read-only action that needs no approval (by default
// get-action) and shows its output.
func (s *Service) runDirect(ctx context.Context, inv invocation, n actions.Name, a actions.Args) {
	res, err := s.core.RunDirect(ctx, inv.UserID, n, a)
	switch {
	case errors.Is(err, approval.ErrNotAudited):
		s.reply(ctx, inv, ":warning: "+approval.NotAuditedText)
	case err != nil:
		s.reply(ctx, inv, ":warning: "+escapeMrkdwn(explainDefenderError(err, n)))
	default:
		s.reply(ctx, inv, n.Title(), renderOutput(n.Title(), res.Output)...)
	}
}

// runUnapproved records a request that needs no approval and executes it.
func (s *Service) runUnapproved(ctx context.Context, inv invocation, sub approval.Submission) {
	r, err := s.core.CreateApproved(ctx, sub)
	if err != nil {
		s.reply(ctx, inv, notRecordedText)
		return
	}
	s.linkAlert(ctx, inv, r.ID)
	s.reply(ctx, inv, fmt.Sprintf(":arrow_forward: Request %s needs no approval (approval.actions_without_approval); running it now.", requestRef(r)))
	if err := s.core.Execute(ctx, r); err != nil {
		s.reply(ctx, inv, ":warning: The request is recorded but could not be started (database error); it will be retried shortly.")
	}
}

// resolveMachine finds the one machine a <machine> argument names. On
// failure it returns nil and a message for the user.
func (s *Service) resolveMachine(ctx context.Context, query string) (*defender.Machine, string) {
	if machineIDRe.MatchString(query) {
		m, err := s.deps.Defender.GetMachine(ctx, query)
		if err != nil {
			if defender.IsNotFound(err) {
				return nil, fmt.Sprintf(":warning: No machine with ID `%s` in Defender. Check the ID in the Defender portal's device inventory.", escapeMrkdwn(query))
			}
			return nil, ":warning: Could not look the machine up: " + escapeMrkdwn(explainDefenderError(err, actions.GetAction))
		}
		return m, ""
	}
	ms, err := s.deps.Defender.FindMachinesByName(ctx, query)
	if err != nil {
		return nil, ":warning: Could not look the machine up: " + escapeMrkdwn(explainDefenderError(err, actions.GetAction))
	}
	if len(ms) != 1 {
		return nil, renderMachineChoices(query, ms)
	}
	return &ms[0], ""
}

// createRequest records a pending request and posts it for approval.
// Its card shows the machine's context (m is the record already read, or
// nil): what arrives within ContextWait is posted with it, the rest by an
// update.
func (s *Service) createRequest(ctx context.Context, inv invocation, sub approval.Submission, m *defender.Machine) *approval.Request {
	r, err := s.core.Create(ctx, sub)
	if err != nil {
		s.reply(ctx, inv, notRecordedText)
		return nil
	}
	lookup := s.startContext(ctx, r, m)
	complete := true
	if lookup != nil {
		info := lookup.Wait(ctx, s.cfg.ContextWait)
		s.setCardInfo(ctx, r.ID, info)
		complete = info.Complete()
	}
	s.linkAlert(ctx, inv, r.ID)
	var ch, ts string
	err = s.slackRetry(ctx, func() error {
		var err error
		ch, ts, err = s.deps.Slack.PostMessageContext(ctx, s.cfg.ApprovalChannel, s.cardMsg(ctx, r)...)
		return err
	})
	if err != nil {
		s.log.ErrorContext(ctx, "posting the approval request failed", "request", r.ID, "error", err)
		// Nobody can approve a request nobody sees: withdraw it.
		s.core.Withdraw(ctx, r.ID, "the approval message could not be posted")
		s.reply(ctx, inv, approvalPostFailed(err, s.cfg.ApprovalChannel))
		return nil
	}
	s.core.SetApprovalMessage(ctx, r.ID, ch, ts)
	if !complete {
		s.goAsync(ctx, "card context", func(ctx context.Context) { s.completeContext(ctx, r, lookup) })
	}
	s.reply(ctx, inv, fmt.Sprintf(":inbox_tray: Request %s is waiting for %s in <#%s>.",
		requestRef(r), plural(r.RequiredApprovals, "approval"), escapeMrkdwn(ch)))
	return r
}

// adoptCard records channel/ts, the message a decision was clicked on, as
// request id's approval message when none is stored yet. Slack shows the
// card before chat.postMessage has answered the replica that posted it, so
// a quick click can beat the ts to the store; without this the card would
// never show the decision. Only a message in the approval channel is
// taken (the click is signed by Slack; the button carries the request ID).
func (s *Service) adoptCard(ctx context.Context, id, channel, ts string) {
	if ts == "" || channel == "" || channel != s.cfg.ApprovalChannel {
		return
	}
	r, err := s.core.Get(ctx, id)
	if err != nil || r.ApprovalTS != "" {
		return
	}
	s.core.SetApprovalMessage(ctx, id, channel, ts)
}

// approve handles an Approve click. Every refusal is told to the clicker
// only; the core audited it and changed nothing.
func (s *Service) approve(ctx context.Context, inv invocation, requestID string) {
	r, final, err := s.core.Approve(ctx, inv.UserID, requestID)
	if err != nil {
		s.tellDecisionError(ctx, inv, "approve", "approval", err)
		return
	}
	if !final {
		s.updateApprovalMessage(ctx, r)
		s.postEphemeral(ctx, inv, fmt.Sprintf(":ballot_box_with_check: Your approval is recorded (%d of %d).", len(r.Approvals), r.RequiredApprovals))
		return
	}
	// Only the caller whose vote completed the approval gets here.
	if err := s.core.Execute(ctx, r); err != nil {
		s.postEphemeral(ctx, inv, ":warning: Your approval is recorded, but the action could not be started (database error). defenderbot starts it automatically once the database is reachable again.")
	}
}

// expiredText is told to an approver who clicks on an expired request.
const expiredText = "This request has expired; nothing was run. Ask the requester to request it again."

// tellDecisionError tells the clicker why their click (verb: approve or
// reject) changed nothing; what names the decision in database errors.
func (s *Service) tellDecisionError(ctx context.Context, inv invocation, verb, what string, err error) {
	var ref *approval.Refusal
	if errors.As(err, &ref) {
		s.postEphemeral(ctx, inv, ":no_entry: "+s.refusalText(ref, verb))
		return
	}
	switch {
	case errors.Is(err, approval.ErrLookup):
		s.postEphemeral(ctx, inv, ":warning: Could not check whether you are an approver (Slack user group look-up failed). Try again in a minute.")
	case errors.Is(err, approval.ErrRead):
		s.postEphemeral(ctx, inv, ":warning: Could not read the request (database error). Try again.")
	default:
		s.postEphemeral(ctx, inv, ":warning: Could not record your "+what+" (database error). Try again.")
	}
}

// refusalText words a refusal for the approver who clicked.
func (s *Service) refusalText(ref *approval.Refusal, verb string) string {
	switch ref.Reason {
	case approval.ReasonNotApprover:
		return fmt.Sprintf("You are not an approver, so you cannot %s Defender actions.", verb)
	case approval.ReasonUnknownRequest:
		return "This request does not exist (any more)."
	case approval.ReasonExpired:
		return expiredText
	case approval.ReasonNotPending:
		if ref.State != "" {
			return fmt.Sprintf("This request is already %s.", ref.State)
		}
		return "This request was already decided."
	case approval.ReasonSelfApproval:
		return "You cannot approve your own request: another approver must."
	case approval.ReasonAlreadyVoted:
		return fmt.Sprintf("You already approved this request; it needs %s from distinct approvers.", plural(s.cfg.RequiredApprovals, "approval"))
	}
	return "Refused: " + string(ref.Reason) + "."
}

// postEphemeral tells the clicker something in the channel of the click.
func (s *Service) postEphemeral(ctx context.Context, inv invocation, text string) {
	s.reply(ctx, invocation{UserID: inv.UserID, ChannelID: inv.ChannelID}, text)
}

// canOpenReject checks a Reject click before opening the reason modal.
func (s *Service) canOpenReject(ctx context.Context, inv invocation, requestID string) bool {
	_, err := s.core.CheckDecider(ctx, inv.UserID, requestID)
	if err != nil {
		s.tellDecisionError(ctx, inv, "reject", "rejection", err)
	}
	return err == nil
}

// reject handles the reject modal's submission.
func (s *Service) reject(ctx context.Context, inv invocation, requestID, reason string) {
	if _, err := s.core.Reject(ctx, inv.UserID, requestID, reason); err != nil {
		s.tellDecisionError(ctx, inv, "reject", "rejection", err)
	}
}

// iocSync runs the IOC sync now, detached from the Slack request: a
// snapshot sync can take many minutes, far longer than a command's two
// minutes. It is scheduled anyway, so it needs no approval, but only
// approvers may trigger it (it writes to Defender). The requester (and the
// report channel, if configured) get the summary when it ends.
func (s *Service) iocSync(ctx context.Context, inv invocation) {
	if s.deps.IOCs == nil {
		s.reply(ctx, inv, "The IOC sync is not configured (iocs.enabled is off).")
		return
	}
	ok, err := s.core.IsApprover(ctx, inv.UserID)
	if err != nil || !ok {
		s.core.Refuse(ctx, inv.UserID, "", approval.ReasonNotApprover, map[string]any{"action": auditIOCSync})
		s.reply(ctx, inv, ":no_entry: Only approvers can run the IOC sync on demand; it also runs on its schedule.")
		return
	}
	s.core.Audit(ctx, inv.UserID, "iocs_sync", "", map[string]any{"trigger": "slack"})
	// The run gets its own context: a snapshot sync can outlast the two
	// minutes a command's work gets by far. Wait (and so serve's shutdown)
	// still waits for it.
	s.goDetached(ctx, "iocs sync", s.cfg.IOCSyncTimeout, func(ctx context.Context) { s.runIOCSync(ctx, inv) })
}

// runIOCSync runs the sync and tells the requester its summary (the IOC
// job also posts it to iocs.report_channel).
func (s *Service) runIOCSync(ctx context.Context, inv invocation) {
	summary, err := s.deps.IOCs.RunNow(ctx, "slack")
	if err != nil {
		s.core.Audit(ctx, inv.UserID, "result", "", map[string]any{"action": auditIOCSync, "ok": false, "error": err.Error()})
		// A sync already running (here or on another replica) is no failure.
		var running interface {
			SyncRunning() (since time.Time, replica string)
		}
		if errors.As(err, &running) {
			since, replica := running.SyncRunning()
			msg := "A sync is running"
			if !since.IsZero() {
				msg += " since " + since.UTC().Format("15:04") + " UTC"
			}
			if replica != "" {
				msg += " (replica " + replica + ")"
			}
			s.reply(ctx, inv, ":hourglass_flowing_sand: "+escapeMrkdwn(msg)+"; its summary is posted when it ends.")
			return
		}
		// The summary says what stopped the run in plain words; the full
		// error (with transport detail) is in the log and the audit trail.
		msg := summary
		if msg == "" {
			s.log.ErrorContext(ctx, "IOC sync failed", "error", err)
			msg = "see the defenderbot logs for the cause"
		}
		s.reply(ctx, inv, ":warning: IOC sync failed: "+escapeMrkdwn(msg))
		return
	}
	s.core.Audit(ctx, inv.UserID, "result", "", map[string]any{"action": auditIOCSync, "ok": true, "summary": summary})
	s.reply(ctx, inv, ":white_check_mark: IOC sync done: "+escapeMrkdwn(summary))
}

func (s *Service) iocStatus(ctx context.Context, inv invocation) {
	if s.deps.IOCs == nil {
		s.reply(ctx, inv, "The IOC sync is not configured (iocs.enabled is off).")
		return
	}
	txt, err := s.deps.IOCs.StatusText(ctx)
	if err != nil {
		// The error may name database hosts or users: keep it in the log.
		s.log.ErrorContext(ctx, "reading the IOC sync status failed", "error", err)
		s.reply(ctx, inv, ":warning: Could not read the IOC sync status (database error). Try again in a minute.")
		return
	}
	s.reply(ctx, inv, escapeMrkdwn(txt))
}
