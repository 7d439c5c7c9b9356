package ioc

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/defenderbot/defenderbot/config"
	"github.com/defenderbot/defenderbot/defender"
	"github.com/defenderbot/defenderbot/stix"
	"github.com/defenderbot/defenderbot/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// randomFeed writes a small feed meant to hit every rule: repeated ids
// (versions, with ties), values several objects give, revoked, expired and
// not-yet-valid objects, patterns that do not parse or cannot be expressed,
// unreadable objects with and without an id. It reports whether some id
// appears more than once.
func randomFeed(t *testing.T, r *rand.Rand, path string, repeatIDs bool) bool {
	t.Helper()
	times := []string{"2025-06-01T00:00:00Z", "2025-07-01T00:00:00Z", "2025-08-01T00:00:00Z"}
	value := func() string {
		n := r.IntN(24)
		switch {
		case n < 12:
			return fmt.Sprintf("domain-name:value = 'v%d.example'", n)
		case n < 22:
			return fmt.Sprintf("ipv4-addr:value = '10.0.0.%d'", n)
		case n < 23:
			return "ipv4-addr:value = '10.1.0.0/16'" // CIDR: skipped
		}
		return "domain-name:value = 'com'" // invalid
	}
	var objs []string
	seen := map[int]bool{}
	repeated := false
	n := 20 + r.IntN(40)
	for i := range n {
		id := i + 1000
		if repeatIDs {
			id = r.IntN(n/2 + 1)
		}
		repeated = repeated || seen[id]
		seen[id] = true
		var pattern string
		switch k := r.IntN(20); {
		case k == 0:
			pattern = "[" + value() // does not parse
		case k == 1:
			pattern = "[" + value() + " AND " + value() + "]"
		case k == 2:
			pattern = "[" + value() + "] AND ([" + value() + "] OR [file:size = 3])"
		case k == 3:
			pattern = "[" + value() + "] FOLLOWEDBY [" + value() + " AND file:name = 'x.exe'] WITHIN 600 SECONDS"
		case k == 4:
			pattern = "[" + value() + "] REPEATS 5 TIMES AND [" + value() + "] START t'2024-02-30T00:00:00Z' STOP t'2024-03-01T00:00:00Z'"
		default:
			parts := []string{value()}
			for range r.IntN(3) {
				parts = append(parts, value())
			}
			pattern = "[" + strings.Join(parts, " OR ") + "]"
		}
		extra := ""
		switch r.IntN(10) {
		case 0, 1:
			extra += `,"valid_until":"2025-12-01T00:00:00Z"` // before testNow: expired
		case 2, 3, 4:
			extra += fmt.Sprintf(`,"valid_until":"2026-0%d-01T00:00:00Z"`, 2+r.IntN(3))
		}
		if r.IntN(20) == 0 {
			extra += `,"valid_from":"2027-01-01T00:00:00Z"` // not valid yet
		} else {
			extra += fmt.Sprintf(`,"valid_from":"2025-0%d-01T00:00:00Z"`, 1+r.IntN(5))
		}
		if r.IntN(6) == 0 {
			extra += `,"revoked":true`
		}
		if name := r.IntN(3); name > 0 {
			extra += fmt.Sprintf(`,"name":"name %d"`, name)
		}
		obj := fmt.Sprintf(`{"type":"indicator","spec_version":"2.1","id":%q,"created":"2025-01-01T00:00:00Z","modified":%q,"pattern_type":"stix","pattern":%q%s}`,
			genID(id), times[r.IntN(len(times))], pattern, extra)
		switch r.IntN(40) {
		case 0: // unreadable, its id readable
			obj = fmt.Sprintf(`{"type":"indicator","id":%q,"revoked":"yes"}`, genID(id))
		case 1: // unreadable, no id
			obj = `{"type":"indicator","id":5}`
		}
		objs = append(objs, obj)
	}
	require.NoError(t, os.WriteFile(path, []byte("["+strings.Join(objs, ",\n")+"]"), 0o600))
	return repeated
}

// referencePlan plans with the previous, all-in-memory planner.
func referencePlan(t *testing.T, s *Syncer) *plan {
	t.Helper()
	ctx := context.Background()
	now := s.opts.Now()
	fs := newRefFeedState()
	copts := s.opts.convertOptions()
	require.NoError(t, stix.ReadFeed(ctx, s.opts.StixObjectsPath, s.opts.MaxObjectBytes, func(obj *stix.Object, oerr *stix.ObjectError) error {
		if oerr != nil {
			fs.addError(oerr)
			return nil
		}
		fs.addObject(obj, copts, now)
		return nil
	}))
	recs, err := s.store.ListIndicatorRecords(ctx)
	require.NoError(t, err)
	records := map[string]store.IndicatorRecord{}
	for _, r := range recs {
		records[r.Key] = r
		if r.StixID != "" && r.StixModified.After(fs.recModified[r.StixID]) {
			fs.recModified[r.StixID] = r.StixModified
		}
	}
	fs.finish()
	inDefender, active, err := listDefender(ctx, s.api, now)
	require.NoError(t, err)
	return refMakePlan(refPlanInput{feed: fs, records: records, inDefender: inDefender, active: active, now: now,
		snapshot: s.opts.Mode == ModeSnapshot, force: s.opts.Force, maxDeleteFraction: s.opts.MaxDeleteFraction,
		tenantLimit: s.opts.TenantLimit})
}

