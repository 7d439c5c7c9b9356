package ioc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/defenderbot/defenderbot/defender"
	"github.com/defenderbot/defenderbot/stix"
	"github.com/defenderbot/defenderbot/store"
	"github.com/google/uuid"
)

// IndicatorAPI is the part of the Defender client the sync uses.
type IndicatorAPI interface {
	ImportIndicators(ctx context.Context, inds []defender.Indicator) ([]defender.ImportResult, error)
	ListIndicators(ctx context.Context, opts defender.IndicatorListOptions) ([]defender.Indicator, error)
	DeleteIndicators(ctx context.Context, ids []string) error
}

// StateStore is what the sync keeps between runs: its records, its runs
// and the audit trail; store.Store satisfies it. LastSyncRun and
// LastSuccessfulSyncRun (and CursorStore.FeedCursor) report "none yet" with
// an error that says so by behaviour (see notFound).
type StateStore interface {
	ListIndicatorRecords(ctx context.Context) ([]store.IndicatorRecord, error)
	UpsertIndicatorRecords(ctx context.Context, recs []store.IndicatorRecord) error
	DeleteIndicatorRecords(ctx context.Context, keys []string) error
	SaveSyncRun(ctx context.Context, r store.SyncRun) error
	LastSyncRun(ctx context.Context) (*store.SyncRun, error)
	LastSuccessfulSyncRun(ctx context.Context) (*store.SyncRun, error)
	// Audit appends one line to the audit trail.
	Audit(ctx context.Context, at time.Time, actor, kind string, details map[string]any) error
}

// notFound reports a store's "there is none": an error in err's chain with
// a NotFound method that returns true (store.ErrNotFound has one).
func notFound(err error) bool {
	var nf interface{ NotFound() bool }
	return errors.As(err, &nf) && nf.NotFound()
}

// Sync modes.
const (
	// ModeIncremental: the feed brings additions and revocations; managed
	// indicators absent from it stay.
	ModeIncremental = "incremental"
	// ModeSnapshot: the feed is the whole truth; managed indicators absent
	// from it are removed (within MaxDeleteFraction unless Force).
	ModeSnapshot = "snapshot"
)

// Defender's limits.
const (
	// BatchSize is the most indicators (or ids) one import (BatchDelete) call takes.
	BatchSize = 500
)

// ErrDeleteGuard is returned when a snapshot run would delete more than
// MaxDeleteFraction of the managed indicators without Force.
var ErrDeleteGuard = errors.New("snapshot delete guard")

// ErrRunning matches the *RunningError returned by Run when a run of the
// same Syncer is in progress.
var ErrRunning = errors.New("an IOC sync is already running")

// Options configure a Syncer.
type Options struct {
	// StixObjectsPath is the feed's file or directory (FileFeed); set it
	// or Feed, not both.
	StixObjectsPath string
	// Feed is where the STIX objects come from (a TAXIIFeed, say).
	Feed          Feed
	Action        string
	Severity      string
	SekoiaBaseURL string
	// Mode is ModeIncremental or ModeSnapshot (required: iocs.mode).
	Mode string
	// Patterns is PatternsAll or PatternsSimple (required: iocs.patterns).
	Patterns      string
	GenerateAlert bool
	// MaxDeleteFraction (0..1) caps the share of managed indicators a
	// snapshot run may delete; 0 allows no snapshot deletion without Force.
	MaxDeleteFraction float64
	Force             bool
	DryRun            bool
	// MaxObjectBytes caps one STIX object of the feed (required: iocs.max_object_bytes); a larger one
	// is unreadable.
	MaxObjectBytes int
	// TenantLimit is the number of active indicators Defender allows
	// (required: iocs.tenant_limit).
	TenantLimit int
	// Workers decode and convert the feed's objects, then decode the spooled
	// conversions for the planner (iocs.workers; 0: one per CPU, as
	// stix.ReadOptions.Workers).
	Workers int
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// Metrics, if set, is told the outcome of every run that is not a dry run.
	Metrics RunObserver
}

