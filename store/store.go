// Package store persists defenderbot's state: approval requests and their votes,
// the audit trail, Slack requests already handled, the IOC sync state and
// leases that let several replicas share work. SQLite is the embedded default;
// PostgreSQL serves several replicas. Both implement Store with the same
// behaviour, proven by one test suite.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/defenderbot/defenderbot/actions"
)

// Errors callers can match with errors.Is.
var (
	ErrNotFound     = errors.New("not found")
	ErrNotPending   = errors.New("request is no longer pending")
	ErrExpired      = errors.New("request has expired")
	ErrAlreadyVoted = errors.New("approver has already approved this request")
)

// RequestState is the life cycle of an approval request.
//
//	pending -> approved -> executing -> running -> succeeded | failed
//	pending -> rejected | expired
//	executing -> failed (the Defender call failed)
//
// "running" means Defender accepted a machine action that is not yet final.
type RequestState string

// Request states.
const (
	StatePending   RequestState = "pending"
	StateApproved  RequestState = "approved"
	StateExecuting RequestState = "executing"
	StateRunning   RequestState = "running"
	StateSucceeded RequestState = "succeeded"
	StateFailed    RequestState = "failed"
	StateRejected  RequestState = "rejected"
	StateExpired   RequestState = "expired"
)

// Final reports whether the request can no longer change state.
func (s RequestState) Final() bool {
	switch s {
	case StateSucceeded, StateFailed, StateRejected, StateExpired:
		return true
	}
	return false
}

// Approval is one approver's vote.
type Approval struct {
	UserID string
	At     time.Time
}

// Request is a request to run an action, waiting for or past approval.
type Request struct {
	ID     string
	Action actions.Name // e.g. actions.Isolate
	Args   actions.Args // canonical (actions.Normalize), MachineID resolved

	MachineName string // computer DNS name shown to approvers, if the action targets a machine

	RequesterID   string
	RequesterName string
	ChannelID     string // where the request was made
	ResponseURL   string // Slack response_url of the slash command, if any

	ApprovalChannel string // where the approval message was posted
	ApprovalTS      string // its ts

	State             RequestState
	RequiredApprovals int
	Approvals         []Approval

	RejectedBy   string
	RejectReason string

	MachineActionID     string // Defender MachineAction id once the call succeeded
	MachineActionStatus string // last seen MachineAction status
	Result              string // JSON of the action's output fields
	Error               string // plain-words error, when failed

	CreatedAt time.Time
	ExpiresAt time.Time
	UpdatedAt time.Time
}

// Decision is what AddApproval did.
type Decision struct {
	// Approved is true for exactly one caller: the one whose vote reached
	// RequiredApprovals and moved the request from pending to approved.
	Approved bool
}

// RequestFilter selects requests. Zero values mean "any".
type RequestFilter struct {
	States []RequestState
	Limit  int
}

// RequestUpdate changes the execution fields of a request. Nil fields are left alone.
type RequestUpdate struct {
	State               *RequestState
	MachineActionID     *string
	MachineActionStatus *string
	Result              *string
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

// IndicatorRecord is what defenderbot knows of one indicator it manages in Defender.
type IndicatorRecord struct {
	Key           string // indicatorType + "|" + normalised value: the upsert key
	IndicatorType string
	Value         string
	StixID        string
	DefenderID    string // empty until Defender gave one
	Fingerprint   string // hash of the payload last sent successfully
	Severity      string
	Status        string // "imported" or "failed"
	FailureReason string
	// Payload is the JSON of the indicator last attempted. The IOC sync keeps
	// it while Status is "failed", so the next run can retry the indicator
	// even if the feed no longer brings its object.
	Payload   string
	UpdatedAt time.Time
}

// SyncRun is the summary of one IOC sync run.
type SyncRun struct {
	ID         string
	StartedAt  time.Time
	FinishedAt time.Time
	Trigger    string // "schedule", "slack", "cli"
	OK         bool
	Summary    string // JSON of the run's report
}

// Store is everything defenderbot persists. Implementations are safe for
// concurrent use by several goroutines and several processes.
type Store interface {
	// Ping checks that the store is reachable.
	Ping(ctx context.Context) error
	Close() error

	CreateRequest(ctx context.Context, r *Request) error
	// GetRequest returns ErrNotFound for an unknown id.
	GetRequest(ctx context.Context, id string) (*Request, error)
	ListRequests(ctx context.Context, f RequestFilter) ([]*Request, error)
	SetApprovalMessage(ctx context.Context, id, channel, ts string) error
	// AddApproval records userID's vote atomically. It returns ErrNotPending if
	// the request is not pending, ErrExpired (and marks it expired) if at is past
	// ExpiresAt, ErrAlreadyVoted for a second vote by the same user.
	AddApproval(ctx context.Context, id, userID string, at time.Time) (*Request, Decision, error)
	// Reject moves a pending request to rejected; ErrNotPending / ErrExpired otherwise.
	Reject(ctx context.Context, id, userID, reason string, at time.Time) (*Request, error)
	// Transition moves a request from one state to another only if it is
	// currently in `from`; ok is false when another caller got there first.
	Transition(ctx context.Context, id string, from, to RequestState, at time.Time) (ok bool, err error)
	UpdateRequest(ctx context.Context, id string, u RequestUpdate, at time.Time) error
	// ExpirePending marks every pending request whose ExpiresAt is before now
	// as expired and returns them.
	ExpirePending(ctx context.Context, now time.Time) ([]*Request, error)

	// MarkSeen records a key (a Slack request fingerprint). first is true only
	// for the first caller across all replicas; keys older than ttl may be forgotten.
	MarkSeen(ctx context.Context, key string, now time.Time, ttl time.Duration) (first bool, err error)

	// AcquireLease takes or renews the named lease for owner until now+ttl.
	// It fails (ok=false) while another owner holds an unexpired lease.
	AcquireLease(ctx context.Context, name, owner string, now time.Time, ttl time.Duration) (ok bool, err error)
	ReleaseLease(ctx context.Context, name, owner string) error

	AppendAudit(ctx context.Context, e AuditEvent) error
	ListAudit(ctx context.Context, since time.Time) ([]AuditEvent, error)

	ListIndicatorRecords(ctx context.Context) ([]IndicatorRecord, error)
	UpsertIndicatorRecords(ctx context.Context, recs []IndicatorRecord) error
	DeleteIndicatorRecords(ctx context.Context, keys []string) error

	SaveSyncRun(ctx context.Context, r SyncRun) error
	// LastSyncRun returns ErrNotFound before the first run.
	LastSyncRun(ctx context.Context) (*SyncRun, error)
	// LastSuccessfulSyncRun returns ErrNotFound if no run succeeded yet.
	LastSuccessfulSyncRun(ctx context.Context) (*SyncRun, error)

	// FeedCursor returns where the last complete read of feed got to (for a
	// TAXII collection, an X-TAXII-Date-Added-Last), or ErrNotFound.
	FeedCursor(ctx context.Context, feed string) (string, error)
	// SetFeedCursor records feed's position (at: the store's clock if zero).
	SetFeedCursor(ctx context.Context, feed, position string, at time.Time) error

	AlertStore
}
