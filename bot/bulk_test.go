package bot

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/defenderbot/defenderbot/actions"
	"github.com/defenderbot/defenderbot/approval"
	"github.com/defenderbot/defenderbot/config"
	"github.com/defenderbot/defenderbot/defender"
	"github.com/defenderbot/defenderbot/internal/slackfake"
	"github.com/defenderbot/defenderbot/machineinfo"
)

func TestParseBulkCommand(t *testing.T) {
	c, err := parseCommand("isolate ws-1,WS-2.contoso.com," + machineID + " selective outbreak on floor 3")
	require.NoError(t, err)
	assert.Equal(t, []string{"ws-1", "WS-2.contoso.com", machineID}, c.Machines)
	assert.Empty(t, c.Machine)
	assert.Equal(t, "Selective", c.Args.IsolationType)
	assert.Equal(t, "outbreak on floor 3", c.Args.Comment)

	c, err = parseCommand("scan ws-1,ws-2 full weekly sweep")
	require.NoError(t, err)
	assert.Equal(t, []string{"ws-1", "ws-2"}, c.Machines)
	assert.Equal(t, "Full", c.Args.ScanType)

	c, err = parseCommand("isolate ws-1 beacon")
	require.NoError(t, err, "one machine: the single form")
	assert.Equal(t, "ws-1", c.Machine)
	assert.Empty(t, c.Machines)

	for _, tt := range []struct{ text, want string }{
		{"isolate ws-1, ws-2 outbreak", "a machine in the list is empty: separate machines with commas and no spaces"},
		{"release ws-1,,ws-2 outbreak", "a machine in the list is empty"},
		{"restrict ws-1,ws-2, outbreak", "a machine in the list is empty"},
		{"unrestrict ws-1,ws/2 outbreak", `"ws/2" is neither a machine ID`},
		{"collect ws-1,WS-1 outbreak", `"WS-1" is listed twice (as "ws-1" and "WS-1"): list each machine once`},
		{"quarantine ws-1,ws-2 " + strings.Repeat("a", 40) + " x", "quarantine runs on one machine per request; only isolate, release, restrict, unrestrict, scan and collect take several machines"},
	} {
		_, err := parseCommand(tt.text)
		var pe *ParseError
		require.ErrorAs(t, err, &pe, tt.text)
		assert.Contains(t, pe.Msg, tt.want, tt.text)
		assert.False(t, pe.Missing, tt.text)
	}

	// A missing comment opens the form, prefilled with the list.
	c, err = parseCommand("isolate ws-1,ws-2")
	var pe *ParseError
	require.ErrorAs(t, err, &pe)
	assert.True(t, pe.Missing)
	v, ok := commandModal(pe.Verb, c, invocation{})
	require.True(t, ok)
	assert.Contains(t, blocksJSON(t, v), `"initial_value": "ws-1,ws-2"`)
}

// bulkMachines are twenty machines named ws-010… with sample context.
func bulkMachines(n int) []defender.Machine {
	ms := make([]defender.Machine, n)
	for i := range ms {
		ms[i] = defender.Machine{ID: fmt.Sprintf("%02x%038x", i+16, i), ComputerDNSName: fmt.Sprintf("ws-%03d.contoso.com", i+10),
			OSPlatform: "Windows11", Version: "23H2", HealthStatus: "Active", RiskScore: "High", ExposureLevel: "Medium",
			LastSeen: t0.Add(-time.Duration(i) * time.Hour)}
	}
	return ms
}

func bulkRequest(state approval.State, n int) *approval.Request {
	r := sampleRequest(state)
	r.Args.MachineID, r.MachineName = "", ""
	r.RequiredApprovals = 1
	for _, m := range bulkMachines(n) {
		r.Targets = append(r.Targets, approval.Target{MachineID: m.ID, MachineName: m.ComputerDNSName, State: approval.TargetQueued})
	}
	return r
}

// bulkInfos is the context of bulkMachines: varied, some parts failed or
// still loading, one machine stale and isolated with open alerts.
func bulkInfos(ms []defender.Machine) map[string]machineinfo.Info {
	out := map[string]machineinfo.Info{}
	for i := range ms {
		info := machineinfo.Info{MachineID: ms[i].ID, At: t0,
			Machine: machineinfo.Part[*defender.Machine]{Done: true, Value: &ms[i]},
			Alerts:  machineinfo.Part[[]defender.Alert]{Done: true},
			Actions: machineinfo.Part[[]defender.MachineAction]{Done: true}}
		switch i {
		case 0:
			info = sampleInfo()
			info.MachineID = ms[i].ID
			info.Machine.Value.ID, info.Machine.Value.ComputerDNSName = ms[i].ID, ms[i].ComputerDNSName
		case 1:
			info.Alerts = machineinfo.Part[[]defender.Alert]{Done: true, Err: errors.New("defender: 500")}
		case 2:
			info.Actions = machineinfo.Part[[]defender.MachineAction]{}
			info.Machine = machineinfo.Part[*defender.Machine]{Done: true, Err: machineinfo.ErrTimeout}
		}
		out[ms[i].ID] = info
	}
	return out
}

