package ioc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/defenderbot/defenderbot/config"
	"github.com/defenderbot/defenderbot/defender"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// feedObj is one generated indicator object.
type feedObj struct {
	N          int
	Pattern    string
	Revoked    bool
	ValidUntil *time.Time
	Name       string
	Modified   time.Time // zero: 2025-01-01
	ValidFrom  time.Time // zero: 2025-01-01
}

func genID(n int) string { return fmt.Sprintf("indicator--%08x-0000-4000-8000-%012x", n, n) }

func domainObj(n int) feedObj {
	return feedObj{N: n, Pattern: fmt.Sprintf("[domain-name:value = 'd%d.example']", n)}
}

// writeFeed writes objs as a JSON array and returns the path.
func writeFeed(t testing.TB, dir string, objs []feedObj) string {
	t.Helper()
	path := filepath.Join(dir, "feed.json")
	f, err := os.Create(path)
	require.NoError(t, err)
	defer f.Close()
	enc := json.NewEncoder(f)
	_, _ = f.WriteString("[")
	for i, o := range objs {
		if i > 0 {
			_, _ = f.WriteString(",")
		}
		m := map[string]any{
			"type": "indicator", "spec_version": "2.1", "id": genID(o.N),
			"created": "2025-01-01T00:00:00.000Z", "modified": "2025-01-01T00:00:00.000Z",
			"valid_from": "2025-01-01T00:00:00Z", "pattern_type": "stix", "pattern": o.Pattern, "revoked": o.Revoked,
		}
		if !o.Modified.IsZero() {
			m["modified"] = o.Modified.UTC().Format(time.RFC3339Nano)
		}
		if !o.ValidFrom.IsZero() {
			m["valid_from"] = o.ValidFrom.UTC().Format(time.RFC3339)
		}
		if o.ValidUntil != nil {
			m["valid_until"] = o.ValidUntil.UTC().Format(time.RFC3339)
		}
		if o.Name != "" {
			m["name"] = o.Name
		}
		require.NoError(t, enc.Encode(m))
	}
	_, _ = f.WriteString("]")
	return path
}

func domains(from, to int) []feedObj {
	out := make([]feedObj, 0, to-from)
	for i := from; i < to; i++ {
		out = append(out, domainObj(i))
	}
	return out
}

type harness struct {
	api   *fakeAPI
	st    *testStore
	path  string
	dir   string
	clock time.Time
}

func newHarness(t testing.TB) *harness {
	dir := t.TempDir()
	return &harness{api: newFakeAPI(), st: newTestStore(t), dir: dir, path: filepath.Join(dir, "feed.json"), clock: testNow}
}

func (h *harness) syncer(t testing.TB, mod func(*Options)) *Syncer {
	t.Helper()
	o := Options{StixObjectsPath: h.path, Action: "Block", MaxObjectBytes: config.DefaultMaxObjectBytes, Mode: ModeIncremental, Patterns: PatternsAll, TenantLimit: config.DefaultTenantLimit, Severity: "High", GenerateAlert: true, MaxDeleteFraction: 0.2,
		Now: func() time.Time { return h.clock }}
	if mod != nil {
		mod(&o)
	}
	s, err := NewSyncer(h.api, h.st, o, nil)
	require.NoError(t, err)
	return s
}

func (h *harness) run(t testing.TB, mod func(*Options)) *Report {
	t.Helper()
	rep, err := h.syncer(t, mod).Run(context.Background(), "cli")
	require.NoError(t, err)
	return rep
}

