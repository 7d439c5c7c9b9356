// Package bot is defenderbot's Slack edge: it parses /defender commands,
// opens and reads forms (modals), resolves machine names and Slack user
// groups, renders Block Kit messages, words every reply and retries Slack
// calls. The approval rules (who may approve, votes, expiry, the claim,
// execution, follow-up) are package approval's: bot drives the core and
// shows what it reports.
//
// It must not import gin or handlers (package handlers feeds it parsed
// Slack payloads), nor decide approvals itself.
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
	"github.com/defenderbot/defenderbot/approval"
	"github.com/defenderbot/defenderbot/defender"
	"github.com/defenderbot/defenderbot/internal/httpwait"
	"github.com/defenderbot/defenderbot/internal/logctx"
	"github.com/defenderbot/defenderbot/machineinfo"
)

// Config is the bot's policy: the Slack settings and the approval policy
// it hands to the approval core. Every field is required: ConfigFrom takes
// them from package config, which owns the defaults.
type Config struct {
	Command                string   // the slash command, "/defender"
	ApprovalChannel        string   // channel ID where approval requests are posted
	Approvers              []string // Slack user IDs (U…/W…) or user-group IDs (S…)
	Requesters             []string // same; empty means anyone may request
	AllowSelfApproval      bool
	RequiredApprovals      int            // distinct approvers needed
	TTL                    time.Duration  // how long a request stays approvable
	ActionsWithoutApproval []actions.Name // actions run at once (empty: none)
	PollInterval           time.Duration  // machine-action follow-up
	PollTimeout            time.Duration  // give up following after this
	ReplicaID              string         // lease owner name
	// ResponseURLHosts are the hosts (host[:port]) a response_url may point
	// at (config.Slack.ResponseURLHosts). Anything else is not posted to:
	// the reply goes by chat.postEphemeral instead.
	ResponseURLHosts []string
	// ContextWait is how long the approval card waits for the machine's
	// context before it is posted; later context is filled in by an update.
	ContextWait time.Duration
	// StaleAfter marks a machine not seen by Defender for longer as stale
	// on the card.
	StaleAfter time.Duration
	// LookupTimeout bounds each look-up of the card's context; LatestActions
	// is how many of the machine's latest actions it reads; CardAlerts how
	// many open alerts it lists.
	LookupTimeout time.Duration
	LatestActions int
	CardAlerts    int
	// SweepEvery paces the approval core's expiry sweep and takeover scan;
	// GroupCacheTTL is how long a user group's members are cached;
	// ResponseURLTimeout bounds a response_url post (of the default
	// Deps.HTTPClient); SlackRetry bounds retries of a Slack call.
	SweepEvery         time.Duration
	GroupCacheTTL      time.Duration
	ResponseURLTimeout time.Duration
	SlackRetry         SlackRetry
	// TaskTimeout bounds the work a Slack request starts once acknowledged;
	// UndoClaimTTL is how long an undo claim outlives a replica that died
	// before creating the inverse request (at least TaskTimeout).
	TaskTimeout  time.Duration
	UndoClaimTTL time.Duration
	// IOCSyncTimeout bounds an on-demand IOC sync started from Slack and
	// the report of its outcome (the sync itself ends at iocs.run_timeout).
	IOCSyncTimeout time.Duration
	// MaxBulk is how many machines one request may name (approval.max_bulk).
	MaxBulk int
	// ExecuteTimeout and BulkCallTimeout bound an approved execution on one
	// machine and one machine's part of a bulk one (approval.Config).
	ExecuteTimeout  time.Duration
	BulkCallTimeout time.Duration
	// BulkPace spaces the Defender calls of a bulk request.
	BulkPace time.Duration
	// ProgressEvery is the least time between two updates of a bulk
	// request's progress table (the final state is sent at once).
	ProgressEvery time.Duration
}

// Deps are the bot's collaborators.
type Deps struct {
	Store      Store
	Slack      SlackAPI
	Defender   Defender
	IOCs       IOCSync      // may be nil: the iocs verbs then say the sync is not configured
	HTTPClient *http.Client // for response_url posts; default a client with Config.ResponseURLTimeout
	Logger     *slog.Logger
	Now        func() time.Time
	// Sleep waits d or until ctx ends (follow-up polls, Slack retries);
	// default the real clock's.
	Sleep   func(ctx context.Context, d time.Duration) error
	Metrics approval.Metrics // may be nil
	// MachineInfo reads a machine's record, open alerts and latest actions
	// for the approval card (*defender.Client satisfies it); nil: no context.
	MachineInfo machineinfo.API
	// Alerts reads the alert behind a card's button; may be nil (no feed).
	Alerts AlertSource
	// AlertLinks remembers which alert a request came from; may be nil.
	AlertLinks AlertLinks
}

