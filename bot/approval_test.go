package bot

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/defenderbot/defenderbot/actions"
	"github.com/defenderbot/defenderbot/approval"
	"github.com/defenderbot/defenderbot/defender"
)

func TestRequestApproveFollowUp(t *testing.T) {
	h := newHarness(t, nil)
	h.def.statuses = []defender.ActionStatus{defender.StatusInProgress, defender.StatusInProgress, defender.StatusSucceeded}

	msg := h.command(t, analyst, "isolate ws-001.contoso.com selective beaconing to <!channel> & c2")
	assert.Equal(t, slack.ResponseTypeEphemeral, msg.ResponseType)
	assert.Contains(t, msg.Text, "Isolate a machine on ws-001.contoso.com")

	r := h.store.only(t)
	assert.Equal(t, approval.StatePending, r.State)
	assert.Equal(t, actions.Isolate, r.Action)
	assert.Equal(t, map[string]string{"machine_id": machineID, "isolation_type": "Selective", "comment": "beaconing to <!channel> & c2"}, r.Args.Map())
	assert.Equal(t, "ws-001.contoso.com", r.MachineName)
	assert.Equal(t, t0.Add(time.Hour), r.ExpiresAt)

	posts := h.slack.find("chat.postMessage")
	require.Len(t, posts, 1)
	assert.Equal(t, approvals, posts[0].Channel)
	assert.Equal(t, posts[0].TS, r.ApprovalTS)
	assert.Equal(t, approvals, r.ApprovalChannel)
	assert.Contains(t, posts[0].Blocks, `"action_id":"approve"`)
	ack := h.slack.ephemeralTo(analyst)
	require.Len(t, ack, 1)
	assert.Contains(t, ack[0], "is waiting for 1 approval")

	h.click(t, approver1, actionApprove, r.ID)

	require.Equal(t, 1, h.def.runCount())
	run := h.def.runs[0]
	assert.Equal(t, "isolate", run.Action)
	assert.Equal(t, "beaconing to <!channel> & c2 (defenderbot request "+r.ID+", approved by "+approver1+")", run.Params["comment"])
	assert.Equal(t, machineID, run.Params["machine_id"])

	r = h.store.only(t)
	assert.Equal(t, approval.StateSucceeded, r.State)
	assert.Equal(t, "ma-1", r.MachineActionID)
	assert.Equal(t, "Succeeded", r.MachineActionStatus)

	// Thread: accepted (Pending), then each change once: InProgress,
	// Succeeded; then the offer to undo the isolation.
	var thread []string
	for _, c := range h.slack.find("chat.postMessage") {
		if c.Thread == r.ApprovalTS {
			thread = append(thread, c.Text)
		}
	}
	require.Len(t, thread, 4)
	assert.Contains(t, thread[0], "*Pending*")
	assert.Contains(t, thread[1], "*InProgress*")
	assert.Contains(t, thread[2], "*Succeeded*")
	assert.Contains(t, thread[3], "*Release*")

	// The requester is told the outcome by DM.
	var dms []string
	for _, c := range h.slack.find("chat.postMessage") {
		if c.Channel == analyst {
			dms = append(dms, c.Text)
		}
	}
	require.NotEmpty(t, dms)
	assert.Contains(t, dms[len(dms)-1], "succeeded")

	// The approval message's last version shows the outcome, no buttons.
	ups := h.slack.find("chat.update")
	require.NotEmpty(t, ups)
	last := ups[len(ups)-1]
	assert.Equal(t, r.ApprovalTS, last.TS)
	assert.NotContains(t, last.Blocks, `"type":"actions"`, "buttons must be gone")
	assert.Contains(t, last.Blocks, "succeeded")
	assert.Equal(t, []string{"request", "approve", "call", "result", "status", "status", "result"}, h.store.auditKinds(r.ID))
}

func TestRequesterNotAllowed(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Requesters = []string{"SANALYSTS", approver1} })
	h.slack.groups["SANALYSTS"] = []string{"UOTHER"}
	h.command(t, analyst, "isolate ws-001.contoso.com full evil")
	h.svc.Wait()
	assert.Empty(t, h.store.all(t))
	msgs := h.slack.ephemeralTo(analyst)
	require.Len(t, msgs, 1)
	assert.Contains(t, msgs[0], "not allowed to request")
	assert.Equal(t, []string{"refused"}, h.store.auditKinds(""))

	// A member of the requester group may.
	h.command(t, "UOTHER", "isolate ws-001.contoso.com full evil")
	assert.Len(t, h.store.all(t), 1)
}

