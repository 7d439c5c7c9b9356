package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"

	"github.com/defenderbot/defenderbot/alerts"
	"github.com/defenderbot/defenderbot/bot"
	"github.com/defenderbot/defenderbot/config"
	"github.com/defenderbot/defenderbot/defender"
	"github.com/defenderbot/defenderbot/graph"
	"github.com/defenderbot/defenderbot/handlers"
	"github.com/defenderbot/defenderbot/ioc"
	"github.com/defenderbot/defenderbot/metrics"
	"github.com/defenderbot/defenderbot/scheduler"
	"github.com/defenderbot/defenderbot/store"
)

// runServe is the production entry point: the Slack bot (HTTP endpoints or
// Socket Mode), health/readiness/metrics, and the scheduled IOC sync.
func runServe(ctx context.Context, c *cli, args []string) int {
	fs := newFlagSet(c, "serve", "serve [--config FILE]")
	cfgPath := configFlag(fs)
	if code, ok := parseFlagsOnly(c, fs, args); !ok {
		return code
	}
	cfg, ok := loadConfigFor(c, *cfgPath, config.ForServe)
	if !ok {
		return 1
	}
	applyMemoryLimit(c, cfg)
	logger := newLogger(c, cfg)
	for _, name := range c.unknownEnv() {
		logger.Warn("environment variable is not a configuration key and is ignored (misspelled?)", "variable", name)
	}
	for _, w := range cfg.Warnings() {
		logger.Warn("configuration: " + w)
	}

	app, err := newServeApp(ctx, c, cfg, logger)
	if err != nil {
		fmt.Fprintf(c.stderr, "defenderbot: %v\n", err)
		return 1
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		app.close()
		fmt.Fprintf(c.stderr, "defenderbot: listen on %s: %v\n", cfg.Listen, err)
		return 1
	}
	if err := app.run(ctx, ln); err != nil {
		fmt.Fprintf(c.stderr, "defenderbot: %v\n", err)
		return 1
	}
	return 0
}

// serveApp is everything `serve` runs, assembled from the configuration.
// `demo` builds the same thing against the emulators.
type serveApp struct {
	cfg      *config.Config
	log      *slog.Logger
	store    store.Store
	slack    *slack.Client
	bot      *bot.Service
	defender *defender.Client
	metrics  *metrics.Metrics
	sched    *scheduler.Scheduler // nil without IOC sync
	alerts   *alerts.Poller       // nil without the alert feed
	deps     handlers.Deps
	handler  http.Handler
}

