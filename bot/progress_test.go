package bot

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/defenderbot/defenderbot/approval"
	"github.com/defenderbot/defenderbot/defender"
)

// A twenty-machine bulk request paced one call a second changes its
// progress table twenty times in twenty seconds, then once more when every
// machine is done: the table is updated at most once per ProgressEvery
// (Slack allows about one chat.update a second per channel), never sooner,
// and its last update is the final state. The clock is the fake one: the
// delayed updates wait for it to move (the paced calls move it).
func TestBulkProgressUpdatesAreCoalesced(t *testing.T) {
	const every = 3 * time.Second
	h := newBulkHarness(t, func(c *Config) { c.BulkPace, c.ProgressEvery = time.Second, every })
	h.svc.waitProgress = h.clock.SleepUntil
	// The paced calls move the fake clock at once: after each move, wait for
	// a delayed update it made due to go out, as it would in real time.
	h.afterSleep = func() { waitDueProgress(t, h.svc, every) }
	h.slack.mu.Lock()
	h.slack.now = h.clock.Now
	h.slack.mu.Unlock()
	h.def.statuses = []defender.ActionStatus{defender.StatusSucceeded}
	names := make([]string, 20)
	for i := range names {
		names[i] = fmt.Sprintf("ws-%03d.contoso.com", i+10)
	}
	h.command(t, analyst, "isolate "+strings.Join(names, ",")+" outbreak")
	r := h.store.only(t)
	h.click(t, approver1, actionApprove, r.ID)
	h.svc.core.Wait()
	h.svc.Wait()
	got := h.store.only(t)
	require.Equal(t, approval.StateSucceeded, got.State)
	require.NotEmpty(t, got.ProgressTS)

	var ups []slackCall
	for _, c := range h.slack.find("chat.update") {
		if c.TS == got.ProgressTS {
			ups = append(ups, c)
		}
	}
	require.NotEmpty(t, ups)
	// Twenty seconds of calls, one update per three seconds at most, and
	// the final state: without coalescing it would be twenty.
	assert.LessOrEqual(t, len(ups), 20/3+2, "updates coalesced")
	assert.Greater(t, len(ups), 2, "the table still moves while the calls go out")
	for i := 1; i < len(ups)-1; i++ {
		assert.GreaterOrEqual(t, ups[i].At.Sub(ups[i-1].At), every, "update %d came %s after the previous one", i, ups[i].At.Sub(ups[i-1].At))
	}
	assert.Contains(t, ups[len(ups)-1].Text, "20 of 20 machines done (20 succeeded, 0 failed)", "the final state is shown last")
}

// waitDueProgress waits until no progress table is sending an update or
// has a delayed one that is due.
func waitDueProgress(t *testing.T, s *Service, every time.Duration) {
	due := func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, pt := range s.progress {
			pt.mu.Lock()
			// A send in flight, or a delayed one due: real time would let
			// it go out before the next paced call.
			d := pt.busy || pt.stop != nil && !s.now().Before(pt.last.Add(every))
			pt.mu.Unlock()
			if d {
				return true
			}
		}
		return false
	}
	for deadline := time.Now().Add(5 * time.Second); due(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Error("a progress update was not sent within 5 s")
			return
		}
	}
}
