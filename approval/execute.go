package approval

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/defenderbot/defenderbot/actions"
	"github.com/defenderbot/defenderbot/defender"
)

// requestTag marks a Defender comment with the request ID, so that after a
// crash an "executing" request can be matched to the action it created
// instead of being run a second time.
func requestTag(id string) string { return "defenderbot request " + id }

// tagTrailer is the tag TaggedComment appends, anchored at the end of the
// comment: the analyst's own text (which may quote another request's tag)
// is never read as the tag. [^()] keeps a match from spanning a quoted tag.
var tagTrailer = regexp.MustCompile(`\(defenderbot request ([^,()\s]+), (?:approved by [^()]*|no approval required)\)$`)

// RequestIDOf returns the request ID a Defender comment was tagged with by
// TaggedComment, and whether it carries a tag at all.
func RequestIDOf(comment string) (string, bool) {
	m := tagTrailer.FindStringSubmatch(comment)
	if m == nil {
		return "", false
	}
	return m[1], true
}

// TaggedComment is the comment sent to Defender: the analyst's, the
// request tag and who approved it.
// The analyst's comment is shortened (with "…") when the whole would
// exceed actions.MaxCommentLen, so that a comment of the maximum length
// still runs and the tag stays whole; the request and the audit trail keep
// the comment as written.
func TaggedComment(comment, id string, approvers []string) string {
	by := "no approval required"
	if len(approvers) > 0 {
		by = "approved by " + strings.Join(approvers, ", ")
	}
	trailer := fmt.Sprintf(" (%s, %s)", requestTag(id), by)
	if room := actions.MaxCommentLen - utf8.RuneCountInString(trailer); utf8.RuneCountInString(comment) > room {
		comment = string([]rune(comment)[:max(room-1, 0)]) + "…"
	}
	return comment + trailer
}

// NotAuditedText is the outcome of a request whose audit line before the
// Defender call could not be written.
const NotAuditedText = "Not run: the audit trail could not be written (database error), and defenderbot never calls Defender without an audit record. Request the action again once the database is back."

// The execution claim is a lease ("execute:<id>") taken with the
// approved -> executing transition and renewed every leaseTTL/3 while the
// Defender call runs and its outcome is recorded. When its holder dies the
// lease lapses after leaseTTL, and the next takeover scan (every
// scanEvery) reconciles the request from Defender's list: with the default
// 15 s poll interval a dead replica's request shows its outcome about a
// minute after the death, whatever it was doing.

// RunDirect runs a read-only action that needs no approval: audited, not
// stored. It returns ErrNotAudited (Defender not called) or Defender's error.
func (c *Core) RunDirect(ctx context.Context, actor string, n actions.Name, a actions.Args) (*actions.Result, error) {
	id := newID()
	if a.Comment != "" {
		a.Comment = TaggedComment(a.Comment, id, nil)
	}
	if err := c.auditStrict(ctx, actor, "call", id, map[string]any{"action": string(n), "params": a.Map(), "approval": "not required"}); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotAudited, err)
	}
	res, err := c.deps.Defender.Run(ctx, n, a)
	if err != nil {
		c.log.WarnContext(ctx, "defender call failed", "request", id, "action", n, "error", err)
		c.Audit(ctx, actor, "result", id, map[string]any{"action": string(n), "ok": false, "error": c.deps.Explain(err, n)})
		return nil, err
	}
	c.Audit(ctx, actor, "result", id, map[string]any{"action": string(n), "ok": true, "output": res.Output})
	return res, nil
}