func TestSyncCallCounts(t *testing.T) {
	h := newHarness(t)
	writeFeed(t, h.dir, domains(0, 1000))

	// Initial sync: 1,000 indicators -> 2 import calls (500 each), 1 list.
	rep := h.run(t, nil)
	assert.Equal(t, 1000, rep.Imported)
	assert.Equal(t, 2, rep.ImportCalls)
	assert.Equal(t, 0, rep.DeleteCalls)
	assert.Equal(t, 1, rep.ListCalls)
	assert.Equal(t, 3, rep.APICalls)
	assert.Equal(t, 1000, h.api.count())
	assert.Equal(t, 1000, h.st.numRecords())

	// Unchanged feed: zero write calls.
	h.api.resetCalls()
	rep = h.run(t, nil)
	imports, deletes := h.api.calls()
	assert.Equal(t, 0, imports+deletes, "an unchanged feed must make no write call")
	assert.Equal(t, 1000, rep.Unchanged)
	assert.Equal(t, 1, rep.APICalls)

	// 1% change: 5 renamed (update), 3 new, 2 revoked -> 1 import call of 8, 1 delete call of 2.
	objs := domains(0, 1003)
	for i := 0; i < 5; i++ {
		objs[i].Name = "renamed"
	}
	objs[10].Revoked = true
	objs[11].Revoked = true
	writeFeed(t, h.dir, objs)
	h.api.resetCalls()
	rep = h.run(t, nil)
	assert.Equal(t, 3, rep.Imported)
	assert.Equal(t, 5, rep.Updated)
	assert.Equal(t, 2, rep.Deleted)
	assert.Equal(t, 1, rep.ImportCalls)
	assert.Equal(t, 1, rep.DeleteCalls)
	require.Len(t, h.api.imports, 1)
	assert.Len(t, h.api.imports[0], 8)
	assert.Len(t, h.api.deletes[0], 2)
	assert.Equal(t, 1001, h.api.count())
	_, ok := h.api.has(defender.IndicatorDomainName, "d10.example")
	assert.False(t, ok, "revoked indicator removed")
	got, _ := h.api.has(defender.IndicatorDomainName, "d0.example")
	assert.Equal(t, "renamed", got.Title)
	t.Logf("API calls: initial %d, unchanged %d, 1%% change %d", 3, 1, rep.APICalls)
}

func TestSyncExpiredRemovedAndNeverImported(t *testing.T) {
	h := newHarness(t)
	until := testNow.Add(24 * time.Hour)
	objs := domains(0, 3)
	objs[0].ValidUntil = &until
	writeFeed(t, h.dir, objs)
	require.Equal(t, 3, h.run(t, nil).Imported)

	// Two days later the first object is past valid_until: removed.
	h.clock = testNow.Add(48 * time.Hour)
	rep := h.run(t, nil)
	assert.Equal(t, 1, rep.Deleted)
	assert.Equal(t, 2, rep.Unchanged)
	_, ok := h.st.record(Key(defender.IndicatorDomainName, "d0.example"))
	assert.False(t, ok)

	// An expired object never seen before is not imported.
	past := testNow.Add(-time.Hour)
	h2 := newHarness(t)
	writeFeed(t, h2.dir, []feedObj{{N: 1, Pattern: "[domain-name:value = 'old.example']", ValidUntil: &past}})
	rep = h2.run(t, nil)
	assert.Equal(t, 0, rep.Imported+rep.ImportCalls)
	assert.Equal(t, 1, rep.Skipped[ReasonExpiredNothing])
}

func TestSyncAnalystIndicatorNeverTouched(t *testing.T) {
	h := newHarness(t)
	h.api.addForeign(defender.IndicatorDomainName, "d1.example")
	writeFeed(t, h.dir, domains(0, 3))
	rep := h.run(t, nil)
	assert.Equal(t, 2, rep.Imported)
	assert.Equal(t, 1, rep.Skipped[ReasonForeign])
	got, _ := h.api.has(defender.IndicatorDomainName, "d1.example")
	assert.Equal(t, "analyst", got.Title, "not overwritten")
	_, recorded := h.st.record(Key(defender.IndicatorDomainName, "d1.example"))
	assert.False(t, recorded)

	// Revoking it, or a snapshot without it, never deletes it.
	objs := domains(0, 3)
	objs[1].Revoked = true
	writeFeed(t, h.dir, objs)
	rep = h.run(t, nil)
	assert.Equal(t, 0, rep.DeleteCalls)
	assert.Equal(t, 1, rep.Skipped[ReasonRevokedNothing])
	writeFeed(t, h.dir, domains(0, 1))
	rep = h.run(t, func(o *Options) { o.Mode = ModeSnapshot; o.Force = true })
	assert.Equal(t, 1, rep.Deleted, "only d2, which defenderbot imported")
	_, ok := h.api.has(defender.IndicatorDomainName, "d1.example")
	assert.True(t, ok, "analyst indicator still there")
}

