package bot

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestResponseURLFailureFallsBackAndStaysOutOfTheLog: when posting to the
// slash command's response_url fails, the reply goes by chat.postEphemeral
// and the URL (a 30-minute write capability) is not logged.
func TestResponseURLFailureFallsBackAndStaysOutOfTheLog(t *testing.T) {
	eachBackend(t, func(t *testing.T, db testDB) {
		clock := &fakeClock{t: t0}
		st := db.open(t, clock)
		rp := newReplica(t, "r1", st, newFakeDefender(), clock, replicaOpts{cfg: func(c *Config) {
			c.ResponseURLHosts = []string{"127.0.0.1:1"}
		}})

		const hook = "http://127.0.0.1:1/commands/T0/123/secret-hook-token"
		cmd := slashCommand(analyst, "isolate no-such-host.contoso.com full beaconing")
		cmd.ResponseURL = hook
		rp.svc.HandleCommand(context.Background(), cmd)
		rp.svc.Wait()

		msgs := rp.slack.ephemeralTo(analyst)
		require.NotEmpty(t, msgs, "the reply falls back to chat.postEphemeral")
		rp.logs.mu.Lock()
		defer rp.logs.mu.Unlock()
		var warned bool
		for _, line := range *rp.logs.recs {
			assert.NotContains(t, line, "secret-hook-token")
			warned = warned || strings.Contains(line, "response_url post failed")
		}
		assert.True(t, warned, "the failure itself is logged")
	})
}

// TestResponseURLOnlyToSlackHosts: a response_url that does not point at an
// allowed host is never posted to (the reply goes by chat.postEphemeral).
func TestResponseURLOnlyToSlackHosts(t *testing.T) {
	clock := &fakeClock{t: t0}
	rp := newReplica(t, "r1", newTestStore(t, clock), newFakeDefender(), clock, replicaOpts{})
	for _, u := range []string{
		"http://169.254.169.254/latest/meta-data/",
		"https://hooks.slack.com.evil.example/commands/T0/1/x",
		"http://hooks.slack.com/commands/T0/1/x",          // not https
		"https://user:pw@hooks.slack.com/commands/T0/1/x", // credentials
		"::not a url",
	} {
		assert.False(t, rp.svc.responseURLAllowed(u), u)
	}
	assert.True(t, rp.svc.responseURLAllowed("https://hooks.slack.com/commands/T0/1/x"))
	assert.True(t, rp.svc.responseURLAllowed("https://hooks.slack-gov.com/commands/T0/1/x"))

	cmd := slashCommand(analyst, "isolate no-such-host.contoso.com full beaconing")
	cmd.ResponseURL = "http://169.254.169.254/latest/meta-data/"
	rp.svc.HandleCommand(context.Background(), cmd)
	rp.svc.Wait()
	require.NotEmpty(t, rp.slack.ephemeralTo(analyst), "the reply goes by chat.postEphemeral")
}