func TestRefusals(t *testing.T) {
	tests := []struct {
		name    string
		clicker string
		self    bool
		want    string
	}{
		{"self approval", analyst, false, "cannot approve your own request"},
		{"non approver", outsider, false, "not an approver"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(c *Config) { c.Approvers = append(c.Approvers, analyst) })
			h.command(t, analyst, "restrict ws-001.contoso.com suspicious")
			r := h.store.only(t)
			h.click(t, tc.clicker, actionApprove, r.ID)
			assert.Equal(t, 0, h.def.runCount())
			assert.Equal(t, approval.StatePending, h.store.only(t).State)
			msgs := h.slack.ephemeralTo(tc.clicker)
			require.NotEmpty(t, msgs)
			assert.Contains(t, msgs[len(msgs)-1], tc.want)
			assert.Contains(t, h.store.auditKinds(r.ID), "refused")
		})
	}
}

func TestSelfApprovalAllowedByConfig(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Approvers = []string{analyst}; c.AllowSelfApproval = true })
	h.def.runStatus = defender.StatusSucceeded
	h.command(t, analyst, "scan ws-001.contoso.com full check it")
	r := h.store.only(t)
	assert.Equal(t, "Full", r.Args.ScanType)
	h.click(t, analyst, actionApprove, r.ID)
	assert.Equal(t, 1, h.def.runCount())
	assert.Equal(t, approval.StateSucceeded, h.store.only(t).State)
}

func TestGroupApproverAndTwoApprovals(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.RequiredApprovals = 2 })
	h.def.runStatus = defender.StatusSucceeded
	h.command(t, analyst, "release ws-001.contoso.com all clear")
	r := h.store.only(t)

	h.click(t, groupMem, actionApprove, r.ID)
	assert.Equal(t, 0, h.def.runCount())
	assert.Equal(t, approval.StatePending, h.store.only(t).State)
	assert.Contains(t, h.slack.ephemeralTo(groupMem)[0], "1 of 2")

	// Same approver again does not count.
	h.click(t, groupMem, actionApprove, r.ID)
	assert.Equal(t, 0, h.def.runCount())
	assert.Contains(t, h.slack.ephemeralTo(groupMem)[1], "already approved")

	h.click(t, approver2, actionApprove, r.ID)
	require.Equal(t, 1, h.def.runCount())
	assert.Contains(t, h.def.runs[0].Params["comment"], "approved by "+groupMem+", "+approver2)
	assert.Equal(t, "deisolate", h.def.runs[0].Action)
	// One group look-up served both clicks (cache).
	assert.Equal(t, 1, h.slack.groupCalls)
}

func TestRejectWithReason(t *testing.T) {
	h := newHarness(t, nil)
	h.command(t, analyst, "isolate ws-001.contoso.com full evil")
	r := h.store.only(t)

	// Non-approvers get no form.
	h.click(t, outsider, actionReject, r.ID)
	assert.Empty(t, h.slack.find("views.open"))

	h.click(t, approver1, actionReject, r.ID)
	views := h.slack.find("views.open")
	require.Len(t, views, 1)
	v := views[0].View
	assert.Equal(t, callbackReject, v.CallbackID)

	// Empty reason: validation error keyed by the input block.
	resp, err := h.svc.HandleInteraction(context.Background(), viewSubmission(approver1, v, map[string]string{blockReason: "  "}))
	require.NoError(t, err)
	require.IsType(t, &slack.ViewSubmissionResponse{}, resp)
	assert.Contains(t, resp.(*slack.ViewSubmissionResponse).Errors, blockReason)

	resp, err = h.svc.HandleInteraction(context.Background(), viewSubmission(approver1, v, map[string]string{blockReason: "not <@U1> enough evidence"}))
	require.NoError(t, err)
	assert.Nil(t, resp)
	h.svc.Wait()

	got := h.store.only(t)
	assert.Equal(t, approval.StateRejected, got.State)
	assert.Equal(t, approver1, got.RejectedBy)
	assert.Equal(t, "not <@U1> enough evidence", got.RejectReason)
	assert.Equal(t, 0, h.def.runCount())
	ups := h.slack.find("chat.update")
	require.NotEmpty(t, ups)
	assert.Contains(t, ups[len(ups)-1].Blocks, `not \u0026lt;@U1\u0026gt; enough evidence`)

	// Approve after reject changes nothing.
	h.click(t, approver2, actionApprove, r.ID)
	assert.Equal(t, 0, h.def.runCount())
	assert.Contains(t, h.slack.ephemeralTo(approver2)[0], "already rejected")
}

