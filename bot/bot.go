// Package bot is defenderbot's Slack workflow: it parses /defender commands,
// runs the two-person approval of state-changing Defender actions, renders
// Block Kit messages and follows machine actions until they are final. It is
// independent of HTTP: package handlers feeds it parsed Slack payloads.
package bot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/slack-go/slack"

	"github.com/defenderbot/defenderbot/actions"
	"github.com/defenderbot/defenderbot/defender"
	"github.com/defenderbot/defenderbot/internal/logctx"
	"github.com/defenderbot/defenderbot/store"
)

// Config is the bot's policy.
type Config struct {
	Command                string   // the slash command, "/defender"
	ApprovalChannel        string   // channel ID where approval requests are posted
	Approvers              []string // Slack user IDs (U…/W…) or user-group IDs (S…)
	Requesters             []string // same; empty means anyone may request
	AllowSelfApproval      bool
	RequiredApprovals      int            // distinct approvers needed; default 1
	TTL                    time.Duration  // how long a request stays approvable; default 1h
	ActionsWithoutApproval []actions.Name // actions run at once; default [get-action]
	PollInterval           time.Duration  // machine-action follow-up; default 15s
	PollTimeout            time.Duration  // give up following after this; default 30m
	ReplicaID              string         // lease owner name; default a random ID
	// ResponseURLHosts are the hosts (host[:port]) a response_url may point
	// at; default Slack's (hooks.slack.com, hooks.slack-gov.com). Anything
	// else is not posted to: the reply goes by chat.postEphemeral instead.
	ResponseURLHosts []string
}

// DefaultResponseURLHosts are Slack's response_url hosts.
func DefaultResponseURLHosts() []string {
	return []string{"hooks.slack.com", "hooks.slack-gov.com"}
}

// Deps are the bot's collaborators.
type Deps struct {
	Store      Store
	Slack      SlackAPI
	Defender   Defender
	IOCs       IOCSync      // may be nil: the iocs verbs then say the sync is not configured
	HTTPClient *http.Client // for response_url posts; default http.DefaultClient with a timeout
	Logger     *slog.Logger
	Now        func() time.Time
	Metrics    Metrics // may be nil
}

// Metrics counts requests entering each state (pending, approved, rejected,
// expired, refused, succeeded, failed), machine actions by final status and
// the pending requests' backlog; *metrics.Metrics satisfies it.
type Metrics interface {
	Approval(state string)
	MachineAction(action, status string)
	PendingApprovals(n int, oldest, ttl time.Duration)
}

// SlackAPI is the part of the Slack Web API the bot uses; *slack.Client satisfies it.
type SlackAPI interface {
	PostMessageContext(ctx context.Context, channelID string, options ...slack.MsgOption) (string, string, error)
	UpdateMessageContext(ctx context.Context, channelID, timestamp string, options ...slack.MsgOption) (string, string, string, error)
	PostEphemeralContext(ctx context.Context, channelID, userID string, options ...slack.MsgOption) (string, error)
	OpenViewContext(ctx context.Context, triggerID string, view slack.ModalViewRequest) (*slack.ViewResponse, error)
	GetUserGroupMembersContext(ctx context.Context, userGroup string, options ...slack.GetUserGroupMembersOption) ([]string, error)
}

// IOCSync runs and reports the STIX -> Defender indicator sync.
type IOCSync interface {
	RunNow(ctx context.Context, trigger string) (string, error)
	StatusText(ctx context.Context) (string, error)
}

// Store is the subset of store.Store the bot uses.
type Store interface {
	CreateRequest(ctx context.Context, r *store.Request) error
	GetRequest(ctx context.Context, id string) (*store.Request, error)
	ListRequests(ctx context.Context, f store.RequestFilter) ([]*store.Request, error)
	SetApprovalMessage(ctx context.Context, id, channel, ts string) error
	AddApproval(ctx context.Context, id, userID string, at time.Time) (*store.Request, store.Decision, error)
	Reject(ctx context.Context, id, userID, reason string, at time.Time) (*store.Request, error)
	Transition(ctx context.Context, id string, from, to store.RequestState, at time.Time) (bool, error)
	UpdateRequest(ctx context.Context, id string, u store.RequestUpdate, at time.Time) error
	ExpirePending(ctx context.Context, now time.Time) ([]*store.Request, error)
	AcquireLease(ctx context.Context, name, owner string, now time.Time, ttl time.Duration) (bool, error)
	ReleaseLease(ctx context.Context, name, owner string) error
	AppendAudit(ctx context.Context, e store.AuditEvent) error
}

var _ Store = store.Store(nil)

