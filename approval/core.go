package approval

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/defenderbot/defenderbot/actions"
	"github.com/defenderbot/defenderbot/defender"
	"github.com/defenderbot/defenderbot/internal/logctx"
)

// Store is the persistence the core needs; store.Store implements it. Each
// method is atomic (see the store contract suite).
type Store interface {
	CreateRequest(ctx context.Context, r *Request) error
	// GetRequest returns ErrNotFound for an unknown id.
	GetRequest(ctx context.Context, id string) (*Request, error)
	ListRequests(ctx context.Context, f RequestFilter) ([]*Request, error)
	SetApprovalMessage(ctx context.Context, id, channel, ts string) error
	// SetProgressMessage records where a bulk request's progress is shown.
	SetProgressMessage(ctx context.Context, id, ts string) error
	// AddApproval records userID's vote atomically: ErrNotPending if the
	// request is not pending, ErrExpired (and marks it expired) if it is
	// Expired(at), ErrAlreadyVoted for a second vote by the same user.
	AddApproval(ctx context.Context, id, userID string, at time.Time) (*Request, Decision, error)
	// Reject moves a pending request to rejected; ErrNotPending / ErrExpired otherwise.
	Reject(ctx context.Context, id, userID, reason string, at time.Time) (*Request, error)
	// Transition moves a request from one state to another only if it is
	// currently in `from`; ok is false when another caller got there first.
	Transition(ctx context.Context, id string, from, to State, at time.Time) (bool, error)
	UpdateRequest(ctx context.Context, id string, u RequestUpdate, at time.Time) error
	// TransitionTarget moves one machine of a bulk request from one state
	// to another only if it is currently in `from` (ok false otherwise):
	// queued -> calling is the per-machine claim.
	TransitionTarget(ctx context.Context, id, machineID string, from, to TargetState, at time.Time) (bool, error)
	// UpdateTarget sets the non-nil fields of u on one machine of a bulk
	// request (ErrNotFound for an unknown one; a state change must be
	// allowed by TargetState.CanTransitionTo).
	UpdateTarget(ctx context.Context, id, machineID string, u TargetUpdate, at time.Time) error
	// ExpirePending marks every pending request Expired(now) as expired and returns them.
	ExpirePending(ctx context.Context, now time.Time) ([]*Request, error)
	AcquireLease(ctx context.Context, name, owner string, now time.Time, ttl time.Duration) (bool, error)
	ReleaseLease(ctx context.Context, name, owner string) error
	AppendAudit(ctx context.Context, e AuditEvent) error
}

// Defender is what the core needs from Microsoft Defender: the registry's
// actions and the two look-ups of a follow-up and a reconciliation.
type Defender interface {
	Run(ctx context.Context, n actions.Name, a actions.Args) (*actions.Result, error)
	GetMachineAction(ctx context.Context, id string) (*defender.MachineAction, error)
	// ListMachineActions lists the machine's actions of one MachineAction
	// type (e.g. "Isolate"), newest first.
	ListMachineActions(ctx context.Context, machineID, actionType string) ([]defender.MachineAction, error)
}

// Directory answers whether a user is in a list of users and groups (the
// Slack edge resolves user groups). An error refuses: the core fails closed.
type Directory interface {
	InList(ctx context.Context, list []string, user string) (bool, error)
}

// Notifier is told what happened to a request, to show it to people. Its
// methods must not fail the workflow: they log their own errors.
type Notifier interface {
	// Changed: r's state changed (re-render what shows it).
	Changed(ctx context.Context, r *Request)
	// Status: Defender reports a new status of r's machine action.
	Status(ctx context.Context, r *Request, ma *defender.MachineAction)
	// Running: Defender accepted r's machine action; it is followed up.
	Running(ctx context.Context, r *Request, ma *defender.MachineAction)
	// Finished: r succeeded or failed (r.Error says why).
	Finished(ctx context.Context, r *Request)
	// Expired: r expired without enough approvals.
	Expired(ctx context.Context, r *Request)
	// Rejected: r was rejected (r.RejectedBy, r.RejectReason).
	Rejected(ctx context.Context, r *Request)
	// Progress: a machine of bulk request r was called or changed status
	// (r.Targets are current). Bulk requests get Progress instead of
	// Status and Running.
	Progress(ctx context.Context, r *Request)
}

// Metrics counts requests entering each state (pending, approved, rejected,
// expired, refused, succeeded, failed), machine actions by final status and
// the pending requests' backlog; *metrics.Metrics satisfies it.
type Metrics interface {
	Approval(state string)
	MachineAction(action, status string)
	PendingApprovals(n int, oldest, ttl time.Duration)
}

// Config is the approval policy and its timings; config.Config supplies
// every value (and its default).
type Config struct {
	Approvers              []string // user IDs or group IDs
	Requesters             []string // same; empty means anyone may request
	AllowSelfApproval      bool
	RequiredApprovals      int
	TTL                    time.Duration // how long a request stays approvable
	ActionsWithoutApproval []actions.Name
	PollInterval           time.Duration // machine-action follow-up
	PollTimeout            time.Duration // give up following after this
	ReplicaID              string        // lease owner name
	SweepEvery             time.Duration // expiry sweep and takeover scan
	// MaxBulk is how many machines one request may name (0: a request
	// names one machine).
	MaxBulk int
	// BulkPace is the pause between the Defender calls of a bulk request
	// (0: none), so that twenty machines do not hit Defender's rate limits
	// at once.
	BulkPace time.Duration
	// ExecuteTimeout bounds one approved execution (the Defender call with
	// its retries, the recording and notifications); BulkCallTimeout one
	// machine's part of a bulk execution, which gets ExecuteTimeout plus
	// BulkPace+BulkCallTimeout per machine.
	ExecuteTimeout  time.Duration
	BulkCallTimeout time.Duration
}

