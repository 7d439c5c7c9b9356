package bot

// This file is where approval decisions are made: who may request, who may
// approve or reject, and the single claim that lets exactly one caller run an
// approved request. The store makes each step atomic; this code never trusts
// anything from a button but the request ID, and re-reads the request.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/defenderbot/defenderbot/actions"
	"github.com/defenderbot/defenderbot/defender"
	"github.com/defenderbot/defenderbot/store"
)

// refusal is a decision not to act, told to the user and audited as "refused".
type refusal struct{ reason string }

func (r *refusal) Error() string { return r.reason }

// requesterAllowed applies Config.Requesters (empty: anyone).
func (s *Service) requesterAllowed(ctx context.Context, user string) (bool, error) {
	if len(s.cfg.Requesters) == 0 {
		return true, nil
	}
	return s.groups.inList(ctx, s.cfg.Requesters, user)
}

// isApprover applies Config.Approvers. A failed group look-up refuses.
func (s *Service) isApprover(ctx context.Context, user string) (bool, error) {
	return s.groups.inList(ctx, s.cfg.Approvers, user)
}

func (s *Service) needsApproval(action actions.Name) bool {
	return !slices.Contains(s.cfg.ActionsWithoutApproval, action)
}

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
	allowed, err := s.requesterAllowed(ctx, inv.UserID)
	if err != nil {
		s.log.ErrorContext(ctx, "requester check failed", "user", inv.UserID, "error", err)
		s.reply(ctx, inv, ":warning: Could not check whether you may request Defender actions (Slack user group look-up failed). Try again in a minute.")
		return
	}
	if !allowed {
		s.audit(ctx, inv.UserID, "refused", "", map[string]any{"reason": "requester not allowed", "action": auditAction(c)})
		s.reply(ctx, inv, ":no_entry: You are not allowed to request Defender actions. Ask an administrator to add you (or your user group) to approval.requesters.")
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
	params := c.Args
	machineName := ""
	if c.Action.TargetsMachine() {
		m, msg := s.resolveMachine(ctx, c.Machine)
		if m == nil {
			s.reply(ctx, inv, msg)
			return
		}
		params.MachineID = m.ID
		machineName = m.ComputerDNSName
	}
	switch {
	case !s.needsApproval(c.Action) && c.Action.ReadOnly():
		s.runDirect(ctx, inv, c.Action, params)
	case !s.needsApproval(c.Action):
		// A state-changing action an administrator exempted from approval
		// still goes through the store: one claim, the audit trail, and the
		// same follow-up and outcome messages as an approved one.
		s.runUnapproved(ctx, inv, c.Action, params, machineName)
	default:
		s.createRequest(ctx, inv, c.Action, params, machineName)
	}
}

// runUnapproved stores a request that needs no approval as already approved
// and executes it.
func (s *Service) runUnapproved(ctx context.Context, inv invocation, action actions.Name, params actions.Args, machineName string) {
	r := s.newRequest(inv, action, params, machineName)
	r.State = store.StateApproved
	if err := s.deps.Store.CreateRequest(ctx, r); err != nil {
		s.log.ErrorContext(ctx, "store request failed", "error", err)
		s.reply(ctx, inv, ":warning: Could not record the request (database error); nothing was done. Try again.")
		return
	}
	s.audit(ctx, inv.UserID, "request", r.ID, map[string]any{"action": string(action), "params": params.Map(), "machine_name": machineName, "approval": "not required"})
	s.reply(ctx, inv, fmt.Sprintf(":arrow_forward: Request %s needs no approval (approval.actions_without_approval); running it now.", requestRef(r)))
	if err := s.execute(ctx, r); err != nil {
		s.reply(ctx, inv, ":warning: The request is recorded but could not be started (database error); it will be retried shortly.")
	}
}

