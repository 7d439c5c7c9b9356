package bot

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/defenderbot/defenderbot/config"
)

// The bot has no defaults of its own: ConfigFrom takes every value from
// package config, and a value left unset is named, not guessed.
func TestConfigHasNoDefaultsOfItsOwn(t *testing.T) {
	cfg := ConfigFrom(config.Default(), "r1")
	assert.Equal(t, config.ContextWait, cfg.ContextWait)
	assert.Equal(t, config.StaleAfter, cfg.StaleAfter)
	assert.Equal(t, config.LookupTimeout, cfg.LookupTimeout)
	assert.Equal(t, config.LatestActions, cfg.LatestActions)
	assert.Equal(t, 15*time.Second, cfg.PollInterval)

	cfg.ApprovalChannel, cfg.Approvers = "C1", []string{"U1"}
	deps := Deps{Store: newTestStore(t, &fakeClock{t: t0}), Slack: newFakeSlack(t), Defender: newFakeDefender()}
	_, err := New(cfg, deps)
	require.NoError(t, err)
	for name, unset := range map[string]func(*Config){
		"ContextWait":   func(c *Config) { c.ContextWait = 0 },
		"StaleAfter":    func(c *Config) { c.StaleAfter = 0 },
		"LookupTimeout": func(c *Config) { c.LookupTimeout = 0 },
		"LatestActions": func(c *Config) { c.LatestActions = 0 },
	} {
		c := cfg
		unset(&c)
		_, err := New(c, deps)
		assert.ErrorContains(t, err, "ContextWait, StaleAfter, LookupTimeout and LatestActions must be positive", name)
	}
}