// newServeApp opens the store and builds the clients, bot, handlers and (when
// enabled) the IOC scheduler. Nothing is started yet.
func newServeApp(ctx context.Context, c *cli, cfg *config.Config, logger *slog.Logger, slackOpts ...slack.Option) (*serveApp, error) {
	s := &serveApp{cfg: cfg, log: logger, metrics: metrics.New()}
	raw, err := openStore(ctx, cfg, store.WithLogger(logger))
	if err != nil {
		return nil, err
	}
	s.store = raw
	if err := s.build(ctx, c, leaseCountingStore{Store: raw, obs: s.metrics}, slackOpts); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// build makes everything but the store, which st wraps.
func (s *serveApp) build(ctx context.Context, c *cli, st leaseCountingStore, slackOpts []slack.Option) error {
	cfg, logger := s.cfg, s.log
	var err error
	if s.defender, err = newDefenderClient(c, cfg, logger, defender.WithObserver(s.metrics)); err != nil {
		return err
	}
	s.slack = newSlackClient(cfg, slackOpts)
	replica := cfg.Replica()
	var iocs bot.IOCSync
	if cfg.IOCs.Enabled {
		leased, err := s.scheduleIOCSync(ctx, st, replica)
		if err != nil {
			return err
		}
		iocs = leased
	}

	// One Graph client for the alert feed and the alert actions: one pacer
	// for Graph's per-app limit.
	var gc *graph.Client
	if cfg.Alerts.Enabled || cfg.Defender.AlertsAPI == config.AlertsAPIGraph {
		if gc, err = newGraphClient(c, cfg, logger, s.metrics); err != nil {
			return err
		}
	}
	runner, err := newRunner(c, cfg, logger, s.defender, gc)
	if err != nil {
		return err
	}
	s.bot, err = bot.New(bot.ConfigFrom(cfg, replica), bot.Deps{
		Store:       st,
		Slack:       s.slack,
		Defender:    bot.NewDefender(runner, s.defender),
		MachineInfo: s.defender,
		IOCs:        iocs,
		Logger:      logger,
		Metrics:     s.metrics,
		// The alert cards' buttons read the alert from Graph.
		Alerts:     alertSource(gc, cfg.Alerts.Enabled),
		AlertLinks: st,
	})
	if err != nil {
		return err
	}
	if cfg.Alerts.Enabled {
		if s.alerts, err = s.newAlertPoller(gc, st, replica); err != nil {
			return err
		}
	}
	return s.buildHandler(st, gc)
}

// newSlackClient is the Web API client: slack.timeout per call, the
// configured API URL, the app-level token in Socket Mode, then the caller's
// options.
func newSlackClient(cfg *config.Config, extra []slack.Option) *slack.Client {
	opts := []slack.Option{slack.OptionHTTPClient(slackHTTPClient(cfg.Slack))}
	if api := cfg.Slack.APIURL; api != "" {
		if !strings.HasSuffix(api, "/") {
			api += "/"
		}
		opts = append(opts, slack.OptionAPIURL(api))
	}
	if cfg.Slack.SocketMode() {
		opts = append(opts, slack.OptionAppLevelToken(cfg.Slack.AppToken.Value()))
	}
	return slack.New(cfg.Slack.BotToken.Value(), append(opts, extra...)...)
}

// slackHTTPClient carries the Web API calls, each bounded by slack.timeout.
func slackHTTPClient(s config.Slack) *http.Client { return &http.Client{Timeout: s.Timeout} }

// scheduleIOCSync builds the IOC sync, schedules it and returns its
// leased entry point for runs asked for in Slack.
func (s *serveApp) scheduleIOCSync(ctx context.Context, st leaseCountingStore, replica string) (*ioc.LeasedSyncer, error) {
	cfg, logger := s.cfg, s.log
	opts, err := iocOptions(cfg.IOCs, logger.With("component", "iocs"))
	if err != nil {
		return nil, fmt.Errorf("IOC sync: %w", err)
	}
	opts.Metrics = s.metrics
	syncer, err := ioc.NewSyncer(s.defender, st, opts, logger.With("component", "iocs"))
	if err != nil {
		return nil, fmt.Errorf("IOC sync: %w", err)
	}
	jobCfg := ioc.JobConfig{Leaser: st, Owner: replica, LeaseTTL: config.IOCLeaseTTL, RenewEvery: config.IOCLeaseRenewEvery,
		RunTimeout: cfg.IOCs.RunTimeout, Reporter: s.reporter(), Logger: logger}
	// Runs asked for in Slack take the same lease as scheduled ones, so
	// two replicas never sync at once.
	leased, err := syncer.Leased(jobCfg)
	if err != nil {
		return nil, fmt.Errorf("IOC sync: %w", err)
	}
	job, err := syncer.ScheduledJob(jobCfg)
	if err != nil {
		return nil, fmt.Errorf("IOC sync: %w", err)
	}
	s.sched = scheduler.New(logger.With("component", "scheduler"))
	if err := s.sched.Add(cfg.IOCs.Schedule, ioc.LeaseName, job); err != nil {
		return nil, fmt.Errorf("iocs.schedule: %w", err)
	}
	s.seedIOCMetrics(ctx)
	return leased, nil
}

// newAlertPoller is the alert feed: Graph's alerts posted as cards.
func (s *serveApp) newAlertPoller(gc *graph.Client, st leaseCountingStore, replica string) (*alerts.Poller, error) {
	al := s.cfg.Alerts
	poster, err := bot.NewAlertPoster(s.slack, bot.AlertCardOptionsFromRegistry(), bot.SlackRetryFrom())
	if err != nil {
		return nil, err
	}
	return alerts.New(alerts.Config{
		Channel:        al.Channel,
		MinSeverity:    al.MinSeverity,
		ServiceSources: al.ServiceSources,
		PollInterval:   al.PollInterval,
		Backfill:       al.Backfill,
		Overlap:        config.AlertsOverlap,
		Owner:          replica,
		Log:            s.log.With("component", "alerts"),
		Metrics:        s.metrics,
	}, gc, st, poster)
}

// buildHandler makes the HTTP handler and its readiness checks (Graph's
// token only when there is a Graph client).
func (s *serveApp) buildHandler(st leaseCountingStore, gc *graph.Client) error {
	s.deps = handlers.Deps{
		Bot:    s.bot,
		Events: s.bot,
		Seen:   st,
		Readiness: []handlers.ReadinessCheck{
			{Name: "store", Check: st.Ping},
			{Name: "defender_token", Check: s.defender.CheckToken},
		},
		Metrics:  s.metrics,
		Gatherer: s.metrics.Registry,
		Logger:   s.log,
	}
	if gc != nil {
		s.deps.Readiness = append(s.deps.Readiness, handlers.ReadinessCheck{Name: "graph_token", Check: gc.CheckToken})
	}
	var err error
	s.handler, err = handlers.New(handlersConfig(s.cfg.Slack), s.deps)
	return err
}

// handlersConfig is the Slack endpoints' configuration (HTTP and Socket
// Mode): config's values (package config must not import handlers).
func handlersConfig(s config.Slack) handlers.Config {
	return handlers.Config{SigningSecret: s.SigningSecret.Value(), MaxBodyBytes: config.SlackMaxBodyBytes,
		MaxEventBodyBytes: config.SlackMaxEventBodyBytes, ReplayTTL: config.SlackReplayTTL,
		AckTimeout: config.SlackAckTimeout, ReadyTimeout: config.ReadyTimeout}
}

// alertSource is gc when the alert feed is on (the cards exist), else nil.
func alertSource(gc *graph.Client, feed bool) bot.AlertSource {
	if gc == nil || !feed {
		return nil
	}
	return gc
}

// seedIOCMetrics exports the schedule's period and the store's last
// successful sync, so that the "no successful sync" alert survives restarts.
func (s *serveApp) seedIOCMetrics(ctx context.Context) {
	period, err := scheduler.LongestInterval(s.cfg.IOCs.Schedule, time.Now())
	if err != nil {
		s.log.Warn("IOC schedule period unknown", "error", err)
	}
	var last time.Time
	run, err := s.store.LastSuccessfulSyncRun(ctx)
	switch {
	case err == nil:
		last = run.FinishedAt
	case !errors.Is(err, store.ErrNotFound):
		s.log.Warn("reading the last successful IOC sync failed", "error", err)
	}
	s.metrics.IOCSchedule(period, last)
}

// reporter posts IOC sync summaries to iocs.report_channel, if set.
func (s *serveApp) reporter() ioc.Reporter {
	ch := s.cfg.IOCs.ReportChannel
	if ch == "" {
		return nil
	}
	return ioc.ReporterFunc(func(ctx context.Context, text string) error {
		_, _, err := s.slack.PostMessageContext(ctx, ch, slack.MsgOptionText(text, false))
		return err
	})
}

// run serves on ln (and over Socket Mode when configured) until ctx is
// done, then shuts down gracefully: stop accepting, finish in-flight
// requests, the running IOC sync and the bot's async work, close the store.
// Pending requests stay in the store for the next start.
func (s *serveApp) run(ctx context.Context, ln net.Listener) error {
	defer s.close()
	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()

	var wg sync.WaitGroup
	errs := make(chan error, 3)
	wg.Go(func() {
		if err := s.bot.Run(runCtx); err != nil {
			errs <- fmt.Errorf("bot: %w", err)
		}
	})
	if s.sched != nil {
		s.sched.Start(runCtx)
	}
	if s.alerts != nil {
		wg.Go(func() { _ = s.alerts.Run(runCtx) })
	}

	srv := newHTTPServer(s.cfg.Server, s.handler, s.log)
	wg.Go(func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs <- fmt.Errorf("http server: %w", err)
		}
	})
	mode := "http"
	if s.cfg.Slack.SocketMode() {
		mode = "socket"
		client := socketmode.New(s.slack)
		wg.Go(func() {
			if err := handlers.RunSocketMode(runCtx, client, handlersConfig(s.cfg.Slack), s.deps); err != nil {
				errs <- err
			}
		})
	}
	s.log.Info("defenderbot serving", "listen", ln.Addr().String(), "slack_mode", mode,
		"iocs_sync", s.sched != nil, "alerts", s.alerts != nil, "approval_channel", s.cfg.Slack.ApprovalChannel)

	var runErr error
	select {
	case <-ctx.Done():
		s.log.Info("shutting down")
	case runErr = <-errs:
		s.log.Error("fatal error, shutting down", "error", runErr)
	}

	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.Server.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		s.log.Warn("http shutdown", "error", err)
	}
	if s.sched != nil {
		select {
		case <-s.sched.Stop().Done():
		case <-shutdownCtx.Done():
			s.log.Warn("IOC sync still running at shutdown")
		}
	}
	cancelRun()
	wg.Wait()
	done := make(chan struct{})
	go func() { s.bot.Wait(); close(done) }()
	select {
	case <-done:
	case <-shutdownCtx.Done():
		s.log.Warn("bot work still running at shutdown")
	}
	s.log.Info("stopped")
	return runErr
}

// newHTTPServer serves h with the server.* timeouts.
func newHTTPServer(c config.Server, h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: c.ReadHeaderTimeout,
		ReadTimeout:       c.ReadTimeout,
		WriteTimeout:      c.WriteTimeout,
		IdleTimeout:       c.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// close releases what newServeApp opened.
func (s *serveApp) close() {
	if s.store != nil {
		if err := s.store.Close(); err != nil {
			s.log.Warn("close store", "error", err)
		}
		s.store = nil
	}
}
