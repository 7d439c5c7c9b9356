package ioc

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/defenderbot/defenderbot/defender"
	"github.com/defenderbot/defenderbot/defender/defendertest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// emuValues returns the values in the emulator, sorted.
func emuValues(h *emuHarness) []string {
	var out []string
	for _, ind := range h.srv.Indicators() {
		out = append(out, ind.IndicatorValue)
	}
	slices.Sort(out)
	return out
}

// breakFeed inserts raw JSON before the first object of the feed at path.
func breakFeed(t *testing.T, path, raw string) {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, []byte(strings.Replace(string(data), "[", "["+raw, 1)), 0o600))
}

// TestIncrementalNewVersionDropsValue: in incremental mode, the latest
// version of an object that no longer yields a value removes the indicator
// defenderbot imported for it, unless another live object of the feed still
// asserts the value (the record then follows that object). A latest version
// that cannot be evaluated (pattern does not parse, not valid yet) removes
// nothing. Emulator, real client, SQLite store.
func TestIncrementalNewVersionDropsValue(t *testing.T) {
	v1 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	v2 := v1.Add(24 * time.Hour)
	x := func(pattern string) feedObj { return feedObj{N: 1, Pattern: pattern, Modified: v2} }
	both := "[domain-name:value = 'a.example' OR domain-name:value = 'b.example']"
	onlyA := "[domain-name:value = 'a.example']"
	y := feedObj{N: 2, Pattern: "[domain-name:value = 'c.example']"}
	keyB := Key(defender.IndicatorDomainName, "b.example")
	tests := []struct {
		name    string
		feed    []feedObj // the second, incremental feed
		want    []string  // values in Defender afterwards
		deleted int
		dropped int
		skipped SkipReason // a reason the run reports
		bFrom   string     // STIX id b's record points to ("" when b has no record)
		mode    string     // of the second run (with force); default incremental
		simple  bool       // the second run takes only simple patterns
	}{
		{name: "new version drops a value", feed: []feedObj{x(onlyA)},
			want: []string{"a.example", "c.example"}, deleted: 1, dropped: 1},
		{name: "dropped value still asserted by another object", feed: []feedObj{x(onlyA),
			{N: 2, Pattern: "[domain-name:value = 'c.example' OR domain-name:value = 'b.example']"}},
			want: []string{"a.example", "b.example", "c.example"}, bFrom: genID(2)},
		{name: "dropped value asserted by a new object", feed: []feedObj{x(onlyA), {N: 3, Pattern: "[domain-name:value = 'b.example']"}},
			want: []string{"a.example", "b.example", "c.example"}, bFrom: genID(3)},
		{name: "new version drops every value", feed: []feedObj{x("[domain-name:value = 'other.example']")},
			want: []string{"c.example", "other.example"}, deleted: 2, dropped: 2},
		{name: "revoked version with a narrower pattern removes everything",
			feed: []feedObj{{N: 1, Pattern: onlyA, Modified: v2, Revoked: true}}, want: []string{"c.example"}, deleted: 2, dropped: 1},
		{name: "simple patterns: version that parses but cannot be expressed removes everything", simple: true,
			feed: []feedObj{x("[domain-name:value = 'a.example' AND domain-name:value = 'b.example']")},
			want: []string{"c.example"}, deleted: 2, dropped: 2, skipped: ReasonNotSingle},
		{name: "all patterns: a compound version keeps its values",
			feed: []feedObj{x("[domain-name:value = 'a.example'] FOLLOWEDBY [domain-name:value = 'b.example'] WITHIN 60 SECONDS")},
			want: []string{"a.example", "b.example", "c.example"}, bFrom: genID(1)},
		{name: "unparseable version removes nothing", feed: []feedObj{x("[domain-name:value = 'a.example'")},
			want: []string{"a.example", "b.example", "c.example"}, skipped: ReasonVersionKept, bFrom: genID(1)},
		{name: "version not valid yet removes nothing",
			feed: []feedObj{{N: 1, Pattern: onlyA, Modified: v2, ValidFrom: testNow.Add(time.Hour)}},
			want: []string{"a.example", "b.example", "c.example"}, skipped: ReasonVersionKept, bFrom: genID(1)},
		{name: "older version removes nothing", feed: []feedObj{x(both), {N: 1, Pattern: onlyA, Modified: v1}},
			want: []string{"a.example", "b.example", "c.example"}, bFrom: genID(1)},
		{name: "snapshot: new version drops a value", feed: []feedObj{x(onlyA), y}, mode: ModeSnapshot,
			want: []string{"a.example", "c.example"}, deleted: 1, dropped: 1},
		{name: "snapshot: unparseable version removes nothing", feed: []feedObj{x("[domain-name:value = 'a.example'"), y}, mode: ModeSnapshot,
			want: []string{"a.example", "b.example", "c.example"}, skipped: ReasonVersionKept, bFrom: genID(1)},
		{name: "object absent from the feed keeps its values", feed: []feedObj{{N: 3, Pattern: "[domain-name:value = 'd.example']"}},
			want: []string{"a.example", "b.example", "c.example", "d.example"}, bFrom: genID(1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newEmuHarness(t)
			writeFeed(t, h.dir, []feedObj{{N: 1, Pattern: both, Modified: v1}, y})
			rep, err := h.run(t, nil)
			require.NoError(t, err)
			require.Equal(t, 3, rep.Imported)

			mode := func(o *Options) {
				if tt.mode != "" {
					o.Mode, o.Force = tt.mode, true
				}
				if tt.simple {
					o.Patterns = PatternsSimple
				}
			}
			writeFeed(t, h.dir, tt.feed)
			h.srv.ResetRequests()
			rep, err = h.run(t, mode)
			require.NoError(t, err)
			assert.Equal(t, tt.want, emuValues(h))
			assert.Equal(t, tt.deleted, rep.Deleted)
			assert.Equal(t, tt.dropped, rep.Dropped)
			if tt.deleted == 0 {
				assert.Zero(t, h.srv.Calls(http.MethodPost, "/api/indicators/BatchDelete"))
			}
			if tt.skipped != "" {
				assert.Positive(t, rep.Skipped[tt.skipped], "reported: %v", rep.Skipped)
			}
			recs, err := h.st.ListIndicatorRecords(context.Background())
			require.NoError(t, err)
			assert.Len(t, recs, len(tt.want), "one record per indicator in Defender")
			var bFrom string
			for _, r := range recs {
				if r.Key == keyB {
					bFrom = r.StixID
				}
			}
			assert.Equal(t, tt.bFrom, bFrom)

			// The next run with the same feed has nothing left to do.
			h.srv.ResetRequests()
			rep, err = h.run(t, mode)
			require.NoError(t, err)
			imports, deletes := h.writes()
			assert.Zero(t, imports+deletes, "stable after one run")
			assert.Zero(t, rep.Dropped)
		})
	}
}

