// Package metrics defines defenderbot's Prometheus metrics in one registry and
// the small observer methods that the Slack, Defender and IOC code report to.
//
// It owns the metric names and labels; it must not import any other
// defenderbot package (the packages that count call its methods through
// their own small interfaces).
package metrics

import (
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics holds every collector. A nil *Metrics is valid and records nothing,
// so packages can take one without forcing tests to build a registry.
type Metrics struct {
	Registry *prometheus.Registry

	slackRequests   *prometheus.CounterVec
	slackAck        *prometheus.HistogramVec
	approvals       *prometheus.CounterVec
	defenderCalls   *prometheus.CounterVec
	defenderLatency *prometheus.HistogramVec
	defenderRetries *prometheus.CounterVec
	defender429     *prometheus.CounterVec
	iocRuns         *prometheus.CounterVec
	iocIndicators   *prometheus.CounterVec
	iocLastSuccess  prometheus.Gauge
	iocFailStreak   prometheus.Gauge
	iocPeriod       prometheus.Gauge
	pending         prometheus.Gauge
	pendingOldest   prometheus.Gauge
	approvalTTL     prometheus.Gauge
	machineActions  *prometheus.CounterVec
	leasesHeld      *prometheus.GaugeVec
	ready           prometheus.Gauge
	alertPolls      *prometheus.CounterVec
	alertCards      *prometheus.CounterVec

	mu    sync.Mutex
	held  map[string]bool // leases this replica holds, by name
	fails int             // IOC sync runs failed in a row on this replica
}

// New builds the collectors in a fresh registry (with Go and process collectors).
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		slackRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "defenderbot_slack_requests_total",
			Help: "Slack requests received, by route and outcome (ok, unauthorized, replay, bad_request, error).",
		}, []string{"route", "outcome"}),
		slackAck: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "defenderbot_slack_ack_seconds",
			Help:    "Time to acknowledge a Slack request.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 3},
		}, []string{"route"}),
		approvals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "defenderbot_approval_requests_total",
			Help: "Approval requests entering a state (pending, approved, rejected, expired, succeeded, failed, refused).",
		}, []string{"state"}),
		defenderCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "defenderbot_defender_calls_total",
			Help: "Defender API calls by API and HTTP status (0 for a transport error).",
		}, []string{"api", "status"}),
		defenderLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "defenderbot_defender_call_seconds",
			Help:    "Defender API call latency by API.",
			Buckets: prometheus.DefBuckets,
		}, []string{"api"}),
		defenderRetries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "defenderbot_defender_retries_total",
			Help: "Defender API retries by API and reason (429, 503, 5xx, conn, token).",
		}, []string{"api", "reason"}),
		defender429: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "defenderbot_defender_rate_limited_total",
			Help: "Defender API 429 responses by API.",
		}, []string{"api"}),
		iocRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "defenderbot_ioc_sync_runs_total",
			Help: "IOC sync runs by outcome (ok, error).",
		}, []string{"outcome"}),
		iocIndicators: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "defenderbot_ioc_indicators_total",
			Help: "Indicators handled by the IOC sync, by operation (imported, updated, deleted, failed).",
		}, []string{"op"}),
		iocLastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "defenderbot_ioc_last_success_timestamp_seconds",
			Help: "Unix time of the last successful IOC sync run (at start-up: the store's last one).",
		}),
		iocFailStreak: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "defenderbot_ioc_sync_consecutive_failures",
			Help: "IOC sync runs that failed in a row on this replica (0 after a success).",
		}),
		iocPeriod: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "defenderbot_ioc_sync_period_seconds",
			Help: "Longest interval between two runs of iocs.schedule (0: the sync is not scheduled).",
		}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "defenderbot_approvals_pending",
			Help: "Requests waiting for approval (store-wide, as of this replica's last expiry sweep).",
		}),
		pendingOldest: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "defenderbot_approval_oldest_pending_age_seconds",
			Help: "Age of the oldest request waiting for approval (0 when none waits).",
		}),
		approvalTTL: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "defenderbot_approval_ttl_seconds",
			Help: "approval.ttl: how long a request waits for approval before it expires.",
		}),
		machineActions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "defenderbot_machine_actions_total",
			Help: "Defender machine actions followed to their end, by playbook action and final status (Succeeded, Failed, TimeOut, Cancelled; Unknown when Defender lost it or it outlived defender.poll_timeout).",
		}, []string{"action", "status"}),
		leasesHeld: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "defenderbot_leases_held",
			Help: "Store leases this replica holds, by kind (iocs-sync, followup, execute, ...).",
		}, []string{"kind"}),
		ready: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "defenderbot_ready",
			Help: "1 if this replica's last readiness check (/readyz) passed, else 0.",
		}),
		alertPolls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "defenderbot_alert_polls_total",
			Help: "Polls of Graph for Defender alerts by the replica holding the poller lease, by outcome (ok, error).",
		}, []string{"outcome"}),
		alertCards: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "defenderbot_alerts_posted_total",
			Help: "Defender alert cards in Slack, by operation (posted: a new alert; updated: a posted card rewritten after a change).",
		}, []string{"op"}),
		held: map[string]bool{},
	}
	m.Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.slackRequests, m.slackAck, m.approvals,
		m.defenderCalls, m.defenderLatency, m.defenderRetries, m.defender429,
		m.iocRuns, m.iocIndicators, m.iocLastSuccess, m.iocFailStreak, m.iocPeriod,
		m.pending, m.pendingOldest, m.approvalTTL, m.machineActions, m.leasesHeld, m.ready,
		m.alertPolls, m.alertCards,
	)
	// Known label values start at zero, so rates and alerts see them before the first event.
	for _, o := range []string{"ok", "error"} {
		m.iocRuns.WithLabelValues(o)
		m.alertPolls.WithLabelValues(o)
	}
	for _, o := range []string{"posted", "updated"} {
		m.alertCards.WithLabelValues(o)
	}
	return m
}

