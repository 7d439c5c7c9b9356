package bot

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/defenderbot/defenderbot/actions"
	"github.com/defenderbot/defenderbot/defender"
	"github.com/defenderbot/defenderbot/store"
)

// requestTag marks a Defender comment with the request ID, so that after a
// crash an "executing" request can be matched to the action it created
// instead of being run a second time.
func requestTag(id string) string { return "defenderbot request " + id }

func taggedComment(comment, id string, approvers []string) string {
	by := "no approval required"
	if len(approvers) > 0 {
		by = "approved by " + strings.Join(approvers, ", ")
	}
	return fmt.Sprintf("%s (%s, %s)", comment, requestTag(id), by)
}

// notAudited is told when the audit line before a Defender call could not be
// written: defenderbot then does not call Defender at all.
const notAudited = "Not run: the audit trail could not be written (database error), and defenderbot never calls Defender without an audit record. Request the action again once the database is back."

func msgApproval(r *store.Request) []slack.MsgOption {
	return []slack.MsgOption{slack.MsgOptionText(approvalFallback(r), false), slack.MsgOptionBlocks(renderApproval(r)...)}
}

// runDirect runs an action that needs no approval (by default get-action).
func (s *Service) runDirect(ctx context.Context, inv invocation, action actions.Name, args actions.Args) {
	id := newID()
	p := args
	if p.Comment != "" {
		p.Comment = taggedComment(p.Comment, id, nil)
	}
	if err := s.auditStrict(ctx, inv.UserID, "call", id, map[string]any{"action": string(action), "params": p.Map(), "approval": "not required"}); err != nil {
		s.reply(ctx, inv, ":warning: "+notAudited)
		return
	}
	res, err := s.deps.Defender.Run(ctx, action, p)
	if err != nil {
		s.log.WarnContext(ctx, "defender call failed", "request", id, "action", action, "error", err)
		msg := explainDefenderError(err, action)
		s.audit(ctx, inv.UserID, "result", id, map[string]any{"action": string(action), "ok": false, "error": msg})
		s.reply(ctx, inv, ":warning: "+escapeMrkdwn(msg))
		return
	}
	s.audit(ctx, inv.UserID, "result", id, map[string]any{"action": string(action), "ok": true, "output": res.Output})
	s.reply(ctx, inv, action.Title(), renderOutput(action.Title(), res.Output)...)
}

// execute claims an approved request (approved -> executing) and runs it.
// The claim is a compare-and-set in the store, so at most one caller across
// all replicas gets past it. It returns an error only when the store could
// not be reached to claim it (the request then stays approved and the
// resume scan retries).
func (s *Service) execute(ctx context.Context, r *store.Request) error {
	ok, err := s.deps.Store.Transition(ctx, r.ID, store.StateApproved, store.StateExecuting, s.now())
	if err != nil {
		s.log.ErrorContext(ctx, "claiming the request failed", "request", r.ID, "error", err)
		return err
	}
	if !ok {
		return nil
	}
	// Claimed: finish the call even if shutdown starts now, so that the
	// outcome is known and recorded rather than cut off mid-request.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), executeTimeout)
	defer cancel()
	r.State = store.StateExecuting
	s.updateApprovalMessage(ctx, r)

	approvers := make([]string, len(r.Approvals))
	for i, a := range r.Approvals {
		approvers[i] = a.UserID
	}
	args := r.Args
	if args.Comment != "" {
		args.Comment = taggedComment(args.Comment, r.ID, approvers)
	}
	if err := s.auditStrict(ctx, "system", "call", r.ID, map[string]any{"action": string(r.Action), "params": args.Map(), "approved_by": approvers}); err != nil {
		s.finish(ctx, r, store.StateFailed, notAudited)
		return nil
	}
	res, err := s.deps.Defender.Run(ctx, r.Action, args)
	if err != nil {
		s.log.WarnContext(ctx, "defender call failed", "request", r.ID, "action", r.Action, "error", err)
		s.finish(ctx, r, store.StateFailed, explainDefenderError(err, r.Action))
		return nil
	}
	if out, jerr := json.Marshal(res.Output); jerr == nil {
		r.Result = string(out)
	}
	if ma := res.MachineAction; ma != nil {
		s.accepted(ctx, r, ma)
		return nil
	}
	s.audit(ctx, "system", "result", r.ID, map[string]any{"ok": true, "output": res.Output})
	s.finish(ctx, r, store.StateSucceeded, "")
	return nil
}