func viewSubmission(user string, v *slack.ModalViewRequest, values map[string]string) slack.InteractionCallback {
	cb := slack.InteractionCallback{Type: slack.InteractionTypeViewSubmission}
	cb.User.ID = user
	cb.View.CallbackID = v.CallbackID
	cb.View.PrivateMetadata = v.PrivateMetadata
	cb.View.State = &slack.ViewState{Values: map[string]map[string]slack.BlockAction{}}
	for k, val := range values {
		ba := slack.BlockAction{ActionID: k}
		if strings.HasPrefix(val, "option:") {
			ba.SelectedOption.Value = strings.TrimPrefix(val, "option:")
		} else {
			ba.Value = val
		}
		cb.View.State.Values[k] = map[string]slack.BlockAction{k: ba}
	}
	return cb
}

func TestExpiry(t *testing.T) {
	h := newHarness(t, nil)
	h.command(t, analyst, "isolate ws-001.contoso.com full evil")
	r := h.store.only(t)
	h.clock.Advance(2 * time.Hour)

	h.click(t, approver1, actionApprove, r.ID)
	assert.Equal(t, 0, h.def.runCount())
	assert.Contains(t, h.slack.ephemeralTo(approver1)[0], "expired")
	assert.Equal(t, approval.StateExpired, h.store.only(t).State)
}

func TestExpirySweep(t *testing.T) {
	h := newHarness(t, nil)
	h.command(t, analyst, "isolate ws-001.contoso.com full evil")
	r := h.store.only(t)
	h.clock.Advance(61 * time.Minute)
	h.svc.core.Scan(context.Background())
	assert.Equal(t, approval.StateExpired, h.store.only(t).State)
	ups := h.slack.find("chat.update")
	require.Len(t, ups, 1)
	assert.Contains(t, ups[0].Blocks, "Expired")
	assert.Contains(t, h.store.auditKinds(r.ID), "expire")
}

func TestConcurrentApprovesRunOnce(t *testing.T) {
	h := newHarness(t, nil)
	h.def.runStatus = defender.StatusSucceeded
	h.command(t, analyst, "isolate ws-001.contoso.com full evil")
	r := h.store.only(t)
	approvers := make([]string, 50)
	for i := range approvers {
		approvers[i] = approver1
		if i%2 == 1 {
			approvers[i] = approver2
		}
	}
	var wg sync.WaitGroup
	for _, u := range approvers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = h.svc.HandleInteraction(context.Background(), blockAction(u, actionApprove, r.ID))
		}()
	}
	wg.Wait()
	h.svc.Wait()
	assert.Equal(t, 1, h.def.runCount())
	assert.Equal(t, approval.StateSucceeded, h.store.only(t).State)
}

func TestDefenderErrorsRendered(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"not found", &defender.APIError{StatusCode: 404, Code: "ResourceNotFound"}, "machine was not found"},
		{"active request", &defender.APIError{StatusCode: 400, Code: "ActiveRequestAlreadyExists", Message: "Action is already in progress"}, "already pending on this machine"},
		{"forbidden", &defender.APIError{StatusCode: 403, Code: "Forbidden"}, "lacks the permission Machine.Isolate"},
		{"throttled", &defender.APIError{StatusCode: 429, RetryAfter: 30 * time.Second}, "try again in 30s"},
		{"server", &defender.APIError{StatusCode: 503}, "try again later"},
		{"unknown", context.DeadlineExceeded, "outcome is unknown"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil)
			h.def.runErr = tc.err
			h.command(t, analyst, "isolate ws-001.contoso.com full evil")
			r := h.store.only(t)
			h.click(t, approver1, actionApprove, r.ID)
			got := h.store.only(t)
			assert.Equal(t, approval.StateFailed, got.State)
			assert.Contains(t, got.Error, tc.want)
			ups := h.slack.find("chat.update")
			assert.Contains(t, ups[len(ups)-1].Blocks, "failed")
		})
	}
}

