package approval

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/defenderbot/defenderbot/actions"
)

// Reason says why the core refused to act.
type Reason string

// Reasons of refusals (also the "reason" of their audit lines).
const (
	ReasonRequesterNotAllowed Reason = "requester not allowed"
	ReasonNotApprover         Reason = "not an approver"
	ReasonUnknownRequest      Reason = "unknown request"
	ReasonExpired             Reason = "expired"
	ReasonNotPending          Reason = "not pending"
	ReasonSelfApproval        Reason = "self-approval"
	ReasonAlreadyVoted        Reason = "already voted"
)

// Refusal is a decision not to act; it has been audited ("refused") and
// counted, and changed nothing.
type Refusal struct {
	Reason Reason
	// State is the request's state for ReasonNotPending when known ("" when
	// another decision got there between the check and the vote).
	State State
}

func (r *Refusal) Error() string { return string(r.Reason) }

// Errors of the decision paths, matchable with errors.Is.
var (
	// ErrLookup: the Directory could not say whether the user is listed.
	ErrLookup = errors.New("user look-up failed")
	// ErrRead: the request could not be read.
	ErrRead = errors.New("reading the request failed")
	// ErrRecord: the store did not record the request or decision.
	ErrRecord = errors.New("recording failed")
	// ErrNotAudited: the audit line before a Defender call could not be
	// written, so Defender was not called.
	ErrNotAudited = errors.New("not run: the audit trail could not be written")
)

// Refuse audits and counts a refusal by the caller's own rule (for
// example, only approvers may run the IOC sync on demand) and returns it.
func (c *Core) Refuse(ctx context.Context, actor, requestID string, reason Reason, details map[string]any) *Refusal {
	d := map[string]any{"reason": string(reason)}
	for k, v := range details {
		d[k] = v
	}
	c.Audit(ctx, actor, "refused", requestID, d)
	c.count("refused")
	return &Refusal{Reason: reason}
}

// CheckRequester applies Config.Requesters (empty: anyone) to user asking
// for action (named for the audit line).
func (c *Core) CheckRequester(ctx context.Context, user, action string) error {
	if len(c.cfg.Requesters) == 0 {
		return nil
	}
	ok, err := c.deps.Directory.InList(ctx, c.cfg.Requesters, user)
	if err != nil {
		c.log.ErrorContext(ctx, "requester check failed", "user", user, "error", err)
		return fmt.Errorf("%w: %w", ErrLookup, err)
	}
	if !ok {
		return c.Refuse(ctx, user, "", ReasonRequesterNotAllowed, map[string]any{"action": action})
	}
	return nil
}

// Route is how a valid request proceeds.
type Route int

// Routes.
const (
	RouteApproval   Route = iota // stored pending, posted for approval (Create)
	RouteDirect                  // read-only and exempt: run at once, nothing stored (RunDirect)
	RouteNoApproval              // state-changing but exempt: stored approved and run (CreateApproved)
)

// RouteOf says how a request for n proceeds under Config.ActionsWithoutApproval.
func (c *Core) RouteOf(n actions.Name) Route {
	switch {
	case c.needsApproval(n):
		return RouteApproval
	case n.ReadOnly():
		return RouteDirect
	}
	return RouteNoApproval
}

// Submission is a valid request as the requester made it.
type Submission struct {
	// ID is the new request's ID when the caller must name it before it
	// exists (an undo claims its original with it); empty: a new one.
	ID              string
	Action          actions.Name
	Args            actions.Args // canonical, MachineID resolved
	MachineName     string
	RequesterID     string
	RequesterName   string
	ChannelID       string
	ResponseURL     string
	ApprovalChannel string
	// Targets are the machines of a bulk request (MachineID and
	// MachineName each, resolved, distinct); Args.MachineID is then empty.
	Targets []Target
}

func (c *Core) newRequest(s Submission, state State) *Request {
	now := c.now()
	id := s.ID
	if id == "" {
		id = newID()
	}
	return &Request{
		ID:                id,
		Action:            s.Action,
		Args:              s.Args,
		MachineName:       s.MachineName,
		Targets:           queued(s.Targets, now),
		RequesterID:       s.RequesterID,
		RequesterName:     s.RequesterName,
		ChannelID:         s.ChannelID,
		ResponseURL:       s.ResponseURL,
		ApprovalChannel:   s.ApprovalChannel,
		State:             state,
		RequiredApprovals: c.cfg.RequiredApprovals,
		CreatedAt:         now,
		ExpiresAt:         now.Add(c.cfg.TTL),
		UpdatedAt:         now,
	}
}

// queued copies a submission's targets as not yet called.
func queued(ts []Target, now time.Time) []Target {
	if len(ts) == 0 {
		return nil
	}
	out := make([]Target, len(ts))
	for i, t := range ts {
		out[i] = Target{MachineID: t.MachineID, MachineName: t.MachineName, State: TargetQueued, UpdatedAt: now}
	}
	return out
}