// TestNewVersionDropHeldWhenAnonymousObjectUnreadable: an unreadable object
// without a readable id may be a later version of any object, so no value
// is removed because a version dropped it.
func TestNewVersionDropHeldWhenAnonymousObjectUnreadable(t *testing.T) {
	h := newHarness(t)
	writeFeed(t, h.dir, []feedObj{{N: 1, Pattern: "[domain-name:value = 'a.example' OR domain-name:value = 'b.example']"}})
	h.run(t, nil)
	require.Equal(t, 2, h.api.count())

	writeFeed(t, h.dir, []feedObj{{N: 1, Pattern: "[domain-name:value = 'a.example']", Modified: time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC)}})
	breakFeed(t, h.path, `{"type": "indicator", "id": 42},`)
	rep := h.run(t, nil)
	assert.Zero(t, rep.Deleted)
	assert.Equal(t, 1, rep.Skipped[ReasonDropHeld])
	assert.Equal(t, 2, h.api.count())
}

// TestDeleteNeverHitsForeignIndicator: a failed record (defenderbot never
// created the indicator) whose value someone else added since is forgotten,
// never deleted in Defender, whatever asks for the deletion.
func TestDeleteNeverHitsForeignIndicator(t *testing.T) {
	later := time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		feed []feedObj
		mode string
	}{
		{"revoked", []feedObj{domainObj(0), {N: 1, Pattern: "[domain-name:value = 'd1.example']", Revoked: true, Modified: later}}, ModeIncremental},
		{"new version drops it", []feedObj{domainObj(0), {N: 1, Pattern: "[domain-name:value = 'other.example']", Modified: later}}, ModeIncremental},
		{"absent from a snapshot", []feedObj{domainObj(0)}, ModeSnapshot},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			writeFeed(t, h.dir, domains(0, 2))
			failFirstImportOf(h, "d1.example")
			h.run(t, nil)
			key := Key(defender.IndicatorDomainName, "d1.example")
			rec, ok := h.st.record(key)
			require.True(t, ok)
			require.Equal(t, StatusFailed, rec.Status)
			analyst := h.api.addForeign(defender.IndicatorDomainName, "d1.example")

			writeFeed(t, h.dir, tt.feed)
			h.api.resetCalls()
			h.run(t, func(o *Options) { o.Mode = tt.mode })
			got, ok := h.api.has(defender.IndicatorDomainName, "d1.example")
			require.True(t, ok, "someone else's indicator is never deleted")
			assert.Equal(t, analyst, got.ID)
			for _, ids := range h.api.deletes {
				assert.NotContains(t, ids, analyst)
			}
			_, ok = h.st.record(key)
			assert.False(t, ok, "the failed record is forgotten")
		})
	}
}