// SlackAPI is the part of the Slack Web API the bot uses; *slack.Client satisfies it.
type SlackAPI interface {
	PostMessageContext(ctx context.Context, channelID string, options ...slack.MsgOption) (string, string, error)
	UpdateMessageContext(ctx context.Context, channelID, timestamp string, options ...slack.MsgOption) (string, string, string, error)
	PostEphemeralContext(ctx context.Context, channelID, userID string, options ...slack.MsgOption) (string, error)
	OpenViewContext(ctx context.Context, triggerID string, view slack.ModalViewRequest) (*slack.ViewResponse, error)
	PublishViewContext(ctx context.Context, req slack.PublishViewContextRequest) (*slack.ViewResponse, error)
	GetUserGroupMembersContext(ctx context.Context, userGroup string, options ...slack.GetUserGroupMembersOption) ([]string, error)
}

// IOCSync runs and reports the STIX -> Defender indicator sync.
type IOCSync interface {
	RunNow(ctx context.Context, trigger string) (string, error)
	StatusText(ctx context.Context) (string, error)
}

// Store is the persistence of the approval core and of the links between
// a request and its undo; store.Store satisfies it.
type Store interface {
	approval.Store
	UndoLinks
	CardContexts
}

// CardContexts keeps the machine context of each approval card (store.Store
// has it), so that whichever replica updates a card shows it too.
type CardContexts interface {
	SaveCardContext(ctx context.Context, requestID, data string) error
	CardContext(ctx context.Context, requestID string) (string, error) // "" if none
}

// Service is the Slack bot. Its methods are safe for concurrent use.
type Service struct {
	cfg    Config
	deps   Deps
	log    *slog.Logger
	now    func() time.Time
	sleep  func(ctx context.Context, d time.Duration) error
	groups *groupCache
	core   *approval.Core

	// wg tracks async work started by Handle* so Wait can drain it.
	wg sync.WaitGroup

	mu sync.Mutex
	// cards holds the machine context shown on approval cards this replica
	// posted or updated, until the request is final.
	cards map[string]machineinfo.Info
	after func(time.Duration) <-chan time.Time // the card's context wait
	// progress throttles the bulk requests' progress tables (progress.go);
	// waitProgress is a delayed update's wait, until a time of the
	// service's clock (Deps.Sleep; tests wait on their fake clock).
	progress     map[string]*progressTable
	waitProgress func(ctx context.Context, until time.Time) error
}

// problems lists what is missing or wrong in cfg and deps.
func problems(cfg Config, deps Deps) []string {
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
	if cfg.RequiredApprovals < 1 {
		problems = append(problems, "Config.RequiredApprovals must be at least 1")
	}
	if cfg.TTL <= 0 || cfg.PollInterval <= 0 || cfg.PollTimeout <= 0 {
		problems = append(problems, "Config.TTL, PollInterval and PollTimeout must be positive")
	}
	if cfg.ContextWait <= 0 || cfg.StaleAfter <= 0 || cfg.LookupTimeout <= 0 || cfg.LatestActions <= 0 {
		problems = append(problems, "Config.ContextWait, StaleAfter, LookupTimeout and LatestActions must be positive")
	}
	if cfg.SweepEvery <= 0 || cfg.GroupCacheTTL <= 0 || cfg.ResponseURLTimeout <= 0 {
		problems = append(problems, "Config.SweepEvery, GroupCacheTTL and ResponseURLTimeout must be positive")
	}
	if cfg.CardAlerts <= 0 || cfg.TaskTimeout <= 0 || cfg.UndoClaimTTL <= 0 || cfg.IOCSyncTimeout <= 0 {
		problems = append(problems, "Config.CardAlerts, TaskTimeout, UndoClaimTTL and IOCSyncTimeout must be positive")
	} else if cfg.UndoClaimTTL < cfg.TaskTimeout {
		// Else an undo still being created could lose its claim to another.
		problems = append(problems, "Config.UndoClaimTTL must not be shorter than TaskTimeout")
	}
	if err := cfg.SlackRetry.check(); err != nil {
		problems = append(problems, "Config."+err.Error())
	}
	if cfg.MaxBulk < 1 || cfg.BulkPace <= 0 || cfg.ProgressEvery <= 0 {
		problems = append(problems, "Config.MaxBulk, BulkPace and ProgressEvery must be positive")
	}
	if !strings.HasPrefix(cfg.Command, "/") {
		problems = append(problems, "Config.Command must be a slash command such as /defender")
	}
	if cfg.ReplicaID == "" {
		problems = append(problems, "Config.ReplicaID is required")
	}
	if len(cfg.ResponseURLHosts) == 0 {
		problems = append(problems, "Config.ResponseURLHosts must list Slack's hosts")
	}
	for _, a := range cfg.ActionsWithoutApproval {
		if !a.Valid() {
			problems = append(problems, fmt.Sprintf("Config.ActionsWithoutApproval: unknown action %q", a))
		}
	}
	return problems
}