// RunObserver receives the outcome of each sync run; *metrics.Metrics satisfies it.
type RunObserver interface {
	IOCRun(ok bool, imported, updated, deleted, failed int, finished time.Time)
}

func (o *Options) convertOptions() ConvertOptions {
	return ConvertOptions{Action: o.Action, Severity: o.Severity, GenerateAlert: o.GenerateAlert, SekoiaBaseURL: o.SekoiaBaseURL, Patterns: o.Patterns}
}

// Syncer keeps Defender's indicators in sync with a STIX feed.
type Syncer struct {
	running sync.Mutex // one run at a time per Syncer
	// current describes the run holding running, for a refused caller.
	mu      sync.Mutex
	current RunningError
	api     IndicatorAPI
	store   StateStore
	feed    Feed
	opts    Options
	logger  *slog.Logger
	// sketchBits, when set, sizes the sketch's Bloom filter (tests
	// saturate it to make every id and value a candidate).
	sketchBits uint64
}

// NewSyncer checks opts and returns a Syncer. Errors wrap ErrInvalidOptions.
func NewSyncer(api IndicatorAPI, st StateStore, opts Options, logger *slog.Logger) (*Syncer, error) {
	if api == nil || st == nil {
		return nil, fmt.Errorf("%w: a Defender client and a store are required", ErrInvalidOptions)
	}
	feed := opts.Feed
	switch {
	case feed != nil && strings.TrimSpace(opts.StixObjectsPath) != "":
		return nil, fmt.Errorf("%w: give a stix_objects_path or another feed, not both", ErrInvalidOptions)
	case feed == nil && strings.TrimSpace(opts.StixObjectsPath) == "":
		return nil, fmt.Errorf("%w: stix_objects_path is required (or a TAXII collection)", ErrInvalidOptions)
	case feed == nil:
		feed = FileFeed{Path: opts.StixObjectsPath}
	}
	if _, ok := st.(CursorStore); feed.Positioned() && !ok {
		return nil, fmt.Errorf("%w: the store cannot keep the position of %s", ErrInvalidOptions, feed)
	}
	switch opts.Mode {
	case "":
		return nil, fmt.Errorf("%w: mode is required (%s or %s)", ErrInvalidOptions, ModeIncremental, ModeSnapshot)
	case ModeIncremental, ModeSnapshot:
	default:
		return nil, fmt.Errorf("%w: mode %q must be %s or %s", ErrInvalidOptions, opts.Mode, ModeIncremental, ModeSnapshot)
	}
	if opts.MaxDeleteFraction < 0 || opts.MaxDeleteFraction > 1 {
		return nil, fmt.Errorf("%w: max_delete_fraction must be between 0 and 1 (got %v)", ErrInvalidOptions, opts.MaxDeleteFraction)
	}
	if opts.MaxObjectBytes <= 0 {
		return nil, fmt.Errorf("%w: max_object_bytes must be positive", ErrInvalidOptions)
	}
	if opts.TenantLimit <= 0 {
		return nil, fmt.Errorf("%w: tenant_limit must be positive (got %d)", ErrInvalidOptions, opts.TenantLimit)
	}
	if opts.Workers < 0 {
		return nil, fmt.Errorf("%w: workers must not be negative (got %d)", ErrInvalidOptions, opts.Workers)
	}
	if err := opts.convertOptions().Validate(); err != nil {
		return nil, err
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Syncer{api: api, store: st, feed: feed, opts: opts, logger: logger}, nil
}

// Plan is what a run would do; Plan (the method) sends nothing.
type Plan struct {
	Import []defender.Indicator `json:"import"`
	// Delete lists the values of managed indicators to remove.
	Delete  []string `json:"delete"`
	Skipped []Skip   `json:"skipped"`
	// Retried lists the keys (type|value) of failed indicators re-sent from
	// their stored payload (the feed did not bring them this time).
	Retried []string `json:"retried,omitempty"`
	// LeftOut lists the keys (type|value) not imported because of the tenant limit.
	LeftOut   []string `json:"left_out"`
	Unchanged int      `json:"unchanged"`
	// Refused is set when the snapshot delete guard would refuse the run.
	Refused string `json:"refused,omitempty"`
}

// Plan reads the feed, the store and Defender and returns what a run would
// do. It sends no write call.
func (s *Syncer) Plan(ctx context.Context) (*Plan, error) {
	p, _, err := s.prepare(ctx, s.api, true)
	if err != nil {
		return nil, err
	}
	defer p.close()
	out := &Plan{Import: make([]defender.Indicator, 0, len(p.imports)), Delete: make([]string, 0, len(p.deletes)),
		Skipped: p.skipped, LeftOut: make([]string, 0, len(p.leftOut)), Unchanged: p.unchanged}
	if out.Skipped == nil {
		out.Skipped = []Skip{}
	}
	for _, e := range p.imports {
		out.Import = append(out.Import, e.ind)
		if e.retry {
			out.Retried = append(out.Retried, e.key)
		}
	}
	for _, d := range p.deletes {
		out.Delete = append(out.Delete, d.value)
	}
	for _, e := range p.leftOut {
		out.LeftOut = append(out.LeftOut, e.key)
	}
	if p.guard != nil {
		out.Refused = p.guard.Error()
	}
	return out, nil
}

// prepare reads everything (Defender through api) and plans. It returns the
// plan and the number of objects read. list asks the plan to list every skip and left-out indicator
// (Plan), not only to count them (Run), which costs memory in the size of
// the feed.
//
// The feed is read once; its conversions go to a spool on disk, so that
// memory does not grow with it: the read sketches which STIX ids and values
// repeat, then the planner goes over the spool, applies the objects and
// keeps only what the plan needs (see doc.go).
func (s *Syncer) prepare(ctx context.Context, api IndicatorAPI, list bool) (*plan, int, error) {
	if list {
		return s.prepareWith(ctx, api, listMemory)
	}
	return s.prepareWith(ctx, api, listNone)
}

// How a plan keeps the skips and left-out indicators.
type listMode int

const (
	listNone   listMode = iota // counts only (Run)
	listMemory                 // in memory (Plan)
	listSpool                  // in spools, on disk past a few thousand (WritePlanJSON)
)

// prepareWith is prepare with the listing mode.
func (s *Syncer) prepareWith(ctx context.Context, api IndicatorAPI, mode listMode) (*plan, int, error) {
	list := mode != listNone
	now := s.opts.Now()
	copts := s.opts.convertOptions()
	feed := s.feed
	after, err := s.feedCursor(ctx)
	if err != nil {
		return nil, 0, err
	}
	// Defender's listing does not depend on the feed: it runs while the
	// feed is read (a tenant's 15,000 indicators take about as long to
	// list as a large feed takes to read). A failed listing stops the read.
	rctx, stop := context.WithCancelCause(ctx)
	done := make(chan tenantList, 1)
	go func() {
		var t tenantList
		t.byKey, t.active, t.err = listTenant(rctx, api, now)
		if t.err != nil {
			stop(t.err)
		}
		done <- t
	}()
	tenant := sync.OnceValue(func() tenantList { return <-done })
	defer func() { stop(nil); tenant() }() // no listing outlives the run's planning
	sk := newSketch(feedBytes(feed))
	if s.sketchBits > 0 {
		sk.bloom, sk.nbits = make([]uint64, (s.sketchBits+63)/64), (s.sketchBits+63)&^63
	}
	convs, err := newConvSpool()
	if err != nil {
		return nil, 0, err
	}
	kept := false // the plan owns the spool: its imports' payloads are there
	defer func() {
		if !kept {
			convs.close()
		}
	}()
	// The feed is read, decoded and converted once, on every core; the
	// sketch takes the conversions one at a time, in feed order, and the
	// spool keeps them for the planner's pass.
	ropts := stix.ReadOptions{MaxObjectBytes: s.opts.MaxObjectBytes, Workers: s.opts.Workers}
	position, err := readFeed(rctx, feed, after, ropts, func(obj *stix.Object, oerr *stix.ObjectError) read {
		if oerr != nil {
			return read{err: oerr}
		}
		return read{c: Convert(obj, copts, now)}
	}, func(r read) error {
		if r.err != nil {
			s.logger.Warn("STIX object unreadable", "source", r.err.Source, "index", r.err.Index, "id", r.err.ID, "err", r.err.Err)
			sk.addError(r.err.ID)
		} else {
			sk.addObject(&r.c)
		}
		return convs.add(&r)
	})
	if err != nil {
		stop(nil)
		if t := tenant(); t.err != nil && ctx.Err() == nil && errors.Is(context.Cause(rctx), t.err) {
			return nil, sk.read, t.err // the listing's failure stopped the read
		}
		return nil, sk.read, fmt.Errorf("read STIX feed %s: %w", feed, err)
	}
	sk.readDone()
	recs, err := s.store.ListIndicatorRecords(ctx)
	if err != nil {
		return nil, sk.read, fmt.Errorf("load indicator records: %w", err)
	}
	records := make(map[string]*store.IndicatorRecord, len(recs))
	for i := range recs {
		records[recs[i].Key] = &recs[i]
	}
	t := tenant()
	if t.err != nil {
		return nil, sk.read, t.err
	}
	inDefender, active := t.byKey, t.active
	pl := newPlanner(planInput{
		records: records, inDefender: inDefender, active: active, now: now,
		snapshot: s.opts.Mode == ModeSnapshot, force: s.opts.Force,
		maxDeleteFraction: s.opts.MaxDeleteFraction, tenantLimit: s.opts.TenantLimit, list: list, spool: mode == listSpool,
	}, sk)
	pl.convs = convs
	err = convs.each(s.opts.Workers, func(off int64, r *read) error {
		pl.off = off
		if r.err != nil {
			pl.addError(r.err)
		} else {
			pl.addConversion(&r.c)
		}
		return nil
	})
	if err != nil {
		return nil, sk.read, err
	}
	if err := pl.settleDups(); err != nil {
		return nil, sk.read, err
	}
	p, err := pl.finish()
	if err != nil {
		return nil, sk.read, err
	}
	p.position = position
	p.convs = convs
	if mode == listMemory {
		// Plan lists everything anyway.
		err := p.load()
		p.convs = nil
		if err != nil {
			return nil, sk.read, err
		}
	} else {
		kept = true
	}
	return p, sk.read, nil
}

// feedCursor is where an incremental read of a positioned feed starts:
// after the position its last successful run reached ("": the start).
// Snapshot mode always reads the whole feed.
func (s *Syncer) feedCursor(ctx context.Context) (string, error) {
	cs, ok := s.store.(CursorStore)
	if !ok || !s.feed.Positioned() || s.opts.Mode != ModeIncremental {
		return "", nil
	}
	pos, err := cs.FeedCursor(ctx, s.feed.String())
	if notFound(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read the position of %s: %w", s.feed, err)
	}
	return pos, nil
}

// saveFeedCursor records where a successful run's read of a positioned
// feed got to, so the next incremental run starts after it. A run that
// did not read the whole feed, or failed, never gets here.
func (s *Syncer) saveFeedCursor(ctx context.Context, p *plan) {
	cs, ok := s.store.(CursorStore)
	if !ok || !s.feed.Positioned() || p.position == "" {
		return
	}
	if err := cs.SetFeedCursor(context.WithoutCancel(ctx), s.feed.String(), p.position, s.opts.Now()); err != nil {
		// The next run reads from the older position: what it brings
		// again is unchanged and costs no Defender call.
		s.logger.ErrorContext(ctx, "save feed position", "feed", s.feed.String(), "err", err)
	}
}

// read is one object of the feed once converted, or why it could not be read.
type read struct {
	c   Conversion
	err *stix.ObjectError
}

// listed is what the planner looks at of one of Defender's indicators: a
// tenant's worth of full defender.Indicator values (18 fields, most unused)
// would be held through the whole planning pass.
type listed struct {
	ID, IndicatorValue, Application, ExternalID string
}

// tenantList is listTenant's answer.
type tenantList struct {
	byKey  map[string]listed
	active int
	err    error
}

// listTenant reads every indicator the app can see, to know the tenant's
// active count, what someone else added, and what is already gone.
func listTenant(ctx context.Context, api IndicatorAPI, now time.Time) (map[string]listed, int, error) {
	// Top 0: the client follows Defender's paging to the end.
	all, err := api.ListIndicators(ctx, defender.IndicatorListOptions{})
	if err != nil {
		return nil, 0, fmt.Errorf("list Defender indicators: %w", err)
	}
	byKey := make(map[string]listed, len(all))
	active := 0
	for i := range all {
		d := &all[i]
		if d.ExpirationTime != nil && !d.ExpirationTime.After(now) {
			continue // expired: neither active nor worth deleting
		}
		active++
		v, err := NormalizeValue(d.IndicatorType, d.IndicatorValue)
		if err != nil {
			v = d.IndicatorValue
		}
		byKey[Key(d.IndicatorType, v)] = listed{ID: d.ID, IndicatorValue: d.IndicatorValue,
			Application: d.Application, ExternalID: d.ExternalID}
	}
	return byKey, active, nil
}

// Run performs one sync and persists its report as a store.SyncRun. The
// report is returned even when err is not nil (what was done before the
// failure stays done and recorded).
func (s *Syncer) Run(ctx context.Context, trigger string) (*Report, error) {
	if !s.tryStart("") {
		return nil, s.runningError()
	}
	defer s.done()
	return s.run(ctx, trigger)
}

// tryStart takes the run lock; owner names the replica for refusals.
func (s *Syncer) tryStart(owner string) bool {
	if !s.running.TryLock() {
		return false
	}
	s.mu.Lock()
	s.current = RunningError{Since: s.opts.Now(), Replica: owner, local: true}
	s.mu.Unlock()
	return true
}

func (s *Syncer) done() {
	s.mu.Lock()
	s.current = RunningError{}
	s.mu.Unlock()
	s.running.Unlock()
}

func (s *Syncer) runningError() *RunningError {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.current
	e.local = true
	return &e
}

// run is Run once the run lock is held.
func (s *Syncer) run(ctx context.Context, trigger string) (*Report, error) {
	start := s.opts.Now()
	// Counted per run: a Plan running meanwhile does not add to this report.
	api := &countingAPI{api: s.api}
	rep := &Report{Trigger: trigger, Mode: s.opts.Mode, DryRun: s.opts.DryRun, StartedAt: start.UTC(),
		Skipped: map[SkipReason]int{}, Failed: map[string]int{}}
	p, read, err := s.prepare(ctx, api, false)
	rep.Read = read
	if err == nil {
		defer p.close()
		rep.fromPlan(p)
		switch {
		case p.guard != nil:
			err = p.guard
		case !s.opts.DryRun:
			if err = s.execute(ctx, api, p, rep); err == nil {
				s.saveFeedCursor(ctx, p)
			}
		}
	}
	if err != nil && ctx.Err() != nil {
		// Say why the run was cancelled (ErrLeaseLost, ...), not only that it was.
		if cause := context.Cause(ctx); cause != nil && !errors.Is(err, cause) {
			err = fmt.Errorf("%w (%w)", cause, err)
		}
	}
	rep.finish(api, s.opts.Now().Sub(start), err)
	s.persist(ctx, rep, start)
	if s.opts.Metrics != nil && !s.opts.DryRun {
		s.opts.Metrics.IOCRun(err == nil, rep.Imported, rep.Updated, rep.Deleted, rep.failedTotal(), s.opts.Now())
	}
	log := s.logger.With("trigger", trigger, "mode", s.opts.Mode, "dry_run", s.opts.DryRun)
	if err != nil {
		log.Error("IOC sync failed", "err", err, "summary", rep.Text())
		return rep, err
	}
	log.Info("IOC sync finished", "summary", rep.Text())
	return rep, nil
}

// execute sends the plan: deletions first (they free room under the tenant
// limit), then imports in batches, recording the state after every batch.
func (s *Syncer) execute(ctx context.Context, api IndicatorAPI, p *plan, rep *Report) error {
	now := s.opts.Now
	// What Defender accepted is recorded even if the run is being cancelled.
	sctx := context.WithoutCancel(ctx)
	if len(p.forget) > 0 {
		if err := s.store.DeleteIndicatorRecords(sctx, p.forget); err != nil {
			return fmt.Errorf("forget failed indicators now owned by someone else: %w", err)
		}
		rep.StaleDropped += len(p.forget)
	}
	// Records whose indicator is already gone from Defender: no call needed.
	var gone []string
	var ids []deletion
	for _, d := range p.deletes {
		if d.defenderID == "" {
			gone = append(gone, d.key)
		} else {
			ids = append(ids, d)
		}
	}
	if len(gone) > 0 {
		if err := s.store.DeleteIndicatorRecords(sctx, gone); err != nil {
			return fmt.Errorf("forget removed indicators: %w", err)
		}
		rep.Deleted += len(gone)
	}
	for batch := range chunk(ids, BatchSize) {
		if err := ctx.Err(); err != nil {
			return err
		}
		idList := make([]string, len(batch))
		keys := make([]string, len(batch))
		for i, d := range batch {
			idList[i], keys[i] = d.defenderID, d.key
		}
		if err := api.DeleteIndicators(ctx, idList); err != nil {
			if fatal(ctx, err) {
				return fmt.Errorf("delete indicators: %w", err)
			}
			rep.Failed["delete: "+failureReason(err)] += len(batch)
			s.logger.Warn("indicator batch delete failed", "count", len(batch), "err", err)
			continue
		}
		if err := s.store.DeleteIndicatorRecords(sctx, keys); err != nil {
			return fmt.Errorf("forget deleted indicators (they are deleted in Defender): %w", err)
		}
		rep.Deleted += len(batch)
	}

	for batch := range chunk(p.imports, BatchSize) {
		if err := ctx.Err(); err != nil {
			return err
		}
		inds := make([]defender.Indicator, len(batch))
		pending := make([]store.IndicatorRecord, len(batch))
		for i, e := range batch {
			// The payload comes back from the spool for this batch only.
			ind, err := p.indicator(e)
			if err != nil {
				return err
			}
			e.ind, e.src = ind, 0
			inds[i] = e.ind
			pending[i] = s.failedRecord(ctx, e, failureUnconfirmed, now())
		}
		// Recorded before the call: if the process dies between Defender's
		// acceptance and the record below, the next run still knows the
		// indicators are (maybe) there, retries them and can delete them.
		if err := s.store.UpsertIndicatorRecords(ctx, pending); err != nil {
			return fmt.Errorf("record indicators about to be imported (nothing sent): %w", err)
		}
		results, err := api.ImportIndicators(ctx, inds)
		if err != nil {
			if fatal(ctx, err) {
				// Defender may or may not have them: the records stay
				// failed (retried, deletable), with the cause.
				for i, e := range batch {
					pending[i] = s.failedRecord(ctx, e, failureReason(err), now())
				}
				if rerr := s.store.UpsertIndicatorRecords(sctx, pending); rerr != nil {
					s.logger.Warn("record failed import batch", "err", rerr)
				}
				return fmt.Errorf("import indicators: %w", err)
			}
			// Defender refused the whole batch (400): record it, go on.
			results = nil
			reason := failureReason(err)
			recs := make([]store.IndicatorRecord, len(batch))
			for i, e := range batch {
				recs[i] = s.failedRecord(ctx, e, reason, now())
			}
			rep.Failed[reason] += len(batch)
			if err := s.store.UpsertIndicatorRecords(sctx, recs); err != nil {
				return fmt.Errorf("record failed indicators: %w", err)
			}
			continue
		}
		recs := make([]store.IndicatorRecord, 0, len(batch))
		for i, e := range batch {
			res, ok := matchResult(results, i, e)
			switch {
			case !ok:
				rep.Failed["no result from Defender"]++
				recs = append(recs, s.failedRecord(ctx, e, "no result from Defender", now()))
			case res.IsFailed:
				reason := "rejected by Defender"
				if res.FailureReason != nil && *res.FailureReason != "" {
					reason = *res.FailureReason
				}
				rep.Failed[reason]++
				recs = append(recs, s.failedRecord(ctx, e, reason, now()))
			default:
				if e.update {
					rep.Updated++
				} else {
					rep.Imported++
				}
				recs = append(recs, store.IndicatorRecord{
					Key: e.key, IndicatorType: string(e.ind.IndicatorType), Value: e.ind.IndicatorValue,
					StixID: e.ind.ExternalID, DefenderID: res.ID, Fingerprint: e.fp, Severity: e.ind.Severity, StixModified: e.modified,
					Status: StatusImported, UpdatedAt: now().UTC(),
				})
			}
		}
		if err := s.store.UpsertIndicatorRecords(sctx, recs); err != nil {
			return fmt.Errorf("record imported indicators (Defender has them; the next run re-sends them harmlessly): %w", err)
		}
		clear(batch) // sent and recorded: their payloads can go
	}
	return nil
}

// failureUnconfirmed is the failure reason of a record written before its
// import call, left as is only when the run died before Defender's answer
// was recorded.
const failureUnconfirmed = "import sent, Defender's answer never recorded (run interrupted)"

// failedRecord keeps what is known of an earlier success (its Defender id,
// so it can still be deleted) and the payload attempted, so that the next
// run retries it even if the feed does not bring it again.
func (s *Syncer) failedRecord(ctx context.Context, e *entry, reason string, at time.Time) store.IndicatorRecord {
	payload, err := json.Marshal(e.ind)
	if err != nil {
		// Cannot happen for a built indicator; the feed can still bring it again.
		s.logger.ErrorContext(ctx, "encode failed indicator", "key", e.key, "err", err)
		payload = nil
	}
	return store.IndicatorRecord{
		Key: e.key, IndicatorType: string(e.ind.IndicatorType), Value: e.ind.IndicatorValue,
		StixID: e.ind.ExternalID, DefenderID: e.defenderID, Fingerprint: e.prevFP, Severity: e.ind.Severity, StixModified: e.modified,
		Status: StatusFailed, FailureReason: reason, Payload: string(payload), UpdatedAt: at.UTC(),
	}
}

// matchResult finds the import result of batch item i: Defender answers in
// request order; the value is checked, and searched for if the order differs.
func matchResult(results []defender.ImportResult, i int, e *entry) (defender.ImportResult, bool) {
	if i < len(results) && strings.EqualFold(results[i].Indicator, e.ind.IndicatorValue) {
		return results[i], true
	}
	for _, r := range results {
		if strings.EqualFold(r.Indicator, e.ind.IndicatorValue) {
			return r, true
		}
	}
	return defender.ImportResult{}, false
}

// fatal reports whether an error must stop the run: cancellation, throttling
// or server errors that survived the client's retries, network failures.
// A 4xx other than 429 only fails its batch.
func fatal(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return true
	}
	if errors.Is(err, defender.ErrInvalidArgument) {
		return false // refused before sending: only this batch is concerned
	}
	var ae *defender.APIError
	if errors.As(err, &ae) {
		return ae.StatusCode == http.StatusTooManyRequests || ae.StatusCode >= 500
	}
	return true
}