// Execute claims an approved request (approved -> executing) and runs it.
// The claim is a compare-and-set in the store, so at most one caller across
// all replicas gets past it. It returns an error only when the store could
// not be reached to claim it (the request then stays approved and the
// resume scan retries).
func (c *Core) Execute(ctx context.Context, r *Request) error {
	ok, err := c.deps.Store.Transition(ctx, r.ID, StateApproved, StateExecuting, c.now())
	if err != nil {
		c.log.ErrorContext(ctx, "claiming the request failed", "request", r.ID, "error", err)
		return err
	}
	if !ok {
		return nil
	}
	// Claimed: finish the call even if shutdown starts now, so that the
	// outcome is known and recorded rather than cut off mid-request.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.executeTimeoutOf(r))
	defer cancel()
	// The claim's lease says this replica is alive. No one reconciles a
	// claim younger than leaseTTL, so it cannot be taken yet; if the store
	// failed, holdLease keeps trying to renew it.
	lease := "execute:" + r.ID
	if ok, err := c.deps.Store.AcquireLease(ctx, lease, c.cfg.ReplicaID, c.now(), c.leaseTTL()); err != nil {
		c.log.WarnContext(ctx, "execution lease not taken; will retry", "request", r.ID, "error", err)
	} else if !ok {
		c.log.ErrorContext(ctx, "execution lease held by another replica: not calling Defender", "request", r.ID)
		return nil
	}
	defer c.holdLease(ctx, lease)()
	r.State = StateExecuting
	c.deps.Notifier.Changed(ctx, r)
	if r.Bulk() {
		c.runBulk(ctx, r)
		return nil
	}

	approvers := r.Approvers()
	args := r.Args
	if args.Comment != "" {
		args.Comment = TaggedComment(args.Comment, r.ID, approvers)
	}
	if err := c.auditStrict(ctx, "system", "call", r.ID, map[string]any{"action": string(r.Action), "params": args.Map(), "approved_by": approvers}); err != nil {
		c.finish(ctx, r, StateFailed, NotAuditedText)
		return nil
	}
	res, err := c.deps.Defender.Run(ctx, r.Action, args)
	if err != nil {
		c.log.WarnContext(ctx, "defender call failed", "request", r.ID, "action", r.Action, "error", err)
		c.finish(ctx, r, StateFailed, c.deps.Explain(err, r.Action))
		return nil
	}
	if out, jerr := json.Marshal(res.Output); jerr == nil {
		r.Result = string(out)
	}
	if ma := res.MachineAction; ma != nil {
		c.accepted(ctx, r, ma)
		return nil
	}
	c.Audit(ctx, "system", "result", r.ID, map[string]any{"ok": true, "output": res.Output})
	c.finish(ctx, r, StateSucceeded, "")
	return nil
}

// accepted records the machine action Defender created and follows it up
// unless it is already final.
func (c *Core) accepted(ctx context.Context, r *Request, ma *defender.MachineAction) {
	r.MachineActionID, r.MachineActionStatus = ma.ID, string(ma.Status)
	c.Audit(ctx, "system", "result", r.ID, map[string]any{"ok": true, "machine_action_id": ma.ID, "status": string(ma.Status)})
	c.deps.Notifier.Status(ctx, r, ma)
	if ma.Status.Final() {
		state, msg := finalOutcome(r.Action, ma.Status)
		c.finish(ctx, r, state, msg)
		return
	}
	st := StateRunning
	if err := c.deps.Store.UpdateRequest(ctx, r.ID, RequestUpdate{
		State: &st, MachineActionID: &r.MachineActionID, MachineActionStatus: &r.MachineActionStatus, Result: &r.Result,
	}, c.now()); err != nil {
		c.log.ErrorContext(ctx, "recording the machine action failed", "request", r.ID, "error", err)
	}
	r.State = st
	c.deps.Notifier.Changed(ctx, r)
	c.deps.Notifier.Running(ctx, r, ma)
	c.startFollowUp(r.ID)
}

// finalOutcome is the request's final state, and its error message, for
// the final status of its machine action. A cancel returns the action it
// cancelled, so for a cancel success is Cancelled.
func finalOutcome(n actions.Name, st defender.ActionStatus) (State, string) {
	success := defender.StatusSucceeded
	if n == actions.CancelAction {
		success = defender.StatusCancelled
	}
	if st == success {
		return StateSucceeded, ""
	}
	return StateFailed, fmt.Sprintf("Defender reports the action as %s.", st)
}

