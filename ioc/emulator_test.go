package ioc

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/defenderbot/defenderbot/config"
	"github.com/defenderbot/defenderbot/defender"
	"github.com/defenderbot/defenderbot/defender/defendertest"
	"github.com/defenderbot/defenderbot/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// emuHarness runs the sync against the Defender emulator and the SQLite store.
type emuHarness struct {
	srv  *defendertest.Server
	api  *defender.Client
	st   store.Store
	dir  string
	path string
}

func newEmuHarness(t *testing.T, opts ...defendertest.Option) *emuHarness {
	t.Helper()
	srv := defendertest.NewServer(t, opts...)
	api, err := defender.New(srv.ClientConfig(), defender.WithHTTPClient(srv.HTTPClient()),
		// Retry-After and pacing waits are skipped: the test checks calls, not time.
		defender.WithSleeper(func(ctx context.Context, _ time.Duration) error { return ctx.Err() }))
	require.NoError(t, err)
	dir := t.TempDir()
	st, err := store.Open(context.Background(), "sqlite", filepath.Join(dir, "state.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	return &emuHarness{srv: srv, api: api, st: st, dir: dir, path: filepath.Join(dir, "feed.json")}
}

func (h *emuHarness) run(t *testing.T, mod func(*Options)) (*Report, error) {
	t.Helper()
	o := Options{StixObjectsPath: h.path, Action: "Block", MaxObjectBytes: config.DefaultMaxObjectBytes, Mode: ModeIncremental, Patterns: PatternsAll, TenantLimit: config.DefaultTenantLimit, Severity: "High", GenerateAlert: true, MaxDeleteFraction: 0.2,
		Now: func() time.Time { return testNow }}
	if mod != nil {
		mod(&o)
	}
	s, err := NewSyncer(h.api, h.st, o, nil)
	require.NoError(t, err)
	return s.Run(context.Background(), "cli")
}

func (h *emuHarness) writes() (imports, deletes int) {
	return h.srv.Calls(http.MethodPost, "/api/indicators/import"), h.srv.Calls(http.MethodPost, "/api/indicators/BatchDelete")
}

func TestEmulatorSyncCallCounts(t *testing.T) {
	h := newEmuHarness(t)
	analystID := h.srv.AddIndicator(defendertest.Indicator{IndicatorValue: "d7.example", IndicatorType: "DomainName",
		Action: "Allowed", Title: "analyst", Description: "allow-listed by hand", SourceType: "User"})

	writeFeed(t, h.dir, domains(0, 1000))
	rep, err := h.run(t, nil)
	require.NoError(t, err)
	imports, deletes := h.writes()
	assert.Equal(t, 2, imports, "999 indicators: 2 import calls")
	assert.Zero(t, deletes)
	assert.Equal(t, 999, rep.Imported)
	assert.Equal(t, 1, rep.Skipped[ReasonForeign])
	assert.Len(t, h.srv.Indicators(), 1000)
	initial := rep.APICalls

	h.srv.ResetRequests()
	rep, err = h.run(t, nil)
	require.NoError(t, err)
	imports, deletes = h.writes()
	assert.Zero(t, imports+deletes, "unchanged feed: zero write calls")
	unchanged := rep.APICalls

	// 1% change: 4 renamed, 4 new, 2 revoked (one of them the analyst's).
	objs := domains(0, 1004)
	for i := 0; i < 4; i++ {
		objs[i].Name = "renamed"
	}
	objs[7].Revoked, objs[8].Revoked = true, true
	writeFeed(t, h.dir, objs)
	h.srv.ResetRequests()
	rep, err = h.run(t, nil)
	require.NoError(t, err)
	imports, deletes = h.writes()
	assert.Equal(t, 1, imports)
	assert.Equal(t, 1, deletes)
	assert.Equal(t, 4, rep.Imported)
	assert.Equal(t, 4, rep.Updated)
	assert.Equal(t, 1, rep.Deleted)
	t.Logf("API calls (emulator): initial %d, unchanged %d, 1%% change %d", initial, unchanged, rep.APICalls)

	var analyst *defendertest.Indicator
	for _, ind := range h.srv.Indicators() {
		if ind.ID == analystID {
			analyst = &ind
		}
	}
	require.NotNil(t, analyst, "the analyst's indicator is never deleted")
	assert.Equal(t, "Allowed", analyst.Action, "nor overwritten")
}

func TestEmulatorThrottlingAndServerErrors(t *testing.T) {
	h := newEmuHarness(t)
	writeFeed(t, h.dir, domains(0, 600))

	// One 429 with Retry-After: the client retries, the run succeeds.
	h.srv.InjectFault(defendertest.Fault{Method: http.MethodPost, Path: defender.APIIndicatorImport, Status: http.StatusTooManyRequests, RetryAfter: time.Second})
	rep, err := h.run(t, nil)
	require.NoError(t, err)
	assert.Equal(t, 600, rep.Imported)
	assert.Equal(t, 3, h.srv.Calls(http.MethodPost, "/api/indicators/import"), "2 batches + 1 retry")

	// Persistent 503s: the run fails, keeps nothing half-done, and the next run sends everything.

	h2 := newEmuHarness(t)
	writeFeed(t, h2.dir, domains(0, 600))
	_, err = h2.run(t, nil)
	require.NoError(t, err)
	objs := domains(0, 600)
	for i := range objs {
		objs[i].Name = "v2"
	}
	writeFeed(t, h2.dir, objs)
	h2.srv.InjectFault(defendertest.Fault{Method: http.MethodPost, Path: defender.APIIndicatorImport, Status: http.StatusServiceUnavailable, Count: -1})
	rep, err = h2.run(t, nil)
	require.Error(t, err)
	assert.Zero(t, rep.Updated)
	h2.srv.ClearFaults()
	rep, err = h2.run(t, nil)
	require.NoError(t, err)
	assert.Equal(t, 600, rep.Updated, "everything sent on the next run")
	assert.Len(t, h2.srv.Indicators(), 600, "nothing duplicated")
}

func TestEmulatorPerItemFailures(t *testing.T) {
	h := newEmuHarness(t, defendertest.WithIndicatorLimit(5))
	writeFeed(t, h.dir, domains(0, 8))
	// The planner believes in a larger tenant: Defender refuses 3 items.
	rep, err := h.run(t, func(o *Options) { o.TenantLimit = 100 })
	require.NoError(t, err)
	assert.Equal(t, 5, rep.Imported)
	total := 0
	for _, n := range rep.Failed {
		total += n
	}
	assert.Equal(t, 3, total)
	recs, err := h.st.ListIndicatorRecords(context.Background())
	require.NoError(t, err)
	failed := 0
	for _, r := range recs {
		if r.Status == StatusFailed {
			failed++
			assert.NotEmpty(t, r.FailureReason)
		}
	}
	assert.Equal(t, 3, failed)
}

func TestEmulatorCrashMidRun(t *testing.T) {
	h := newEmuHarness(t)
	writeFeed(t, h.dir, domains(0, 1500))
	ctx, cancel := context.WithCancel(context.Background())
	counting := &cancelAfterImport{IndicatorAPI: h.api, cancel: cancel}
	s, err := NewSyncer(counting, h.st, Options{StixObjectsPath: h.path, Action: "Block", MaxObjectBytes: config.DefaultMaxObjectBytes, Mode: ModeIncremental, Patterns: PatternsAll, TenantLimit: config.DefaultTenantLimit, Severity: "High", GenerateAlert: true, Now: func() time.Time { return testNow }}, nil)
	require.NoError(t, err)
	_, err = s.Run(ctx, "cli")
	require.ErrorIs(t, err, context.Canceled)
	assert.Len(t, h.srv.Indicators(), 500)

	rep, err := h.run(t, nil)
	require.NoError(t, err)
	assert.Equal(t, 1000, rep.Imported+rep.Updated)
	assert.Len(t, h.srv.Indicators(), 1500, "nothing lost, nothing duplicated")
	recs, err := h.st.ListIndicatorRecords(context.Background())
	require.NoError(t, err)
	assert.Len(t, recs, 1500)
}

// cancelAfterImport cancels the run's context once the first import returned.
type cancelAfterImport struct {
	IndicatorAPI
	cancel func()
}

func (c *cancelAfterImport) ImportIndicators(ctx context.Context, inds []defender.Indicator) ([]defender.ImportResult, error) {
	res, err := c.IndicatorAPI.ImportIndicators(ctx, inds)
	c.cancel()
	return res, err
}

// TestCompoundShapesFeed: a feed of the compound pattern shapes of real feeds
// (MISP attributes and objects, vendor reports, observation AND / FOLLOWEDBY,
// qualifiers) imports every "=" value on a supported path in "all" mode, and
// only the plain disjunction's in "simple" mode.
func TestCompoundShapesFeed(t *testing.T) {
	all := []string{
		"0f343b0931126a20f133d67c2b018a3b", "203.0.113.1", "203.0.113.2", "2001:db8::7",
		"900150983cd24fb0d6963f7d28e17f72", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		"a94a8fe5ccb19ba61c4c0873d391e987982fbbd3", "beacon.example", "c2.example", "d41d8cd98f00b204e9800998ecf8427e",
		"http://stage1.example/a", "http://stage2.example/b", "twice.example",
		"192.0.2.77", "plain.example", // the plain disjunction
	}
	slices.Sort(all)
	simple := []string{"192.0.2.77", "plain.example"}
	for _, tt := range []struct {
		patterns string
		want     []string
		compound int
	}{{PatternsAll, all, len(all) - 2}, {PatternsSimple, simple, 0}} {
		t.Run("patterns="+tt.patterns, func(t *testing.T) {
			h := newEmuHarness(t)
			rep, err := h.run(t, func(o *Options) {
				o.StixObjectsPath = filepath.Join("testdata", "compound_shapes.json")
				o.Patterns = tt.patterns
			})
			require.NoError(t, err)
			assert.Equal(t, tt.want, emuValues(h))
			assert.Equal(t, len(tt.want), rep.Imported)
			assert.Equal(t, tt.compound, rep.Compound)
			if tt.compound > 0 {
				assert.Contains(t, rep.Text(), fmt.Sprintf("%d indicators from compound patterns", tt.compound))
			} else {
				assert.NotContains(t, rep.Text(), "compound")
				assert.Equal(t, 8, rep.Skipped[ReasonNotSingle], "every compound shape")
			}
		})
	}
}

// TestNeverOverwritesAnIndicatorSomeoneReplaced: defenderbot imported
// d0.example; an analyst deleted it in the portal and created their own for
// the same value. A new version of the object neither overwrites the
// analyst's indicator nor adopts it; the stale record is dropped (and the
// summary says so), so a later revocation does not delete it either.
func TestNeverOverwritesAnIndicatorSomeoneReplaced(t *testing.T) {
	h := newEmuHarness(t)
	ctx := context.Background()
	writeFeed(t, h.dir, []feedObj{domainObj(0)})
	rep, err := h.run(t, nil)
	require.NoError(t, err)
	require.Equal(t, 1, rep.Imported)
	ours := h.srv.Indicators()
	require.Len(t, ours, 1)
	require.NoError(t, h.api.DeleteIndicators(ctx, []string{ours[0].ID}))
	analystID := h.srv.AddIndicator(defendertest.Indicator{IndicatorValue: "d0.example", IndicatorType: "DomainName",
		Action: "Allowed", Title: "analyst", Description: "allow-listed by hand", SourceType: "User"})

	v2 := time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC)
	writeFeed(t, h.dir, []feedObj{{N: 0, Pattern: "[domain-name:value = 'd0.example']", Name: "renamed", Modified: v2}})
	rep, err = h.run(t, nil)
	require.NoError(t, err)
	assert.Zero(t, rep.Imported+rep.Updated, "nothing sent over the analyst's indicator")
	assert.Equal(t, 1, rep.StaleDropped)
	assert.Contains(t, rep.Text(), "1 stale records dropped")
	recs, err := h.st.ListIndicatorRecords(ctx)
	require.NoError(t, err)
	assert.Empty(t, recs, "the stale record is dropped")

	writeFeed(t, h.dir, []feedObj{{N: 0, Pattern: "[domain-name:value = 'd0.example']", Revoked: true, Modified: v2.Add(time.Hour)}})
	_, err = h.run(t, nil)
	require.NoError(t, err)
	inds := h.srv.Indicators()
	require.Len(t, inds, 1, "the revocation deletes nothing of the analyst's")
	assert.Equal(t, analystID, inds[0].ID)
	assert.Equal(t, "Allowed", inds[0].Action)
	assert.Equal(t, "analyst", inds[0].Title)
}

// diesAfterImport is a process that dies right after Defender accepted an
// import: the call succeeds, and nothing the store is asked afterwards is
// written.
type diesAfterImport struct {
	IndicatorAPI
	dead *bool
}

func (d diesAfterImport) ImportIndicators(ctx context.Context, inds []defender.Indicator) ([]defender.ImportResult, error) {
	res, err := d.IndicatorAPI.ImportIndicators(ctx, inds)
	*d.dead = err == nil
	return res, err
}

type deadStore struct {
	store.Store
	dead *bool
}

func (d deadStore) UpsertIndicatorRecords(ctx context.Context, recs []store.IndicatorRecord) error {
	if *d.dead {
		return errors.New("process killed")
	}
	return d.Store.UpsertIndicatorRecords(ctx, recs)
}

// TestCrashBetweenImportAndRecord: the process dies after Defender accepted
// an import and before the run recorded it; a later run given only the
// object's revocation removes the indicator. Both defences are exercised:
// the record written before the call, and, when no record exists at all
// (a run of an older version died), Defender's own application + externalId.
func TestCrashBetweenImportAndRecord(t *testing.T) {
	for _, tt := range []struct {
		name       string
		loseRecord bool
	}{{"record written before the call", false}, {"no record: recognised by application and externalId", true}} {
		t.Run(tt.name, func(t *testing.T) {
			h := newEmuHarness(t)
			ctx := context.Background()
			writeFeed(t, h.dir, []feedObj{domainObj(0)})
			dead := false
			o := Options{StixObjectsPath: h.path, Action: "Block", MaxObjectBytes: config.DefaultMaxObjectBytes, Mode: ModeIncremental, Patterns: PatternsAll, TenantLimit: config.DefaultTenantLimit, Severity: "High", GenerateAlert: true, Now: func() time.Time { return testNow }}
			s, err := NewSyncer(diesAfterImport{h.api, &dead}, deadStore{h.st, &dead}, o, nil)
			require.NoError(t, err)
			_, err = s.Run(ctx, "schedule")
			require.ErrorContains(t, err, "process killed")
			require.Len(t, h.srv.Indicators(), 1, "Defender accepted the import")
			recs, err := h.st.ListIndicatorRecords(ctx)
			require.NoError(t, err)
			require.Len(t, recs, 1)
			assert.Equal(t, StatusFailed, recs[0].Status, "recorded as unconfirmed before the call")
			if tt.loseRecord {
				require.NoError(t, h.st.DeleteIndicatorRecords(ctx, []string{recs[0].Key}))
			}

			writeFeed(t, h.dir, []feedObj{{N: 0, Pattern: "[domain-name:value = 'd0.example']", Revoked: true,
				Modified: time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)}})
			rep, err := h.run(t, nil)
			require.NoError(t, err)
			assert.Equal(t, 1, rep.Deleted)
			assert.Empty(t, h.srv.Indicators(), "the revocation removed the indicator")
		})
	}
}