func failureReason(err error) string {
	var ae *defender.APIError
	if errors.As(err, &ae) {
		if ae.Code != "" {
			return fmt.Sprintf("HTTP %d %s", ae.StatusCode, ae.Code)
		}
		return fmt.Sprintf("HTTP %d", ae.StatusCode)
	}
	return err.Error()
}

func chunk[T any](s []T, n int) func(func([]T) bool) {
	return func(yield func([]T) bool) {
		for len(s) > 0 {
			m := min(n, len(s))
			if !yield(s[:m]) {
				return
			}
			s = s[m:]
		}
	}
}

// persist saves the run and an audit event. Failures are logged only: the
// sync itself is done.
func (s *Syncer) persist(ctx context.Context, rep *Report, start time.Time) {
	if s.opts.DryRun {
		return
	}
	// A cancelled run must still be recorded.
	ctx = context.WithoutCancel(ctx)
	body, err := json.Marshal(rep)
	if err != nil {
		s.logger.Error("encode sync report", "err", err)
		return
	}
	// Time-ordered: of runs that started at the same instant, the store
	// takes the greatest ID as the last. (NewV7 fails only if the system's
	// randomness does; the run is still recorded.)
	id := uuid.NewString()
	if v7, err := uuid.NewV7(); err == nil {
		id = v7.String()
	}
	run := store.SyncRun{ID: id, StartedAt: start.UTC(), FinishedAt: start.Add(rep.Duration).UTC(),
		Trigger: rep.Trigger, OK: rep.Error == "", Summary: string(body)}
	if err := s.store.SaveSyncRun(ctx, run); err != nil {
		s.logger.Error("save sync run", "err", err)
	}
	actor := "system"
	switch rep.Trigger {
	case "schedule":
		actor = "scheduler"
	case "cli":
		actor = "cli"
	}
	details := map[string]any{
		"run_id": run.ID, "trigger": rep.Trigger, "mode": rep.Mode, "ok": run.OK, "imported": rep.Imported,
		"updated": rep.Updated, "deleted": rep.Deleted, "failed": rep.failedTotal(), "api_calls": rep.APICalls,
	}
	if rep.Error != "" {
		details["error"] = rep.Error
	}
	if err := s.store.Audit(ctx, s.opts.Now().UTC(), actor, "iocs_sync", details); err != nil {
		s.logger.Error("audit sync run", "err", err)
	}
}

