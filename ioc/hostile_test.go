package ioc

import (
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Issue 9 §6: one object was decoded whole (a 300 MB description took 1.7 GB), and a bundle's
// second "objects" array was silently ignored, so that snapshot mode deleted what it held.

func TestSnapshotOversizedObjectSkippedWithBoundedMemory(t *testing.T) {
	h := newHarness(t)
	writeFeed(t, h.dir, domains(0, 10))
	h.run(t, nil)
	// Half the feed, and one object with a 64 MiB description (the cap is 1 MiB).
	writeFeed(t, h.dir, domains(0, 5))
	data, err := os.ReadFile(h.path)
	require.NoError(t, err)
	huge := `{"type":"indicator","spec_version":"2.1","id":"` + genID(7) + `","created":"2025-01-01T00:00:00.000Z",` +
		`"modified":"2025-01-01T00:00:00.000Z","valid_from":"2025-01-01T00:00:00Z","pattern_type":"stix",` +
		`"pattern":"[domain-name:value = 'd7.example']","description":"` + strings.Repeat("x", 64<<20) + `"},`
	require.NoError(t, os.WriteFile(h.path, []byte(strings.Replace(string(data), "[", "["+huge, 1)), 0o644))
	huge, data = "", nil
	runtime.GC()
	stop := peakHeap()
	rep := h.run(t, func(o *Options) { o.Mode = ModeSnapshot; o.Force = true })
	peak := stop()
	assert.Less(t, peak, uint64(48<<20), "the 64 MiB object is never held")
	assert.True(t, rep.SnapshotHeld, "an unreadable object: absence proves nothing")
	assert.Equal(t, 0, rep.Deleted)
	assert.Equal(t, 10, h.api.count())
	assert.Equal(t, 1, rep.Skipped[ReasonUnreadable])
}

func TestSnapshotDuplicateObjectsKeyDeletesNothing(t *testing.T) {
	h := newHarness(t)
	writeFeed(t, h.dir, domains(0, 10))
	h.run(t, nil)
	// The same ten objects, split over two "objects" arrays of one bundle.
	writeFeed(t, h.dir, domains(0, 5))
	first, err := os.ReadFile(h.path)
	require.NoError(t, err)
	writeFeed(t, h.dir, domains(5, 10))
	second, err := os.ReadFile(h.path)
	require.NoError(t, err)
	bundle := `{"type":"bundle","id":"bundle--1","objects":` + strings.TrimSpace(string(first)) + `,"objects":` + strings.TrimSpace(string(second)) + `}`
	require.NoError(t, os.WriteFile(h.path, []byte(bundle), 0o644))
	rep := h.run(t, func(o *Options) { o.Mode = ModeSnapshot; o.Force = true })
	assert.True(t, rep.SnapshotHeld, "a broken file: absence proves nothing")
	assert.Equal(t, 0, rep.Deleted)
	assert.Equal(t, 10, h.api.count())
	assert.Equal(t, 1, rep.Skipped[ReasonUnreadable])
}