// TestReplayedOlderVersionIgnored: a feed replaying an older version of an
// object (an old export put back) neither rewrites the indicators of the
// newer version nor drops the values only the newer version gives, nor
// removes anything when the old version was revoked.
func TestReplayedOlderVersionIgnored(t *testing.T) {
	v1 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	v2 := v1.Add(24 * time.Hour)
	for _, old := range []feedObj{
		{N: 1, Pattern: "[domain-name:value = 'a.example']", Name: "old name", Modified: v1},
		{N: 1, Pattern: "[domain-name:value = 'a.example' OR domain-name:value = 'b.example']", Revoked: true, Modified: v1},
	} {
		h := newEmuHarness(t)
		writeFeed(t, h.dir, []feedObj{{N: 1, Pattern: "[domain-name:value = 'a.example' OR domain-name:value = 'b.example']", Name: "new name", Modified: v2}})
		rep, err := h.run(t, nil)
		require.NoError(t, err)
		require.Equal(t, 2, rep.Imported)
		rec, err := h.st.ListIndicatorRecords(context.Background())
		require.NoError(t, err)
		require.Len(t, rec, 2)
		assert.True(t, rec[0].StixModified.Equal(v2), "the record keeps the version's modified")

		writeFeed(t, h.dir, []feedObj{old})
		h.srv.ResetRequests()
		rep, err = h.run(t, nil)
		require.NoError(t, err)
		imports, deletes := h.writes()
		assert.Zero(t, imports+deletes, "nothing sent for a replayed older version")
		assert.Equal(t, 1, rep.Skipped[ReasonOlderVersion])
		assert.Equal(t, []string{"a.example", "b.example"}, emuValues(h))
		for _, ind := range h.srv.Indicators() {
			assert.Equal(t, "new name", ind.Title)
		}
	}
}
