package approval

import (
	"context"
	"fmt"
	"time"

	"github.com/defenderbot/defenderbot/actions"
	"github.com/defenderbot/defenderbot/defender"
)

// A bulk request names several machines (Request.Targets) and is approved
// once. Its execution is the single request's, per machine: the request's
// claim (approved -> executing) and its lease "execute:<id>" make one
// replica the executor; that replica calls Defender once per machine,
// paced by Config.BulkPace, each call preceded by the machine's own claim
// (queued -> calling, a compare-and-set in the store) and its audit line.
// A replica that takes over a dead executor's request (reconcile) finds the
// machines left "calling" in Defender's list by the request tag, as for a
// single request, and calls only the machines still queued: no machine is
// ever called twice. Once every machine was called, the request is running
// and one follow-up polls every machine action still running.

// executeTimeoutOf bounds the claimed execution of r.
func (c *Core) executeTimeoutOf(r *Request) time.Duration {
	if !r.Bulk() {
		return c.cfg.ExecuteTimeout
	}
	return c.cfg.ExecuteTimeout + time.Duration(len(r.Targets))*(c.cfg.BulkPace+c.cfg.BulkCallTimeout)
}

// runBulk calls Defender for every machine of r not yet called, settles the
// machines a dead executor left "calling", and then follows the machine
// actions up. The caller holds the execution lease.
func (c *Core) runBulk(ctx context.Context, r *Request) {
	approvers := r.Approvers()
	args := r.Args
	if args.Comment != "" {
		args.Comment = TaggedComment(args.Comment, r.ID, approvers)
	}
	called := 0
	for i := range r.Targets {
		t := &r.Targets[i]
		switch t.State {
		case TargetCalling:
			c.reconcileTarget(ctx, r, t)
		case TargetQueued:
			if called > 0 && c.cfg.BulkPace > 0 {
				if err := c.deps.Sleep(ctx, c.cfg.BulkPace); err != nil {
					return // out of time: the machines left queued are called by the takeover
				}
			}
			called++
			c.callTarget(ctx, r, t, args, approvers)
		}
	}
	for _, t := range r.Targets {
		if t.State == TargetQueued || t.State == TargetCalling {
			// A claim or a look-up failed (store or Defender down): the
			// request stays executing and the takeover scan finishes it.
			c.log.WarnContext(ctx, "bulk request not fully started; the takeover scan resumes it", "request", r.ID, "machine", t.MachineID, "state", t.State)
			return
		}
	}
	if c.bulkDone(ctx, r) {
		return
	}
	st := StateRunning
	if err := c.deps.Store.UpdateRequest(ctx, r.ID, RequestUpdate{State: &st}, c.now()); err != nil {
		c.log.ErrorContext(ctx, "recording the bulk request running failed", "request", r.ID, "error", err)
	}
	r.State = st
	c.deps.Notifier.Changed(ctx, r)
	c.startFollowUp(r.ID)
}