func TestSnapshotDeleteGuard(t *testing.T) {
	h := newHarness(t)
	writeFeed(t, h.dir, domains(0, 100))
	h.run(t, nil)

	// Incremental: absence deletes nothing.
	writeFeed(t, h.dir, domains(0, 50))
	rep := h.run(t, nil)
	assert.Equal(t, 0, rep.Deleted)

	// Snapshot: 50% > 20%: refused, nothing sent, run recorded as failed.
	h.api.resetCalls()
	h.clock = h.clock.Add(time.Minute) // the store orders runs by start time
	rep, err := h.syncer(t, func(o *Options) { o.Mode = ModeSnapshot }).Run(context.Background(), "cli")
	require.ErrorIs(t, err, ErrDeleteGuard)
	assert.Contains(t, err.Error(), "delete 50 of 100 managed indicators")
	imports, deletes := h.api.calls()
	assert.Zero(t, imports+deletes)
	assert.Equal(t, 100, h.api.count())
	last, _ := h.st.LastSyncRun(context.Background())
	assert.False(t, last.OK)
	assert.Equal(t, 50, rep.PlannedDeletes)

	// Within the fraction: allowed.
	writeFeed(t, h.dir, domains(0, 90))
	rep = h.run(t, func(o *Options) { o.Mode = ModeSnapshot })
	assert.Equal(t, 10, rep.Deleted)

	// Force: allowed.
	writeFeed(t, h.dir, domains(0, 10))
	rep = h.run(t, func(o *Options) { o.Mode = ModeSnapshot; o.Force = true })
	assert.Equal(t, 80, rep.Deleted)
	assert.Equal(t, 10, h.api.count())
}

func TestSnapshotHeldWhenFeedPartlyUnreadable(t *testing.T) {
	h := newHarness(t)
	writeFeed(t, h.dir, domains(0, 10))
	h.run(t, nil)
	// Half the feed and one unreadable object: absence proves nothing.
	writeFeed(t, h.dir, domains(0, 5))
	data, err := os.ReadFile(h.path)
	require.NoError(t, err)
	broken := strings.Replace(string(data), "[", `[{"type": "indicator", "id": 42},`, 1)
	require.NoError(t, os.WriteFile(h.path, []byte(broken), 0o644))
	rep := h.run(t, func(o *Options) { o.Mode = ModeSnapshot; o.Force = true })
	assert.True(t, rep.SnapshotHeld)
	assert.Equal(t, 0, rep.Deleted)
	assert.Equal(t, 10, h.api.count())
	assert.Positive(t, rep.Skipped[ReasonUnreadable])
}

func TestSyncMoreThanTenantLimit(t *testing.T) {
	h := newHarness(t)
	h.api.addForeign(defender.IndicatorDomainName, "analyst.example")
	objs := domains(0, 15100)
	writeFeed(t, h.dir, objs)
	rep := h.run(t, nil)
	assert.Equal(t, 14999, rep.Imported, "15,000 minus the analyst's one")
	assert.Equal(t, 101, rep.LeftOut)
	assert.Equal(t, 30, rep.ImportCalls)
	assert.Equal(t, 15000, h.api.count())
	assert.Contains(t, rep.Text(), "101 left out (tenant limit)")
}

