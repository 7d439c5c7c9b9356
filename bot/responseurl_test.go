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
		rp := newReplica(t, "r1", st, newFakeDefender(), clock, replicaOpts{})

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