// callTarget claims machine t of r and calls Defender for it once.
func (c *Core) callTarget(ctx context.Context, r *Request, t *Target, args actions.Args, approvers []string) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.BulkCallTimeout)
	defer cancel()
	ok, err := c.deps.Store.TransitionTarget(ctx, r.ID, t.MachineID, TargetQueued, TargetCalling, c.now())
	if err != nil {
		c.log.ErrorContext(ctx, "claiming a machine of a bulk request failed", "request", r.ID, "machine", t.MachineID, "error", err)
		return
	}
	if !ok {
		// Someone else claimed it: never call twice. Show what they recorded.
		if cur, err := c.deps.Store.GetRequest(ctx, r.ID); err == nil {
			for _, ct := range cur.Targets {
				if ct.MachineID == t.MachineID {
					*t = ct
				}
			}
		}
		c.log.WarnContext(ctx, "machine already claimed: not calling Defender", "request", r.ID, "machine", t.MachineID)
		return
	}
	t.State = TargetCalling
	args.MachineID = t.MachineID
	if err := c.auditStrict(ctx, "system", "call", r.ID, map[string]any{"action": string(r.Action), "params": args.Map(),
		"approved_by": approvers, "machine_id": t.MachineID}); err != nil {
		c.settleTarget(ctx, r, t, TargetFailed, NotAuditedText)
		c.deps.Notifier.Progress(ctx, r)
		return
	}
	// The table shows the call's answer, not the claim: one update per
	// machine keeps within Slack's chat.update rate at one call a second.
	res, err := c.deps.Defender.Run(ctx, r.Action, args)
	if err != nil {
		c.log.WarnContext(ctx, "defender call failed", "request", r.ID, "machine", t.MachineID, "action", r.Action, "error", err)
		c.settleTarget(ctx, r, t, TargetFailed, c.deps.Explain(err, r.Action))
		c.deps.Notifier.Progress(ctx, r)
		return
	}
	if res.MachineAction == nil {
		c.Audit(ctx, "system", "result", r.ID, map[string]any{"ok": true, "machine_id": t.MachineID, "output": res.Output})
		c.settleTarget(ctx, r, t, TargetSucceeded, "")
		c.deps.Notifier.Progress(ctx, r)
		return
	}
	c.targetAccepted(ctx, r, t, res.MachineAction)
}

// targetAccepted records the machine action Defender created for t.
func (c *Core) targetAccepted(ctx context.Context, r *Request, t *Target, ma *defender.MachineAction) {
	t.MachineActionID, t.MachineActionStatus = ma.ID, string(ma.Status)
	c.Audit(ctx, "system", "result", r.ID, map[string]any{"ok": true, "machine_id": t.MachineID, "machine_action_id": ma.ID, "status": string(ma.Status)})
	if ma.Status.Final() {
		state, msg := finalOutcome(r.Action, ma.Status)
		c.settleTarget(ctx, r, t, TargetState(state), msg)
		c.deps.Notifier.Progress(ctx, r)
		return
	}
	st := TargetRunning
	if err := c.deps.Store.UpdateTarget(ctx, r.ID, t.MachineID, TargetUpdate{State: &st,
		MachineActionID: &t.MachineActionID, MachineActionStatus: &t.MachineActionStatus}, c.now()); err != nil {
		c.log.ErrorContext(ctx, "recording a machine's action failed", "request", r.ID, "machine", t.MachineID, "error", err)
	}
	t.State = st
	c.deps.Notifier.Progress(ctx, r)
}

// settleTarget records t's outcome (TargetSucceeded or TargetFailed); the
// caller tells the Notifier.
func (c *Core) settleTarget(ctx context.Context, r *Request, t *Target, state TargetState, errMsg string) {
	u := TargetUpdate{State: &state}
	if t.MachineActionID != "" {
		u.MachineActionID, u.MachineActionStatus = &t.MachineActionID, &t.MachineActionStatus
	}
	if errMsg != "" {
		u.Error = &errMsg
	}
	ctx = context.WithoutCancel(ctx) // the outcome must be recorded even during shutdown
	if err := c.deps.Store.UpdateTarget(ctx, r.ID, t.MachineID, u, c.now()); err != nil {
		c.log.ErrorContext(ctx, "recording a machine's outcome failed", "request", r.ID, "machine", t.MachineID, "error", err)
	}
	t.State, t.Error = state, errMsg
	if c.deps.Metrics != nil && t.MachineActionID != "" {
		status := t.MachineActionStatus
		if !defender.ActionStatus(status).Final() {
			status = "Unknown"
		}
		c.deps.Metrics.MachineAction(string(r.Action), status)
	}
	if state == TargetFailed {
		c.Audit(ctx, "system", "result", r.ID, map[string]any{"ok": false, "machine_id": t.MachineID, "error": errMsg, "machine_action_id": t.MachineActionID})
	}
}

