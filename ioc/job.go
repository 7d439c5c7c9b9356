package ioc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/defenderbot/defenderbot/store"
)

// LeaseName is the store lease that makes one replica run the scheduled sync.
const LeaseName = "iocs-sync"

// Leaser is the part of store.Store that shares work between replicas.
type Leaser interface {
	AcquireLease(ctx context.Context, name, owner string, now time.Time, ttl time.Duration) (bool, error)
	ReleaseLease(ctx context.Context, name, owner string) error
	LeaseHolder(ctx context.Context, name string, now time.Time) (store.Lease, error)
}

// Reporter publishes a run's summary (the serve command posts it to
// iocs.report_channel in Slack).
type Reporter interface {
	Report(ctx context.Context, text string) error
}

// ReporterFunc adapts a function to Reporter.
type ReporterFunc func(ctx context.Context, text string) error

// Report implements Reporter.
func (f ReporterFunc) Report(ctx context.Context, text string) error { return f(ctx, text) }

// JobConfig configures ScheduledJob.
type JobConfig struct {
	Leaser Leaser
	// Owner identifies this replica (hostname, pod name).
	Owner string
	// LeaseTTL is how long the lease outlives its last renewal
	// (config.IOCLeaseTTL): a crashed replica's lease lapses after it.
	LeaseTTL time.Duration
	// RenewEvery is how often a running job renews the lease
	// (config.IOCLeaseRenewEvery), so a run longer than LeaseTTL keeps it.
	// It must be positive and shorter than LeaseTTL.
	RenewEvery time.Duration
	// RunTimeout bounds one run (iocs.run_timeout): a run still going
	// after it, e.g. against a server that answers a byte a minute, is
	// cancelled with ErrRunTimeout at the next renewal, so a hung run
	// cannot keep its lease (and every other sync) out for good.
	RunTimeout time.Duration
	// Reporter, if set, gets every run's summary (failures included).
	Reporter Reporter
	Logger   *slog.Logger

	// newTicker replaces time.NewTicker (tests drive renewals by hand).
	newTicker func(d time.Duration) (<-chan time.Time, func())
}

// ErrLeaseLost cancels a scheduled run whose lease could not be renewed in
// time: another replica may be running the sync.
var ErrLeaseLost = errors.New("IOC sync lease lost (another replica may have taken over)")

// ErrRunTimeout cancels a run that outlived JobConfig.RunTimeout.
var ErrRunTimeout = errors.New("IOC sync ran longer than iocs.run_timeout")

// ErrLeaseHeld: another replica (or a push-iocs run) holds the sync lease,
// so this run did not start. The error returned is a *RunningError.
var ErrLeaseHeld = errors.New("another replica or push-iocs run holds the IOC sync lease")

// RunningError is the refusal of a run because a sync is already running
// in this process (it matches ErrRunning), or because another replica or a
// push-iocs run holds the sync lease (it matches ErrLeaseHeld). It says
// since when and where; for a lease, also when it expires if its holder is
// dead, since a lease outlives a killed run by up to its TTL.
type RunningError struct {
	// Since is when the running sync started (zero if unknown).
	Since time.Time
	// Replica is the lease owner running it ("" if unknown).
	Replica string
	// Expires is when the holder's lease lapses unless renewed (zero if
	// unknown or local).
	Expires time.Time
	local   bool
	// ttl bounds the lease when its holder's record could not be read.
	ttl time.Duration
}

func (e *RunningError) Error() string {
	var s string
	if e.local {
		s = "an IOC sync is already running"
	} else {
		s = "an IOC sync holds the lease"
	}
	if !e.Since.IsZero() {
		s += " since " + e.Since.UTC().Format("15:04") + " UTC"
	}
	if e.Replica != "" {
		s += " (replica " + e.Replica + ")"
	}
	if e.local {
		return s + "; try again when it has finished"
	}
	// The holder may be a killed run: its lease still keeps others out
	// until it lapses, so say when instead of claiming a sync runs.
	switch {
	case !e.Expires.IsZero():
		s += "; if that run is dead, the lease expires at " + e.Expires.UTC().Format("15:04:05") + " UTC"
	case e.ttl > 0:
		s += "; if that run is dead, the lease expires within " + e.ttl.String()
	}
	return s + ": try again after that, or once the run has finished (a live run renews its lease)"
}

