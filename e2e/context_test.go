package e2e_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/defenderbot/defenderbot/approval"
	"github.com/defenderbot/defenderbot/bot"
	"github.com/defenderbot/defenderbot/defender/defendertest"
	"github.com/defenderbot/defenderbot/internal/slackfake"
)

// TestApprovalCardShowsMachineContext: the approver sees, from Defender,
// the machine's facts, its open alerts and its containment state.
func TestApprovalCardShowsMachineContext(t *testing.T) {
	w := newWorld(t)
	p := w.start(t)
	// an isolation defenderbot did not make, already done
	w.emu.AddAlert(defendertest.Alert{ID: "resolved-1", Title: "Old resolved alert", MachineID: machine1, Status: "Resolved"})

	msg, id := requestPending(t, w, p)
	blocks := string(msg.Blocks)
	for _, want := range []string{"finance-laptop-01.contoso.com", "Windows11 23H2 (build 22631)", "*Health*\\nActive",
		"High / Medium", "1 hour ago", "10.0.1.15", "Finance", "finance",
		"*Open alerts*: 1", "Suspicious PowerShell command line", "Isolated: no", "Running: nothing"} {
		assert.Contains(t, blocks, want)
	}
	assert.NotContains(t, blocks, "Old resolved alert", "resolved alerts are not open")
	assert.NotContains(t, blocks, "loading", "the emulator answers within the wait")

	// the decision keeps the context on the card
	p.click(bob, "approve", id, msg.TS)
	p.waitState(id, approval.StateRunning)
	upd := w.waitCall(t, 1, func(c slackfake.Call) bool { return c.Method == slackfake.MethodUpdate && c.TS == msg.TS })
	assert.Contains(t, string(upd.Blocks), "Suspicious PowerShell command line")

	// the next request on the machine sees the isolation defenderbot made
	w.advance(3 * time.Minute)
	p.waitState(id, approval.StateSucceeded)
	code, _ := p.command(carol, "restrict "+machine1DN+" contain it further")
	require.Equal(t, http.StatusOK, code)
	second, _ := w.approvalMessage(t, 2)
	assert.Contains(t, string(second.Blocks), "Isolated: *yes*")
	assert.Contains(t, string(second.Blocks), "by defenderbot request "+id)
}

// TestApprovalCardSlowAndFailedContext: context slower than the wait is
// filled in by an update; a failed look-up shows "unavailable" and never
// blocks the request.
func TestApprovalCardSlowAndFailedContext(t *testing.T) {
	w := newWorld(t)
	p := w.start(t, func(c *bot.Config) { c.ContextWait = 50 * time.Millisecond })
	w.emu.InjectFault(defendertest.Fault{Method: http.MethodGet, Path: "/alerts", Delay: 400 * time.Millisecond})
	w.emu.InjectFault(defendertest.Fault{Method: http.MethodGet, Path: "/api/machineactions", Status: http.StatusBadRequest, Code: "BadRequest"})

	start := time.Now()
	msg, id := requestPending(t, w, p)
	assert.Less(t, time.Since(start), 400*time.Millisecond, "the card does not wait for slow context")
	assert.Contains(t, string(msg.Blocks), "Open alerts: loading")
	assert.Contains(t, string(msg.Blocks), "Isolation, restriction and running actions: unavailable")
	assert.Contains(t, string(msg.Blocks), "finance-laptop-01.contoso.com", "the record read to resolve the name is shown at once")

	upd := w.waitCall(t, 1, func(c slackfake.Call) bool { return c.Method == slackfake.MethodUpdate && c.TS == msg.TS })
	assert.Contains(t, string(upd.Blocks), "*Open alerts*: 1")
	assert.NotContains(t, string(upd.Blocks), "loading")
	assert.Contains(t, string(upd.Blocks), "unavailable")

	// the request works all the same
	p.click(bob, "approve", id, msg.TS)
	p.waitState(id, approval.StateRunning)
}

// TestCardKeepsItsContextOnEveryReplica: a request needing two approvals is
// made on one replica and approved once on another, which updates the card:
// the second approver still sees what Defender said about the machine.
func TestCardKeepsItsContextOnEveryReplica(t *testing.T) {
	for _, driver := range backends {
		t.Run(driver, func(t *testing.T) {
			w := newWorldOn(t, driver)
			two := func(c *bot.Config) { c.RequiredApprovals = 2 }
			p1, p2 := w.start(t, two), w.start(t, two)
			msg, id := requestPending(t, w, p1)
			require.Contains(t, string(msg.Blocks), "Open alerts", "the card shows the context")
			p2.click(bob, "approve", id, msg.TS)
			p2.waitState(id, approval.StatePending)
			p2.bot.Wait()
			m, ok := w.slack.Message(channel, msg.TS)
			require.True(t, ok)
			assert.Contains(t, string(m.Blocks), "1 of 2", "updated by the other replica")
			assert.Contains(t, string(m.Blocks), "Open alerts", "and still shows the context")
			assert.Contains(t, string(m.Blocks), machine1DN)
		})
	}
}
