package bot

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/defenderbot/defenderbot/actions"
	"github.com/defenderbot/defenderbot/approval"
	"github.com/defenderbot/defenderbot/defender"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func blocksJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	require.NoError(t, err)
	return string(b)
}

func golden(t *testing.T, name string, v any) {
	t.Helper()
	got := blocksJSON(t, v) + "\n"
	path := filepath.Join("testdata", name+".golden")
	if *update {
		require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test ./bot -run %s -update", t.Name())
	assert.Equal(t, string(want), got)
}

func sampleRequest(state approval.State) *approval.Request {
	return &approval.Request{
		ID:     "0b6f3c1e-2d4a-4f5b-9c8d-7e6f5a4b3c2d",
		Action: "isolate",
		Args: actions.Args{MachineID: machineID, IsolationType: "Full",
			Comment: "beacon to <http://evil|click> & ping <!channel>\nsecond line"},
		MachineName:       "ws-001.contoso.com",
		RequesterID:       analyst,
		RequesterName:     "ana",
		State:             state,
		RequiredApprovals: 2,
		ExpiresAt:         time.Date(2026, 11, 27, 11, 0, 0, 0, time.UTC),
	}
}

func TestRenderGolden(t *testing.T) {
	approved := []approval.Vote{{UserID: approver1}, {UserID: approver2}}
	cases := map[string]func() any{
		"approval_pending": func() any { return renderApproval(sampleRequest(approval.StatePending)) },
		"approval_one_vote": func() any {
			r := sampleRequest(approval.StatePending)
			r.Approvals = approved[:1]
			return renderApproval(r)
		},
		"approval_running": func() any {
			r := sampleRequest(approval.StateRunning)
			r.Approvals, r.MachineActionID, r.MachineActionStatus = approved, "ma-1", "InProgress"
			return renderApproval(r)
		},
		"approval_succeeded": func() any {
			r := sampleRequest(approval.StateSucceeded)
			r.Approvals, r.MachineActionID, r.MachineActionStatus = approved, "ma-1", "Succeeded"
			return renderApproval(r)
		},
		"approval_failed": func() any {
			r := sampleRequest(approval.StateFailed)
			r.Approvals = approved
			r.Error = explainDefenderError(&defender.APIError{StatusCode: 400, Code: "ActiveRequestAlreadyExists"}, "isolate")
			return renderApproval(r)
		},
		"approval_rejected": func() any {
			r := sampleRequest(approval.StateRejected)
			r.RejectedBy, r.RejectReason = approver1, "wrong host <@U123>"
			return renderApproval(r)
		},
		"approval_expired": func() any { return renderApproval(sampleRequest(approval.StateExpired)) },
		"help":             func() any { return renderHelp("/defender") },
		"parse_error": func() any {
			return renderParseError("/defender", &ParseError{Verb: "scan", Msg: "scan type must be quick or full"})
		},
		"status_change": func() any {
			return renderStatusChange(&defender.MachineAction{ID: "ma-1", Type: "Isolate", Status: defender.StatusSucceeded})
		},
		"machine_choices": func() any {
			return renderMachineChoices("dup.contoso.com", newFakeDefender().machines[1:])
		},
		"modal_isolate": func() any {
			v, ok := commandModal("isolate", Command{Machine: "ws-001"}, invocation{ChannelID: "CSOC"})
			require.True(t, ok)
			return v
		},
		"modal_alert_update": func() any {
			v, ok := commandModal("alert update", Command{Args: actions.Args{AlertID: "da1_2"}}, invocation{ChannelID: "CSOC"})
			require.True(t, ok)
			return v
		},
		"modal_reject": func() any { return rejectModal("0b6f3c1e-2d4a-4f5b-9c8d-7e6f5a4b3c2d", approvals, "", false) },
		"output": func() any {
			return renderOutput("Get action info", map[string]any{"id": "a1", "title": nil, "status": "Pending"})
		},
	}
	for name, f := range cases {
		t.Run(name, func(t *testing.T) { golden(t, name, f()) })
	}
}

func TestRenderEscapesUserText(t *testing.T) {
	js := blocksJSON(t, renderApproval(sampleRequest(approval.StatePending)))
	assert.NotContains(t, js, "<!channel>")
	assert.NotContains(t, js, "<http://evil")
	assert.Contains(t, js, "\\u0026lt;!channel\\u0026gt;")
	// Pending has Approve (with confirm) and Reject carrying only the request ID.
	blocks := renderApproval(sampleRequest(approval.StatePending))
	act, ok := blocks[len(blocks)-1].(*slack.ActionBlock)
	require.True(t, ok)
	require.Len(t, act.Elements.ElementSet, 2)
	approve := act.Elements.ElementSet[0].(*slack.ButtonBlockElement)
	assert.Equal(t, actionApprove, approve.ActionID)
	assert.Equal(t, "0b6f3c1e-2d4a-4f5b-9c8d-7e6f5a4b3c2d", approve.Value)
	assert.NotNil(t, approve.Confirm)
}

// The notification text of the approval message is mrkdwn too: the
// requester's name must not ping the channel or forge a link.
func TestApprovalFallbackEscapesRequesterName(t *testing.T) {
	r := sampleRequest(approval.StatePending)
	r.RequesterName = "<!channel> & <http://evil|x>"
	got := approvalFallback(r)
	assert.NotContains(t, got, "<!channel>")
	assert.NotContains(t, got, "<http://evil")
	assert.Contains(t, got, "&lt;!channel&gt; &amp; &lt;http://evil|x&gt;")
}