// newRequest builds the stored form of a request from inv.
func (s *Service) newRequest(inv invocation, action actions.Name, params actions.Args, machineName string) *store.Request {
	now := s.now()
	return &store.Request{
		ID:                newID(),
		Action:            action,
		Args:              params,
		MachineName:       machineName,
		RequesterID:       inv.UserID,
		RequesterName:     inv.UserName,
		ChannelID:         inv.ChannelID,
		ResponseURL:       inv.ResponseURL,
		ApprovalChannel:   s.cfg.ApprovalChannel,
		State:             store.StatePending,
		RequiredApprovals: s.cfg.RequiredApprovals,
		CreatedAt:         now,
		ExpiresAt:         now.Add(s.cfg.TTL),
		UpdatedAt:         now,
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

// createRequest stores a pending request and posts it for approval.
func (s *Service) createRequest(ctx context.Context, inv invocation, action actions.Name, params actions.Args, machineName string) {
	r := s.newRequest(inv, action, params, machineName)
	if err := s.deps.Store.CreateRequest(ctx, r); err != nil {
		s.log.ErrorContext(ctx, "store request failed", "error", err)
		s.reply(ctx, inv, ":warning: Could not record the request (database error); nothing was done. Try again.")
		return
	}
	s.audit(ctx, inv.UserID, "request", r.ID, map[string]any{"action": string(action), "params": params.Map(), "machine_name": machineName})

	var ch, ts string
	err := withSlackRetry(ctx, func() error {
		var err error
		ch, ts, err = s.deps.Slack.PostMessageContext(ctx, s.cfg.ApprovalChannel, msgApproval(r)...)
		return err
	})
	if err != nil {
		s.log.ErrorContext(ctx, "posting the approval request failed", "request", r.ID, "error", err)
		// Nobody can approve a request nobody sees: withdraw it.
		if _, rerr := s.deps.Store.Reject(ctx, r.ID, "system", "the approval message could not be posted", s.now()); rerr != nil {
			s.log.ErrorContext(ctx, "withdrawing the request failed", "request", r.ID, "error", rerr)
		}
		s.audit(ctx, "system", "reject", r.ID, map[string]any{"reason": "approval message could not be posted"})
		s.reply(ctx, inv, approvalPostFailed(err, s.cfg.ApprovalChannel))
		return
	}
	if err := s.deps.Store.SetApprovalMessage(ctx, r.ID, ch, ts); err != nil {
		s.log.ErrorContext(ctx, "saving the approval message ts failed", "request", r.ID, "error", err)
	}
	s.reply(ctx, inv, fmt.Sprintf(":inbox_tray: Request %s is waiting for %s in <#%s>.",
		requestRef(r), plural(r.RequiredApprovals, "approval"), escapeMrkdwn(ch)))
}

// approve handles an Approve click. Every refusal is told to the clicker
// only, audited, and changes nothing.
func (s *Service) approve(ctx context.Context, inv invocation, requestID string) {
	r, err := s.decideCheck(ctx, inv, requestID, "approve")
	if err != nil {
		return
	}
	if r.RequesterID == inv.UserID && !s.cfg.AllowSelfApproval {
		s.refuse(ctx, inv, r.ID, "self-approval", "You cannot approve your own request: another approver must.")
		return
	}
	r, dec, err := s.deps.Store.AddApproval(ctx, requestID, inv.UserID, s.now())
	if errors.Is(err, store.ErrAlreadyVoted) {
		s.refuse(ctx, inv, requestID, "already voted", fmt.Sprintf("You already approved this request; it needs %s from distinct approvers.", plural(s.cfg.RequiredApprovals, "approval")))
		return
	}
	if err != nil {
		s.decisionNotRecorded(ctx, inv, requestID, "approval", err)
		return
	}
	s.audit(ctx, inv.UserID, "approve", r.ID, map[string]any{"approvals": len(r.Approvals), "required": r.RequiredApprovals, "final": dec.Approved})
	if !dec.Approved {
		s.updateApprovalMessage(ctx, r)
		s.postEphemeral(ctx, inv, fmt.Sprintf(":ballot_box_with_check: Your approval is recorded (%d of %d).", len(r.Approvals), r.RequiredApprovals))
		return
	}
	// Only the caller whose vote completed the approval gets here.
	if err := s.execute(ctx, r); err != nil {
		s.postEphemeral(ctx, inv, ":warning: Your approval is recorded, but the action could not be started (database error). defenderbot starts it automatically once the database is reachable again.")
	}
}

// decideCheck are the checks shared by Approve and Reject: the clicker is an
// approver and the request exists and is still pending.
func (s *Service) decideCheck(ctx context.Context, inv invocation, requestID, verb string) (*store.Request, error) {
	ok, err := s.isApprover(ctx, inv.UserID)
	if err != nil {
		s.log.ErrorContext(ctx, "approver check failed", "user", inv.UserID, "error", err)
		s.postEphemeral(ctx, inv, ":warning: Could not check whether you are an approver (Slack user group look-up failed). Try again in a minute.")
		return nil, err
	}
	if !ok {
		return nil, s.refuse(ctx, inv, requestID, "not an approver", fmt.Sprintf("You are not an approver, so you cannot %s Defender actions.", verb))
	}
	r, err := s.deps.Store.GetRequest(ctx, requestID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, s.refuse(ctx, inv, requestID, "unknown request", "This request does not exist (any more).")
	}
	if err != nil {
		s.log.ErrorContext(ctx, "reading the request failed", "request", requestID, "error", err)
		s.postEphemeral(ctx, inv, ":warning: Could not read the request (database error). Try again.")
		return nil, err
	}
	if r.State == store.StatePending && !s.now().Before(r.ExpiresAt) {
		s.sweep(ctx) // marks it (and any other overdue request) expired and updates the messages
		return nil, s.refuse(ctx, inv, r.ID, "expired", expiredText)
	}
	if r.State != store.StatePending {
		return nil, s.refuse(ctx, inv, r.ID, "not pending", fmt.Sprintf("This request is already %s.", r.State))
	}
	return r, nil
}

// expiredText is told to an approver who clicks on an expired request.
const expiredText = "This request has expired; nothing was run. Ask the requester to request it again."

// decisionNotRecorded tells the clicker why the store did not record their
// approval or rejection (what): the request expired or was decided between
// decideCheck and the store call, or the database failed.
func (s *Service) decisionNotRecorded(ctx context.Context, inv invocation, requestID, what string, err error) {
	switch {
	case errors.Is(err, store.ErrExpired):
		s.refuse(ctx, inv, requestID, "expired", expiredText)
		s.expiredByClick(ctx, requestID, err)
	case errors.Is(err, store.ErrNotPending):
		s.refuse(ctx, inv, requestID, "not pending", "This request was already decided.")
	default:
		s.log.ErrorContext(ctx, "recording the "+what+" failed", "request", requestID, "error", err)
		s.postEphemeral(ctx, inv, ":warning: Could not record your "+what+" (database error). Try again.")
	}
}

func (s *Service) refuse(ctx context.Context, inv invocation, requestID, reason, text string) error {
	s.audit(ctx, inv.UserID, "refused", requestID, map[string]any{"reason": reason})
	s.postEphemeral(ctx, inv, ":no_entry: "+text)
	return &refusal{reason: reason}
}

// postEphemeral tells the clicker something in the channel of the click.
func (s *Service) postEphemeral(ctx context.Context, inv invocation, text string) {
	s.reply(ctx, invocation{UserID: inv.UserID, ChannelID: inv.ChannelID}, text)
}

// canOpenReject checks a Reject click before opening the reason modal.
func (s *Service) canOpenReject(ctx context.Context, inv invocation, requestID string) bool {
	_, err := s.decideCheck(ctx, inv, requestID, "reject")
	return err == nil
}

// reject handles the reject modal's submission.
func (s *Service) reject(ctx context.Context, inv invocation, requestID, reason string) {
	if _, err := s.decideCheck(ctx, inv, requestID, "reject"); err != nil {
		return
	}
	r, err := s.deps.Store.Reject(ctx, requestID, inv.UserID, reason, s.now())
	if err != nil {
		s.decisionNotRecorded(ctx, inv, requestID, "rejection", err)
		return
	}
	s.audit(ctx, inv.UserID, "reject", r.ID, map[string]any{"reason": reason})
	s.updateApprovalMessage(ctx, r)
	s.dm(ctx, r.RequesterID, fmt.Sprintf(":x: Your request %s was rejected by <@%s>: %s",
		requestRef(r), escapeMrkdwn(inv.UserID), escapeMrkdwn(reason)))
}

// expiredByClick finishes a request that a click found past its TTL. Only
// the click whose store call moved it to expired (ErrExpired without
// ErrNotPending) announces it; a request expired earlier was announced then.
func (s *Service) expiredByClick(ctx context.Context, requestID string, err error) {
	if errors.Is(err, store.ErrNotPending) {
		return
	}
	r, gerr := s.deps.Store.GetRequest(ctx, requestID)
	if gerr != nil || r.State != store.StateExpired {
		return
	}
	s.announceExpired(ctx, r)
}

// sweep expires pending requests past their TTL.
func (s *Service) sweep(ctx context.Context) {
	rs, err := s.deps.Store.ExpirePending(ctx, s.now())
	if err != nil {
		s.log.ErrorContext(ctx, "expiry sweep failed", "error", err)
		return
	}
	for _, r := range rs {
		s.announceExpired(ctx, r)
	}
	s.countPending(ctx)
}

// countPending reports the approval backlog to the metrics: how many
// requests wait and for how long the oldest has.
func (s *Service) countPending(ctx context.Context) {
	if s.deps.Metrics == nil {
		return
	}
	rs, err := s.deps.Store.ListRequests(ctx, store.RequestFilter{States: []store.RequestState{store.StatePending}})
	if err != nil {
		s.log.WarnContext(ctx, "counting pending requests failed", "error", err)
		return
	}
	var oldest time.Duration
	for _, r := range rs {
		oldest = max(oldest, s.now().Sub(r.CreatedAt))
	}
	s.deps.Metrics.PendingApprovals(len(rs), oldest, s.cfg.TTL)
}

// announceExpired audits an expiry, removes the buttons and tells the requester.
func (s *Service) announceExpired(ctx context.Context, r *store.Request) {
	s.audit(ctx, "system", "expire", r.ID, nil)
	s.updateApprovalMessage(ctx, r)
	s.dm(ctx, r.RequesterID, fmt.Sprintf(":hourglass: Your request %s expired without enough approvals; nothing was run.", requestRef(r)))
}

// iocSync runs the IOC sync now. It is scheduled anyway, so it needs no
// approval, but only approvers may trigger it (it writes to Defender).
func (s *Service) iocSync(ctx context.Context, inv invocation) {
	if s.deps.IOCs == nil {
		s.reply(ctx, inv, "The IOC sync is not configured (iocs.enabled is off).")
		return
	}
	ok, err := s.isApprover(ctx, inv.UserID)
	if err != nil || !ok {
		s.audit(ctx, inv.UserID, "refused", "", map[string]any{"reason": "not an approver", "action": auditIOCSync})
		s.reply(ctx, inv, ":no_entry: Only approvers can run the IOC sync on demand; it also runs on its schedule.")
		return
	}
	s.audit(ctx, inv.UserID, "iocs_sync", "", map[string]any{"trigger": "slack"})
	summary, err := s.deps.IOCs.RunNow(ctx, "slack")
	if err != nil {
		s.audit(ctx, inv.UserID, "result", "", map[string]any{"action": auditIOCSync, "ok": false, "error": err.Error()})
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
	s.audit(ctx, inv.UserID, "result", "", map[string]any{"action": auditIOCSync, "ok": true, "summary": summary})
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