// Service is the Slack bot. Its methods are safe for concurrent use.
type Service struct {
	cfg    Config
	deps   Deps
	log    *slog.Logger
	now    func() time.Time
	groups *groupCache

	// wg tracks async work started by Handle* so Wait can drain it.
	wg sync.WaitGroup

	// followCtx bounds machine-action follow-ups; Run cancels it on return.
	followCtx    context.Context
	followCancel context.CancelFunc
	sweepEvery   time.Duration
	sleep        func(ctx context.Context, d time.Duration) error

	mu        sync.Mutex
	following map[string]bool // request IDs this replica is following up
}

// New checks cfg, fills defaults and returns a Service.
func New(cfg Config, deps Deps) (*Service, error) {
	var problems []string
	if deps.Store == nil {
		problems = append(problems, "Deps.Store is required")
	}
	if deps.Slack == nil {
		problems = append(problems, "Deps.Slack is required")
	}
	if deps.Defender == nil {
		problems = append(problems, "Deps.Defender is required")
	}
	if strings.TrimSpace(cfg.ApprovalChannel) == "" {
		problems = append(problems, "Config.ApprovalChannel is required")
	}
	if len(cfg.Approvers) == 0 {
		problems = append(problems, "Config.Approvers must list at least one user or user group")
	}
	if cfg.RequiredApprovals < 0 {
		problems = append(problems, "Config.RequiredApprovals must be at least 1")
	}
	if cfg.TTL < 0 || cfg.PollInterval < 0 || cfg.PollTimeout < 0 {
		problems = append(problems, "durations must not be negative")
	}
	for _, a := range cfg.ActionsWithoutApproval {
		if !a.Valid() {
			problems = append(problems, fmt.Sprintf("Config.ActionsWithoutApproval: unknown action %q", a))
		}
	}
	if len(problems) > 0 {
		return nil, errors.New("bot: " + strings.Join(problems, "; "))
	}
	if cfg.Command == "" {
		cfg.Command = "/defender"
	}
	if cfg.RequiredApprovals == 0 {
		cfg.RequiredApprovals = 1
	}
	if cfg.TTL == 0 {
		cfg.TTL = time.Hour
	}
	if cfg.ActionsWithoutApproval == nil {
		cfg.ActionsWithoutApproval = []actions.Name{actions.GetAction}
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 15 * time.Second
	}
	if cfg.PollTimeout == 0 {
		cfg.PollTimeout = 30 * time.Minute
	}
	if cfg.ReplicaID == "" {
		cfg.ReplicaID = "bot-" + newID()[:8]
	}
	if len(cfg.ResponseURLHosts) == 0 {
		cfg.ResponseURLHosts = DefaultResponseURLHosts()
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.HTTPClient == nil {
		deps.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	s := &Service{
		cfg:       cfg,
		deps:      deps,
		log:       deps.Logger.With("component", "bot"),
		now:       deps.Now,
		following: map[string]bool{},
	}
	s.groups = newGroupCache(deps.Slack, deps.Now, 5*time.Minute)
	s.followCtx, s.followCancel = context.WithCancel(context.Background())
	s.sweepEvery = time.Minute
	s.sleep = sleepCtx
	return s, nil
}

// Wait blocks until the async work started by HandleCommand/HandleInteraction
// and by Run has finished. Call it after Run's ctx is cancelled.
func (s *Service) Wait() {
	s.wg.Wait()
}

// goAsync runs f in the background, detached from the Slack request's ctx
// (which ends when the HTTP response is written) but tracked by Wait. The
// request ID of parent follows into f so its log lines can be correlated.
func (s *Service) goAsync(parent context.Context, name string, f func(ctx context.Context)) {
	reqID := logctx.RequestID(parent)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer func() {
			if r := recover(); r != nil {
				s.log.Error("async task panicked", "task", name, "panic", fmt.Sprint(r))
			}
		}()
		// Not tied to shutdown either: a click being handled finishes (serve
		// waits for Wait, bounded by its grace period).
		ctx, cancel := context.WithTimeout(logctx.WithRequestID(context.Background(), reqID), 2*time.Minute)
		defer cancel()
		f(ctx)
	}()
}

// Defender is what the bot needs from Microsoft Defender: the registry's
// actions (as stored in store.Request) plus machine look-ups. NewDefender
// adapts the actions runner and the defender client.
type Defender interface {
	Run(ctx context.Context, n actions.Name, a actions.Args) (*actions.Result, error)
	GetMachine(ctx context.Context, id string) (*defender.Machine, error)
	FindMachinesByName(ctx context.Context, name string) ([]defender.Machine, error)
	GetMachineAction(ctx context.Context, id string) (*defender.MachineAction, error)
	// ListMachineActions lists the machine's actions of one MachineAction
	// type (e.g. "Isolate"), newest first; used to reconcile after a crash.
	ListMachineActions(ctx context.Context, machineID, actionType string) ([]defender.MachineAction, error)
}
