package ioc

import (
	"context"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Two runs that start at the same instant (a clock that did not move, or
// runs within one clock tick): the second one is the last run, every time.
func TestRunsStartedAtTheSameInstantKeepTheirOrder(t *testing.T) {
	for range 8 {
		h := newHarness(t)
		s := h.syncer(t, nil)
		writeFeed(t, h.dir, domains(0, 2))
		_, err := s.RunNow(context.Background(), "slack")
		require.NoError(t, err)
		require.NoError(t, os.Remove(h.path))
		_, err = s.RunNow(context.Background(), "cli") // same clock: same start
		require.Error(t, err)

		last, err := h.st.LastSyncRun(context.Background())
		require.NoError(t, err)
		assert.Equal(t, "cli", last.Trigger, "the second run is the last")
		assert.False(t, last.OK)
		status, err := s.StatusText(context.Background())
		require.NoError(t, err)
		assert.Contains(t, status, "Last run (cli")
		assert.Contains(t, status, "FAILED")
		assert.Contains(t, status, "Last successful run (slack")
	}
}