func categories(skips []Skip) map[SkipReason]int {
	m := map[SkipReason]int{}
	for _, s := range skips {
		m[s.Reason]++
	}
	return m
}

// TestPlannerMatchesReference: the streaming planner plans exactly what the
// previous all-in-memory planner did, on random feeds and states, whether the
// sketch sees every id and value as possibly repeated or not. Only the order
// of skips may differ, and only when an object has several versions (the
// latest is applied where it stands, not where the object first appeared).
func TestPlannerMatchesReference(t *testing.T) {
	for seed := range uint64(60) {
		r := rand.New(rand.NewPCG(seed, 42))
		h := newHarness(t)
		// State: a first run, with some foreign values and failed imports.
		h.api.addForeign(defender.IndicatorDomainName, "v1.example")
		randomFeed(t, r, h.path, true)
		h.api.importHook = func(_ int, inds []defender.Indicator) ([]defender.ImportResult, error) {
			res := make([]defender.ImportResult, len(inds))
			for i, in := range inds {
				res[i] = defender.ImportResult{Indicator: in.IndicatorValue}
				if strings.HasSuffix(in.IndicatorValue, "3.example") || strings.HasSuffix(in.IndicatorValue, ".17") {
					reason := "InvalidValue"
					res[i].IsFailed, res[i].FailureReason = true, &reason
				}
			}
			return res, nil
		}
		h.run(t, nil)
		h.api.importHook = nil
		// Records lost to a crash: Defender's application and externalId
		// still tell defenderbot's indicators.
		for k := range h.st.records() {
			if strings.HasSuffix(k, "5.example") || strings.HasSuffix(k, ".15") {
				require.NoError(t, h.st.DeleteIndicatorRecords(context.Background(), []string{k}))
			}
		}
		h.api.addForeign(defender.IndicatorIPAddress, "10.0.0.12")   // replaces ours, if any
		h.api.addForeign(defender.IndicatorDomainName, "v3.example") // after our failed attempt
		repeated := randomFeed(t, r, h.path, seed%3 != 0)

		for _, mode := range []string{ModeIncremental, ModeSnapshot} {
			for _, limit := range []int{config.DefaultTenantLimit, 3, 8} {
				for _, bits := range []uint64{0, 64} {
					name := fmt.Sprintf("seed=%d/%s/limit=%d/bits=%d", seed, mode, limit, bits)
					s := h.syncer(t, func(o *Options) {
						o.Mode, o.TenantLimit, o.MaxDeleteFraction = mode, limit, 0.5
						o.Patterns = []string{PatternsAll, PatternsSimple}[seed%2]
					})
					s.sketchBits = bits
					want := referencePlan(t, s)
					got, read, err := s.prepare(context.Background(), s.api, true)
					require.NoError(t, err, name)
					require.Positive(t, read)

					type imp struct {
						Key, Def, Prev, FP string
						Ind                defender.Indicator
						Update, Retry      bool
					}
					imps := func(es []*entry) []imp {
						out := make([]imp, len(es))
						for i, e := range es {
							out[i] = imp{e.key, e.defenderID, e.prevFP, e.fp, e.ind, e.update, e.retry}
						}
						return out
					}
					keys := func(es []*entry) []string {
						out := make([]string, len(es))
						for i, e := range es {
							out[i] = e.key
						}
						return out
					}
					require.Equal(t, imps(want.imports), imps(got.imports), name)
					require.Equal(t, want.deletes, got.deletes, name)
					require.Equal(t, want.forget, got.forget, name)
					require.Equal(t, keys(want.leftOut), keys(got.leftOut), name)
					require.Len(t, want.leftOut, got.leftOutCount, name)
					require.Equal(t, want.unchanged, got.unchanged, name)
					require.Equal(t, want.retried, got.retried, name)
					require.Equal(t, want.dropped, got.dropped, name)
					require.Equal(t, want.compound, got.compound, name)
					require.Equal(t, want.snapshotDeletes, got.snapshotDeletes, name)
					require.Equal(t, want.snapshotHeld, got.snapshotHeld, name)
					require.Equal(t, fmt.Sprint(want.guard), fmt.Sprint(got.guard), name)
					require.Equal(t, categories(got.skipped), got.skipCounts, name)
					if repeated {
						require.Equal(t, categories(want.skipped), got.skipCounts, name)
					} else {
						require.Equal(t, want.skipped, got.skipped, name)
					}
				}
			}
		}
	}
}

