// Package scheduler runs named jobs on cron schedules with robfig/cron: runs
// of one job never overlap, a panicking job is recovered and reported, and
// Stop waits for the jobs still running.
//
// It must not import any other defenderbot package.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/robfig/cron/v3"
)

// Errors callers can match with errors.Is.
var (
	ErrInvalidSpec = errors.New("invalid schedule")
	ErrUnknownJob  = errors.New("unknown job")
	ErrStopped     = errors.New("scheduler is stopped")
)

// PanicFunc is called after a job panicked and was recovered.
type PanicFunc func(name string, value any, stack []byte)

// ErrorFunc is called after a job returned an error.
type ErrorFunc func(name string, err error)

// Option configures a Scheduler.
type Option func(*Scheduler)

// WithLocation interprets schedules in loc (default UTC, so that a schedule
// means the same thing on every replica whatever its TZ).
func WithLocation(loc *time.Location) Option {
	return func(s *Scheduler) {
		if loc != nil {
			s.loc = loc
		}
	}
}

// OnPanic registers a callback for recovered panics.
func OnPanic(f PanicFunc) Option { return func(s *Scheduler) { s.onPanic = f } }

// OnError registers a callback for jobs that return an error.
func OnError(f ErrorFunc) Option { return func(s *Scheduler) { s.onError = f } }

// Scheduler runs jobs on cron schedules. Create it with New.
type Scheduler struct {
	logger  *slog.Logger
	loc     *time.Location
	onPanic PanicFunc
	onError ErrorFunc
	parser  cron.Parser
	cron    *cron.Cron

	mu      sync.Mutex
	ctx     context.Context // jobs' context, set by Start
	jobs    map[string]cron.EntryID
	stopped bool
	done    chan struct{}  // closed by Stop
	manual  sync.WaitGroup // runs started by Trigger, which cron does not track
}

// The parser accepts the standard 5 fields, an optional leading seconds
// field, descriptors (@hourly, @every 1h) and a CRON_TZ= prefix.
const parseOptions = cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor

// New returns a Scheduler that is not started yet.
func New(logger *slog.Logger, opts ...Option) *Scheduler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Scheduler{
		logger: logger,
		loc:    time.UTC,
		parser: cron.NewParser(parseOptions),
		ctx:    context.Background(),
		jobs:   map[string]cron.EntryID{},
		done:   make(chan struct{}),
	}
	for _, o := range opts {
		o(s)
	}
	cl := cronLogger{s.logger}
	// runJob recovers the job's own panics (so that OnPanic sees them); the
	// chain's Recover is the backstop for what escapes runJob, a panicking
	// OnPanic callback, which would otherwise crash the process from cron's
	// goroutine. Order matters (robfig/cron v3.0.1): the first wrapper is the
	// outermost, and SkipIfStillRunning must be outside Recover, otherwise a
	// panic escapes it before it releases its slot and the job is skipped
	// forever.
	s.cron = cron.New(
		cron.WithLocation(s.loc),
		cron.WithParser(s.parser),
		cron.WithLogger(cl),
		cron.WithChain(cron.SkipIfStillRunning(cl), cron.Recover(cl)),
	)
	return s
}

// ValidateSpec reports whether spec is a schedule Add would accept.
func ValidateSpec(spec string) error {
	_, err := parseSpec(cron.NewParser(parseOptions), spec)
	return err
}

// LongestInterval is the longest gap between two consecutive runs of spec
// among its next 100 runs after from (a weekday schedule's is the weekend),
// so that "no success for N periods" never fires on a regular pause.
func LongestInterval(spec string, from time.Time) (time.Duration, error) {
	sched, err := parseSpec(cron.NewParser(parseOptions), spec)
	if err != nil {
		return 0, err
	}
	var longest time.Duration
	prev := sched.Next(from.UTC())
	for range 100 {
		next := sched.Next(prev)
		if next.IsZero() { // a schedule that never fires again
			break
		}
		longest = max(longest, next.Sub(prev))
		prev = next
	}
	return longest, nil
}

// parseSpec parses spec, turning the parser's panics (robfig/cron#554: a
// "TZ=" prefix with nothing after it) into errors.
func parseSpec(p cron.Parser, spec string) (sched cron.Schedule, err error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return nil, fmt.Errorf("%w: empty schedule", ErrInvalidSpec)
	}
	defer func() {
		if r := recover(); r != nil {
			sched = nil
			err = fmt.Errorf("%w %q: %v", ErrInvalidSpec, spec, r)
		}
	}()
	sched, err = p.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("%w %q: %w", ErrInvalidSpec, spec, err)
	}
	return sched, nil
}