// Twenty machines (approval.max_bulk's default) fit one approval message,
// each with its one-line context, and the progress table fits one message.
func TestRenderBulkGolden(t *testing.T) {
	ms := bulkMachines(20)
	cases := map[string]func() any{
		"bulk_approval_pending": func() any {
			return renderBulkApproval(bulkRequest(approval.StatePending, 20), bulkInfos(ms), config.StaleAfter)
		},
		"bulk_approval_failed": func() any {
			r := bulkRequest(approval.StateFailed, 3)
			r.Approvals = []approval.Vote{{UserID: approver1}}
			r.Targets[0].State, r.Targets[1].State, r.Targets[2].State = approval.TargetSucceeded, approval.TargetFailed, approval.TargetSucceeded
			r.Error = "1 of 3 machines failed."
			return renderBulkApproval(r, nil, 0)
		},
		"bulk_undo_offer": func() any {
			_, blocks := renderUndoOffer(bulkFailedOnOne())
			return blocks
		},
		"bulk_undo_modal": func() any { return undoModal(bulkFailedOnOne(), approvals, "1700000000.000100") },
		"bulk_approval_undone": func() any {
			undo := bulkRequest(approval.StateFailed, 2)
			undo.ID, undo.Action, undo.RequesterID = "9c0ffee0-0000-4000-8000-000000000002", actions.Deisolate, approver2
			undo.Targets[0].State, undo.Targets[1].State = approval.TargetSucceeded, approval.TargetFailed
			return renderUndone(bulkFailedOnOne(), undo, t0, config.StaleAfter)
		},
		"bulk_progress": func() any {
			r := bulkRequest(approval.StateRunning, 20)
			states := []approval.TargetState{approval.TargetSucceeded, approval.TargetFailed, approval.TargetRunning, approval.TargetRunning, approval.TargetCalling}
			for i := range r.Targets {
				tg := &r.Targets[i]
				if i < len(states) {
					tg.State = states[i]
				}
				if tg.State != approval.TargetQueued && tg.State != approval.TargetCalling {
					tg.MachineActionID = fmt.Sprintf("ma-%02d", i)
				}
			}
			r.Targets[0].MachineActionStatus = "Succeeded"
			r.Targets[1].Error = "Defender reports the action as Failed."
			r.Targets[2].MachineActionStatus, r.Targets[3].MachineActionStatus = "Pending", "InProgress"
			_, blocks := renderProgress(r)
			return blocks
		},
	}
	for name, render := range cases {
		t.Run(name, func(t *testing.T) {
			v := render()
			golden(t, name, v)
			if _, modal := v.(slack.ModalViewRequest); modal {
				assert.Empty(t, slackfake.ViewProblems([]byte(blocksJSON(t, v))), "within Block Kit's limits")
				return
			}
			assert.Empty(t, slackfake.MessageProblems([]byte(blocksJSON(t, v))), "within Block Kit's limits")
		})
	}
}

// bulkFailedOnOne is a bulk isolation that succeeded on two machines of three.
func bulkFailedOnOne() *approval.Request {
	r := bulkRequest(approval.StateFailed, 3)
	r.Approvals = []approval.Vote{{UserID: approver1}}
	r.Targets[0].State, r.Targets[1].State, r.Targets[2].State = approval.TargetSucceeded, approval.TargetFailed, approval.TargetSucceeded
	r.Error = "1 of 3 machines failed."
	return r
}

// The most machines approval.max_bulk allows, with the longest names and
// full context, still fit one message.
func TestBulkCardFitsAtMaxBulk(t *testing.T) {
	r := bulkRequest(approval.StatePending, 50)
	for i := range r.Targets {
		r.Targets[i].MachineName = strings.Repeat("&", 250)
	}
	r.Args.Comment = strings.Repeat("&", actions.MaxCommentLen)
	blocks := renderBulkApproval(r, bulkInfos(bulkMachines(50)), config.StaleAfter)
	assert.Empty(t, slackfake.MessageProblems([]byte(blocksJSON(t, blocks))))
	assert.Contains(t, blocksJSON(t, blocks), r.Targets[49].MachineID, "the last machine is listed")
	assert.Contains(t, blocksJSON(t, blocks), `"action_id": "approve"`, "the buttons are kept")
	_, progress := renderProgress(r)
	assert.Empty(t, slackfake.MessageProblems([]byte(blocksJSON(t, progress))))
	assert.Contains(t, blocksJSON(t, progress), r.Targets[49].MachineID)
}