// New checks cfg (every policy value is required: see ConfigFrom) and
// returns a Service.
func New(cfg Config, deps Deps) (*Service, error) {
	if problems := problems(cfg, deps); len(problems) > 0 {
		return nil, errors.New("bot: " + strings.Join(problems, "; "))
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.Sleep == nil {
		deps.Sleep = httpwait.Sleep
	}
	if deps.HTTPClient == nil {
		deps.HTTPClient = &http.Client{Timeout: cfg.ResponseURLTimeout}
	}
	s := &Service{
		cfg:   cfg,
		deps:  deps,
		log:   deps.Logger.With("component", "bot"),
		now:   deps.Now,
		sleep: deps.Sleep,
		cards: map[string]machineinfo.Info{},
		after: time.After,

		progress: map[string]*progressTable{},
	}
	s.waitProgress = func(ctx context.Context, until time.Time) error { return s.sleep(ctx, until.Sub(s.now())) }
	s.groups = newGroupCache(deps.Slack, deps.Now, cfg.GroupCacheTTL, s.slackRetry)
	core, err := approval.New(approval.Config{
		Approvers:              cfg.Approvers,
		Requesters:             cfg.Requesters,
		AllowSelfApproval:      cfg.AllowSelfApproval,
		RequiredApprovals:      cfg.RequiredApprovals,
		TTL:                    cfg.TTL,
		ActionsWithoutApproval: cfg.ActionsWithoutApproval,
		PollInterval:           cfg.PollInterval,
		PollTimeout:            cfg.PollTimeout,
		ReplicaID:              cfg.ReplicaID,
		SweepEvery:             cfg.SweepEvery,
		MaxBulk:                cfg.MaxBulk,
		BulkPace:               cfg.BulkPace,
		ExecuteTimeout:         cfg.ExecuteTimeout,
		BulkCallTimeout:        cfg.BulkCallTimeout,
	}, approval.Deps{
		Store:     deps.Store,
		Defender:  deps.Defender,
		Directory: s.groups,
		Notifier:  notifier{s},
		Metrics:   deps.Metrics,
		Logger:    deps.Logger,
		Now:       deps.Now,
		Sleep:     deps.Sleep,
		Explain:   explainDefenderError,
	})
	if err != nil {
		return nil, fmt.Errorf("bot: %w", err)
	}
	s.core = core
	return s, nil
}

// Wait blocks until the async work started by HandleCommand/HandleInteraction
// and the follow-ups it started have finished. Call it after Run's ctx is
// cancelled.
func (s *Service) Wait() {
	s.wg.Wait()
	s.core.Wait()
}

// Run resumes work left by a previous process and runs the approval core's
// expiry sweep and takeover scan (approval.Core.Run) and the sweep of cards
// whose context a dead replica left loading (cardsweep.go) until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	return s.core.Run(ctx, s.sweepCards)
}

// goAsync runs f in the background within Config.TaskTimeout, detached
// from the Slack request's ctx (which ends when the HTTP response is
// written) but tracked by Wait. The request ID of parent follows into f so
// its log lines can be correlated.
func (s *Service) goAsync(parent context.Context, name string, f func(ctx context.Context)) {
	s.goDetached(parent, name, s.cfg.TaskTimeout, f)
}

// goDetached is goAsync with its own time limit.
func (s *Service) goDetached(parent context.Context, name string, limit time.Duration, f func(ctx context.Context)) {
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
		ctx, cancel := context.WithTimeout(logctx.WithRequestID(context.Background(), reqID), limit)
		defer cancel()
		f(ctx)
	}()
}

// Defender is what the bot needs from Microsoft Defender: the registry's
// actions (as stored with a request) plus machine look-ups. NewDefender
// adapts the actions runner and the defender client.
type Defender interface {
	approval.Defender
	GetMachine(ctx context.Context, id string) (*defender.Machine, error)
	FindMachinesByName(ctx context.Context, name string) ([]defender.Machine, error)
}
