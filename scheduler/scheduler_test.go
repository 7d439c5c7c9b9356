package scheduler

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestAddRejectsBadSpecs(t *testing.T) {
	noop := func(context.Context) error { return nil }
	tests := []struct {
		name, spec string
	}{
		{"empty", ""},
		{"blank", "   "},
		{"garbage", "not a cron"},
		{"too many fields", "* * * * * * *"},
		{"minute out of range", "61 * * * *"},
		{"bad descriptor", "@fortnightly"},
		{"bad every", "@every banana"},
		{"TZ with nothing after (robfig/cron#554)", "TZ=0"},
		{"CRON_TZ with nothing after", "CRON_TZ=Europe/Paris"},
		{"unknown zone", "CRON_TZ=Mars/Olympus 0 * * * *"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(quiet())
			err := s.Add(tt.spec, "job", noop)
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrInvalidSpec)
			assert.ErrorIs(t, ValidateSpec(tt.spec), ErrInvalidSpec)
		})
	}
}

func TestAddAcceptsGoodSpecs(t *testing.T) {
	for _, spec := range []string{"*/15 * * * *", "0 */5 * * * *", "@hourly", "@every 1h30m", "CRON_TZ=Europe/Paris 30 4 * * *"} {
		t.Run(spec, func(t *testing.T) {
			s := New(quiet())
			require.NoError(t, s.Add(spec, "job", func(context.Context) error { return nil }))
			require.NoError(t, ValidateSpec(spec))
		})
	}
}

func TestAddRejectsDuplicateEmptyAndNil(t *testing.T) {
	s := New(quiet())
	noop := func(context.Context) error { return nil }
	require.NoError(t, s.Add("@hourly", "a", noop))
	assert.ErrorContains(t, s.Add("@hourly", "a", noop), "already scheduled")
	assert.ErrorContains(t, s.Add("@hourly", " ", noop), "name is empty")
	assert.ErrorContains(t, s.Add("@hourly", "b", nil), "is nil")
	assert.ErrorIs(t, s.Trigger("nope"), ErrUnknownJob)
}

func TestPanickingJobIsRecoveredAndRunsAgain(t *testing.T) {
	var panics []string
	s := New(quiet(), OnPanic(func(name string, v any, stack []byte) {
		panics = append(panics, name+": "+v.(string))
		assert.NotEmpty(t, stack)
	}))
	var runs int
	require.NoError(t, s.Add("@hourly", "flaky", func(context.Context) error {
		runs++
		if runs == 1 {
			panic("boom")
		}
		return nil
	}))
	for range 3 {
		require.NoError(t, s.Trigger("flaky"))
	}
	assert.Equal(t, 3, runs, "a job that panicked once must still run the next times")
	assert.Equal(t, []string{"flaky: boom"}, panics)
}

func TestPanickingOnPanicCallbackIsContained(t *testing.T) {
	// The chain's Recover is what stops this panic; inside SkipIfStillRunning
	// it also leaves the job's slot free for the next run.
	s := New(quiet(), OnPanic(func(string, any, []byte) { panic("callback broke too") }))
	var runs int
	require.NoError(t, s.Add("@hourly", "flaky", func(context.Context) error {
		runs++
		panic("boom")
	}))
	for range 3 {
		require.NotPanics(t, func() { require.NoError(t, s.Trigger("flaky")) })
	}
	assert.Equal(t, 3, runs, "a job whose panic report panicked must still run the next times")
}

func TestErrorsAreReported(t *testing.T) {
	var got []error
	s := New(quiet(), OnError(func(name string, err error) { got = append(got, err) }))
	boom := errors.New("feed unreadable")
	require.NoError(t, s.Add("@hourly", "sync", func(context.Context) error { return boom }))
	require.NoError(t, s.Trigger("sync"))
	require.Len(t, got, 1)
	assert.ErrorIs(t, got[0], boom)
}