// ErrBulk: a bulk submission the rules do not allow (actions.CheckMachines:
// too many machines, a machine twice, an action that runs on one machine
// only). The Slack edge and the CLI check the same before they submit, in
// their own words; the error wraps the *actions.MachineListError.
var ErrBulk = errors.New("invalid bulk request")

// checkBulk applies the bulk rules to a submission with Targets.
func (c *Core) checkBulk(s Submission) error {
	if len(s.Targets) == 0 {
		return nil
	}
	ids := make([]string, len(s.Targets))
	for i, t := range s.Targets {
		ids[i] = t.MachineID
	}
	if e := actions.CheckMachines(s.Action, ids, c.cfg.MaxBulk); e != nil {
		return fmt.Errorf("%w: %w", ErrBulk, e)
	}
	if s.Args.MachineID != "" {
		return fmt.Errorf("%w: a bulk request names its machines in Targets only", ErrBulk)
	}
	return nil
}

// requestDetails are the audit details of a new request.
func requestDetails(s Submission) map[string]any {
	d := map[string]any{"action": string(s.Action), "params": s.Args.Map(), "machine_name": s.MachineName}
	if len(s.Targets) > 0 {
		ids := make([]string, len(s.Targets))
		for i, t := range s.Targets {
			ids[i] = t.MachineID
		}
		d["machines"] = ids
	}
	return d
}

// Create stores a pending request; the caller posts it for approval (and
// calls Withdraw if nobody can see it).
func (c *Core) Create(ctx context.Context, s Submission) (*Request, error) {
	if err := c.checkBulk(s); err != nil {
		return nil, err
	}
	r := c.newRequest(s, StatePending)
	if err := c.deps.Store.CreateRequest(ctx, r); err != nil {
		c.log.ErrorContext(ctx, "store request failed", "error", err)
		return nil, fmt.Errorf("%w: %w", ErrRecord, err)
	}
	c.Audit(ctx, s.RequesterID, "request", r.ID, requestDetails(s))
	c.count("pending")
	return r, nil
}

// CreateApproved stores a request that needs no approval as already
// approved; the caller then runs Execute. It still goes through the store:
// one claim, the audit trail, and the same follow-up as an approved one.
func (c *Core) CreateApproved(ctx context.Context, s Submission) (*Request, error) {
	if err := c.checkBulk(s); err != nil {
		return nil, err
	}
	r := c.newRequest(s, StateApproved)
	if err := c.deps.Store.CreateRequest(ctx, r); err != nil {
		c.log.ErrorContext(ctx, "store request failed", "error", err)
		return nil, fmt.Errorf("%w: %w", ErrRecord, err)
	}
	d := requestDetails(s)
	d["approval"] = "not required"
	c.Audit(ctx, s.RequesterID, "request", r.ID, d)
	c.count("pending")
	return r, nil
}

// SetApprovalMessage records where the approval message was posted.
func (c *Core) SetApprovalMessage(ctx context.Context, id, channel, ts string) {
	if err := c.deps.Store.SetApprovalMessage(ctx, id, channel, ts); err != nil {
		c.log.ErrorContext(ctx, "saving the approval message ts failed", "request", id, "error", err)
	}
}

// SetProgressMessage records where a bulk request's progress is shown.
func (c *Core) SetProgressMessage(ctx context.Context, id, ts string) {
	if err := c.deps.Store.SetProgressMessage(ctx, id, ts); err != nil {
		c.log.ErrorContext(ctx, "saving the progress message ts failed", "request", id, "error", err)
	}
}

// Withdraw rejects a pending request nobody can decide (its approval
// message could not be posted), as "system".
func (c *Core) Withdraw(ctx context.Context, id, reason string) {
	if _, err := c.deps.Store.Reject(ctx, id, "system", reason, c.now()); err != nil {
		c.log.ErrorContext(ctx, "withdrawing the request failed", "request", id, "error", err)
	}
	c.Audit(ctx, "system", "reject", id, map[string]any{"reason": "approval message could not be posted"})
	c.count("rejected")
}

// CheckDecider is the check shared by approving and rejecting: user is an
// approver and request id exists and is still pending (an expired one is
// swept). It returns the request, a *Refusal, or an error wrapping
// ErrLookup or ErrRead.
func (c *Core) CheckDecider(ctx context.Context, user, id string) (*Request, error) {
	ok, err := c.IsApprover(ctx, user)
	if err != nil {
		c.log.ErrorContext(ctx, "approver check failed", "user", user, "error", err)
		return nil, fmt.Errorf("%w: %w", ErrLookup, err)
	}
	if !ok {
		return nil, c.Refuse(ctx, user, id, ReasonNotApprover, nil)
	}
	r, err := c.deps.Store.GetRequest(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil, c.Refuse(ctx, user, id, ReasonUnknownRequest, nil)
	}
	if err != nil {
		c.log.ErrorContext(ctx, "reading the request failed", "request", id, "error", err)
		return nil, fmt.Errorf("%w: %w", ErrRead, err)
	}
	if r.State == StatePending && r.Expired(c.now()) {
		c.sweep(ctx) // marks it (and any other overdue request) expired and announces it
		return nil, c.Refuse(ctx, user, r.ID, ReasonExpired, nil)
	}
	if r.State != StatePending {
		ref := c.Refuse(ctx, user, r.ID, ReasonNotPending, nil)
		ref.State = r.State
		return nil, ref
	}
	return r, nil
}