func TestMachineResolution(t *testing.T) {
	h := newHarness(t, nil)
	h.command(t, analyst, "isolate dup.contoso.com full evil")
	h.command(t, analyst, "isolate nope.contoso.com full evil")
	h.command(t, analyst, "isolate 9e5bc9d7e413ddd7902c2932e418702b84d0cc07 full evil")
	assert.Empty(t, h.store.all(t))
	msgs := h.slack.ephemeralTo(analyst)
	require.Len(t, msgs, 3)
	assert.Contains(t, msgs[0], "2 machines match")
	assert.Contains(t, msgs[0], "3e5bc9d7e413ddd7902c2932e418702b84d0cc07")
	assert.Contains(t, msgs[0], "Inactive")
	assert.Contains(t, msgs[1], "No machine named")
	assert.Contains(t, msgs[2], "No machine with ID")

	h.command(t, analyst, "isolate "+machineID+" full evil")
	assert.Equal(t, "ws-001.contoso.com", h.store.only(t).MachineName)
}

// A Defender error met while resolving the machine reaches Slack escaped:
// Microsoft's message (which may echo input) cannot ping or forge a link.
func TestMachineLookupErrorIsEscaped(t *testing.T) {
	h := newHarness(t, nil)
	h.def.findErr = &defender.APIError{StatusCode: 400, Code: "BadRequest", Message: "bad name <!channel> <http://evil|here>"}
	h.command(t, analyst, "isolate ws-009.contoso.com full evil")
	assert.Empty(t, h.store.all(t))
	msgs := h.slack.ephemeralTo(analyst)
	require.Len(t, msgs, 1)
	assert.Contains(t, msgs[0], "Could not look the machine up")
	assert.NotContains(t, msgs[0], "<!channel>")
	assert.NotContains(t, msgs[0], "<http://evil")
	assert.Contains(t, msgs[0], "&lt;!channel&gt;")
}

func TestGetActionRunsWithoutApproval(t *testing.T) {
	h := newHarness(t, nil)
	h.command(t, analyst, "action 7f4c2a8e-0b1d-4c3e-9a2f-1234567890ab")
	require.Equal(t, 1, h.def.runCount())
	assert.Equal(t, "get-action", h.def.runs[0].Action)
	assert.Empty(t, h.store.all(t))
	assert.Empty(t, h.slack.find("chat.postMessage"))
	assert.Equal(t, []string{"call", "result"}, h.store.auditKinds("")[0:2])
}

func TestModalForMissingArguments(t *testing.T) {
	h := newHarness(t, nil)
	msg := h.command(t, analyst, "isolate ws-001.contoso.com")
	assert.Contains(t, msg.Text, "Opening a form")
	views := h.slack.find("views.open")
	require.Len(t, views, 1)
	v := views[0].View
	assert.Equal(t, "trig", views[0].TS)
	assert.Equal(t, callbackCmd, v.CallbackID)

	// Invalid submission: errors keyed by input block IDs.
	resp, err := h.svc.HandleInteraction(context.Background(), viewSubmission(analyst, v, map[string]string{
		"machine": "bad name!", "isolation_type": "option:Selective", "comment": "",
	}))
	require.NoError(t, err)
	require.IsType(t, &slack.ViewSubmissionResponse{}, resp)
	errs := resp.(*slack.ViewSubmissionResponse).Errors
	assert.Contains(t, errs, "machine")
	assert.Contains(t, errs, "comment")
	assert.Empty(t, h.store.all(t))

	resp, err = h.svc.HandleInteraction(context.Background(), viewSubmission(analyst, v, map[string]string{
		"machine": "ws-001.contoso.com", "isolation_type": "option:Selective", "comment": "from the form",
	}))
	require.NoError(t, err)
	assert.Nil(t, resp)
	h.svc.Wait()
	r := h.store.only(t)
	assert.Equal(t, "Selective", r.Args.IsolationType)
	assert.Equal(t, "from the form", r.Args.Comment)
	assert.Equal(t, "CSOC", r.ChannelID)
}

func TestParseErrorReply(t *testing.T) {
	h := newHarness(t, nil)
	msg := h.command(t, analyst, "isolate")
	assert.Contains(t, msg.Text, "Opening a form", "missing machine with a trigger id opens the form")
	// Without a trigger id no modal can open: usage instead.
	msg = h.svc.HandleCommand(context.Background(), slack.SlashCommand{UserID: analyst, Text: "frobnicate x"})
	assert.Contains(t, msg.Text, "unknown command")
	msg = h.svc.HandleCommand(context.Background(), slack.SlashCommand{UserID: analyst, Text: "scan ws-001 sideways"})
	assert.Equal(t, slack.ResponseTypeEphemeral, msg.ResponseType)
	msg = h.svc.HandleCommand(context.Background(), slack.SlashCommand{UserID: analyst, Text: "action a b"})
	assert.Contains(t, msg.Text, "only the action ID")
	assert.Contains(t, blocksJSON(t, msg.Blocks.BlockSet), "/defender action \\u0026lt;action-id\\u0026gt;", "usage is escaped: Slack reads <…> as a link")
	// The echoed input is escaped in the text as in the blocks.
	msg = h.svc.HandleCommand(context.Background(), slack.SlashCommand{UserID: analyst, Text: "<!channel>"})
	assert.Contains(t, msg.Text, "unknown command")
	assert.NotContains(t, msg.Text, "<!channel>")
}

