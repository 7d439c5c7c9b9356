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
		m.IOCSchedule(time.Hour, time.Now())
		m.PendingApprovals(1, time.Second, time.Hour)
		m.MachineAction("isolate", "Succeeded")
		m.Lease("iocs-sync", true)
		m.Ready(true)
		m.AlertPoll(true, 1, 1)
	})
}

func TestIOCFailureStreakAndSchedule(t *testing.T) {
	m := New()
	assert.Equal(t, 0.0, testutil.ToFloat64(m.iocRuns.WithLabelValues("error")), "known outcomes are exported from the start")
	last := time.Unix(1_700_000_000, 0)
	m.IOCSchedule(time.Hour, last)
	assert.Equal(t, 3600.0, testutil.ToFloat64(m.iocPeriod))
	assert.Equal(t, 1.7e9, testutil.ToFloat64(m.iocLastSuccess))
	m.IOCSchedule(time.Hour, time.Time{})
	assert.Equal(t, 1.7e9, testutil.ToFloat64(m.iocLastSuccess), "no run in the store keeps what is known")

	m.IOCRun(false, 0, 0, 0, 0, time.Now())
	m.IOCRun(false, 0, 0, 0, 0, time.Now())
	assert.Equal(t, 2.0, testutil.ToFloat64(m.iocFailStreak))
	m.IOCRun(true, 0, 0, 0, 0, time.Unix(1_800_000_000, 0))
	assert.Equal(t, 0.0, testutil.ToFloat64(m.iocFailStreak))
	m.IOCRun(false, 0, 0, 0, 0, time.Now())
	assert.Equal(t, 1.0, testutil.ToFloat64(m.iocFailStreak))
}

func TestApprovalsMachineActionsReadiness(t *testing.T) {
	m := New()
	m.PendingApprovals(3, 90*time.Second, time.Hour)
	assert.Equal(t, 3.0, testutil.ToFloat64(m.pending))
	assert.Equal(t, 90.0, testutil.ToFloat64(m.pendingOldest))
	assert.Equal(t, 3600.0, testutil.ToFloat64(m.approvalTTL))

	m.MachineAction("isolate", "Succeeded")
	m.MachineAction("isolate", "Succeeded")
	m.MachineAction("scan", "TimeOut")
	assert.Equal(t, 2.0, testutil.ToFloat64(m.machineActions.WithLabelValues("isolate", "Succeeded")))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.machineActions.WithLabelValues("scan", "TimeOut")))

	m.Ready(true)
	assert.Equal(t, 1.0, testutil.ToFloat64(m.ready))
	m.Ready(false)
	assert.Equal(t, 0.0, testutil.ToFloat64(m.ready))
}

func TestLeasesHeldByKind(t *testing.T) {
	m := New()
	m.Lease("iocs-sync", true)
	m.Lease("iocs-sync", true) // a renewal is not a second lease
	m.Lease("followup:r1", true)
	m.Lease("followup:r2", true)
	assert.Equal(t, 1.0, testutil.ToFloat64(m.leasesHeld.WithLabelValues("iocs-sync")))
	assert.Equal(t, 2.0, testutil.ToFloat64(m.leasesHeld.WithLabelValues("followup")))

	m.Lease("followup:r1", false)
	m.Lease("iocs-sync", false)
	m.Lease("execute:r3", false) // releasing what was never held
	assert.Equal(t, 0.0, testutil.ToFloat64(m.leasesHeld.WithLabelValues("iocs-sync")))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.leasesHeld.WithLabelValues("followup")))
	assert.Equal(t, 0.0, testutil.ToFloat64(m.leasesHeld.WithLabelValues("execute")))
}

func TestAlertPolls(t *testing.T) {
	m := New()
	assert.Equal(t, 0.0, testutil.ToFloat64(m.alertPolls.WithLabelValues("error")), "known outcomes are exported from the start")
	m.AlertPoll(true, 3, 1)
	m.AlertPoll(false, 1, 0)
	assert.Equal(t, 1.0, testutil.ToFloat64(m.alertPolls.WithLabelValues("ok")))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.alertPolls.WithLabelValues("error")))
	assert.Equal(t, 4.0, testutil.ToFloat64(m.alertCards.WithLabelValues("posted")))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.alertCards.WithLabelValues("updated")))
}