// RunNow runs a sync and returns its one-line summary (for Slack).
func (s *Syncer) RunNow(ctx context.Context, trigger string) (string, error) {
	rep, err := s.Run(ctx, trigger)
	if rep == nil {
		return "", err
	}
	return rep.Text(), err
}

// StatusText describes the last run and the last successful run.
func (s *Syncer) StatusText(ctx context.Context) (string, error) {
	last, err := s.store.LastSyncRun(ctx)
	if notFound(err) {
		return "IOC sync has not run yet.", nil
	}
	if err != nil {
		return "", fmt.Errorf("read last sync run: %w", err)
	}
	var b strings.Builder
	b.WriteString(describeRun("Last run", last))
	if !last.OK {
		ok, err := s.store.LastSuccessfulSyncRun(ctx)
		switch {
		case notFound(err):
			b.WriteString("\nNo successful run yet.")
		case err != nil:
			return "", fmt.Errorf("read last successful sync run: %w", err)
		default:
			b.WriteString("\n" + describeRun("Last successful run", ok))
		}
	}
	return b.String(), nil
}

func describeRun(label string, r *store.SyncRun) string {
	state := "succeeded"
	if !r.OK {
		state = "FAILED"
	}
	s := fmt.Sprintf("%s (%s, %s) %s at %s", label, r.Trigger, r.FinishedAt.Sub(r.StartedAt).Round(time.Millisecond), state, r.FinishedAt.UTC().Format(time.RFC3339))
	var rep Report
	if err := json.Unmarshal([]byte(r.Summary), &rep); err == nil {
		s += ": " + rep.Text()
	}
	return s
}

// countingAPI counts the calls of one run, by kind (a run makes its calls
// one at a time).
type countingAPI struct {
	api                  IndicatorAPI
	imports, deletes, ls int
}

func (c *countingAPI) ImportIndicators(ctx context.Context, inds []defender.Indicator) ([]defender.ImportResult, error) {
	c.imports++
	return c.api.ImportIndicators(ctx, inds)
}

func (c *countingAPI) ListIndicators(ctx context.Context, opts defender.IndicatorListOptions) ([]defender.Indicator, error) {
	c.ls++
	return c.api.ListIndicators(ctx, opts)
}

func (c *countingAPI) DeleteIndicators(ctx context.Context, ids []string) error {
	c.deletes++
	return c.api.DeleteIndicators(ctx, ids)
}
