// Package approval is defenderbot's approval core: the domain types (a
// Request, its State, the Votes on it, the AuditEvents it leaves) and the
// rules that govern them: who may request and approve, N distinct votes,
// expiry, the exactly-once claim that lets one caller run an approved
// request, its execution through Defender, the follow-up of the machine
// action it creates, and the reconciliation of requests a crash left
// behind. It returns typed outcomes and errors and tells a Notifier what
// happened; the words and the channel (Slack) are the caller's.
//
// It owns the approval rules; it must not import slack-go, gin, bot,
// handlers or store (store implements its Store interface).
package approval

import (
	"errors"
	"time"

	"github.com/defenderbot/defenderbot/actions"
)

// Errors a Store returns, matchable with errors.Is.
var (
	// ErrNotFound also says so by behaviour (a NotFound method that returns
	// true), so that a package that must not depend on approval or store
	// (ioc) recognises it without naming either.
	ErrNotFound     error = notFound{}
	ErrNotPending         = errors.New("request is no longer pending")
	ErrExpired            = errors.New("request has expired")
	ErrAlreadyVoted       = errors.New("approver has already approved this request")
	// ErrConflict: CreateRequest with an ID that already exists.
	ErrConflict = errors.New("already exists")
	// ErrInvalidTransition: a state change the life cycle does not allow.
	ErrInvalidTransition = errors.New("invalid state transition")
)

type notFound struct{}

func (notFound) Error() string  { return "not found" }
func (notFound) NotFound() bool { return true }

// State is the life cycle of an approval request.
//
//	pending -> approved -> executing -> running -> succeeded | failed
//	pending -> rejected | expired
//	executing -> failed (the Defender call failed)
//
// "running" means Defender accepted a machine action that is not yet final.
type State string

// Request states.
const (
	StatePending   State = "pending"
	StateApproved  State = "approved"
	StateExecuting State = "executing"
	StateRunning   State = "running"
	StateSucceeded State = "succeeded"
	StateFailed    State = "failed"
	StateRejected  State = "rejected"
	StateExpired   State = "expired"
)

// Final reports whether the request can no longer change state.
func (s State) Final() bool {
	switch s {
	case StateSucceeded, StateFailed, StateRejected, StateExpired:
		return true
	}
	return false
}

// Valid reports whether s is one of the known states.
func (s State) Valid() bool {
	switch s {
	case StatePending, StateApproved, StateExecuting, StateRunning,
		StateSucceeded, StateFailed, StateRejected, StateExpired:
		return true
	}
	return false
}

// CanTransitionTo reports whether the life cycle allows moving from s to
// next. Besides the diagram on State, executing -> succeeded covers
// actions that finish within the Defender call, and approved -> failed a
// request that could not start.
func (s State) CanTransitionTo(next State) bool {
	switch s {
	case StatePending:
		return next == StateApproved || next == StateRejected || next == StateExpired
	case StateApproved:
		return next == StateExecuting || next == StateFailed
	case StateExecuting:
		return next == StateRunning || next == StateSucceeded || next == StateFailed
	case StateRunning:
		return next == StateSucceeded || next == StateFailed
	}
	return false
}

// Vote is one approver's approval.
type Vote struct {
	UserID string
	At     time.Time
}

// Request is a request to run an action, waiting for or past approval.
type Request struct {
	ID     string
	Action actions.Name // e.g. actions.Isolate
	Args   actions.Args // canonical (actions.Normalize), MachineID resolved

	MachineName string // computer DNS name shown to approvers, if the action targets a machine

	// Targets are the machines of a bulk request ("isolate ws-1,ws-2 …"),
	// in the order given, each with its own execution; Args.MachineID and
	// MachineName are then empty. Empty for a request on one machine.
	Targets []Target

	RequesterID   string
	RequesterName string
	ChannelID     string // where the request was made
	ResponseURL   string // Slack response_url of the slash command, if any

	ApprovalChannel string // where the approval message was posted
	ApprovalTS      string // its ts
	// ProgressTS is the message (in the approval message's thread) that
	// shows a bulk request's per-machine progress, once posted.
	ProgressTS string

	State             State
	RequiredApprovals int
	Approvals         []Vote

	RejectedBy   string
	RejectReason string

	MachineActionID     string // Defender MachineAction id once the call succeeded
	MachineActionStatus string // last seen MachineAction status
	Result              string // JSON of the action's output fields
	Error               string // plain-words error, when failed

	CreatedAt time.Time
	ExpiresAt time.Time // zero: never expires
	UpdatedAt time.Time
}

