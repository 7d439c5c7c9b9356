package handlers

import "time"

// Outcomes of a Slack request, the "outcome" label of the request counter.
const (
	outcomeOK           = "ok"
	outcomeUnauthorized = "unauthorized"
	outcomeReplay       = "replay"
	outcomeBadRequest   = "bad_request"
	outcomeIgnored      = "ignored"
	outcomeError        = "error"
)

// Metrics receives one observation per Slack request: its route, outcome
// (ok, unauthorized, replay, bad_request, ignored, error) and how long the
// acknowledgement took, and the outcome of each readiness check.
// *metrics.Metrics satisfies it.
type Metrics interface {
	SlackRequest(route, outcome string, d time.Duration)
	Ready(ok bool)
}

type noMetrics struct{}

func (noMetrics) SlackRequest(string, string, time.Duration) {}
func (noMetrics) Ready(bool)                                 {}