// finish records a final state and tells the Notifier.
func (c *Core) finish(ctx context.Context, r *Request, state State, errMsg string) {
	u := RequestUpdate{State: &state, Result: &r.Result}
	if r.MachineActionID != "" {
		u.MachineActionID, u.MachineActionStatus = &r.MachineActionID, &r.MachineActionStatus
	}
	if errMsg != "" {
		u.Error = &errMsg
	}
	ctx = context.WithoutCancel(ctx) // the outcome must be recorded even during shutdown
	if err := c.deps.Store.UpdateRequest(ctx, r.ID, u, c.now()); err != nil {
		c.log.ErrorContext(ctx, "recording the outcome failed", "request", r.ID, "error", err)
	}
	r.State, r.Error = state, errMsg
	c.count(string(state))
	if c.deps.Metrics != nil && r.MachineActionID != "" {
		status := r.MachineActionStatus
		if !defender.ActionStatus(status).Final() {
			status = "Unknown" // Defender lost it, or it outlived poll_timeout
		}
		c.deps.Metrics.MachineAction(string(r.Action), status)
	}
	if state == StateFailed {
		c.Audit(ctx, "system", "result", r.ID, map[string]any{"ok": false, "error": errMsg, "machine_action_id": r.MachineActionID})
	}
	c.deps.Notifier.Finished(ctx, r)
}

// holdLease renews lease every leaseTTL/3 (real time) until the returned
// stop is called, which also releases it. A failed renewal is logged and
// retried: the claim stays this replica's until it is released or lapses.
func (c *Core) holdLease(ctx context.Context, lease string) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		every := c.leaseTTL() / 3
		if c.renewEvery > 0 {
			every = c.renewEvery
		}
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				ok, err := c.deps.Store.AcquireLease(ctx, lease, c.cfg.ReplicaID, c.now(), c.leaseTTL())
				if err != nil || !ok {
					c.log.WarnContext(ctx, "execution lease renewal failed", "lease", lease, "taken", err == nil, "error", err)
				}
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
		c.releaseLease(ctx, lease)
	}
}

// reconcile settles a request left "executing" by a dead replica: once the
// claim's lease has lapsed, it looks for the Defender action carrying the
// request's tag instead of calling again.
func (c *Core) reconcile(ctx context.Context, r *Request) {
	lease := "execute:" + r.ID
	if !c.takeLease(ctx, lease) {
		return // the executor is alive (it renews the lease) or another replica reconciles
	}
	defer c.holdLease(ctx, lease)()
	// Re-read under the lease: the executor may have finished just before
	// its lease was released.
	cur, err := c.deps.Store.GetRequest(ctx, r.ID)
	if err != nil || cur.State != StateExecuting {
		return
	}
	if cur.Bulk() {
		// Settles the machines left calling, calls those never claimed.
		c.runBulk(ctx, cur)
		return
	}
	actionType := r.Action.MachineActionType()
	machineID := r.Args.MachineID
	if actionType == "" || machineID == "" {
		c.finish(ctx, r, StateFailed, "defenderbot stopped while calling Defender; the outcome is unknown. Check in the Defender portal before asking again.")
		return
	}
	list, err := c.deps.Defender.ListMachineActions(ctx, machineID, actionType)
	if err != nil {
		c.log.WarnContext(ctx, "reconcile look-up failed; will retry", "request", r.ID, "error", err)
		return
	}
	for i := range list {
		if id, ok := RequestIDOf(list[i].RequestorComment); ok && id == r.ID {
			c.Audit(ctx, "system", "reconcile", r.ID, map[string]any{"machine_action_id": list[i].ID})
			c.accepted(ctx, r, &list[i])
			return
		}
	}
	c.Audit(ctx, "system", "reconcile", r.ID, map[string]any{"found": false})
	c.finish(ctx, r, StateFailed, "defenderbot stopped while calling Defender and no matching action exists in Defender, so it most likely did not run. Request it again if still needed.")
}