func newBulkHarness(t *testing.T, mod func(*Config)) *harness {
	h := newHarness(t, mod)
	h.def.machines = append(h.def.machines, bulkMachines(25)...)
	h.def.perMachine = true
	return h
}

// Every name is resolved before anything is created: a name that matches
// no machine or several, or two names of one machine, refuse the whole
// request, naming each.
func TestBulkRefusesUnresolvedNamesAndCreatesNothing(t *testing.T) {
	h := newBulkHarness(t, nil)
	h.command(t, analyst, "isolate ws-010.contoso.com,nowhere.contoso.com,dup.contoso.com,"+machineID+",ws-001.contoso.com outbreak")
	assert.Empty(t, h.store.all(t), "nothing created")
	assert.Empty(t, h.slack.find("chat.postMessage"), "nothing posted for approval")
	got := h.slack.ephemeralTo(analyst)
	require.Len(t, got, 1)
	msg := got[0]
	assert.Contains(t, msg, "Nothing was requested: 3 machines of the list could not be used")
	assert.Contains(t, msg, "`nowhere.contoso.com`: no machine with this computer DNS name")
	assert.Contains(t, msg, "`dup.contoso.com`: 2 machines have this name (use the machine ID: `2e5bc9d7")
	assert.Contains(t, msg, "`"+machineID+"` and `ws-001.contoso.com` are the same machine")
	assert.NotContains(t, msg, "ws-010", "a machine that resolved is not listed as a problem")
	assert.Empty(t, h.store.auditKinds(""), "no request line in the audit trail")

	unknownID := strings.Repeat("f", 40)
	h.command(t, analyst, "release ws-010.contoso.com,"+unknownID+" done")
	assert.Contains(t, h.slack.ephemeralTo(analyst)[1], "`"+unknownID+"`: no machine with this ID")
	assert.Empty(t, h.store.all(t))
}

func TestBulkRefusesMoreThanMaxBulk(t *testing.T) {
	h := newBulkHarness(t, func(c *Config) { c.MaxBulk = 3 })
	msg := h.command(t, analyst, "isolate ws-010.contoso.com,ws-011.contoso.com,ws-012.contoso.com,ws-013.contoso.com outbreak")
	assert.Contains(t, msg.Text, "4 machines listed: at most 3 per request (approval.max_bulk)")
	assert.Empty(t, h.store.all(t))
	assert.Zero(t, h.def.runCount())

	// The default is config's 20.
	h = newBulkHarness(t, nil)
	names := make([]string, 21)
	for i := range names {
		names[i] = fmt.Sprintf("ws-%03d.contoso.com", i+10)
	}
	msg = h.command(t, analyst, "scan "+strings.Join(names, ",")+" sweep")
	assert.Contains(t, msg.Text, "21 machines listed: at most 20 per request")
	assert.Empty(t, h.store.all(t))
}

