package ioc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// LeaseName is the store lease that makes one replica run the scheduled sync.
const LeaseName = "iocs-sync"

// Leaser is the part of store.Store that shares work between replicas.
type Leaser interface {
	AcquireLease(ctx context.Context, name, owner string, now time.Time, ttl time.Duration) (bool, error)
	ReleaseLease(ctx context.Context, name, owner string) error
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
	// LeaseTTL must exceed the longest run (default 30 minutes): a crashed
	// replica's lease lapses after it.
	LeaseTTL time.Duration
	// Reporter, if set, gets every run's summary (failures included).
	Reporter Reporter
	Logger   *slog.Logger
}

// ScheduledJob returns the function to give the scheduler: it takes the
// "iocs-sync" lease (another replica holding it means this one skips the
// run), runs the sync with trigger "schedule", reports and releases.
func (s *Syncer) ScheduledJob(cfg JobConfig) (func(ctx context.Context) error, error) {
	if cfg.Leaser == nil || cfg.Owner == "" {
		return nil, errors.New("ioc: scheduled job needs a lease store and an owner name")
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = 30 * time.Minute
	}
	log := cfg.Logger
	if log == nil {
		log = s.logger
	}
	return func(ctx context.Context) error {
		ok, err := cfg.Leaser.AcquireLease(ctx, LeaseName, cfg.Owner, s.opts.Now(), cfg.LeaseTTL)
		if err != nil {
			return fmt.Errorf("acquire lease %s: %w", LeaseName, err)
		}
		if !ok {
			log.Info("IOC sync skipped: another replica holds the lease", "lease", LeaseName)
			return nil
		}
		defer func() {
			if err := cfg.Leaser.ReleaseLease(context.WithoutCancel(ctx), LeaseName, cfg.Owner); err != nil {
				log.Warn("release lease", "lease", LeaseName, "err", err)
			}
		}()
		summary, runErr := s.RunNow(ctx, "schedule")
		if summary == "" && runErr != nil {
			summary = "IOC sync failed: " + runErr.Error()
		}
		if cfg.Reporter != nil && summary != "" {
			if err := cfg.Reporter.Report(context.WithoutCancel(ctx), summary); err != nil {
				log.Warn("report IOC sync", "err", err)
			}
		}
		return runErr
	}, nil
}