// Expired reports whether a pending request can no longer be decided at
// now: now is past ExpiresAt (a vote exactly at ExpiresAt still counts).
// This is the one definition; the stores apply the same rule in SQL and
// the contract suite checks it.
func (r *Request) Expired(now time.Time) bool {
	return !r.ExpiresAt.IsZero() && now.After(r.ExpiresAt)
}

// Bulk reports whether r acts on several machines (Targets).
func (r *Request) Bulk() bool { return len(r.Targets) > 0 }

// TargetsDone reports whether every machine of a bulk request has its
// outcome (the request then ends).
func (r *Request) TargetsDone() bool {
	for _, t := range r.Targets {
		if !t.State.Final() {
			return false
		}
	}
	return true
}

// Approvers lists the user IDs that approved r, in vote order.
func (r *Request) Approvers() []string {
	ids := make([]string, len(r.Approvals))
	for i, a := range r.Approvals {
		ids[i] = a.UserID
	}
	return ids
}

// Decision is what a Store's AddApproval did.
type Decision struct {
	// Approved is true for exactly one caller: the one whose vote reached
	// RequiredApprovals and moved the request from pending to approved.
	Approved bool
}

// RequestFilter selects requests. Zero values mean "any".
type RequestFilter struct {
	States  []State
	Actions []actions.Name
	Limit   int
}

// RequestUpdate changes the execution fields of a request. Nil fields are left alone.
type RequestUpdate struct {
	State               *State
	MachineActionID     *string
	MachineActionStatus *string
	Result              *string
	Error               *string
}

// TargetState is the life cycle of one machine of a bulk request.
//
//	queued -> calling -> running -> succeeded | failed
//	calling -> succeeded | failed (final at once, the call failed, or a
//	  takeover found no action in Defender)
//	queued -> failed (never called)
//
// queued -> calling is the per-machine claim: only the caller that moves a
// machine there calls Defender for it, so a takeover never calls twice.
type TargetState string

// Target states.
const (
	TargetQueued    TargetState = "queued"
	TargetCalling   TargetState = "calling"
	TargetRunning   TargetState = "running"
	TargetSucceeded TargetState = "succeeded"
	TargetFailed    TargetState = "failed"
)

// Final reports whether the machine's outcome is known.
func (s TargetState) Final() bool { return s == TargetSucceeded || s == TargetFailed }

// Valid reports whether s is one of the known target states.
func (s TargetState) Valid() bool {
	switch s {
	case TargetQueued, TargetCalling, TargetRunning, TargetSucceeded, TargetFailed:
		return true
	}
	return false
}

// CanTransitionTo reports whether the life cycle allows moving from s to next.
func (s TargetState) CanTransitionTo(next TargetState) bool {
	switch s {
	case TargetQueued:
		return next == TargetCalling || next == TargetFailed
	case TargetCalling:
		return next == TargetRunning || next.Final()
	case TargetRunning:
		return next.Final()
	}
	return false
}

// Target is one machine of a bulk request and its own execution.
type Target struct {
	MachineID   string
	MachineName string // computer DNS name shown to approvers
	State       TargetState

	MachineActionID     string // Defender MachineAction id once the call succeeded
	MachineActionStatus string // last seen MachineAction status
	Error               string // plain-words error, when failed
	UpdatedAt           time.Time
}

// TargetUpdate changes the execution fields of one target. Nil fields are left alone.
type TargetUpdate struct {
	State               *TargetState
	MachineActionID     *string
	MachineActionStatus *string
	Error               *string
}

// AuditEvent is one line of the audit trail.
type AuditEvent struct {
	ID        int64
	At        time.Time
	Actor     string // Slack user ID, "system", "cli" or "scheduler"
	Kind      string // request, approve, reject, expire, call, result, status, refused, iocs_sync, ...
	RequestID string
	Details   map[string]any
}