// Add schedules job under a unique name. The job gets the context given to
// Start; its error is logged and passed to the OnError callback.
func (s *Scheduler) Add(spec, name string, job func(ctx context.Context) error) error {
	if strings.TrimSpace(name) == "" {
		return errors.New("scheduler: job name is empty")
	}
	if job == nil {
		return fmt.Errorf("scheduler: job %q is nil", name)
	}
	sched, err := parseSpec(s.parser, spec)
	if err != nil {
		return fmt.Errorf("scheduler: job %q: %w", name, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return ErrStopped
	}
	if _, dup := s.jobs[name]; dup {
		return fmt.Errorf("scheduler: job %q is already scheduled", name)
	}
	s.jobs[name] = s.cron.Schedule(sched, cron.FuncJob(func() { s.runJob(name, job) }))
	return nil
}

// runJob runs one invocation. It recovers the job's panics itself, rather
// than leaving them to the chain's Recover, so that OnPanic sees them.
func (s *Scheduler) runJob(name string, job func(ctx context.Context) error) {
	s.mu.Lock()
	ctx := s.ctx
	s.mu.Unlock()
	log := s.logger.With("job", name)
	start := time.Now()
	defer func() {
		if r := recover(); r != nil {
			stack := debug.Stack()
			log.Error("scheduled job panicked", "panic", fmt.Sprint(r), "stack", string(stack))
			if s.onPanic != nil {
				s.onPanic(name, r, stack)
			}
		}
	}()
	log.Debug("scheduled job starting")
	if err := job(ctx); err != nil {
		log.Error("scheduled job failed", "err", err, "duration", time.Since(start))
		if s.onError != nil {
			s.onError(name, err)
		}
		return
	}
	log.Info("scheduled job finished", "duration", time.Since(start))
}

// Start starts running jobs on their schedules in the background. Jobs get
// ctx; when ctx is done no new run starts.
func (s *Scheduler) Start(ctx context.Context) {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	s.ctx = ctx
	s.mu.Unlock()
	s.cron.Start()
	go func() {
		select {
		case <-ctx.Done():
			// A full Stop, so that Trigger is refused from now on too.
			s.Stop()
		case <-s.done:
		}
	}()
}

// Trigger runs the named job now, through the same chain as scheduled runs:
// it is skipped if a run of that job is in progress. It returns when the run
// (or the skip) is over.
func (s *Scheduler) Trigger(name string) error {
	s.mu.Lock()
	id, ok := s.jobs[name]
	if s.stopped {
		s.mu.Unlock()
		return ErrStopped
	}
	if !ok {
		s.mu.Unlock()
		return fmt.Errorf("%w %q", ErrUnknownJob, name)
	}
	s.manual.Add(1)
	s.mu.Unlock()
	defer s.manual.Done()
	s.cron.Entry(id).WrappedJob.Run()
	return nil
}

// Next returns the next scheduled time of the named job (zero before Start).
func (s *Scheduler) Next(name string) (time.Time, error) {
	s.mu.Lock()
	id, ok := s.jobs[name]
	s.mu.Unlock()
	if !ok {
		return time.Time{}, fmt.Errorf("%w %q", ErrUnknownJob, name)
	}
	return s.cron.Entry(id).Next, nil
}

// Stop stops scheduling new runs. The returned context is done once every
// running job has returned.
func (s *Scheduler) Stop() context.Context {
	s.mu.Lock()
	if !s.stopped {
		s.stopped = true
		close(s.done)
	}
	s.mu.Unlock()
	cronDone := s.cron.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-cronDone.Done()
		s.manual.Wait()
		cancel()
	}()
	return ctx
}

// cronLogger adapts slog to cron.Logger.
type cronLogger struct{ l *slog.Logger }

func (c cronLogger) Info(msg string, kv ...any) {
	if msg == "skip" {
		// SkipIfStillRunning's message: the one cron Info line worth keeping.
		c.l.Warn("scheduled job skipped: previous run still in progress")
		return
	}
	c.l.Debug("cron: "+msg, kv...)
}

func (c cronLogger) Error(err error, msg string, kv ...any) {
	c.l.Error("cron: "+msg, append([]any{"err", err}, kv...)...)
}
