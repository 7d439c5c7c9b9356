// Package metrics defines defenderbot's Prometheus metrics in one registry and
// the small observer methods that the Slack, Defender and IOC code report to.
package metrics

import (
	"strconv"
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
			Help: "Unix time of the last successful IOC sync run.",
		}),
	}
	m.Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.slackRequests, m.slackAck, m.approvals,
		m.defenderCalls, m.defenderLatency, m.defenderRetries, m.defender429,
		m.iocRuns, m.iocIndicators, m.iocLastSuccess,
	)
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
	if !ok {
		m.iocRuns.WithLabelValues("error").Inc()
	} else {
		m.iocRuns.WithLabelValues("ok").Inc()
		m.iocLastSuccess.Set(float64(finished.Unix()))
	}
	m.iocIndicators.WithLabelValues("imported").Add(float64(imported))
	m.iocIndicators.WithLabelValues("updated").Add(float64(updated))
	m.iocIndicators.WithLabelValues("deleted").Add(float64(deleted))
	m.iocIndicators.WithLabelValues("failed").Add(float64(failed))
}
