package graph_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/defenderbot/defenderbot/defender/defendertest"
	"github.com/defenderbot/defenderbot/graph"
)

// A slow Graph answer is abandoned at Config.Timeout and a read is tried again.
func TestSlowAnswerTimesOutAndIsRetried(t *testing.T) {
	s, c, sl := setup(t, graph.Config{Timeout: 200 * time.Millisecond})
	a := s.NewDeviceAlert(machineID, "x", "high")
	require.NoError(t, c.CheckToken(t.Context()))
	s.InjectFault(defendertest.Fault{Path: defendertest.APIGraphAlerts, Delay: 5 * time.Second})
	got, err := c.GetAlert(t.Context(), a.ID)
	require.NoError(t, err)
	assert.Equal(t, a.ID, got.ID)
	assert.Len(t, sl.all(), 1, "one backoff before the retry")
}