// Is matches ErrRunning for a run of this process, ErrLeaseHeld otherwise.
func (e *RunningError) Is(target error) bool {
	if e.local {
		return target == ErrRunning
	}
	return target == ErrLeaseHeld
}

// SyncRunning returns Since and Replica (for callers that word the refusal
// themselves, such as the Slack bot, without importing this package).
func (e *RunningError) SyncRunning() (since time.Time, replica string) { return e.Since, e.Replica }

// ScheduledJob returns the function to give the scheduler: it takes the
// "iocs-sync" lease (another replica holding it means this one skips the
// run), runs the sync with trigger "schedule" while renewing the lease every
// RenewEvery, reports and releases. If a renewal finds the lease taken, or
// none succeeds before the lease would lapse, the run is cancelled with
// ErrLeaseLost: two replicas never sync at the same time.
func (s *Syncer) ScheduledJob(cfg JobConfig) (func(ctx context.Context) error, error) {
	l, err := s.Leased(cfg)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context) error {
		_, err := l.RunNow(ctx, "schedule")
		if errors.Is(err, ErrLeaseHeld) || errors.Is(err, ErrRunning) {
			l.log.Info("IOC sync skipped: a sync is already running", "lease", LeaseName, "err", err)
			return nil
		}
		return err
	}, nil
}

// LeasedSyncer runs the sync under the "iocs-sync" lease, so that scheduled
// runs, on-demand runs from Slack and push-iocs never overlap across
// replicas. It satisfies the bot's IOCSync interface.
type LeasedSyncer struct {
	s   *Syncer
	cfg JobConfig
	log *slog.Logger
}

// Leased returns the lease-taking entry point for s.
func (s *Syncer) Leased(cfg JobConfig) (*LeasedSyncer, error) {
	if cfg.Leaser == nil || cfg.Owner == "" {
		return nil, errors.New("ioc: a leased sync needs a lease store and an owner name")
	}
	if cfg.LeaseTTL <= 0 || cfg.RenewEvery <= 0 {
		return nil, errors.New("ioc: the lease TTL and renewal interval must be positive")
	}
	if cfg.RunTimeout <= 0 {
		return nil, errors.New("ioc: a leased sync needs a positive run timeout (iocs.run_timeout)")
	}
	if cfg.RenewEvery >= cfg.LeaseTTL {
		return nil, fmt.Errorf("ioc: lease renewal interval %s must be shorter than the lease TTL %s", cfg.RenewEvery, cfg.LeaseTTL)
	}
	if cfg.newTicker == nil {
		cfg.newTicker = func(d time.Duration) (<-chan time.Time, func()) {
			t := time.NewTicker(d)
			return t.C, t.Stop
		}
	}
	log := cfg.Logger
	if log == nil {
		log = s.logger
	}
	return &LeasedSyncer{s: s, cfg: cfg, log: log}, nil
}

// RunNow is Run's summary line, for Slack.
func (l *LeasedSyncer) RunNow(ctx context.Context, trigger string) (string, error) {
	rep, err := l.Run(ctx, trigger)
	if rep == nil {
		return "", err
	}
	return rep.Text(), err
}