// takeLease takes lease for this replica. An error leaves the outcome
// unknown (a driver reports a cancelled context even when the statement
// committed), so the lease is then released: a lease this replica does not
// use must not keep the others out until it lapses.
func (c *Core) takeLease(ctx context.Context, lease string) bool {
	ok, err := c.deps.Store.AcquireLease(ctx, lease, c.cfg.ReplicaID, c.now(), c.leaseTTL())
	if err != nil {
		c.releaseLease(ctx, lease)
		return false
	}
	return ok
}

func (c *Core) releaseLease(ctx context.Context, name string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := c.deps.Store.ReleaseLease(ctx, name, c.cfg.ReplicaID); err != nil {
		c.log.WarnContext(ctx, "lease release failed", "lease", name, "error", err)
	}
}

// startFollowUp polls a running request's machine action in the background
// unless this replica already does.
func (c *Core) startFollowUp(id string) {
	c.mu.Lock()
	if c.following[id] {
		c.mu.Unlock()
		return
	}
	c.following[id] = true
	c.mu.Unlock()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer func() {
			c.mu.Lock()
			delete(c.following, id)
			c.mu.Unlock()
		}()
		c.followUp(c.followCtx, id)
	}()
}

// leaseTTL is how long a follow-up lease lasts without renewal: a replica
// takes over a follow-up once its owner missed renewing it this long.
func (c *Core) leaseTTL() time.Duration { return max(3*c.cfg.PollInterval, 30*time.Second) }

// followUp polls GetMachineAction until the action is final or PollTimeout,
// reporting each status change once. The lease "followup:<id>" makes one
// replica poll; if it dies the lease expires and another replica's periodic
// scan takes over.
func (c *Core) followUp(ctx context.Context, id string) {
	lease := "followup:" + id
	if !c.takeLease(ctx, lease) {
		return
	}
	defer c.releaseLease(ctx, lease)
	r, err := c.deps.Store.GetRequest(ctx, id)
	if err != nil || r.State != StateRunning || (r.MachineActionID == "" && !r.Bulk()) {
		return
	}
	deadline := c.now().Add(c.cfg.PollTimeout)
	for {
		if err := c.deps.Sleep(ctx, c.cfg.PollInterval); err != nil {
			return
		}
		if done := c.poll(ctx, r, lease, deadline); done {
			return
		}
	}
}

// poll is one round of followUp; it reports whether following is over.
func (c *Core) poll(ctx context.Context, r *Request, lease string, deadline time.Time) bool {
	ok, err := c.deps.Store.AcquireLease(ctx, lease, c.cfg.ReplicaID, c.now(), c.leaseTTL())
	if err != nil {
		// The store is unreachable: skip this poll (without the lease
		// another replica may be polling) but keep following, rather
		// than drop the follow-up until the next takeover scan.
		c.log.WarnContext(ctx, "follow-up lease renewal failed; will retry", "request", r.ID, "error", err)
		return !c.now().Before(deadline) // the takeover scan will finish it once the store is back
	}
	if !ok {
		return true // another replica took over
	}
	if r.Bulk() {
		return c.pollBulk(ctx, r, deadline)
	}
	ma, err := c.deps.Defender.GetMachineAction(ctx, r.MachineActionID)
	switch {
	case err != nil && defender.IsNotFound(err):
		c.finish(ctx, r, StateFailed, fmt.Sprintf("Defender no longer knows action %s.", r.MachineActionID))
		return true
	case err != nil:
		c.log.WarnContext(ctx, "follow-up poll failed", "request", r.ID, "error", err)
	default:
		if string(ma.Status) != r.MachineActionStatus {
			r.MachineActionStatus = string(ma.Status)
			if err := c.deps.Store.UpdateRequest(ctx, r.ID, RequestUpdate{MachineActionStatus: &r.MachineActionStatus}, c.now()); err != nil {
				c.log.ErrorContext(ctx, "recording the status failed", "request", r.ID, "error", err)
			}
			c.Audit(ctx, "system", "status", r.ID, map[string]any{"machine_action_id": ma.ID, "status": string(ma.Status)})
			c.deps.Notifier.Status(ctx, r, ma)
		}
		if ma.Status.Final() {
			state, msg := finalOutcome(r.Action, ma.Status)
			if state == StateSucceeded {
				c.Audit(ctx, "system", "result", r.ID, map[string]any{"ok": true, "status": string(ma.Status)})
			}
			c.finish(ctx, r, state, msg)
			return true
		}
	}
	if !c.now().Before(deadline) {
		c.finish(ctx, r, StateFailed, fmt.Sprintf("Defender still reported %s after %s; defenderbot stopped following it. Check with `/defender action %s`.",
			r.MachineActionStatus, c.cfg.PollTimeout, r.MachineActionID))
		return true
	}
	return false
}