// TestSnapshotGuardCountsOnlyDefenderDeletions: forgetting records of
// indicators that never reached Defender is not a deletion; the guard
// compares deletions in Defender with the indicators defenderbot has there.
func TestSnapshotGuardCountsOnlyDefenderDeletions(t *testing.T) {
	ctx := context.Background()
	h := newEmuHarness(t, defendertest.WithIndicatorLimit(10))
	writeFeed(t, h.dir, domains(0, 15))
	// The planner believes in a larger tenant: Defender refuses 5 items.
	big := func(o *Options) { o.TenantLimit = 100 }
	rep, err := h.run(t, big)
	require.NoError(t, err)
	require.Equal(t, 10, rep.Imported)
	require.Equal(t, 5, rep.failedTotal())
	recs, err := h.st.ListIndicatorRecords(ctx)
	require.NoError(t, err)
	var imported []feedObj
	for i := 0; i < 15; i++ {
		for _, r := range recs {
			if r.Value == fmt.Sprintf("d%d.example", i) && r.Status == StatusImported {
				imported = append(imported, domainObj(i))
			}
		}
	}
	require.Len(t, imported, 10)
	snapshot := func(o *Options) { big(o); o.Mode = ModeSnapshot }

	// 3 of the 10 indicators in Defender would go (30% > 20%), plus the 5
	// failed records: refused, nothing deleted, nothing forgotten.
	writeFeed(t, h.dir, imported[3:])
	h.srv.ResetRequests()
	rep, err = h.run(t, snapshot)
	require.ErrorIs(t, err, ErrDeleteGuard)
	assert.Contains(t, err.Error(), "delete 3 of 10 managed indicators")
	assert.Equal(t, 8, rep.PlannedDeletes, "3 in Defender, 5 records only")
	imports, deletes := h.writes()
	assert.Zero(t, imports+deletes)
	assert.Len(t, h.srv.Indicators(), 10)
	recs, err = h.st.ListIndicatorRecords(ctx)
	require.NoError(t, err)
	assert.Len(t, recs, 15)

	// Only the failed records go: not a deletion, no Force needed.
	writeFeed(t, h.dir, imported)
	h.srv.ResetRequests()
	rep, err = h.run(t, snapshot)
	require.NoError(t, err)
	_, deletes = h.writes()
	assert.Zero(t, deletes)
	assert.Len(t, h.srv.Indicators(), 10)
	recs, err = h.st.ListIndicatorRecords(ctx)
	require.NoError(t, err)
	assert.Len(t, recs, 10)
	assert.Equal(t, 10, rep.Unchanged)

	// 2 of 10 (20%): within the fraction.
	writeFeed(t, h.dir, imported[2:])
	rep, err = h.run(t, snapshot)
	require.NoError(t, err)
	assert.Equal(t, 2, rep.Deleted)
	assert.Len(t, h.srv.Indicators(), 8)
}

// TestSnapshotGuardCountsFailedUpdates: an indicator whose last update
// failed is still in Defender: it counts among the managed indicators.
func TestSnapshotGuardCountsFailedUpdates(t *testing.T) {
	h := newHarness(t)
	writeFeed(t, h.dir, domains(0, 10))
	h.run(t, nil)
	renamed := domains(0, 10)
	for i := range renamed {
		renamed[i].Name = "v2"
	}
	writeFeed(t, h.dir, renamed)
	reason := "InvalidDomainName"
	h.api.imports = nil
	h.api.importHook = func(n int, inds []defender.Indicator) ([]defender.ImportResult, error) {
		if n > 1 {
			return nil, nil
		}
		res := make([]defender.ImportResult, len(inds))
		for i, in := range inds {
			res[i] = defender.ImportResult{Indicator: in.IndicatorValue, IsFailed: i%2 == 0, FailureReason: &reason}
		}
		return res, nil
	}
	rep := h.run(t, nil)
	require.Equal(t, 5, rep.failedTotal())

	// 2 of the 10 indicators in Defender: 20%, allowed.
	writeFeed(t, h.dir, renamed[:8])
	rep = h.run(t, func(o *Options) { o.Mode = ModeSnapshot })
	assert.Equal(t, 2, rep.Deleted)
	assert.Equal(t, 8, h.api.count())
}