// Run takes this process's run lock, then the lease, runs one sync while
// renewing the lease, reports the summary and releases the lease. A sync
// already running here or elsewhere refuses it with a *RunningError. The
// lock comes first: a refused call never touches the lease, so it cannot
// release the lease of the run it found (same owner, same process).
func (l *LeasedSyncer) Run(ctx context.Context, trigger string) (*Report, error) {
	s, cfg, log := l.s, l.cfg, l.log
	if !s.tryStart(cfg.Owner) {
		return nil, s.runningError()
	}
	defer s.done()
	acquired := s.opts.Now()
	ok, err := cfg.Leaser.AcquireLease(ctx, LeaseName, cfg.Owner, acquired, cfg.LeaseTTL)
	if err != nil {
		// The outcome is unknown (a driver reports a cancelled context even
		// when the statement committed): a lease this run will not use must
		// not keep the other replicas out until it lapses. The run lock is
		// held, so no run of this owner is using it.
		l.release(ctx)
		return nil, fmt.Errorf("acquire lease %s: %w", LeaseName, err)
	}
	if !ok {
		held := &RunningError{ttl: cfg.LeaseTTL}
		if h, err := cfg.Leaser.LeaseHolder(ctx, LeaseName, acquired); err == nil {
			held.Since, held.Replica, held.Expires = h.Since, h.Owner, h.ExpiresAt
		}
		return nil, held
	}
	// Only a lease this call acquired (or may have) is released.
	defer l.release(ctx)
	runCtx, cancel := context.WithCancelCause(ctx)
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		s.renewLease(runCtx, cancel, cfg, acquired, log)
	}()
	rep, runErr := s.run(runCtx, trigger)
	// Stop renewing before the deferred release, so that no renewal
	// takes the lease again after it.
	cancel(nil)
	<-renewed
	text := ""
	switch {
	case rep != nil:
		text = rep.Text()
	case runErr != nil:
		text = "IOC sync failed: " + runErr.Error()
	}
	if cfg.Reporter != nil && text != "" {
		if err := cfg.Reporter.Report(context.WithoutCancel(ctx), text); err != nil {
			log.Warn("report IOC sync", "err", err)
		}
	}
	return rep, runErr
}

// release gives the lease up if this owner holds it, even once ctx is done.
func (l *LeasedSyncer) release(ctx context.Context) {
	if err := l.cfg.Leaser.ReleaseLease(context.WithoutCancel(ctx), LeaseName, l.cfg.Owner); err != nil {
		l.log.Warn("release lease", "lease", LeaseName, "err", err)
	}
}

// StatusText describes the last run and the last successful run.
func (l *LeasedSyncer) StatusText(ctx context.Context) (string, error) {
	return l.s.StatusText(ctx)
}

// renewLease renews the lease, acquired at acquired, every cfg.RenewEvery
// until ctx is done. A failed renewal is retried at the next tick while the
// lease still holds; it cancels the run once the lease is taken by another
// owner or lapses, or once the run has outlived cfg.RunTimeout (checked on
// the same ticks, with the syncer's clock).
func (s *Syncer) renewLease(ctx context.Context, cancel context.CancelCauseFunc, cfg JobConfig, acquired time.Time, log *slog.Logger) {
	tick, stop := cfg.newTicker(cfg.RenewEvery)
	defer stop()
	expires, deadline := acquired.Add(cfg.LeaseTTL), acquired.Add(cfg.RunTimeout)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
		}
		now := s.opts.Now()
		if !now.Before(deadline) {
			log.Error("IOC sync ran longer than iocs.run_timeout: cancelling it", "run_timeout", cfg.RunTimeout)
			cancel(fmt.Errorf("%w (%s)", ErrRunTimeout, cfg.RunTimeout))
			return
		}
		ok, err := cfg.Leaser.AcquireLease(ctx, LeaseName, cfg.Owner, now, cfg.LeaseTTL)
		switch {
		case ctx.Err() != nil:
			return
		case err == nil && ok:
			expires = now.Add(cfg.LeaseTTL)
		case err == nil:
			log.Error("IOC sync lease taken by another replica: cancelling this run", "lease", LeaseName, "owner", cfg.Owner)
			cancel(ErrLeaseLost)
			return
		case !now.Before(expires):
			log.Error("IOC sync lease could not be renewed before it lapsed: cancelling this run", "lease", LeaseName, "err", err)
			cancel(fmt.Errorf("%w: %w", ErrLeaseLost, err))
			return
		default:
			log.Warn("renew IOC sync lease (retried at the next tick)", "lease", LeaseName, "err", err)
		}
	}
}