func TestTenantLimitKeepsNewest(t *testing.T) {
	h := newHarness(t)
	dir := h.dir
	// valid_from decides: the newest two of three stay.
	feed := `[` +
		`{"type":"indicator","spec_version":"2.1","id":"` + genID(1) + `","created":"2025-01-01T00:00:00Z","modified":"2025-01-01T00:00:00Z","valid_from":"2025-01-01T00:00:00Z","pattern_type":"stix","pattern":"[domain-name:value = 'old.example']"},` +
		`{"type":"indicator","spec_version":"2.1","id":"` + genID(2) + `","created":"2025-01-01T00:00:00Z","modified":"2025-01-01T00:00:00Z","valid_from":"2025-03-01T00:00:00Z","pattern_type":"stix","pattern":"[domain-name:value = 'new.example']"},` +
		`{"type":"indicator","spec_version":"2.1","id":"` + genID(3) + `","created":"2025-01-01T00:00:00Z","modified":"2025-01-01T00:00:00Z","valid_from":"2025-02-01T00:00:00Z","pattern_type":"stix","pattern":"[domain-name:value = 'mid.example']"}]`
	require.NoError(t, os.WriteFile(filepath.Join(dir, "feed.json"), []byte(feed), 0o644))
	p, err := h.syncer(t, func(o *Options) { o.TenantLimit = 2 }).Plan(context.Background())
	require.NoError(t, err)
	assert.Equal(t, []string{"DomainName|old.example"}, p.LeftOut)
	assert.Len(t, p.Import, 2)
}

func TestSyncPerItemFailuresRetried(t *testing.T) {
	h := newHarness(t)
	writeFeed(t, h.dir, domains(0, 4))
	reason := "InvalidDomainName"
	calls := 0
	h.api.importHook = func(_ int, inds []defender.Indicator) ([]defender.ImportResult, error) {
		if calls++; calls > 1 {
			return nil, nil
		}
		res := make([]defender.ImportResult, len(inds))
		for i, in := range inds {
			res[i] = defender.ImportResult{ID: "", Indicator: in.IndicatorValue}
			if in.IndicatorValue == "d2.example" {
				res[i].IsFailed, res[i].FailureReason = true, &reason
			}
		}
		return res, nil
	}
	rep := h.run(t, nil)
	assert.Equal(t, 3, rep.Imported)
	assert.Equal(t, map[string]int{reason: 1}, rep.Failed)
	assert.Contains(t, rep.Text(), "FAILED 1 (1 InvalidDomainName)")
	r, ok := h.st.record(Key(defender.IndicatorDomainName, "d2.example"))
	require.True(t, ok)
	assert.Equal(t, StatusFailed, r.Status)
	assert.Equal(t, reason, r.FailureReason)

	// Next run retries only the failed one.
	h.api.resetCalls()
	rep = h.run(t, nil)
	assert.Equal(t, 1, rep.Imported)
	assert.Equal(t, 3, rep.Unchanged)
	require.Len(t, h.api.imports, 1)
	assert.Len(t, h.api.imports[0], 1)
}

func TestSyncServerErrorKeepsCompletedBatches(t *testing.T) {
	h := newHarness(t)
	writeFeed(t, h.dir, domains(0, 1200))
	h.api.importHook = func(n int, _ []defender.Indicator) ([]defender.ImportResult, error) {
		if n == 2 {
			return nil, &defender.APIError{StatusCode: 503, Code: "ServiceUnavailable"}
		}
		return nil, nil
	}
	rep, err := h.syncer(t, nil).Run(context.Background(), "cli")
	require.Error(t, err)
	assert.Equal(t, 500, rep.Imported, "the first batch is kept")
	imported := 0
	for _, r := range h.st.records() {
		if r.Status == StatusImported {
			imported++
		}
	}
	assert.Equal(t, 500, imported)
	assert.Equal(t, 1000, h.st.numRecords(), "the second batch is recorded as failed: Defender may have it")
	last, _ := h.st.LastSyncRun(context.Background())
	assert.False(t, last.OK)

	// Re-run: the remaining 700 only, nothing twice.
	h.api.importHook = nil
	h.api.resetCalls()
	rep = h.run(t, nil)
	assert.Equal(t, 700, rep.Imported)
	assert.Equal(t, 500, rep.Unchanged)
	assert.Equal(t, 1200, h.api.count())
}

func TestSyncBadRequestFailsOnlyItsBatch(t *testing.T) {
	h := newHarness(t)
	writeFeed(t, h.dir, domains(0, 600))
	h.api.importHook = func(n int, _ []defender.Indicator) ([]defender.ImportResult, error) {
		if n == 1 {
			return nil, &defender.APIError{StatusCode: 400, Code: "InvalidRequestBody"}
		}
		return nil, nil
	}
	rep, err := h.syncer(t, nil).Run(context.Background(), "cli")
	require.NoError(t, err)
	assert.Equal(t, 100, rep.Imported)
	assert.Equal(t, map[string]int{"HTTP 400 InvalidRequestBody": 500}, rep.Failed)
}