// SlackRequest counts one Slack request and its acknowledgement latency.
func (m *Metrics) SlackRequest(route, outcome string, d time.Duration) {
	if m == nil {
		return
	}
	m.slackRequests.WithLabelValues(route, outcome).Inc()
	m.slackAck.WithLabelValues(route).Observe(d.Seconds())
}

// Approval counts a request entering state.
func (m *Metrics) Approval(state string) {
	if m == nil {
		return
	}
	m.approvals.WithLabelValues(state).Inc()
}

// ObserveCall records one Defender call (it satisfies defender.Observer).
func (m *Metrics) ObserveCall(api, _ string, status int, d time.Duration) {
	if m == nil {
		return
	}
	m.defenderCalls.WithLabelValues(api, strconv.Itoa(status)).Inc()
	m.defenderLatency.WithLabelValues(api).Observe(d.Seconds())
	if status == 429 {
		m.defender429.WithLabelValues(api).Inc()
	}
}

// ObserveRetry records one Defender retry (it satisfies defender.Observer).
func (m *Metrics) ObserveRetry(api, reason string) {
	if m == nil {
		return
	}
	m.defenderRetries.WithLabelValues(api, reason).Inc()
}

// IOCRun records the outcome and counts of one IOC sync run.
func (m *Metrics) IOCRun(ok bool, imported, updated, deleted, failed int, finished time.Time) {
	if m == nil {
		return
	}
	m.mu.Lock()
	if !ok {
		m.fails++
		m.iocRuns.WithLabelValues("error").Inc()
	} else {
		m.fails = 0
		m.iocRuns.WithLabelValues("ok").Inc()
		m.iocLastSuccess.Set(float64(finished.Unix()))
	}
	m.iocFailStreak.Set(float64(m.fails))
	m.mu.Unlock()
	m.iocIndicators.WithLabelValues("imported").Add(float64(imported))
	m.iocIndicators.WithLabelValues("updated").Add(float64(updated))
	m.iocIndicators.WithLabelValues("deleted").Add(float64(deleted))
	m.iocIndicators.WithLabelValues("failed").Add(float64(failed))
}

// IOCSchedule records, at start-up, the longest interval between two
// scheduled sync runs and the last successful run the store knows of (zero:
// none yet), so "no success for N periods" holds across restarts.
func (m *Metrics) IOCSchedule(period time.Duration, lastSuccess time.Time) {
	if m == nil {
		return
	}
	m.iocPeriod.Set(period.Seconds())
	if !lastSuccess.IsZero() {
		m.iocLastSuccess.Set(float64(lastSuccess.Unix()))
	}
}

// PendingApprovals records how many requests wait for approval, how long
// the oldest has waited and the approval TTL they expire after.
func (m *Metrics) PendingApprovals(n int, oldest, ttl time.Duration) {
	if m == nil {
		return
	}
	m.pending.Set(float64(n))
	m.pendingOldest.Set(oldest.Seconds())
	m.approvalTTL.Set(ttl.Seconds())
}

// MachineAction counts a machine action reaching its final status.
func (m *Metrics) MachineAction(action, status string) {
	if m == nil {
		return
	}
	m.machineActions.WithLabelValues(action, status).Inc()
}

// Lease records that this replica took (held) or gave up a store lease. The
// gauge counts held leases by kind: the name up to its first colon
// ("followup:<id>" is a "followup"), so request IDs never become labels.
func (m *Metrics) Lease(name string, held bool) {
	if m == nil {
		return
	}
	kind, _, _ := strings.Cut(name, ":")
	m.mu.Lock()
	defer m.mu.Unlock()
	if held {
		m.held[name] = true
	} else {
		delete(m.held, name)
	}
	n := 0
	for other := range m.held {
		if k, _, _ := strings.Cut(other, ":"); k == kind {
			n++
		}
	}
	m.leasesHeld.WithLabelValues(kind).Set(float64(n))
}

// Ready records the outcome of a readiness check.
func (m *Metrics) Ready(ok bool) {
	if m == nil {
		return
	}
	v := 0.0
	if ok {
		v = 1
	}
	m.ready.Set(v)
}

// AlertPoll records one poll of the alert feed: whether it succeeded and
// how many cards it posted and updated (a failed poll may have posted some).
func (m *Metrics) AlertPoll(ok bool, posted, updated int) {
	if m == nil {
		return
	}
	outcome := "ok"
	if !ok {
		outcome = "error"
	}
	m.alertPolls.WithLabelValues(outcome).Inc()
	m.alertCards.WithLabelValues("posted").Add(float64(posted))
	m.alertCards.WithLabelValues("updated").Add(float64(updated))
}