// One request, one approval (not by the requester), then one paced call per
// machine, one progress table in the thread updated in place, and the
// outcome per machine told to the requester.
func TestBulkOneApprovalOneCallPerMachine(t *testing.T) {
	h := newBulkHarness(t, nil)
	h.def.statuses = []defender.ActionStatus{defender.StatusSucceeded}
	h.def.failFor = map[string]error{bulkMachines(3)[1].ID: &defender.APIError{StatusCode: 400, Code: "ActiveRequestAlreadyExists", Message: "Action is already in progress"}}
	h.command(t, analyst, "isolate ws-010.contoso.com,ws-011.contoso.com,"+bulkMachines(3)[2].ID+" outbreak")
	r := h.store.only(t)
	require.Len(t, r.Targets, 3)
	assert.Equal(t, []string{"ws-010.contoso.com", "ws-011.contoso.com", "ws-012.contoso.com"},
		[]string{r.Targets[0].MachineName, r.Targets[1].MachineName, r.Targets[2].MachineName})
	assert.Empty(t, r.Args.MachineID)
	posts := h.slack.find("chat.postMessage")
	require.Len(t, posts, 1, "one approval message")
	assert.Contains(t, posts[0].Blocks, "Approval needed: Isolate a machine: 3 machines")
	for _, tg := range r.Targets {
		assert.Contains(t, posts[0].Blocks, tg.MachineID, "the card lists every machine")
	}

	h.click(t, analyst, actionApprove, r.ID)
	assert.Zero(t, h.def.runCount(), "the requester cannot approve")
	h.click(t, approver1, actionApprove, r.ID)
	h.svc.core.Wait()

	assert.Equal(t, 3, h.def.runCount(), "one Defender call per machine")
	for i, run := range h.def.runs {
		assert.Equal(t, r.Targets[i].MachineID, run.Params["machine_id"])
	}
	got := h.store.only(t)
	assert.Equal(t, approval.StateFailed, got.State)
	assert.Equal(t, "1 of 3 machines failed.", got.Error)
	require.NotEmpty(t, got.ProgressTS)

	var progressPosts, progressUpdates int
	for _, c := range h.slack.find("chat.postMessage") {
		if c.Thread == got.ApprovalTS && strings.Contains(c.Text, "Progress of request") {
			progressPosts++
			assert.Equal(t, got.ProgressTS, c.TS)
		}
		assert.NotContains(t, c.Text, "is now *", "no per-status thread replies for a bulk request")
	}
	var last string
	for _, c := range h.slack.find("chat.update") {
		if c.TS == got.ProgressTS {
			progressUpdates++
			last = c.Blocks
		}
	}
	assert.Equal(t, 1, progressPosts, "one progress table")
	assert.GreaterOrEqual(t, progressUpdates, 1, "updated in place (coalesced: progress_test.go)")
	assert.Contains(t, last, "3 of 3 machines done (2 succeeded, 1 failed)")

	var dms []string
	for _, c := range h.slack.find("chat.postMessage") {
		if c.Channel == analyst {
			dms = append(dms, c.Text)
		}
	}
	require.NotEmpty(t, dms)
	final := dms[len(dms)-1]
	assert.Contains(t, final, "failed on 1 of 3 machines (2 succeeded)")
	assert.Contains(t, final, "ws-010.contoso.com `"+r.Targets[0].MachineID+"`: :white_check_mark: Succeeded")
	assert.Contains(t, final, "ws-011.contoso.com `"+r.Targets[1].MachineID+"`: :warning: Failed")
	assert.Empty(t, h.slack.find("views.open"))
	var undo []string
	for _, c := range h.slack.find("chat.postMessage") {
		if strings.Contains(c.Text, "To undo this") {
			undo = append(undo, c.Text)
		}
	}
	require.Len(t, undo, 1, "one undo offer, for the machines where it succeeded")
	assert.Contains(t, undo[0], "the 2 of 3 machines where it succeeded (ws-010.contoso.com, ws-012.contoso.com)")
}

// The calls are paced by the injected sleep: one BulkPace between calls.
func TestBulkCallsArePaced(t *testing.T) {
	h := newBulkHarness(t, func(c *Config) { c.BulkPace = 7 * time.Second })
	h.def.statuses = []defender.ActionStatus{defender.StatusSucceeded}
	var at []time.Time
	h.def.perMachine = true
	h.command(t, analyst, "scan ws-010.contoso.com,ws-011.contoso.com,ws-012.contoso.com quick sweep")
	r := h.store.only(t)
	start := h.clock.Now()
	h.click(t, approver1, actionApprove, r.ID)
	h.svc.core.Wait()
	for _, e := range mustAudit(t, h, r.ID, "call") {
		at = append(at, e.At)
	}
	require.Len(t, at, 3)
	assert.Equal(t, []time.Duration{0, 7 * time.Second, 14 * time.Second}, []time.Duration{at[0].Sub(start), at[1].Sub(start), at[2].Sub(start)})
}

func mustAudit(t *testing.T, h *harness, id, kind string) []approval.AuditEvent {
	t.Helper()
	evs, err := h.store.ListAudit(context.Background(), time.Time{})
	require.NoError(t, err)
	var out []approval.AuditEvent
	for _, e := range evs {
		if e.RequestID == id && e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

// A bulk action listed in approval.actions_without_approval runs at once,
// still once per machine, recorded and followed, each outcome told.
func TestBulkWithoutApprovalRunsAtOnce(t *testing.T) {
	h := newBulkHarness(t, func(c *Config) { c.ActionsWithoutApproval = []actions.Name{actions.GetAction, actions.Scan} })
	h.def.statuses = []defender.ActionStatus{defender.StatusSucceeded}
	h.command(t, analyst, "scan ws-010.contoso.com,ws-011.contoso.com quick sweep")
	h.svc.core.Wait()
	r := h.store.only(t)
	assert.Equal(t, approval.StateSucceeded, r.State, r.Error)
	assert.Empty(t, r.Approvals)
	assert.Equal(t, 2, h.def.runCount())
	assert.Contains(t, h.slack.ephemeralTo(analyst)[0], "needs no approval")
	var final string
	for _, c := range h.slack.find("chat.postMessage") {
		if c.Channel == analyst {
			final = c.Text
		}
	}
	assert.Contains(t, final, "succeeded on all 2 machines")
}