func TestSyncCrashMidRun(t *testing.T) {
	h := newHarness(t)
	writeFeed(t, h.dir, domains(0, 1500))
	ctx, cancel := context.WithCancel(context.Background())
	h.api.importHook = func(n int, _ []defender.Indicator) ([]defender.ImportResult, error) {
		if n == 1 {
			cancel() // the process "dies" after Defender took the first batch
		}
		return nil, nil
	}
	rep, err := h.syncer(t, nil).Run(ctx, "cli")
	require.ErrorIs(t, err, context.Canceled)
	imports, _ := h.api.calls()
	assert.Equal(t, 1, imports, "nothing sent after the cancel")
	assert.Equal(t, 500, h.api.count())
	t.Logf("after crash: %s", rep.Text())

	h.api.importHook = nil
	h.api.resetCalls()
	rep = h.run(t, nil)
	assert.Equal(t, 1000, rep.Imported+rep.Updated)
	assert.Equal(t, 1500, h.api.count(), "nothing lost, nothing duplicated")
	assert.Equal(t, 1500, h.st.numRecords())
	h.api.resetCalls()
	rep = h.run(t, nil)
	assert.Equal(t, 0, rep.ImportCalls+rep.DeleteCalls)
}

// A crash between Defender's answer and the record: the next run adopts
// defenderbot's own indicators (application) and re-sends them harmlessly.
func TestSyncAdoptsUnrecordedOwnIndicators(t *testing.T) {
	h := newHarness(t)
	writeFeed(t, h.dir, domains(0, 3))
	h.run(t, nil)
	require.NoError(t, h.st.DeleteIndicatorRecords(context.Background(), []string{Key(defender.IndicatorDomainName, "d0.example")}))
	rep := h.run(t, nil)
	assert.Equal(t, 1, rep.Updated)
	assert.Zero(t, rep.Skipped[ReasonForeign])
	assert.Equal(t, 3, h.api.count())
	assert.Equal(t, 3, h.st.numRecords())
}

func TestSyncDeletesRecordOfIndicatorGoneFromDefender(t *testing.T) {
	h := newHarness(t)
	writeFeed(t, h.dir, domains(0, 2))
	h.run(t, nil)
	// Someone removed d0 by hand; then the feed revokes it.
	r, _ := h.st.record(Key(defender.IndicatorDomainName, "d0.example"))
	require.NoError(t, h.api.DeleteIndicators(context.Background(), []string{r.DefenderID}))
	objs := domains(0, 2)
	objs[0].Revoked = true
	writeFeed(t, h.dir, objs)
	h.api.resetCalls()
	rep := h.run(t, nil)
	assert.Equal(t, 1, rep.Deleted)
	assert.Equal(t, 0, rep.DeleteCalls, "no BatchDelete for an id Defender no longer has")
	assert.Equal(t, 1, h.st.numRecords())
}

func TestDryRunSendsNothing(t *testing.T) {
	h := newHarness(t)
	writeFeed(t, h.dir, domains(0, 10))
	rep := h.run(t, func(o *Options) { o.DryRun = true })
	assert.Equal(t, 10, rep.PlannedImports)
	assert.Equal(t, 0, rep.Imported)
	imports, deletes := h.api.calls()
	assert.Zero(t, imports+deletes)
	assert.Zero(t, h.st.numRecords())
	assert.False(t, h.st.hasRuns(), "a dry run is not recorded")
	assert.Contains(t, rep.Text(), "would import 10")
}

// planDuringImport calls plan before each import it passes on.
type planDuringImport struct {
	*fakeAPI
	plan func()
}

func (p *planDuringImport) ImportIndicators(ctx context.Context, inds []defender.Indicator) ([]defender.ImportResult, error) {
	p.plan()
	return p.fakeAPI.ImportIndicators(ctx, inds)
}

