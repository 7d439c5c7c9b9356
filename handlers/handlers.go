// Package handlers is defenderbot's HTTP surface: the Slack slash-command,
// interaction and Events API endpoints (signature verification and replay
// protection come before anything else), health and readiness probes, Prometheus metrics, and
// the Socket Mode loop that feeds the same bot when no public URL is wanted.
//
// It owns HTTP and Slack's transport rules; it must not import store (it
// takes small interfaces), approval, defender or ioc: the bot decides.
package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/slack-go/slack"
)

// MinReplayTTL is the shortest Config.ReplayTTL: it covers the whole ±5
// minute window Slack's signature timestamp may be in, so a replay is caught
// for as long as it verifies.
const MinReplayTTL = 11 * time.Minute

const (
	requestIDHeader        = "X-Request-ID"
	routeCommands          = "/slack/commands"
	routeInteractions      = "/slack/interactions"
	routeEvents            = "/slack/events"
	routeSocketCommands    = "socket:slash_commands"
	routeSocketInteractive = "socket:interactive"
	routeSocketEvents      = "socket:events_api"
)

// Bot is what the Slack endpoints need from the approval workflow
// (*bot.Service satisfies it). Both methods must return quickly: slow work
// belongs in the bot's own goroutines.
type Bot interface {
	// HandleCommand returns the immediate (usually ephemeral) reply to a slash command.
	HandleCommand(ctx context.Context, cmd slack.SlashCommand) *slack.Msg
	// HandleInteraction returns nil for an empty 200, or a value (such as a
	// *slack.ViewSubmissionResponse) to send back as JSON.
	HandleInteraction(ctx context.Context, ic slack.InteractionCallback) (any, error)
}

// SeenMarker records Slack request fingerprints (store.Store satisfies it).
type SeenMarker interface {
	MarkSeen(ctx context.Context, key string, now time.Time, ttl time.Duration) (first bool, err error)
}

// ReadinessCheck is one dependency /readyz checks. Name is shown to callers;
// the error is only logged, so it may carry detail but never a secret.
type ReadinessCheck struct {
	Name  string
	Check func(ctx context.Context) error
}

// Config tunes the HTTP handlers. Every field but SigningSecret is required
// (config.Slack.Handlers gives them, config owns the defaults).
type Config struct {
	// SigningSecret is the Slack app's signing secret. Empty means every
	// Slack request is refused (fail closed).
	SigningSecret string
	// MaxBodyBytes caps a Slack request body; MaxEventBodyBytes an Events
	// API body (the larger of the two applies there).
	MaxBodyBytes      int64
	MaxEventBodyBytes int64
	// ReplayTTL is how long a request fingerprint is remembered, at least
	// MinReplayTTL: a shorter one would forget a request while its
	// timestamp still verifies, and let it be replayed.
	ReplayTTL time.Duration
	// AckTimeout bounds the bot's synchronous part (inside Slack's 3 s).
	AckTimeout time.Duration
	// ReadyTimeout bounds each readiness check.
	ReadyTimeout time.Duration
}

// check names what cfg lacks.
func (cfg Config) check() error {
	var problems []string
	if cfg.MaxBodyBytes <= 0 || cfg.MaxEventBodyBytes <= 0 || cfg.AckTimeout <= 0 || cfg.ReadyTimeout <= 0 {
		problems = append(problems, "Config.MaxBodyBytes, MaxEventBodyBytes, AckTimeout and ReadyTimeout must be positive")
	}
	if cfg.ReplayTTL < MinReplayTTL {
		problems = append(problems, fmt.Sprintf("Config.ReplayTTL must be at least %v (Slack's signature window), got %v", MinReplayTTL, cfg.ReplayTTL))
	}
	if len(problems) > 0 {
		return errors.New("handlers: " + strings.Join(problems, "; "))
	}
	return nil
}

// Deps are the collaborators of the handlers.
type Deps struct {
	Bot Bot
	// Events receives Events API callbacks (nil: they are acknowledged and
	// ignored).
	Events Events
	Seen   SeenMarker
	// Readiness lists the checks /readyz runs (store ping, Defender token, ...).
	Readiness []ReadinessCheck
	// Metrics counts Slack requests (nil: not counted).
	Metrics Metrics
	// Gatherer is what /metrics serves, normally the registry Metrics
	// registers in (nil: an empty registry).
	Gatherer prometheus.Gatherer
	Logger   *slog.Logger
	// Now is the clock used for replay bookkeeping (default time.Now).
	Now func() time.Time
}

// handler holds the resolved configuration shared by every route.
type handler struct {
	cfg      Config
	bot      Bot
	evts     Events
	seen     SeenMarker
	ready    []ReadinessCheck
	log      *slog.Logger
	now      func() time.Time
	metrics  Metrics
	gatherer prometheus.Gatherer
}

func newHandler(cfg Config, deps Deps) (*handler, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	h := &handler{
		cfg:   cfg,
		bot:   deps.Bot,
		evts:  deps.Events,
		seen:  deps.Seen,
		ready: deps.Readiness,
		log:   deps.Logger,
		now:   deps.Now,
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	h.log = withLogctx(h.log)
	if h.now == nil {
		h.now = time.Now
	}
	h.metrics = deps.Metrics
	if h.metrics == nil {
		h.metrics = noMetrics{}
	}
	h.gatherer = deps.Gatherer
	if h.gatherer == nil {
		h.gatherer = prometheus.NewRegistry()
	}
	return h, nil
}

// New returns the gin engine serving every defenderbot HTTP route; it
// names a missing or unsafe setting of cfg.
func New(cfg Config, deps Deps) (*gin.Engine, error) {
	gin.SetMode(gin.ReleaseMode)
	h, err := newHandler(cfg, deps)
	if err != nil {
		return nil, err
	}
	if cfg.SigningSecret == "" {
		// Expected in Socket Mode; a misconfiguration otherwise.
		h.log.Warn("slack signing secret is empty: the Slack HTTP endpoints refuse every request")
	}

	r := gin.New()
	r.Use(requestLogger(h.log), recovery(h.log))
	r.POST(routeCommands, h.slackRoute(routeCommands, h.slashCommand))
	r.POST(routeInteractions, h.slackRoute(routeInteractions, h.interaction))
	r.POST(routeEvents, h.slackRoute(routeEvents, h.events))
	r.GET("/healthz", func(c *gin.Context) {
		c.JSON(http.StatusOK, gin.H{"status": "ok"})
	})
	r.GET("/readyz", h.readyz)
	r.GET("/metrics", gin.WrapH(promhttp.HandlerFor(h.gatherer, promhttp.HandlerOpts{})))
	r.NoRoute(func(c *gin.Context) {
		c.JSON(http.StatusNotFound, gin.H{"error": "not found"})
	})
	return r, nil
}
