package ioc

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/defenderbot/defenderbot/defender"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSTIXVersionsLatestModifiedWins feeds several versions of one object,
// in both orders: only the version with the latest "modified" counts.
func TestSTIXVersionsLatestModifiedWins(t *testing.T) {
	t1 := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	t2 := t1.Add(time.Hour)
	live := func(mod time.Time) feedObj { o := domainObj(1); o.Modified = mod; return o }
	revoked := func(mod time.Time) feedObj { o := live(mod); o.Revoked = true; return o }
	other := func(mod time.Time) feedObj {
		o := live(mod)
		o.Pattern = "[domain-name:value = 'moved.example']"
		return o
	}
	tests := []struct {
		name     string
		before   []feedObj // feed of a first run (state to start from)
		versions []feedObj // the versions, fed in this order then reversed
		want     []string  // values in Defender afterwards
		deleted  int
	}{
		{"later revoked version removes", []feedObj{live(t1)}, []feedObj{live(t1), revoked(t2)}, nil, 1},
		{"older revoked copy removes nothing", []feedObj{live(t2)}, []feedObj{revoked(t1), live(t2)}, []string{"d1.example"}, 0},
		{"older revoked copy does not block an import", nil, []feedObj{revoked(t1), live(t2)}, []string{"d1.example"}, 0},
		{"later version changes the value", nil, []feedObj{live(t1), other(t2)}, []string{"moved.example"}, 0},
		{"same modified: revoked wins", []feedObj{live(t1)}, []feedObj{live(t2), revoked(t2)}, nil, 1},
	}
	for _, tt := range tests {
		for _, reversed := range []bool{false, true} {
			name := tt.name
			if reversed {
				name += " (reversed)"
			}
			t.Run(name, func(t *testing.T) {
				h := newHarness(t)
				if tt.before != nil {
					writeFeed(t, h.dir, tt.before)
					h.run(t, nil)
				}
				objs := slices.Clone(tt.versions)
				if reversed {
					slices.Reverse(objs)
				}
				writeFeed(t, h.dir, objs)
				rep := h.run(t, nil)
				var got []string
				for _, ind := range h.api.byKey {
					got = append(got, ind.IndicatorValue)
				}
				slices.Sort(got)
				assert.Equal(t, tt.want, got)
				assert.Equal(t, tt.deleted, rep.Deleted)
				assert.Equal(t, 1, rep.Skipped[ReasonSuperseded], "the older version is reported as superseded")
				assert.Zero(t, rep.Skipped[ReasonRevokedNothing], "a superseded revocation is not considered")
				assert.Equal(t, len(tt.want), h.st.numRecords())
			})
		}
	}
}

// TestSTIXVersionUnreadableHoldsObject: when one version of an object cannot
// be read, it may be the latest, so no version of it is applied.
func TestSTIXVersionUnreadableHoldsObject(t *testing.T) {
	h := newHarness(t)
	writeFeed(t, h.dir, []feedObj{domainObj(1)})
	h.run(t, nil)
	require.Equal(t, 1, h.api.count())

	// A later version (revoked: "revoked" has the wrong type) is unreadable,
	// the readable one is live: nothing is done for the object, and the run
	// reports why. An unrelated object is still imported.
	path := filepath.Join(h.dir, "feed.json")
	feed := `[
{"type":"indicator","spec_version":"2.1","id":"` + genID(1) + `","created":"2025-01-01T00:00:00.000Z","modified":"2025-01-01T00:00:00.000Z","valid_from":"2025-01-01T00:00:00Z","pattern_type":"stix","pattern":"[domain-name:value = 'd1.example']","name":"v2 not applied"},
{"type":"indicator","spec_version":"2.1","id":"` + genID(1) + `","created":"2025-01-01T00:00:00.000Z","modified":"2025-02-01T00:00:00.000Z","valid_from":"2025-01-01T00:00:00Z","pattern_type":"stix","pattern":"[domain-name:value = 'd1.example']","revoked":"yes"},
{"type":"indicator","spec_version":"2.1","id":"` + genID(2) + `","created":"2025-01-01T00:00:00.000Z","modified":"2025-01-01T00:00:00.000Z","valid_from":"2025-01-01T00:00:00Z","pattern_type":"stix","pattern":"[domain-name:value = 'd2.example']"}
]`
	require.NoError(t, os.WriteFile(path, []byte(feed), 0o600))
	h.api.resetCalls()
	rep := h.run(t, nil)
	assert.Equal(t, 1, rep.Skipped[ReasonUnreadable])
	assert.Equal(t, 1, rep.Skipped[ReasonVersionUnreadable])
	assert.Equal(t, 1, rep.Imported, "the other object is imported")
	assert.Zero(t, rep.Updated+rep.Deleted, "d1 is neither updated nor removed")
	got, ok := h.api.has(defender.IndicatorDomainName, "d1.example")
	require.True(t, ok)
	assert.NotEqual(t, "v2 not applied", got.Title)
}