// accepted records the machine action Defender created and follows it up
// unless it is already final.
func (s *Service) accepted(ctx context.Context, r *store.Request, ma *defender.MachineAction) {
	r.MachineActionID, r.MachineActionStatus = ma.ID, string(ma.Status)
	s.audit(ctx, "system", "result", r.ID, map[string]any{"ok": true, "machine_action_id": ma.ID, "status": string(ma.Status)})
	s.threadReply(ctx, r, renderStatusChange(ma))
	if ma.Status.Final() {
		state, msg := finalOutcome(r.Action, ma.Status)
		s.finish(ctx, r, state, msg)
		return
	}
	st := store.StateRunning
	if err := s.deps.Store.UpdateRequest(ctx, r.ID, store.RequestUpdate{
		State: &st, MachineActionID: &r.MachineActionID, MachineActionStatus: &r.MachineActionStatus, Result: &r.Result,
	}, s.now()); err != nil {
		s.log.ErrorContext(ctx, "recording the machine action failed", "request", r.ID, "error", err)
	}
	r.State = st
	s.updateApprovalMessage(ctx, r)
	how := "was approved"
	if len(r.Approvals) == 0 {
		how = "needs no approval"
	}
	s.dm(ctx, r.RequesterID, fmt.Sprintf(":arrows_counterclockwise: Your request %s %s; Defender action `%s` is %s. I will tell you the outcome.",
		requestRef(r), how, escapeMrkdwn(ma.ID), escapeMrkdwn(string(ma.Status))))
	s.startFollowUp(r.ID)
}

// finalOutcome is the request's final state, and its error message, for
// the final status of its machine action. A cancel returns the action it
// cancelled, so for a cancel success is Cancelled.
func finalOutcome(action actions.Name, st defender.ActionStatus) (store.RequestState, string) {
	success := defender.StatusSucceeded
	if action == actions.CancelAction {
		success = defender.StatusCancelled
	}
	if st == success {
		return store.StateSucceeded, ""
	}
	return store.StateFailed, fmt.Sprintf("Defender reports the action as %s.", st)
}

// finish records a final state, updates the approval message and tells the requester.
func (s *Service) finish(ctx context.Context, r *store.Request, state store.RequestState, errMsg string) {
	u := store.RequestUpdate{State: &state, Result: &r.Result}
	if r.MachineActionID != "" {
		u.MachineActionID, u.MachineActionStatus = &r.MachineActionID, &r.MachineActionStatus
	}
	if errMsg != "" {
		u.Error = &errMsg
	}
	ctx = context.WithoutCancel(ctx) // the outcome must be recorded even during shutdown
	if err := s.deps.Store.UpdateRequest(ctx, r.ID, u, s.now()); err != nil {
		s.log.ErrorContext(ctx, "recording the outcome failed", "request", r.ID, "error", err)
	}
	r.State, r.Error = state, errMsg
	if s.deps.Metrics != nil {
		s.deps.Metrics.Approval(string(state))
		if r.MachineActionID != "" {
			status := r.MachineActionStatus
			if !defender.ActionStatus(status).Final() {
				status = "Unknown" // Defender lost it, or it outlived poll_timeout
			}
			s.deps.Metrics.MachineAction(string(r.Action), status)
		}
	}
	if state == store.StateFailed {
		s.audit(ctx, "system", "result", r.ID, map[string]any{"ok": false, "error": errMsg, "machine_action_id": r.MachineActionID})
	}
	s.updateApprovalMessage(ctx, r)
	text := fmt.Sprintf(":white_check_mark: Your request %s succeeded.", requestRef(r))
	if state == store.StateFailed {
		text = fmt.Sprintf(":warning: Your request %s failed: %s", requestRef(r), escapeMrkdwn(errMsg))
	}
	s.dm(ctx, r.RequesterID, text)
	if state == store.StateSucceeded && r.Action == actions.CollectInvestigationPackage {
		s.sendPackageLink(ctx, r)
	}
}