// resume picks up work a previous process (or a dead replica) left:
// approved requests are executed, executing ones whose claim lease lapsed
// are reconciled, running ones followed up (once their follow-up lease
// lapsed). Pending ones need nothing: their state is in
// the store.
func (c *Core) resume(ctx context.Context) {
	list := func(st State) []*Request {
		rs, err := c.deps.Store.ListRequests(ctx, RequestFilter{States: []State{st}})
		switch {
		case err != nil && ctx.Err() != nil:
			// Shutting down: the next process's scan picks this up.
			c.log.DebugContext(ctx, "resume scan stopped", "state", st, "error", err)
		case err != nil:
			c.log.ErrorContext(ctx, "listing requests failed", "state", st, "error", err)
		}
		return rs
	}
	for _, r := range list(StateApproved) {
		if ctx.Err() != nil {
			return // shutting down: claim nothing new
		}
		_ = c.Execute(ctx, r) // a store error is logged; the next scan retries
	}
	for _, r := range list(StateExecuting) {
		if ctx.Err() != nil {
			return
		}
		// A request claimed less than a lease ago is in flight (also on a
		// replica of a version without the claim lease); after that, the
		// lease decides.
		if c.now().Sub(r.UpdatedAt) > c.leaseTTL() {
			c.reconcile(ctx, r)
		}
	}
	for _, r := range list(StateRunning) {
		c.startFollowUp(r.ID)
	}
}

// scanEvery is how often Run looks for work a dead replica left:
// Config.SweepEvery, but at least every leaseTTL/3 so that a lapsed lease
// is noticed soon after it lapses.
func (c *Core) scanEvery() time.Duration { return min(c.cfg.SweepEvery, c.leaseTTL()/3) }

// Scan is one round of Run's schedule: it expires pending requests past
// their TTL (and announces them), then picks up work a previous process or
// a dead replica left (see resume). Rounds on several replicas may overlap:
// each request is claimed once. Run calls it at start and then regularly;
// call it directly to drive the schedule yourself.
func (c *Core) Scan(ctx context.Context) {
	c.sweep(ctx)
	c.resume(ctx)
}

// Run scans at once (work left by a previous process) and then every
// scanEvery until ctx ends, running each of also after each scan (an edge's
// own periodic repair, on the same beat). Follow-ups stop with it; their
// leases are released so another replica takes over.
func (c *Core) Run(ctx context.Context, also ...func(ctx context.Context)) error {
	defer c.followCancel()
	scan := func() {
		c.Scan(ctx)
		for _, f := range also {
			f(ctx)
		}
	}
	scan()
	t := time.NewTicker(c.scanEvery())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			scan()
		}
	}
}