func TestPlanDuringRunIsNotCountedInTheRun(t *testing.T) {
	h := newHarness(t)
	writeFeed(t, h.dir, domains(0, 10))
	api := &planDuringImport{fakeAPI: h.api}
	s, err := NewSyncer(api, h.st, Options{StixObjectsPath: h.path, Action: "Block", MaxObjectBytes: config.DefaultMaxObjectBytes, Mode: ModeIncremental, Patterns: PatternsAll, TenantLimit: config.DefaultTenantLimit, Now: func() time.Time { return h.clock }}, nil)
	require.NoError(t, err)
	api.plan = func() {
		p, err := s.Plan(context.Background())
		require.NoError(t, err)
		assert.Len(t, p.Import, 10)
	}
	rep, err := s.Run(context.Background(), "cli")
	require.NoError(t, err)
	assert.Equal(t, 2, h.api.lists, "the run's list and the Plan's")
	assert.Equal(t, 1, rep.ListCalls, "the Plan's list call is not the run's")
	assert.Equal(t, 2, rep.APICalls)
}

func TestNewSyncerRejectsBadOptions(t *testing.T) {
	api, st := newFakeAPI(), newTestStore(t)
	base := Options{StixObjectsPath: "x.json", Action: "Block", MaxObjectBytes: config.DefaultMaxObjectBytes, Mode: ModeIncremental, Patterns: PatternsAll, TenantLimit: config.DefaultTenantLimit}
	tests := []struct {
		name string
		mod  func(*Options)
		want string
	}{
		{"no path", func(o *Options) { o.StixObjectsPath = "" }, "stix_objects_path is required"},
		{"mode", func(o *Options) { o.Mode = "full" }, `mode "full"`},
		{"no mode", func(o *Options) { o.Mode = "" }, "mode is required (incremental or snapshot)"},
		{"no patterns", func(o *Options) { o.Patterns = "" }, `patterns "" must be all or simple`},
		{"fraction", func(o *Options) { o.MaxDeleteFraction = 1.5 }, "max_delete_fraction"},
		{"limit", func(o *Options) { o.TenantLimit = -1 }, "tenant_limit must be positive (got -1)"},
		{"no limit", func(o *Options) { o.TenantLimit = 0 }, "tenant_limit must be positive (got 0)"},
		{"workers", func(o *Options) { o.Workers = -1 }, "workers must not be negative (got -1)"},
		{"object cap", func(o *Options) { o.MaxObjectBytes = 0 }, "max_object_bytes must be positive"},
		{"audit", func(o *Options) { o.Action = "Audit" }, "Audit requires generate_alert"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := base
			tt.mod(&o)
			_, err := NewSyncer(api, st, o, nil)
			require.ErrorIs(t, err, ErrInvalidOptions)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
	_, err := NewSyncer(nil, st, base, nil)
	assert.ErrorIs(t, err, ErrInvalidOptions)
}

func TestMissingFeedFailsClearly(t *testing.T) {
	h := newHarness(t)
	_, err := h.syncer(t, nil).Run(context.Background(), "cli")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "read STIX feed")
	last, lerr := h.st.LastSyncRun(context.Background())
	require.NoError(t, lerr)
	assert.False(t, last.OK)
}

func TestRunNowAndStatusText(t *testing.T) {
	h := newHarness(t)
	s := h.syncer(t, nil)
	status, err := s.StatusText(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "IOC sync has not run yet.", status)

	writeFeed(t, h.dir, domains(0, 2))
	summary, err := s.RunNow(context.Background(), "slack")
	require.NoError(t, err)
	assert.Contains(t, summary, "2 objects read; 2 imported")

	require.NoError(t, os.Remove(h.path))
	h.clock = h.clock.Add(time.Minute) // the store orders runs by start time
	_, err = s.RunNow(context.Background(), "slack")
	require.Error(t, err)
	status, err = s.StatusText(context.Background())
	require.NoError(t, err)
	assert.Contains(t, status, "Last run (slack")
	assert.Contains(t, status, "FAILED")
	assert.Contains(t, status, "Last successful run (slack")
	assert.Contains(t, status, "2 imported")
	require.NotEmpty(t, h.st.audit())
	assert.Equal(t, "iocs_sync", h.st.audit()[0].Kind)
}

func TestScheduledJobTakesLease(t *testing.T) {
	h := newHarness(t)
	writeFeed(t, h.dir, domains(0, 2))
	s := h.syncer(t, nil)
	var reports []string
	rep := ReporterFunc(func(_ context.Context, text string) error { reports = append(reports, text); return nil })
	jobA, err := s.ScheduledJob(JobConfig{Leaser: h.st, Owner: "replica-a", LeaseTTL: config.IOCLeaseTTL, RenewEvery: config.IOCLeaseRenewEvery, RunTimeout: config.DefaultIOCRunTimeout, Reporter: rep})
	require.NoError(t, err)
	jobB, err := s.ScheduledJob(JobConfig{Leaser: h.st, Owner: "replica-b", LeaseTTL: config.IOCLeaseTTL, RenewEvery: config.IOCLeaseRenewEvery, RunTimeout: config.DefaultIOCRunTimeout, Reporter: rep})
	require.NoError(t, err)

	// B holds the lease: A skips without running.
	ok, err := h.st.AcquireLease(context.Background(), LeaseName, "replica-b", h.clock, time.Hour)
	require.NoError(t, err)
	require.True(t, ok)
	require.NoError(t, jobA(context.Background()))
	assert.Empty(t, reports)
	assert.Zero(t, h.api.count())

	require.NoError(t, jobB(context.Background()))
	require.Len(t, reports, 1)
	assert.Contains(t, reports[0], "2 imported")
	// B released it: A can run now.
	require.NoError(t, jobA(context.Background()))
	assert.Len(t, reports, 2)

	_, err = s.ScheduledJob(JobConfig{})
	assert.Error(t, err)
}

func TestRunRefusesConcurrentRun(t *testing.T) {
	h := newHarness(t)
	writeFeed(t, h.dir, domains(0, 2))
	s := h.syncer(t, nil)
	started, release := make(chan struct{}), make(chan struct{})
	h.api.importHook = func(int, []defender.Indicator) ([]defender.ImportResult, error) {
		close(started)
		<-release
		return nil, nil
	}
	done := make(chan error)
	go func() { _, err := s.Run(context.Background(), "schedule"); done <- err }()
	<-started
	_, err := s.Run(context.Background(), "slack")
	assert.ErrorIs(t, err, ErrRunning)
	close(release)
	require.NoError(t, <-done)
}

func TestReportText(t *testing.T) {
	r := &Report{Read: 10, Imported: 2, Updated: 1, Deleted: 3, Unchanged: 4, APICalls: 3, Duration: 1500 * time.Millisecond,
		Skipped: map[SkipReason]int{"a": 1, "b": 5, "c": 2, "d": 1}, Failed: map[string]int{}}
	assert.Equal(t, "IOC sync: 10 objects read; 2 imported, 1 updated, 3 deleted, 4 unchanged; skipped 9 (5 b, 2 c, 1 a, …); 3 API calls in 1.5s", r.Text())
	r.Error = "boom"
	assert.True(t, strings.HasSuffix(r.Text(), "; error: boom"))
	_ = errors.New
}

// TestSnapshotEmptyFeedDeletesNothing: a snapshot feed with no object (an
// empty directory, an empty array) is a failed export, not an order to wipe
// the tenant, even with Force or a delete fraction of 1; a missing path fails
// the run.
func TestSnapshotEmptyFeedDeletesNothing(t *testing.T) {
	for _, tc := range []struct {
		name string
		feed func(t *testing.T, dir string) string
	}{
		{"empty directory", func(t *testing.T, dir string) string {
			d := filepath.Join(dir, "feeds")
			require.NoError(t, os.Mkdir(d, 0o755))
			return d
		}},
		{"directory without json files", func(t *testing.T, dir string) string {
			d := filepath.Join(dir, "feeds")
			require.NoError(t, os.Mkdir(d, 0o755))
			require.NoError(t, os.WriteFile(filepath.Join(d, "README.txt"), []byte("x"), 0o644))
			return d
		}},
		{"empty array", func(t *testing.T, dir string) string { return writeFeed(t, dir, nil) }},
		{"empty bundle", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "feed.json")
			require.NoError(t, os.WriteFile(p, []byte(`{"type":"bundle","id":"bundle--1","objects":[]}`), 0o644))
			return p
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			writeFeed(t, h.dir, domains(0, 10))
			h.run(t, nil)
			require.Equal(t, 10, h.api.count())

			h.path = tc.feed(t, t.TempDir())
			for _, mod := range []func(*Options){
				func(o *Options) { o.Mode = ModeSnapshot; o.Force = true },
				func(o *Options) { o.Mode = ModeSnapshot; o.MaxDeleteFraction = 1 },
			} {
				rep := h.run(t, mod)
				assert.True(t, rep.SnapshotHeld)
				assert.Zero(t, rep.Deleted)
				assert.Zero(t, rep.DeleteCalls)
				assert.Contains(t, rep.Text(), "snapshot deletions held (feed empty)")
				assert.Equal(t, 10, h.api.count())
			}
		})
	}

	t.Run("missing path", func(t *testing.T) {
		h := newHarness(t)
		writeFeed(t, h.dir, domains(0, 10))
		h.run(t, nil)
		h.path = filepath.Join(t.TempDir(), "absent")
		rep, err := h.syncer(t, func(o *Options) { o.Mode = ModeSnapshot; o.Force = true }).Run(context.Background(), "cli")
		require.ErrorIs(t, err, os.ErrNotExist)
		assert.Zero(t, rep.Deleted)
		assert.Equal(t, 10, h.api.count())
	})
}