// reconcile settles a request left "executing" by a crash: it looks for the
// Defender action carrying the request's tag instead of calling again.
func (s *Service) reconcile(ctx context.Context, r *store.Request) {
	lease := "execute:" + r.ID
	ok, err := s.deps.Store.AcquireLease(ctx, lease, s.cfg.ReplicaID, s.now(), 10*time.Minute)
	if err != nil || !ok {
		return
	}
	defer s.releaseLease(ctx, lease)
	actionType := r.Action.MachineActionType()
	machineID := r.Args.MachineID
	if actionType == "" || machineID == "" {
		s.finish(ctx, r, store.StateFailed, "defenderbot stopped while calling Defender; the outcome is unknown. Check in the Defender portal before asking again.")
		return
	}
	actions, err := s.deps.Defender.ListMachineActions(ctx, machineID, actionType)
	if err != nil {
		s.log.WarnContext(ctx, "reconcile look-up failed; will retry", "request", r.ID, "error", err)
		return
	}
	tag := requestTag(r.ID)
	for i := range actions {
		if strings.Contains(actions[i].RequestorComment, tag) {
			s.audit(ctx, "system", "reconcile", r.ID, map[string]any{"machine_action_id": actions[i].ID})
			s.accepted(ctx, r, &actions[i])
			return
		}
	}
	s.audit(ctx, "system", "reconcile", r.ID, map[string]any{"found": false})
	s.finish(ctx, r, store.StateFailed, "defenderbot stopped while calling Defender and no matching action exists in Defender, so it most likely did not run. Request it again if still needed.")
}

func (s *Service) releaseLease(ctx context.Context, name string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := s.deps.Store.ReleaseLease(ctx, name, s.cfg.ReplicaID); err != nil {
		s.log.WarnContext(ctx, "lease release failed", "lease", name, "error", err)
	}
}

// startFollowUp polls a running request's machine action in the background
// unless this replica already does.
func (s *Service) startFollowUp(id string) {
	s.mu.Lock()
	if s.following[id] {
		s.mu.Unlock()
		return
	}
	s.following[id] = true
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer func() {
			s.mu.Lock()
			delete(s.following, id)
			s.mu.Unlock()
		}()
		s.followUp(s.followCtx, id)
	}()
}

func (s *Service) leaseTTL() time.Duration { return max(3*s.cfg.PollInterval, 30*time.Second) }

