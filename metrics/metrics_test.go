package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMetricsRecordAndExpose(t *testing.T) {
	m := New()
	m.SlackRequest("commands", "ok", 3*time.Millisecond)
	m.SlackRequest("commands", "unauthorized", time.Millisecond)
	m.Approval("pending")
	m.ObserveCall("machineactions", "POST", 201, 20*time.Millisecond)
	m.ObserveCall("indicators_import", "POST", 429, time.Millisecond)
	m.ObserveRetry("indicators_import", "429")
	finished := time.Unix(1_800_000_000, 0)
	m.IOCRun(true, 10, 2, 1, 3, finished)

	assert.Equal(t, 1.0, testutil.ToFloat64(m.slackRequests.WithLabelValues("commands", "unauthorized")))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.defenderCalls.WithLabelValues("machineactions", "201")))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.defender429.WithLabelValues("indicators_import")))
	assert.Equal(t, 0.0, testutil.ToFloat64(m.defender429.WithLabelValues("machineactions")))
	assert.Equal(t, 3.0, testutil.ToFloat64(m.iocIndicators.WithLabelValues("failed")))
	assert.Equal(t, 1.8e9, testutil.ToFloat64(m.iocLastSuccess))

	n, err := testutil.GatherAndCount(m.Registry, "defenderbot_defender_retries_total")
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	err = testutil.GatherAndCompare(m.Registry, strings.NewReader(`
# HELP defenderbot_approval_requests_total Approval requests entering a state (pending, approved, rejected, expired, succeeded, failed, refused).
# TYPE defenderbot_approval_requests_total counter
defenderbot_approval_requests_total{state="pending"} 1
`), "defenderbot_approval_requests_total")
	require.NoError(t, err)
}

func TestNilMetricsIsANoOp(t *testing.T) {
	var m *Metrics
	assert.NotPanics(t, func() {
		m.SlackRequest("commands", "ok", time.Millisecond)
		m.Approval("pending")
		m.ObserveCall("alerts", "PATCH", 200, time.Millisecond)
		m.ObserveRetry("alerts", "503")
		m.IOCRun(false, 0, 0, 0, 0, time.Now())
	})
}