// reconcileTarget settles a machine a dead executor left "calling": the
// action carrying the request's tag on that machine, or none (it most
// likely did not run). A failed look-up leaves it for the next scan.
func (c *Core) reconcileTarget(ctx context.Context, r *Request, t *Target) {
	list, err := c.deps.Defender.ListMachineActions(ctx, t.MachineID, r.Action.MachineActionType())
	if err != nil {
		c.log.WarnContext(ctx, "reconcile look-up failed; will retry", "request", r.ID, "machine", t.MachineID, "error", err)
		return
	}
	for i := range list {
		if id, ok := RequestIDOf(list[i].RequestorComment); ok && id == r.ID {
			c.Audit(ctx, "system", "reconcile", r.ID, map[string]any{"machine_id": t.MachineID, "machine_action_id": list[i].ID})
			c.targetAccepted(ctx, r, t, &list[i])
			return
		}
	}
	c.Audit(ctx, "system", "reconcile", r.ID, map[string]any{"machine_id": t.MachineID, "found": false})
	c.settleTarget(ctx, r, t, TargetFailed, "defenderbot stopped while calling Defender and no matching action exists in Defender, so it most likely did not run. Request it again if still needed.")
	c.deps.Notifier.Progress(ctx, r)
}

// bulkDone finishes r once every machine's outcome is known: succeeded if
// every machine succeeded, failed otherwise (Error counts the failures).
func (c *Core) bulkDone(ctx context.Context, r *Request) bool {
	if !r.TargetsDone() {
		return false
	}
	failed := 0
	for _, t := range r.Targets {
		if t.State == TargetFailed {
			failed++
		}
	}
	if failed == 0 {
		c.finish(ctx, r, StateSucceeded, "")
		return true
	}
	c.finish(ctx, r, StateFailed, fmt.Sprintf("%d of %d machines failed.", failed, len(r.Targets)))
	return true
}

// pollBulk is one round of a bulk request's follow-up: every machine
// action still running is read once; it reports whether following is over.
func (c *Core) pollBulk(ctx context.Context, r *Request, deadline time.Time) bool {
	changed := false
	for i := range r.Targets {
		t := &r.Targets[i]
		if t.State != TargetRunning {
			continue
		}
		ma, err := c.deps.Defender.GetMachineAction(ctx, t.MachineActionID)
		switch {
		case err != nil && defender.IsNotFound(err):
			c.settleTarget(ctx, r, t, TargetFailed, fmt.Sprintf("Defender no longer knows action %s.", t.MachineActionID))
			changed = true
		case err != nil:
			c.log.WarnContext(ctx, "follow-up poll failed", "request", r.ID, "machine", t.MachineID, "error", err)
		default:
			if string(ma.Status) != t.MachineActionStatus {
				t.MachineActionStatus = string(ma.Status)
				if err := c.deps.Store.UpdateTarget(ctx, r.ID, t.MachineID, TargetUpdate{MachineActionStatus: &t.MachineActionStatus}, c.now()); err != nil {
					c.log.ErrorContext(ctx, "recording a machine's status failed", "request", r.ID, "machine", t.MachineID, "error", err)
				}
				c.Audit(ctx, "system", "status", r.ID, map[string]any{"machine_id": t.MachineID, "machine_action_id": ma.ID, "status": string(ma.Status)})
				changed = true
			}
			if ma.Status.Final() {
				state, msg := finalOutcome(r.Action, ma.Status)
				if state == StateSucceeded {
					c.Audit(ctx, "system", "result", r.ID, map[string]any{"ok": true, "machine_id": t.MachineID, "status": string(ma.Status)})
				}
				c.settleTarget(ctx, r, t, TargetState(state), msg)
			}
		}
	}
	if !c.now().Before(deadline) {
		for i := range r.Targets {
			if t := &r.Targets[i]; t.State == TargetRunning {
				c.settleTarget(ctx, r, t, TargetFailed, fmt.Sprintf("Defender still reported %s after %s; defenderbot stopped following it. Check with `/defender action %s`.",
					t.MachineActionStatus, c.cfg.PollTimeout, t.MachineActionID))
				changed = true
			}
		}
	}
	if changed {
		c.deps.Notifier.Progress(ctx, r)
	}
	return c.bulkDone(ctx, r)
}
