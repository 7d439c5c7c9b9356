package e2e_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/defenderbot/defenderbot/approval"
	"github.com/defenderbot/defenderbot/defender/defendertest"
	"github.com/defenderbot/defenderbot/internal/slackfake"
)

// TestEveryVerbThroughSlack runs each state-changing verb the way an analyst
// does: a signed slash command, the approval message, a second person's
// signed Approve click, then exactly one Defender call with the approved
// arguments, the follow-up, and the Slack updates.
func TestEveryVerbThroughSlack(t *testing.T) {
	tests := []struct {
		name       string
		text       string
		write      string // the one Defender write expected
		machine    bool   // a machine action followed until Succeeded
		wantInBody []string
	}{
		{"isolate", "isolate " + machine1DN + " selective suspicious beacon", "POST /api/machines/" + machine1 + "/isolate", true,
			[]string{`"IsolationType":"Selective"`, `suspicious beacon`}},
		{"release", "release " + machine1 + " cleaned up", "POST /api/machines/" + machine1 + "/unisolate", true,
			[]string{`cleaned up`}},
		{"restrict", "restrict " + machine1DN + " ransomware staging", "POST /api/machines/" + machine1 + "/restrictCodeExecution", true,
			[]string{`ransomware staging`}},
		{"unrestrict", "unrestrict " + machine1DN + " false positive", "POST /api/machines/" + machine1 + "/unrestrictCodeExecution", true,
			[]string{`false positive`}},
		{"scan", "scan " + machine1DN + " full after cleanup", "POST /api/machines/" + machine1 + "/runAntiVirusScan", true,
			[]string{`"ScanType":"Full"`, `after cleanup`}},
		{"quarantine", "quarantine " + machine1DN + " 87662BC3D60E4200CEAF7AAE249D1C343F4B83C9 dropper found", "POST /api/machines/" + machine1 + "/StopAndQuarantineFile", true,
			[]string{`"Sha1":"87662bc3d60e4200ceaf7aae249d1c343f4b83c9"`, `dropper found`}},
		{"collect", "collect " + machine1DN + " memory for the IR team", "POST /api/machines/" + machine1 + "/collectInvestigationPackage", true,
			[]string{`memory for the IR team`}},
		{"alert comment", "alert comment " + defendertest.SampleAlertID1 + " triaged by the SOC", "PATCH /api/alerts/" + defendertest.SampleAlertID1, false,
			[]string{`"comment":"triaged by the SOC`}},
		{"alert update", "alert update " + defendertest.SampleAlertID2 + " status=Resolved classification=TruePositive", "PATCH /api/alerts/" + defendertest.SampleAlertID2, false,
			[]string{`"status":"Resolved"`, `"classification":"TruePositive"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			p := w.start(t)

			code, body := p.command(alice, tc.text)
			require.Equal(t, http.StatusOK, code)
			assert.Contains(t, body, `"response_type":"ephemeral"`)

			msg, id := w.approvalMessage(t, 1)
			assert.Contains(t, w.responseTo(t, alice, 1).Text, id, "the requester learns the request ID")
			assert.Empty(t, w.defenderWrites(), "nothing reaches Defender before approval")

			code, _ = p.click(bob, "approve", id, msg.TS)
			require.Equal(t, http.StatusOK, code)

			if tc.machine {
				r := p.waitState(id, approval.StateRunning)
				require.NotEmpty(t, r.MachineActionID)
				w.advance(3 * time.Minute)
			}
			r := p.waitState(id, approval.StateSucceeded)
			assert.Equal(t, []string{bob}, []string{r.Approvals[0].UserID})

			require.Equal(t, []string{tc.write}, w.defenderWrites())
			var sent []byte
			for _, req := range w.emu.Requests() {
				if req.Method+" "+req.Path == tc.write {
					sent = req.Body
				}
			}
			for _, want := range tc.wantInBody {
				assert.Contains(t, string(sent), want)
			}
			if tc.name != "alert update" { // the only action without a comment
				assert.Contains(t, string(sent), id, "the Defender comment carries the request ID for the audit")
			}

			// Slack: the approval message ends up showing the outcome and the
			// requester is told.
			final := w.dmTo(t, alice, map[bool]int{true: 2, false: 1}[tc.machine])
			assert.Contains(t, final.Text, "succeeded")
			m, ok := w.slack.Message(channel, msg.TS)
			require.True(t, ok)
			assert.GreaterOrEqual(t, m.Updates, 1)
			assert.Contains(t, m.Text, "succeeded")
			assert.NotContains(t, string(m.Blocks), `"action_id":"approve"`, "no Approve button once decided")
			assert.Subset(t, p.auditKinds(id), []string{"request", "approve", "call", "result"})
		})
	}
}

// TestGetActionRunsWithoutApproval: reading a machine action is not a
// state change, so it runs at once and answers the requester privately.
func TestGetActionRunsWithoutApproval(t *testing.T) {
	w := newWorld(t)
	p := w.start(t)
	// The machine action to read is created through the flow first.
	code, _ := p.command(alice, "isolate "+machine1DN+" full beacon")
	require.Equal(t, http.StatusOK, code)
	msg, id := w.approvalMessage(t, 1)
	p.click(bob, "approve", id, msg.TS)
	r := p.waitState(id, approval.StateRunning)
	w.slack.Reset()

	code, _ = p.command(carol, "action "+r.MachineActionID)
	require.Equal(t, http.StatusOK, code)
	reply := w.responseTo(t, carol, 1)
	assert.Contains(t, string(reply.Blocks)+reply.Text, r.MachineActionID)
	for _, c := range w.slack.CallsTo(slackfake.MethodPostMessage) {
		assert.False(t, c.Channel == channel && c.ThreadTS == "", "no approval message for a read: %+v", c)
	}
	assert.Equal(t, []string{"POST /api/machines/" + machine1 + "/isolate"}, w.defenderWrites())
}

// TestCancelAfterApproval cancels a pending machine action through Slack.
func TestCancelAfterApproval(t *testing.T) {
	w := newWorld(t)
	p := w.start(t)
	p.command(alice, "isolate "+machine1DN+" full beacon")
	msg, id := w.approvalMessage(t, 1)
	p.click(bob, "approve", id, msg.TS)
	r := p.waitState(id, approval.StateRunning)

	p.command(alice, "cancel "+r.MachineActionID+" wrong machine")
	msg2, id2 := w.approvalMessage(t, 2)
	code, body := p.click(carol, "approve", id2, msg2.TS)
	require.Equal(t, http.StatusOK, code, body)
	// A cancel that Defender carried out is a success for the cancel request,
	// even though the machine action it targets ends "Cancelled".
	p.waitState(id2, approval.StateSucceeded)

	assert.Equal(t, []string{
		"POST /api/machines/" + machine1 + "/isolate",
		"POST /api/machineactions/" + r.MachineActionID + "/cancel",
	}, w.defenderWrites())
	a, ok := w.emu.MachineAction(r.MachineActionID)
	require.True(t, ok)
	assert.Equal(t, "Cancelled", a.Status)
	p.waitState(id, approval.StateFailed) // the follow-up sees the cancellation
}
