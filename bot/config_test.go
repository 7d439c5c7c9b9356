package bot

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/defenderbot/defenderbot/config"
	"github.com/defenderbot/defenderbot/defender"
)

// The bot has no defaults of its own: ConfigFrom takes every value from
// package config, and a value left unset is named, not guessed.
func TestConfigHasNoDefaultsOfItsOwn(t *testing.T) {
	cfg := ConfigFrom(config.Default(), "r1")
	assert.Equal(t, config.ContextWait, cfg.ContextWait)
	assert.Equal(t, config.StaleAfter, cfg.StaleAfter)
	assert.Equal(t, config.LookupTimeout, cfg.LookupTimeout)
	assert.Equal(t, config.LatestActions, cfg.LatestActions)
	assert.Equal(t, config.SweepEvery, cfg.SweepEvery)
	assert.Equal(t, config.GroupCacheTTL, cfg.GroupCacheTTL)
	assert.Equal(t, config.ResponseURLTimeout, cfg.ResponseURLTimeout)
	assert.Equal(t, SlackRetry{Attempts: config.SlackAttempts, MaxWait: config.SlackMaxWait}, cfg.SlackRetry)
	assert.Equal(t, 15*time.Second, cfg.PollInterval)
	assert.Equal(t, config.CardAlerts, cfg.CardAlerts)
	assert.Equal(t, config.SlackTaskTimeout, cfg.TaskTimeout)
	assert.Equal(t, config.UndoClaimTTL, cfg.UndoClaimTTL)
	assert.Equal(t, config.ExecuteTimeout, cfg.ExecuteTimeout)
	assert.Equal(t, config.BulkCallTimeout, cfg.BulkCallTimeout)
	assert.Equal(t, config.DefaultIOCRunTimeout+config.SlackTaskTimeout, cfg.IOCSyncTimeout, "the run's bound plus time to report")

	cfg.ApprovalChannel, cfg.Approvers = "C1", []string{"U1"}
	deps := Deps{Store: newTestStore(t, &fakeClock{t: t0}), Slack: newFakeSlack(t), Defender: newFakeDefender()}
	_, err := New(cfg, deps)
	require.NoError(t, err)
	const (
		card  = "ContextWait, StaleAfter, LookupTimeout and LatestActions must be positive"
		sweep = "Config.SweepEvery, GroupCacheTTL and ResponseURLTimeout must be positive"
		task  = "Config.CardAlerts, TaskTimeout, UndoClaimTTL and IOCSyncTimeout must be positive"
	)
	for _, tc := range []struct {
		name  string
		unset func(*Config)
		want  string
	}{
		{"ContextWait", func(c *Config) { c.ContextWait = 0 }, card},
		{"StaleAfter", func(c *Config) { c.StaleAfter = 0 }, card},
		{"LookupTimeout", func(c *Config) { c.LookupTimeout = 0 }, card},
		{"LatestActions", func(c *Config) { c.LatestActions = 0 }, card},
		{"SweepEvery", func(c *Config) { c.SweepEvery = 0 }, sweep},
		{"GroupCacheTTL", func(c *Config) { c.GroupCacheTTL = 0 }, sweep},
		{"ResponseURLTimeout", func(c *Config) { c.ResponseURLTimeout = 0 }, sweep},
		{"CardAlerts", func(c *Config) { c.CardAlerts = 0 }, task},
		{"TaskTimeout", func(c *Config) { c.TaskTimeout = 0 }, task},
		{"UndoClaimTTL", func(c *Config) { c.UndoClaimTTL = 0 }, task},
		{"IOCSyncTimeout", func(c *Config) { c.IOCSyncTimeout = 0 }, task},
		{"ExecuteTimeout", func(c *Config) { c.ExecuteTimeout = 0 }, "Config.ExecuteTimeout and BulkCallTimeout must be positive"},
	} {
		c := cfg
		tc.unset(&c)
		_, err := New(c, deps)
		assert.ErrorContains(t, err, tc.want, tc.name)
	}
	c := cfg
	c.UndoClaimTTL = c.TaskTimeout - time.Second
	_, err = New(c, deps)
	assert.ErrorContains(t, err, "Config.UndoClaimTTL must not be shorter than TaskTimeout")
	for name, unset := range map[string]func(*Config){
		"Attempts": func(c *Config) { c.SlackRetry.Attempts = 0 },
		"MaxWait":  func(c *Config) { c.SlackRetry.MaxWait = 0 },
	} {
		c := cfg
		unset(&c)
		_, err := New(c, deps)
		assert.ErrorContains(t, err, "Config.SlackRetry.Attempts and MaxWait must be positive", name)
		_, err = NewAlertPoster(deps.Slack, AlertCardOptions{}, c.SlackRetry)
		assert.ErrorContains(t, err, "SlackRetry.Attempts and MaxWait must be positive", name)
	}
}

// The Slack retry bound is the one passed in: a call answered 429 is
// tried Attempts times, each wait capped at MaxWait.
func TestSlackRetryFollowsItsBound(t *testing.T) {
	var waits []time.Duration
	sleep := func(_ context.Context, d time.Duration) error { waits = append(waits, d); return nil }
	calls := 0
	err := slackRetry(t.Context(), sleep, SlackRetry{Attempts: 4, MaxWait: 5 * time.Second}, func() error {
		calls++
		return &slack.RateLimitedError{RetryAfter: time.Minute}
	})
	var rl *slack.RateLimitedError
	require.ErrorAs(t, err, &rl)
	assert.Equal(t, 4, calls)
	assert.Equal(t, []time.Duration{5 * time.Second, 5 * time.Second, 5 * time.Second}, waits)
}

// The work a Slack request starts runs within Config.TaskTimeout.
func TestAsyncWorkIsBoundByTaskTimeout(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.TaskTimeout, c.UndoClaimTTL = 37*time.Minute, time.Hour })
	var deadline time.Time
	var ok bool
	start := time.Now()
	h.svc.goAsync(t.Context(), "probe", func(ctx context.Context) { deadline, ok = ctx.Deadline() })
	h.svc.Wait()
	require.True(t, ok)
	assert.WithinRange(t, deadline, start.Add(37*time.Minute), time.Now().Add(37*time.Minute))
}

// The card lists Config.CardAlerts open alerts and counts the others.
func TestCardListsCardAlertsOpenAlerts(t *testing.T) {
	alerts := make([]defender.Alert, 5)
	for i := range alerts {
		alerts[i] = defender.Alert{Severity: "High", Title: fmt.Sprintf("alert %d", i)}
	}
	text := alertsText(alerts, 2)
	assert.Equal(t, "*Open alerts*: 5\n• *High* alert 0\n• *High* alert 1\n• and 3 more", text)
	assert.Equal(t, 3, strings.Count(alertsText(alerts, config.CardAlerts), "\n• *High*"))
	assert.NotContains(t, alertsText(alerts[:3], 3), "more")
}