// Deps are the core's collaborators.
type Deps struct {
	Store     Store
	Defender  Defender
	Directory Directory
	Notifier  Notifier
	Metrics   Metrics // may be nil
	Logger    *slog.Logger
	Now       func() time.Time
	Sleep     func(ctx context.Context, d time.Duration) error
	// Explain turns a Defender error into the plain words stored as a
	// failed request's Error.
	Explain func(err error, n actions.Name) string
}

// Core applies the approval rules. Its methods are safe for concurrent use.
type Core struct {
	cfg  Config
	deps Deps
	log  *slog.Logger

	wg sync.WaitGroup
	// followCtx bounds machine-action follow-ups; Stop cancels it.
	followCtx    context.Context
	followCancel context.CancelFunc

	mu        sync.Mutex
	following map[string]bool // request IDs this replica is following up

	renewEvery time.Duration // execution lease renewal; 0: leaseTTL/3 (tests shorten it)
}

// New returns a Core. Every Config value must be set (config owns the defaults).
func New(cfg Config, deps Deps) (*Core, error) {
	var problems []error
	if deps.Store == nil || deps.Defender == nil || deps.Directory == nil || deps.Notifier == nil ||
		deps.Now == nil || deps.Sleep == nil || deps.Explain == nil {
		problems = append(problems, errors.New("Deps.Store, Defender, Directory, Notifier, Now, Sleep and Explain are required"))
	}
	if len(cfg.Approvers) == 0 {
		problems = append(problems, errors.New("Config.Approvers must list at least one user or user group"))
	}
	if cfg.RequiredApprovals < 1 {
		problems = append(problems, errors.New("Config.RequiredApprovals must be at least 1"))
	}
	if cfg.TTL <= 0 || cfg.PollInterval <= 0 || cfg.PollTimeout <= 0 || cfg.SweepEvery <= 0 {
		problems = append(problems, errors.New("Config.TTL, PollInterval, PollTimeout and SweepEvery must be positive"))
	}
	if cfg.ExecuteTimeout <= 0 || cfg.BulkCallTimeout <= 0 {
		problems = append(problems, errors.New("Config.ExecuteTimeout and BulkCallTimeout must be positive"))
	}
	if cfg.MaxBulk < 0 || cfg.BulkPace < 0 {
		problems = append(problems, errors.New("Config.MaxBulk and BulkPace must not be negative"))
	}
	if cfg.ReplicaID == "" {
		problems = append(problems, errors.New("Config.ReplicaID is required"))
	}
	for _, a := range cfg.ActionsWithoutApproval {
		if !a.Valid() {
			problems = append(problems, fmt.Errorf("Config.ActionsWithoutApproval: unknown action %q", a))
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("approval: %w", errors.Join(problems...))
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Core{cfg: cfg, deps: deps, log: deps.Logger.With("component", "approval"), following: map[string]bool{}}
	c.followCtx, c.followCancel = context.WithCancel(context.Background())
	return c, nil
}

func (c *Core) now() time.Time { return c.deps.Now() }

// Get returns the stored request id (ErrNotFound if none).
func (c *Core) Get(ctx context.Context, id string) (*Request, error) {
	return c.deps.Store.GetRequest(ctx, id)
}

// count reports a request entering state to the metrics.
func (c *Core) count(state string) {
	if c.deps.Metrics != nil {
		c.deps.Metrics.Approval(state)
	}
}

// Audit appends to the audit trail. A failure is logged, not returned: the
// action has happened and people must still be told.
func (c *Core) Audit(ctx context.Context, actor, kind, requestID string, details map[string]any) {
	_ = c.auditStrict(ctx, actor, kind, requestID, details)
}

// auditStrict is Audit for the line written just before a Defender call:
// the caller must not call Defender when it fails, so that nothing ever
// touches a machine without a record of it.
func (c *Core) auditStrict(ctx context.Context, actor, kind, requestID string, details map[string]any) error {
	d := maps.Clone(details)
	if d == nil {
		d = map[string]any{}
	}
	if id := logctx.RequestID(ctx); id != "" {
		// Ties the audit line to the HTTP request and its log lines.
		d["correlation_id"] = id
	}
	e := AuditEvent{At: c.now(), Actor: actor, Kind: kind, RequestID: requestID, Details: d}
	if err := c.deps.Store.AppendAudit(context.WithoutCancel(ctx), e); err != nil {
		c.log.ErrorContext(ctx, "audit append failed", "kind", kind, "request", requestID, "error", err)
		return err
	}
	return nil
}

// Stop ends the follow-ups (their leases are released so another replica
// takes over) and waits for them.
func (c *Core) Stop() {
	c.followCancel()
	c.wg.Wait()
}

// Wait waits for the follow-ups started so far (without stopping them).
func (c *Core) Wait() { c.wg.Wait() }

func newID() string { return uuid.NewString() }

// IsApprover applies Config.Approvers. A failed group look-up is an error.
func (c *Core) IsApprover(ctx context.Context, user string) (bool, error) {
	return c.deps.Directory.InList(ctx, c.cfg.Approvers, user)
}

func (c *Core) needsApproval(n actions.Name) bool {
	return !slices.Contains(c.cfg.ActionsWithoutApproval, n)
}
