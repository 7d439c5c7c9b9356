// Package store persists defenderbot's state: approval requests and their votes,
// the audit trail, Slack requests already handled, the IOC sync state and
// leases that let several replicas share work. SQLite is the embedded default;
// PostgreSQL serves several replicas. Both implement Store (and so
// approval.Store) with the same behaviour, proven by one test suite
// (store/storetest).
//
// It owns persistence; the domain types are approval's. It must not import
// bot, handlers, slack-go or gin.
package store

import (
	"context"
	"time"

	"github.com/defenderbot/defenderbot/approval"
)

// ErrNotFound is returned for an unknown request, sync run or record
// (the same error as approval.ErrNotFound).
var ErrNotFound = approval.ErrNotFound

// AuditEvent is one line of the audit trail (approval owns the type).
type AuditEvent = approval.AuditEvent

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
	// StixModified is the STIX "modified" of the object version the record
	// came from (zero when unknown: recorded before it was kept).
	StixModified time.Time
}

// Lease is who holds a named lease, since when and until when.
type Lease struct {
	Name, Owner string
	// Since is when Owner took the lease (its renewals keep it); zero for a
	// lease taken before this was recorded.
	Since     time.Time
	ExpiresAt time.Time
}

// SyncRun is the summary of one IOC sync run.
type SyncRun struct {
	ID         string // unique; time-ordered (UUIDv7) so that ties on StartedAt sort by creation
	StartedAt  time.Time
	FinishedAt time.Time
	Trigger    string // "schedule", "slack", "cli"
	OK         bool
	Summary    string // JSON of the run's report
}

var _ approval.Store = Store(nil)

// Store is everything defenderbot persists. Implementations are safe for
// concurrent use by several goroutines and several processes.
type Store interface {
	// Ping checks that the store is reachable.
	Ping(ctx context.Context) error
	Close() error

	CreateRequest(ctx context.Context, r *approval.Request) error
	// GetRequest returns ErrNotFound for an unknown id.
	GetRequest(ctx context.Context, id string) (*approval.Request, error)
	ListRequests(ctx context.Context, f approval.RequestFilter) ([]*approval.Request, error)
	SetApprovalMessage(ctx context.Context, id, channel, ts string) error
	// SetProgressMessage records where a bulk request's progress is shown.
	SetProgressMessage(ctx context.Context, id, ts string) error
	// AddApproval records userID's vote atomically. It returns ErrNotPending if
	// the request is not pending, ErrExpired (and marks it expired) if at is past
	// ExpiresAt, ErrAlreadyVoted for a second vote by the same user.
	AddApproval(ctx context.Context, id, userID string, at time.Time) (*approval.Request, approval.Decision, error)
	// Reject moves a pending request to rejected; ErrNotPending / ErrExpired otherwise.
	Reject(ctx context.Context, id, userID, reason string, at time.Time) (*approval.Request, error)
	// Transition moves a request from one state to another only if it is
	// currently in `from`; ok is false when another caller got there first.
	Transition(ctx context.Context, id string, from, to approval.State, at time.Time) (ok bool, err error)
	UpdateRequest(ctx context.Context, id string, u approval.RequestUpdate, at time.Time) error
	// TransitionTarget moves one machine of a bulk request from `from` to
	// `to` only if it is in `from` (the per-machine claim); ErrNotFound for
	// an unknown machine.
	TransitionTarget(ctx context.Context, id, machineID string, from, to approval.TargetState, at time.Time) (ok bool, err error)
	// UpdateTarget sets the non-nil fields of u on one machine of a bulk request.
	UpdateTarget(ctx context.Context, id, machineID string, u approval.TargetUpdate, at time.Time) error
	// ExpirePending marks every pending request whose ExpiresAt is before now
	// as expired and returns them.
	ExpirePending(ctx context.Context, now time.Time) ([]*approval.Request, error)

	// MarkSeen records a key (a Slack request fingerprint). first is true only
	// for the first caller across all replicas; keys older than ttl may be forgotten.
	MarkSeen(ctx context.Context, key string, now time.Time, ttl time.Duration) (first bool, err error)

	// AcquireLease takes or renews the named lease for owner until now+ttl.
	// It fails (ok=false) while another owner holds an unexpired lease.
	AcquireLease(ctx context.Context, name, owner string, now time.Time, ttl time.Duration) (ok bool, err error)
	ReleaseLease(ctx context.Context, name, owner string) error
	// LeaseHolder returns the unexpired holder of the named lease at now;
	// ErrNotFound when there is none.
	LeaseHolder(ctx context.Context, name string, now time.Time) (Lease, error)

	AppendAudit(ctx context.Context, e approval.AuditEvent) error
	// Audit is AppendAudit from the line's fields, for callers that keep
	// no approval types (the IOC sync).
	Audit(ctx context.Context, at time.Time, actor, kind string, details map[string]any) error
	ListAudit(ctx context.Context, since time.Time) ([]approval.AuditEvent, error)

	ListIndicatorRecords(ctx context.Context) ([]IndicatorRecord, error)
	UpsertIndicatorRecords(ctx context.Context, recs []IndicatorRecord) error
	DeleteIndicatorRecords(ctx context.Context, keys []string) error

	SaveSyncRun(ctx context.Context, r SyncRun) error
	// LastSyncRun is the run that started last; of runs that started at the
	// same instant, the one with the greatest ID (callers use time-ordered
	// IDs, so it is the newest). ErrNotFound before the first run.
	LastSyncRun(ctx context.Context) (*SyncRun, error)
	// LastSuccessfulSyncRun is LastSyncRun among the runs that succeeded;
	// ErrNotFound if none did yet.
	LastSuccessfulSyncRun(ctx context.Context) (*SyncRun, error)

	// FeedCursor returns where the last complete read of feed got to (for a
	// TAXII collection, an X-TAXII-Date-Added-Last), or ErrNotFound.
	FeedCursor(ctx context.Context, feed string) (string, error)
	// SetFeedCursor records feed's position (at: the store's clock if zero).
	SetFeedCursor(ctx context.Context, feed, position string, at time.Time) error

	AlertStore
	UndoStore
	CardStore
}

// CardStore keeps the machine context an approval card shows, so that any
// replica updating the card shows the same.
type CardStore interface {
	// SaveCardContext records (or replaces) requestID's card context.
	SaveCardContext(ctx context.Context, requestID, data string) error
	// CardContext returns it, or "" when none was recorded.
	CardContext(ctx context.Context, requestID string) (string, error)
}

// UndoStore links a request to its undo (the inverse request made from its
// thread), at most one per request.
type UndoStore interface {
	// ClaimUndo makes undoID the undo of originalID unless another undo
	// holds it; it returns the holder (undoID when this call won).
	ClaimUndo(ctx context.Context, originalID, undoID string, now time.Time, ttl time.Duration) (string, error)
	// ReleaseUndo drops undoID's claim (its request could not be created).
	ReleaseUndo(ctx context.Context, originalID, undoID string) error
	// UndoOf returns the request undoID undoes, or "" when it is no undo.
	UndoOf(ctx context.Context, undoID string) (string, error)
}