// Approve records user's vote on request id. It returns the request and
// whether this vote approved it: only that caller, across all replicas,
// gets true, and then runs Execute. Refusals are *Refusal; a store failure
// wraps ErrLookup, ErrRead or ErrRecord.
func (c *Core) Approve(ctx context.Context, user, id string) (*Request, bool, error) {
	r, err := c.CheckDecider(ctx, user, id)
	if err != nil {
		return nil, false, err
	}
	if r.RequesterID == user && !c.cfg.AllowSelfApproval {
		return nil, false, c.Refuse(ctx, user, r.ID, ReasonSelfApproval, nil)
	}
	r, dec, err := c.deps.Store.AddApproval(ctx, id, user, c.now())
	if errors.Is(err, ErrAlreadyVoted) {
		return nil, false, c.Refuse(ctx, user, id, ReasonAlreadyVoted, nil)
	}
	if err != nil {
		return nil, false, c.notRecorded(ctx, user, id, "approval", err)
	}
	c.Audit(ctx, user, "approve", r.ID, map[string]any{"approvals": len(r.Approvals), "required": r.RequiredApprovals, "final": dec.Approved})
	if dec.Approved {
		c.count("approved")
	}
	return r, dec.Approved, nil
}

// Reject records user's rejection of request id with reason and tells the
// Notifier. Errors as Approve's.
func (c *Core) Reject(ctx context.Context, user, id, reason string) (*Request, error) {
	if _, err := c.CheckDecider(ctx, user, id); err != nil {
		return nil, err
	}
	r, err := c.deps.Store.Reject(ctx, id, user, reason, c.now())
	if err != nil {
		return nil, c.notRecorded(ctx, user, id, "rejection", err)
	}
	c.Audit(ctx, user, "reject", r.ID, map[string]any{"reason": reason})
	c.count("rejected")
	c.deps.Notifier.Rejected(ctx, r)
	return r, nil
}

// notRecorded explains why the store did not record a decision (what): the
// request expired or was decided between CheckDecider and the store call,
// or the database failed.
func (c *Core) notRecorded(ctx context.Context, user, id, what string, err error) error {
	switch {
	case errors.Is(err, ErrExpired):
		ref := c.Refuse(ctx, user, id, ReasonExpired, nil)
		c.expiredByClick(ctx, id, err)
		return ref
	case errors.Is(err, ErrNotPending):
		return c.Refuse(ctx, user, id, ReasonNotPending, nil)
	}
	c.log.ErrorContext(ctx, "recording the "+what+" failed", "request", id, "error", err)
	return fmt.Errorf("%w: %w", ErrRecord, err)
}

// expiredByClick finishes a request that a click found past its TTL. Only
// the click whose store call moved it to expired (ErrExpired without
// ErrNotPending) announces it; a request expired earlier was announced then.
func (c *Core) expiredByClick(ctx context.Context, id string, err error) {
	if errors.Is(err, ErrNotPending) {
		return
	}
	r, gerr := c.deps.Store.GetRequest(ctx, id)
	if gerr != nil || r.State != StateExpired {
		return
	}
	c.announceExpired(ctx, r)
}

// sweep expires pending requests past their TTL and announces them.
func (c *Core) sweep(ctx context.Context) {
	rs, err := c.deps.Store.ExpirePending(ctx, c.now())
	if err != nil {
		c.log.ErrorContext(ctx, "expiry sweep failed", "error", err)
		return
	}
	for _, r := range rs {
		c.announceExpired(ctx, r)
	}
	c.countPending(ctx)
}

// countPending reports the approval backlog to the metrics: how many
// requests wait and for how long the oldest has.
func (c *Core) countPending(ctx context.Context) {
	if c.deps.Metrics == nil {
		return
	}
	rs, err := c.deps.Store.ListRequests(ctx, RequestFilter{States: []State{StatePending}})
	if err != nil {
		c.log.WarnContext(ctx, "counting pending requests failed", "error", err)
		return
	}
	var oldest time.Duration
	for _, r := range rs {
		oldest = max(oldest, c.now().Sub(r.CreatedAt))
	}
	c.deps.Metrics.PendingApprovals(len(rs), oldest, c.cfg.TTL)
}

func (c *Core) announceExpired(ctx context.Context, r *Request) {
	c.Audit(ctx, "system", "expire", r.ID, nil)
	c.count("expired")
	c.deps.Notifier.Expired(ctx, r)
}