func TestRunsNeverOverlap(t *testing.T) {
	s := New(quiet())
	started := make(chan struct{})
	release := make(chan struct{})
	var runs atomic.Int32
	require.NoError(t, s.Add("@hourly", "slow", func(context.Context) error {
		if runs.Add(1) == 1 {
			close(started)
			<-release
		}
		return nil
	}))
	var wg sync.WaitGroup
	wg.Go(func() { assert.NoError(t, s.Trigger("slow")) })
	<-started
	// The first run is blocked: this one must be skipped, not queued.
	require.NoError(t, s.Trigger("slow"))
	assert.Equal(t, int32(1), runs.Load())
	close(release)
	wg.Wait()
	require.NoError(t, s.Trigger("slow"))
	assert.Equal(t, int32(2), runs.Load())
}

func TestStopWaitsForRunningJobs(t *testing.T) {
	s := New(quiet())
	started := make(chan struct{})
	release := make(chan struct{})
	var finished atomic.Bool
	require.NoError(t, s.Add("@hourly", "slow", func(context.Context) error {
		close(started)
		<-release
		finished.Store(true)
		return nil
	}))
	go func() { _ = s.Trigger("slow") }()
	<-started
	done := s.Stop()
	select {
	case <-done.Done():
		t.Fatal("Stop's context is done while a job is still running")
	default:
	}
	close(release)
	<-done.Done()
	assert.True(t, finished.Load())
	assert.ErrorIs(t, s.Trigger("slow"), ErrStopped)
	assert.ErrorIs(t, s.Add("@hourly", "other", func(context.Context) error { return nil }), ErrStopped)
}

// TestScheduledRun lets the real cron loop fire a job once (about a second).
func TestScheduledRun(t *testing.T) {
	s := New(quiet())
	type ctxKey struct{}
	ran := make(chan any, 10)
	require.NoError(t, s.Add("@every 1s", "tick", func(ctx context.Context) error {
		ran <- ctx.Value(ctxKey{})
		return nil
	}))
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), ctxKey{}, "from-start"))
	defer cancel()
	s.Start(ctx)
	next, err := s.Next("tick")
	require.NoError(t, err)
	assert.False(t, next.IsZero())
	select {
	case v := <-ran:
		assert.Equal(t, "from-start", v, "jobs get the context given to Start")
	case <-time.After(5 * time.Second):
		t.Fatal("job did not run")
	}
	<-s.Stop().Done()
}

// TestStartContextEndStopsTriggers: when the context given to Start ends,
// the scheduler is stopped for Trigger as well, not only for the cron loop.
func TestStartContextEndStopsTriggers(t *testing.T) {
	s := New(slog.New(slog.DiscardHandler))
	require.NoError(t, s.Add("@every 1h", "job", func(context.Context) error { return nil }))
	ctx, cancel := context.WithCancel(context.Background())
	s.Start(ctx)
	cancel()
	require.Eventually(t, func() bool { return errors.Is(s.Trigger("job"), ErrStopped) }, 5*time.Second, time.Millisecond)
}

func TestLongestInterval(t *testing.T) {
	from := time.Date(2026, 12, 2, 10, 30, 0, 0, time.UTC) // a Wednesday
	tests := []struct {
		spec string
		want time.Duration
	}{
		{"@every 1h", time.Hour},
		{"*/15 * * * *", 15 * time.Minute},
		{"0 9 * * 1-5", 72 * time.Hour}, // Friday 09:00 to Monday 09:00
		{"@daily", 24 * time.Hour},
		{"CRON_TZ=Europe/Paris 0 6,18 * * *", 12 * time.Hour},
	}
	for _, tc := range tests {
		got, err := LongestInterval(tc.spec, from)
		require.NoError(t, err, tc.spec)
		assert.Equal(t, tc.want, got, tc.spec)
	}
	_, err := LongestInterval("not a spec", from)
	require.ErrorIs(t, err, ErrInvalidSpec)
}