// followUp polls GetMachineAction until the action is final or PollTimeout,
// posting each status change once in the approval thread. The lease
// "followup:<id>" makes one replica poll; if it dies the lease expires and
// another replica's periodic scan takes over.
func (s *Service) followUp(ctx context.Context, id string) {
	lease := "followup:" + id
	ok, err := s.deps.Store.AcquireLease(ctx, lease, s.cfg.ReplicaID, s.now(), s.leaseTTL())
	if err != nil || !ok {
		return
	}
	defer s.releaseLease(ctx, lease)
	r, err := s.deps.Store.GetRequest(ctx, id)
	if err != nil || r.State != store.StateRunning || r.MachineActionID == "" {
		return
	}
	deadline := s.now().Add(s.cfg.PollTimeout)
	for {
		if err := s.sleep(ctx, s.cfg.PollInterval); err != nil {
			return
		}
		ok, err := s.deps.Store.AcquireLease(ctx, lease, s.cfg.ReplicaID, s.now(), s.leaseTTL())
		if err != nil {
			// The store is unreachable: skip this poll (without the lease
			// another replica may be polling) but keep following, rather
			// than drop the follow-up until the next takeover scan.
			s.log.WarnContext(ctx, "follow-up lease renewal failed; will retry", "request", id, "error", err)
			if !s.now().Before(deadline) {
				return // the takeover scan will finish it once the store is back
			}
			continue
		}
		if !ok {
			return // another replica took over
		}
		ma, err := s.deps.Defender.GetMachineAction(ctx, r.MachineActionID)
		switch {
		case err != nil && defender.IsNotFound(err):
			s.finish(ctx, r, store.StateFailed, fmt.Sprintf("Defender no longer knows action %s.", r.MachineActionID))
			return
		case err != nil:
			s.log.WarnContext(ctx, "follow-up poll failed", "request", id, "error", err)
		default:
			if string(ma.Status) != r.MachineActionStatus {
				r.MachineActionStatus = string(ma.Status)
				if err := s.deps.Store.UpdateRequest(ctx, id, store.RequestUpdate{MachineActionStatus: &r.MachineActionStatus}, s.now()); err != nil {
					s.log.ErrorContext(ctx, "recording the status failed", "request", id, "error", err)
				}
				s.audit(ctx, "system", "status", id, map[string]any{"machine_action_id": ma.ID, "status": string(ma.Status)})
				s.threadReply(ctx, r, renderStatusChange(ma))
			}
			if ma.Status.Final() {
				state, msg := finalOutcome(r.Action, ma.Status)
				if state == store.StateSucceeded {
					s.audit(ctx, "system", "result", id, map[string]any{"ok": true, "status": string(ma.Status)})
				}
				s.finish(ctx, r, state, msg)
				return
			}
		}
		if !s.now().Before(deadline) {
			s.finish(ctx, r, store.StateFailed, fmt.Sprintf("Defender still reported %s after %s; defenderbot stopped following it. Check with `/defender action %s`.",
				r.MachineActionStatus, s.cfg.PollTimeout, r.MachineActionID))
			return
		}
	}
}

// resume picks up work a previous process (or a dead replica) left. startup
// only labels the scan in the logs: other replicas may be running, so a
// starting process treats in-flight work exactly like a periodic scan does.
func (s *Service) resume(ctx context.Context, startup bool) {
	s.log.DebugContext(ctx, "resume scan", "startup", startup)
	list := func(st store.RequestState) []*store.Request {
		rs, err := s.deps.Store.ListRequests(ctx, store.RequestFilter{States: []store.RequestState{st}})
		switch {
		case err != nil && ctx.Err() != nil:
			// Shutting down: the next process's scan picks this up.
			s.log.DebugContext(ctx, "resume scan stopped", "state", st, "error", err)
		case err != nil:
			s.log.ErrorContext(ctx, "listing requests failed", "state", st, "error", err)
		}
		return rs
	}
	for _, r := range list(store.StateApproved) {
		if ctx.Err() != nil {
			return // shutting down: claim nothing new
		}
		_ = s.execute(ctx, r) // a store error is logged; the next scan retries
	}
	for _, r := range list(store.StateExecuting) {
		if ctx.Err() != nil {
			return
		}
		// A recent "executing" may be in flight on another replica, even at
		// startup (a replica starting beside running ones): reconciling it
		// now would mark it failed ("did not run") while Defender runs it.
		if s.now().Sub(r.UpdatedAt) > executingGrace {
			s.reconcile(ctx, r)
		}
	}
	for _, r := range list(store.StateRunning) {
		s.startFollowUp(r.ID)
	}
}

// executeTimeout bounds one claimed execution (the Defender call with its
// retries, recording and Slack updates), detached from shutdown.
const executeTimeout = 3 * time.Minute

// executingGrace is how long a request may stay "executing" before another
// replica assumes its executor died (well above one Defender call's retries).
const executingGrace = 10 * time.Minute

// Run resumes work left by a previous process (approved requests are
// executed, executing ones reconciled once older than executingGrace,
// running ones followed up; pending ones need nothing: their state is in
// the store) and then runs the expiry sweep and the takeover scan every
// minute until ctx ends. Follow-ups stop with it; their leases are released
// so another replica takes over.
func (s *Service) Run(ctx context.Context) error {
	defer s.followCancel()
	s.sweep(ctx)
	s.resume(ctx, true)
	t := time.NewTicker(s.sweepEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			s.sweep(ctx)
			s.resume(ctx, false)
		}
	}
}