// A sync from Slack runs detached from the command's two-minute context (a
// snapshot sync can take many minutes), and its summary reaches the
// requester when it ends.
func TestIOCSyncOutlastsTheCommandContext(t *testing.T) {
	h := newHarness(t, nil)
	ioc := &fakeIOCs{}
	h.svc.deps.IOCs = ioc
	start := time.Now()
	h.command(t, approver1, "iocs sync")
	require.Equal(t, 1, ioc.runs)
	assert.False(t, ioc.deadline.IsZero(), "the run is still bounded")
	assert.Greater(t, ioc.deadline.Sub(start), time.Hour, "not the command's two minutes")
	assert.Equal(t, []string{":white_check_mark: IOC sync done: 3 imported"}, h.slack.ephemeralTo(approver1))
}

func TestIOCVerbs(t *testing.T) {
	h := newHarness(t, nil)
	h.command(t, analyst, "iocs status")
	assert.Contains(t, h.slack.ephemeralTo(analyst)[0], "not configured")

	ioc := &fakeIOCs{}
	h.svc.deps.IOCs = ioc
	h.command(t, analyst, "iocs sync")
	assert.Equal(t, 0, ioc.runs)
	assert.Contains(t, h.slack.ephemeralTo(analyst)[1], "Only approvers")
	h.command(t, approver1, "iocs sync")
	assert.Equal(t, 1, ioc.runs)
	assert.Contains(t, h.slack.ephemeralTo(approver1)[0], "3 imported")

	h.command(t, analyst, "iocs status")
	assert.Equal(t, "last run ok", h.slack.ephemeralTo(analyst)[2])

	// A store error's detail (hosts, users) stays in the log, not in Slack.
	ioc.statusErr = errors.New("read sync runs: dial tcp db.internal.example:5432 user=defenderbot: connection refused")
	h.command(t, analyst, "iocs status")
	got := h.slack.ephemeralTo(analyst)[3]
	assert.Contains(t, got, "Could not read the IOC sync status")
	assert.NotContains(t, got, "db.internal.example")

	ioc.runErr = fmt.Errorf("sync: %w", runningErr{since: time.Date(2026, 1, 15, 14, 5, 0, 0, time.UTC), replica: "pod-7"})
	h.command(t, approver1, "iocs sync")
	assert.Equal(t, ":hourglass_flowing_sand: A sync is running since 14:05 UTC (replica pod-7); its summary is posted when it ends.", h.slack.ephemeralTo(approver1)[1])

	ioc.runErr = errors.New("lease: dial tcp db.internal.example:5432: connection refused")
	h.command(t, approver1, "iocs sync")
	got = h.slack.ephemeralTo(approver1)[2]
	assert.Contains(t, got, "IOC sync failed")
	assert.NotContains(t, got, "db.internal.example")
}

// runningErr is the IOC syncer's refusal when a sync is already running.
type runningErr struct {
	since   time.Time
	replica string
}

func (e runningErr) Error() string                    { return "an IOC sync is already running" }
func (e runningErr) SyncRunning() (time.Time, string) { return e.since, e.replica }

type fakeIOCs struct {
	runs      int
	runErr    error
	statusErr error
	deadline  time.Time // of the last RunNow's context
}

func (f *fakeIOCs) RunNow(ctx context.Context, _ string) (string, error) {
	f.runs++
	f.deadline, _ = ctx.Deadline()
	if f.runErr != nil {
		return "", f.runErr
	}
	return "3 imported", nil
}
func (f *fakeIOCs) StatusText(context.Context) (string, error) {
	if f.statusErr != nil {
		return "", f.statusErr
	}
	return "last run ok", nil
}

func TestSlackRateLimitRetried(t *testing.T) {
	h := newHarness(t, nil)
	h.slack.rateLimited = 2
	h.command(t, analyst, "isolate ws-001.contoso.com full evil")
	assert.Len(t, h.slack.find("chat.postMessage"), 1)
	assert.NotEmpty(t, h.store.only(t).ApprovalTS)
}