// TestRunCountsWithoutListing: a Run keeps counts, not the lists a Plan
// returns, and reports the same figures.
func TestRunCountsWithoutListing(t *testing.T) {
	h := newHarness(t)
	writeFeed(t, h.dir, append(domains(0, 5), feedObj{N: 9, Pattern: "[domain-name:value = 'd1.example']"},
		feedObj{N: 10, Pattern: "[domain-name:value = 'gone.example']", Revoked: true}))
	s := h.syncer(t, func(o *Options) { o.TenantLimit = 3 })
	p, _, err := s.prepare(context.Background(), s.api, false)
	require.NoError(t, err)
	assert.Nil(t, p.skipped)
	assert.Nil(t, p.leftOut)
	assert.Equal(t, 2, p.leftOutCount, "five values, three slots")
	assert.Equal(t, map[SkipReason]int{ReasonDuplicate: 1, ReasonRevokedNothing: 1}, p.skipCounts)

	full, err := s.Plan(context.Background())
	require.NoError(t, err)
	assert.Equal(t, []string{"DomainName|d3.example", "DomainName|d4.example"}, full.LeftOut)
	assert.Len(t, full.Skipped, 2)
	rep := h.run(t, func(o *Options) { o.TenantLimit = 3 })
	assert.Equal(t, 2, rep.LeftOut)
	assert.Equal(t, 3, rep.Imported)
	assert.Equal(t, map[SkipReason]int{ReasonDuplicate: 1, ReasonRevokedNothing: 1}, rep.Skipped)
}

// TestFeedReadOnce: a run reads the feed once and plans from what it read,
// even if the file is rewritten while the run goes on (here, while the
// records are listed, after the read).
func TestFeedReadOnce(t *testing.T) {
	h := newHarness(t)
	writeFeed(t, h.dir, domains(0, 3))
	st := &hookStore{testStore: h.st, onList: func() { writeFeed(t, h.dir, domains(10, 14)) }}
	s, err := NewSyncer(h.api, st, Options{StixObjectsPath: h.path, Action: "Block", MaxObjectBytes: config.DefaultMaxObjectBytes, Mode: ModeIncremental, Patterns: PatternsAll, TenantLimit: config.DefaultTenantLimit, Now: func() time.Time { return h.clock }}, nil)
	require.NoError(t, err)
	p, err := s.Plan(context.Background())
	require.NoError(t, err)
	var got []string
	for _, ind := range p.Import {
		got = append(got, ind.IndicatorValue)
	}
	assert.Equal(t, []string{"d0.example", "d1.example", "d2.example"}, got)
}

// hookStore calls onList when the records are listed (between the passes).
type hookStore struct {
	*testStore
	onList func()
}

func (h *hookStore) ListIndicatorRecords(ctx context.Context) ([]store.IndicatorRecord, error) {
	if h.onList != nil {
		h.onList()
	}
	return h.testStore.ListIndicatorRecords(ctx)
}

// TestSketchFindsRepeats: every id and value seen twice is a candidate,
// whatever the filter's size; a large filter keeps unique ones out.
func TestSketchFindsRepeats(t *testing.T) {
	for _, size := range []int64{0, 1 << 30} {
		sk := newSketch(size)
		for i := range 5000 {
			c := Conversion{StixID: genID(i % 4000), Indicators: []defender.Indicator{{IndicatorType: defender.IndicatorDomainName, IndicatorValue: fmt.Sprintf("d%d.example", i%4500)}}}
			sk.addObject(&c)
		}
		sk.addError(genID(7))
		for i := range 1000 {
			assert.NotNil(t, sk.id(genID(i)), "id %d repeats", i)
		}
		require.NotNil(t, sk.id(genID(7)))
		assert.True(t, sk.id(genID(7)).unreadable)
		for i := range 500 {
			assert.True(t, sk.repeats(fmt.Sprintf("DomainName|d%d.example", i)), "value %d repeats", i)
		}
		if size > 0 {
			assert.Less(t, len(sk.ids), 1010, "few false positives")
			assert.Less(t, len(sk.keys), 510, "few false positives")
		}
		assert.Equal(t, 5001, sk.read)
	}
	assert.Equal(t, uint64(minBloomBits), newSketch(-1).nbits)
	assert.Equal(t, uint64(maxBloomBits), newSketch(1<<40).nbits)
}

// listDefender is listTenant in the form the reference planner of the tests
// takes.
func listDefender(ctx context.Context, api IndicatorAPI, now time.Time) (map[string]defender.Indicator, int, error) {
	byKey, active, err := listTenant(ctx, api, now)
	if err != nil {
		return nil, 0, err
	}
	out := make(map[string]defender.Indicator, len(byKey))
	for k, d := range byKey {
		out[k] = defender.Indicator{ID: d.ID, IndicatorValue: d.IndicatorValue,
			Application: d.Application, ExternalID: d.ExternalID}
	}
	return out, active, nil
}
