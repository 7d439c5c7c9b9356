package e2e_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/defenderbot/defenderbot/approval"
	"github.com/defenderbot/defenderbot/bot"
	"github.com/defenderbot/defenderbot/defender/defendertest"
	"github.com/defenderbot/defenderbot/internal/slackfake"
)

// quickBulk paces a bulk request's calls 5 ms apart (1 s in production).
func quickBulk(c *bot.Config) { c.BulkPace = 5 * time.Millisecond }

// TestBulkConcurrentClicksOneCallPerMachine: Alice asks to isolate three
// machines (two names and an ID) in one signed command; twenty approvers
// click Approve at the same moment on two replicas sharing the database.
// One vote approves, one replica executes, Defender gets exactly one
// isolate per machine, the thread keeps one progress table updated in
// place, and Alice is told each machine's outcome.
func TestBulkConcurrentClicksOneCallPerMachine(t *testing.T) {
	for _, driver := range backends {
		t.Run(driver, func(t *testing.T) {
			many := numberedApprovers(20)
			w, a, b := twoReplicas(t, driver, approvers(append(many, alice)...), quickBulk)
			code, body := a.command(alice, "isolate "+machine1DN+",web-srv-02.contoso.com,"+defendertest.SampleMachineID3+" selective outbreak on floor 3")
			require.Equal(t, http.StatusOK, code, body)
			assert.Contains(t, body, "on 3 machines")
			msg, id := w.approvalMessage(t, 1)
			w.responseTo(t, alice, 1)
			for _, m := range []string{machine1DN, "web-srv-02.contoso.com", "dev-linux-03"} {
				assert.Contains(t, string(msg.Blocks), m, "the card lists every machine")
			}
			assert.Contains(t, string(msg.Blocks), "open alert", "with its context")

			for i, c := range approveTogether(t, []*proc{a, b}, many, id, msg.TS) {
				assert.Equal(t, http.StatusOK, c, "click %d", i)
			}
			r := a.waitState(id, approval.StateRunning)
			require.Len(t, r.Approvals, 1, "one vote approved it")
			w.waitCall(t, len(many)-1, func(c slackfake.Call) bool { return c.Method == slackfake.MethodPostEphemeral })
			assert.ElementsMatch(t, []string{
				"POST /api/machines/" + machine1 + "/isolate",
				"POST /api/machines/" + defendertest.SampleMachineID2 + "/isolate",
				"POST /api/machines/" + defendertest.SampleMachineID3 + "/isolate",
			}, w.defenderWrites(), "one call per machine")

			w.advance(3 * time.Minute)
			r = b.waitState(id, approval.StateSucceeded)
			a.bot.Wait()
			b.bot.Wait()
			assert.Len(t, w.defenderWrites(), 3, "following up never calls again")
			assert.Len(t, w.emu.MachineActions(), 3)
			for _, tg := range r.Targets {
				assert.Equal(t, approval.TargetSucceeded, tg.State, tg.MachineID)
				assert.NotEmpty(t, tg.MachineActionID)
			}
			calls := 0
			for _, k := range a.auditKinds(id) {
				if k == "call" {
					calls++
				}
			}
			assert.Equal(t, 3, calls, "three audited calls: one execution")

			// One progress table in the thread, updated in place to the end.
			var tables []slackfake.Call
			for _, c := range w.slack.CallsTo(slackfake.MethodPostMessage) {
				if c.ThreadTS == msg.TS && strings.Contains(c.Text, "Progress of request") {
					tables = append(tables, c)
				}
			}
			require.Len(t, tables, 1, "one progress table:\n%s", dumpCalls(w.slack.Calls()))
			assert.Equal(t, r.ProgressTS, tables[0].TS)
			table, ok := w.slack.Message(channel, r.ProgressTS)
			require.True(t, ok)
			assert.Contains(t, table.Text, "3 of 3 machines done (3 succeeded, 0 failed)")
			card, _ := w.slack.Message(channel, msg.TS)
			assert.Contains(t, card.Text+string(card.Blocks), "succeeded")

			final := w.waitCall(t, 1, func(c slackfake.Call) bool {
				return c.Method == slackfake.MethodPostMessage && c.Channel == alice && strings.Contains(c.Text, "succeeded on all 3 machines")
			})
			for _, m := range []string{machine1DN, "web-srv-02.contoso.com", "dev-linux-03"} {
				assert.Contains(t, final.Text, m, "the outcome of each machine")
			}
		})
	}
}

// A name that matches no machine refuses the whole list before anything
// exists: no request, no approval message, no Defender call.
func TestBulkUnknownNameRefusesTheWholeRequest(t *testing.T) {
	w := newWorld(t)
	p := w.start(t)
	code, _ := p.command(alice, "isolate "+machine1DN+",ghost.contoso.com outbreak")
	require.Equal(t, http.StatusOK, code)
	reply := w.responseTo(t, alice, 1)
	assert.Contains(t, reply.Text, "Nothing was requested")
	assert.Contains(t, reply.Text, "`ghost.contoso.com`: no machine with this computer DNS name")
	p.bot.Wait()
	rs, err := p.store.ListRequests(t.Context(), approval.RequestFilter{})
	require.NoError(t, err)
	assert.Empty(t, rs)
	assert.Empty(t, w.defenderWrites())
	for _, c := range w.slack.CallsTo(slackfake.MethodPostMessage) {
		assert.NotEqual(t, channel, c.Channel, "nothing posted for approval")
	}
}