// TestOnDemandRunTakesTheLease: a run asked for in Slack (or by push-iocs)
// takes the same lease as scheduled runs, is refused with ErrLeaseHeld while
// another replica holds it, and reports its summary like a scheduled run.
func TestOnDemandRunTakesTheLease(t *testing.T) {
	h := newHarness(t)
	writeFeed(t, h.dir, domains(0, 2))
	s := h.syncer(t, nil)
	var reports []string
	rep := ReporterFunc(func(_ context.Context, text string) error { reports = append(reports, text); return nil })
	onDemand, err := s.Leased(JobConfig{Leaser: h.st, Owner: "replica-a", LeaseTTL: config.IOCLeaseTTL, RenewEvery: config.IOCLeaseRenewEvery, RunTimeout: config.DefaultIOCRunTimeout, Reporter: rep})
	require.NoError(t, err)

	ok, err := h.st.AcquireLease(context.Background(), LeaseName, "replica-b", h.clock, time.Hour)
	require.NoError(t, err)
	require.True(t, ok)
	summary, err := onDemand.RunNow(context.Background(), "slack")
	require.ErrorIs(t, err, ErrLeaseHeld)
	assert.Empty(t, summary)
	assert.Zero(t, h.api.count(), "nothing sent while another replica syncs")
	assert.Empty(t, reports)

	require.NoError(t, h.st.ReleaseLease(context.Background(), LeaseName, "replica-b"))
	summary, err = onDemand.RunNow(context.Background(), "slack")
	require.NoError(t, err)
	assert.Contains(t, summary, "2 imported")
	require.Len(t, reports, 1, "on-demand runs are reported too")

	// The lease is released after the run: another replica may take it.
	ok, err = h.st.AcquireLease(context.Background(), LeaseName, "replica-b", h.clock, time.Hour)
	require.NoError(t, err)
	assert.True(t, ok)
}

// TestWorkersDoNotChangeThePlan: iocs.workers sets how many goroutines read
// the feed and the spooled conversions; one (sequential) or several, the
// plan is the same.
func TestWorkersDoNotChangeThePlan(t *testing.T) {
	h := newHarness(t)
	writeFeed(t, h.dir, domains(0, 300))
	var plans []*Plan
	for _, w := range []int{0, 1, 3} {
		p, err := h.syncer(t, func(o *Options) { o.Workers = w }).Plan(context.Background())
		require.NoError(t, err, "workers %d", w)
		plans = append(plans, p)
	}
	require.Len(t, plans[0].Import, 300)
	assert.Equal(t, plans[0], plans[1], "sequential")
	assert.Equal(t, plans[0], plans[2], "three workers")
}
