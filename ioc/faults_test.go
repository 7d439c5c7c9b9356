package ioc

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/defenderbot/defenderbot/config"
	"github.com/defenderbot/defenderbot/defender"
	"github.com/defenderbot/defenderbot/defender/defendertest"
	"github.com/defenderbot/defenderbot/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sleepLog records the client's waits (Retry-After, backoff) without waiting.
type sleepLog struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (l *sleepLog) sleep(ctx context.Context, d time.Duration) error {
	l.mu.Lock()
	l.waits = append(l.waits, d)
	l.mu.Unlock()
	return ctx.Err()
}

func (l *sleepLog) all() []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]time.Duration(nil), l.waits...)
}

// newFaultHarness is newEmuHarness with a recording sleeper, import pacing
// off (so every recorded wait is a retry wait) and cfg applied.
func newFaultHarness(t *testing.T, cfg func(*defender.Config)) (*emuHarness, *sleepLog) {
	t.Helper()
	srv := defendertest.NewServer(t)
	c := srv.ClientConfig()
	c.Limits = defender.Limits{PerMinute: map[string]int{defender.APIIndicatorImport: -1}}
	if cfg != nil {
		cfg(&c)
	}
	log := &sleepLog{}
	api, err := defender.New(c, defender.WithHTTPClient(srv.HTTPClient()), defender.WithSleeper(log.sleep))
	require.NoError(t, err)
	dir := t.TempDir()
	st, err := store.Open(context.Background(), "sqlite", filepath.Join(dir, "state.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	return &emuHarness{srv: srv, api: api, st: st, dir: dir, path: filepath.Join(dir, "feed.json")}, log
}

// assertSettled checks that a follow-up run without faults completes the
// work: want indicators in Defender and records, nothing sent twice.
func assertSettled(t *testing.T, h *emuHarness, want, wantSent int) {
	t.Helper()
	h.srv.ClearFaults()
	h.srv.SetTokenEndpointDown(false)
	h.srv.ResetRequests()
	rep, err := h.run(t, nil)
	require.NoError(t, err)
	sent := 0
	for _, vals := range importedValues(t, h.srv) {
		sent += len(vals)
	}
	assert.Equal(t, wantSent, sent, "the follow-up run sends only what is missing")
	assert.Equal(t, wantSent, rep.Imported+rep.Updated)
	assert.Len(t, h.srv.Indicators(), want, "nothing lost, nothing duplicated")
	recs, err := h.st.ListIndicatorRecords(context.Background())
	require.NoError(t, err)
	assert.Len(t, recs, want)
	for _, r := range recs {
		assert.Equal(t, StatusImported, r.Status, r.Key)
	}
}

// afterFirstImport runs fn once the first import call returned.
type afterFirstImport struct {
	IndicatorAPI
	once sync.Once
	fn   func()
}

func (a *afterFirstImport) ImportIndicators(ctx context.Context, inds []defender.Indicator) ([]defender.ImportResult, error) {
	res, err := a.IndicatorAPI.ImportIndicators(ctx, inds)
	a.once.Do(a.fn)
	return res, err
}

func TestFault429StormWithRetryAfter(t *testing.T) {
	h, sleeps := newFaultHarness(t, nil)
	writeFeed(t, h.dir, domains(0, 600))
	h.srv.InjectFault(defendertest.Fault{Method: http.MethodPost, Path: defender.APIIndicatorImport,
		Status: http.StatusTooManyRequests, RetryAfter: 7 * time.Second, Count: 4})
	rep, err := h.run(t, nil)
	require.NoError(t, err, "the client waits out the storm")
	assert.Equal(t, []time.Duration{7 * time.Second, 7 * time.Second, 7 * time.Second, 7 * time.Second}, sleeps.all(),
		"each wait is the Retry-After Defender asked for")
	assert.Equal(t, 600, rep.Imported)
	assert.Equal(t, 2, rep.ImportCalls, "the report counts calls, not HTTP attempts")
	assert.Equal(t, 6, h.srv.Calls(http.MethodPost, "/api/indicators/import"), "2 batches + 4 retries")
	assertSettled(t, h, 600, 0)
}

func TestFault429StormOutlastsRetries(t *testing.T) {
	h, sleeps := newFaultHarness(t, func(c *defender.Config) { c.MaxRetries = 3 })
	writeFeed(t, h.dir, domains(0, 600))
	// The first batch goes through, then Defender throttles for good.
	api := &afterFirstImport{IndicatorAPI: h.api, fn: func() {
		h.srv.InjectFault(defendertest.Fault{Method: http.MethodPost, Path: defender.APIIndicatorImport,
			Status: http.StatusTooManyRequests, RetryAfter: 5 * time.Second, Count: -1})
	}}
	s, err := NewSyncer(api, h.st, Options{StixObjectsPath: h.path, Action: "Block", MaxObjectBytes: config.DefaultMaxObjectBytes, Mode: ModeIncremental, Patterns: PatternsAll, TenantLimit: config.DefaultTenantLimit, Severity: "High", GenerateAlert: true, Now: func() time.Time { return testNow }}, nil)
	require.NoError(t, err)
	rep, err := s.Run(context.Background(), "cli")
	var rl *defender.RateLimitError
	require.ErrorAs(t, err, &rl)
	assert.Equal(t, 500, rep.Imported, "the first batch is done and recorded")
	assert.Contains(t, rep.Error, "429")
	assert.Equal(t, []time.Duration{5 * time.Second, 5 * time.Second, 5 * time.Second}, sleeps.all())
	last, err := h.st.LastSyncRun(context.Background())
	require.NoError(t, err)
	assert.False(t, last.OK)
	assertSettled(t, h, 600, 100)
}

func TestFault5xxBurst(t *testing.T) {
	h, sleeps := newFaultHarness(t, nil)
	writeFeed(t, h.dir, domains(0, 600))
	h.srv.InjectFault(defendertest.Fault{Method: http.MethodPost, Path: defender.APIIndicatorImport, Status: http.StatusBadGateway, Count: 3})
	rep, err := h.run(t, nil)
	require.NoError(t, err)
	assert.Equal(t, 600, rep.Imported)
	assert.Empty(t, rep.Failed)
	assert.Len(t, sleeps.all(), 3, "one backoff per 502")
	assert.Equal(t, 5, h.srv.Calls(http.MethodPost, "/api/indicators/import"))
	assertSettled(t, h, 600, 0)

	// A burst on the list call that outlasts the retries: the run stops
	// before sending anything and says why.
	objs := domains(0, 600)
	objs[0].Name = "v2"
	writeFeed(t, h.dir, objs)
	h.srv.InjectFault(defendertest.Fault{Method: http.MethodGet, Path: "/api/indicators", Status: http.StatusInternalServerError, Count: -1})
	h.srv.ResetRequests()
	rep, err = h.run(t, nil)
	require.Error(t, err)
	assert.Contains(t, rep.Error, "list Defender indicators")
	assert.Contains(t, rep.Error, "500")
	imports, deletes := h.writes()
	assert.Zero(t, imports+deletes)
	assertSettled(t, h, 600, 1)
}

func TestFaultSlowResponsePastClientTimeout(t *testing.T) {
	// The timeout is far above what a normal call takes even on a loaded
	// CI machine under -race, so only the hung call times out.
	h, sleeps := newFaultHarness(t, func(c *defender.Config) { c.Timeout = 3 * time.Second })
	writeFeed(t, h.dir, domains(0, 600))
	// The first import hangs: the attempt times out and is retried (import
	// is an upsert, so a retry can never create a second indicator).
	h.srv.InjectFault(defendertest.Fault{Method: http.MethodPost, Path: defender.APIIndicatorImport, Delay: time.Minute})
	rep, err := h.run(t, nil)
	require.NoError(t, err)
	assert.Equal(t, 600, rep.Imported)
	assert.Len(t, sleeps.all(), 1, "one backoff after the timeout")
	assert.Equal(t, 3, h.srv.Calls(http.MethodPost, "/api/indicators/import"))
	assertSettled(t, h, 600, 0)
}

func TestFaultTokenEndpointDown(t *testing.T) {
	t.Run("before the first token", func(t *testing.T) {
		h, _ := newFaultHarness(t, nil)
		writeFeed(t, h.dir, domains(0, 600))
		h.srv.SetTokenEndpointDown(true)
		rep, err := h.run(t, nil)
		require.Error(t, err)
		assert.Contains(t, rep.Error, "list Defender indicators")
		assert.NotContains(t, rep.Error, defendertest.ClientSecret)
		assert.Zero(t, rep.Imported)
		imports, deletes := h.writes()
		assert.Zero(t, imports+deletes)
		s, err := NewSyncer(h.api, h.st, Options{StixObjectsPath: h.path, Action: "Block", MaxObjectBytes: config.DefaultMaxObjectBytes, Mode: ModeIncremental, Patterns: PatternsAll, TenantLimit: config.DefaultTenantLimit, Severity: "High"}, nil)
		require.NoError(t, err)
		status, err := s.StatusText(context.Background())
		require.NoError(t, err)
		assert.Contains(t, status, "FAILED")
		assert.Contains(t, status, "No successful run yet.")
		// Slack gets plain words, not Azure AD's error body.
		assert.Contains(t, rep.Text(), "could not obtain a Defender token from Azure AD")
		assert.NotContains(t, rep.Text(), "oauth2")
		assert.Contains(t, status, "could not obtain a Defender token")
		assertSettled(t, h, 600, 600)
	})
	t.Run("token expired mid-life", func(t *testing.T) {
		h, _ := newFaultHarness(t, nil)
		writeFeed(t, h.dir, domains(0, 600))
		_, err := h.run(t, nil)
		require.NoError(t, err)
		objs := domains(0, 600)
		for i := range objs {
			objs[i].Name = "v2"
		}
		writeFeed(t, h.dir, objs)
		h.srv.ExpireTokens()
		h.srv.SetTokenEndpointDown(true)
		rep, err := h.run(t, nil)
		require.Error(t, err)
		assert.Zero(t, rep.Updated)
		assert.NotContains(t, rep.Error, defendertest.ClientSecret)
		assertSettled(t, h, 600, 600)
	})
}

// noRelease is the lease store of a replica killed before it could release.
type noRelease struct{ Leaser }

func (noRelease) ReleaseLease(context.Context, string, string) error { return nil }

func TestFaultReplicaKilledMidSync(t *testing.T) {
	h, _ := newFaultHarness(t, nil)
	writeFeed(t, h.dir, domains(0, 1500))
	clock := &fakeClock{t: testNow}
	opts := Options{StixObjectsPath: h.path, Action: "Block", MaxObjectBytes: config.DefaultMaxObjectBytes, Mode: ModeIncremental, Patterns: PatternsAll, TenantLimit: config.DefaultTenantLimit, Severity: "High", GenerateAlert: true, Now: clock.Now}

	// Replica A dies after its first batch, holding the lease.
	ctx, cancel := context.WithCancel(context.Background())
	a, err := NewSyncer(&cancelAfterImport{IndicatorAPI: h.api, cancel: cancel}, h.st, opts, nil)
	require.NoError(t, err)
	jobA, err := a.ScheduledJob(JobConfig{Leaser: noRelease{h.st}, Owner: "replica-a", LeaseTTL: time.Minute, RenewEvery: 20 * time.Second, RunTimeout: time.Hour})
	require.NoError(t, err)
	require.ErrorIs(t, jobA(ctx), context.Canceled)
	require.Len(t, h.srv.Indicators(), 500)

	var reports []string
	b, err := NewSyncer(h.api, h.st, opts, nil)
	require.NoError(t, err)
	jobB, err := b.ScheduledJob(JobConfig{Leaser: h.st, Owner: "replica-b", LeaseTTL: time.Minute, RenewEvery: 20 * time.Second, RunTimeout: time.Hour,
		Reporter: ReporterFunc(func(_ context.Context, s string) error { reports = append(reports, s); return nil })})
	require.NoError(t, err)

	// The lease is still A's: B skips.
	h.srv.ResetRequests()
	require.NoError(t, jobB(context.Background()))
	assert.Empty(t, reports)
	assert.Empty(t, h.srv.Requests(), "B made no call")

	// Once it lapsed, B runs and does only what A left undone.
	clock.Advance(time.Minute + time.Second)
	require.NoError(t, jobB(context.Background()))
	require.Len(t, reports, 1)
	last, err := h.st.LastSyncRun(context.Background())
	require.NoError(t, err)
	var rep Report
	require.NoError(t, json.Unmarshal([]byte(last.Summary), &rep))
	assert.Equal(t, 1000, rep.Imported)
	assert.Equal(t, 500, rep.Unchanged)
	assert.Len(t, h.srv.Indicators(), 1500, "nothing duplicated")
	assertSettled(t, h, 1500, 0)
}
