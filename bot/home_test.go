package bot

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/defenderbot/defenderbot/actions"
	"github.com/defenderbot/defenderbot/approval"
	"github.com/defenderbot/defenderbot/defender"
	"github.com/defenderbot/defenderbot/internal/slackfake"
)

func homeSample() homeData {
	req := func(id string, n actions.Name, st approval.State, machine string, at time.Time) *approval.Request {
		r := sampleRequest(st)
		r.ID, r.Action, r.UpdatedAt = id, n, at
		r.Args.MachineID, r.MachineName = machine+strings.Repeat("0", 40-len(machine)), machine+".contoso.com"
		return r
	}
	at := time.Date(2026, 11, 27, 10, 30, 0, 0, time.UTC)
	waiting := req("0b6f3c1e-2d4a-4f5b-9c8d-7e6f5a4b3c2d", actions.Isolate, approval.StatePending, "ws001", at)
	mine := req("1c7f4d2f-3e5b-4a6c-8d9e-0f1a2b3c4d5e", actions.Scan, approval.StatePending, "ws002", at)
	mine.RequesterID = approver1
	running := req("2d8a5e3a-4f6c-4b7d-9eaf-1a2b3c4d5e6f", actions.RestrictCodeExecution, approval.StateRunning, "ws003", at)
	running.MachineActionStatus = "InProgress"
	ok := req("3e9b6f4b-5a7d-4c8e-8fb0-2b3c4d5e6f70", actions.Isolate, approval.StateSucceeded, "ws004", at.Add(-time.Hour))
	failed := req("4fac7a5c-6b8e-4d9f-9ac1-3c4d5e6f7081", actions.Scan, approval.StateFailed, "ws005", at.Add(-2*time.Hour))
	failed.Error = "Defender reports the action as Failed."
	// A bulk isolation that succeeded on two machines of three.
	bulk := bulkFailedOnOne()
	bulk.ID, bulk.UpdatedAt = "5abd8b6d-7c9f-4eaf-8bd2-4d5e6f708192", at.Add(-3*time.Hour)
	return homeData{
		User: approver1, Now: at,
		Waiting: []*approval.Request{waiting}, Mine: []*approval.Request{mine},
		Running: []*approval.Request{running}, Results: []*approval.Request{ok, failed},
		Isolated: stillIsolated([]*approval.Request{ok, failed, bulk}), IOCs: "Last sync 2026-11-27 10:00 UTC (schedule): 12 created, 3 updated, 1 deleted.",
	}
}

func TestHomeGolden(t *testing.T) {
	golden(t, "home", slack.HomeTabViewRequest{Type: slack.VTHomeTab, Blocks: slack.Blocks{BlockSet: renderHome(homeSample())}})
	golden(t, "home_empty", slack.HomeTabViewRequest{Type: slack.VTHomeTab, Blocks: slack.Blocks{BlockSet: renderHome(homeData{User: approver1, Now: t0})}})
}

// TestHomeWithinLimits: however much waits, the Home tab stays a view Slack
// accepts (100 blocks), and the buttons of what is shown work.
func TestHomeWithinLimits(t *testing.T) {
	d := homeSample()
	for range 60 {
		d.Waiting = append(d.Waiting, d.Waiting[0])
		d.Isolated = append(d.Isolated, d.Isolated[0])
		d.Mine = append(d.Mine, d.Mine[0])
	}
	d.Waiting[0].Args.Comment = strings.Repeat("&", actions.MaxCommentLen)
	raw, err := json.Marshal(slack.HomeTabViewRequest{Type: slack.VTHomeTab, Blocks: slack.Blocks{BlockSet: renderHome(d)}})
	require.NoError(t, err)
	assert.Empty(t, slackfake.ViewProblems(raw))
	assert.Contains(t, string(raw), "and 46 more in the approval channel")
}

func homeOpened(user string) slackevents.EventsAPIEvent {
	return slackevents.EventsAPIEvent{Type: slackevents.CallbackEvent, InnerEvent: slackevents.EventsAPIInnerEvent{
		Type: "app_home_opened", Data: &slackevents.AppHomeOpenedEvent{Type: "app_home_opened", User: user, Tab: "home"}}}
}

func (h *harness) home(t *testing.T, user string) string {
	t.Helper()
	h.svc.HandleEvent(context.Background(), homeOpened(user))
	h.svc.Wait()
	calls := h.slack.find("views.publish")
	for i := len(calls) - 1; i >= 0; i-- {
		if calls[i].User == user {
			return calls[i].Blocks
		}
	}
	t.Fatalf("no Home tab published for %s", user)
	return ""
}

func homeClick(user, actionID, value string) slack.InteractionCallback {
	return slackfake.BlockActionFromHome(user, actionID, value)
}

// TestHomeTabShowsWhatWaitsForYouAndDecides: an approver sees the request
// with the buttons; the requester sees it as their own, without buttons;
// Approve on the Home tab runs the request through the same path as in the
// channel, and the tab is published again.
func TestHomeTabShowsWhatWaitsForYouAndDecides(t *testing.T) {
	h := newHarness(t, nil)
	h.def.statuses = []defender.ActionStatus{defender.StatusSucceeded}
	h.command(t, analyst, "isolate ws-001.contoso.com full beaconing")
	r := h.store.only(t)

	home := h.home(t, approver1)
	assert.Contains(t, home, "Waiting for your approval* (1)")
	assert.Contains(t, home, `"value":"`+r.ID+`"`)

	mine := h.home(t, analyst)
	assert.Contains(t, mine, "Waiting for your approval* (0)", "not an approver")
	assert.Contains(t, mine, "Isolate a machine on ws-001.contoso.com")
	assert.NotContains(t, mine, `"value":"`+r.ID+`"`, "no buttons on your own request")

	publishes := len(h.slack.find("views.publish"))
	_, err := h.svc.HandleInteraction(context.Background(), homeClick(approver1, actionApprove, r.ID))
	require.NoError(t, err)
	h.svc.Wait()
	h.svc.core.Wait()
	got, err := h.store.GetRequest(context.Background(), r.ID)
	require.NoError(t, err)
	assert.Equal(t, approval.StateSucceeded, got.State)
	assert.Equal(t, 1, h.def.runCount())
	assert.Greater(t, len(h.slack.find("views.publish")), publishes, "the tab is published again")
	after := h.home(t, approver1)
	assert.Contains(t, after, "Waiting for your approval* (0)")
	assert.Contains(t, after, "Isolated by defenderbot* (1)")
	assert.Contains(t, after, `"action_id":"undo","value":"`+r.ID+`"`)

	// A refusal from the Home tab (no channel) goes by direct message.
	_, err = h.svc.HandleInteraction(context.Background(), homeClick(approver2, actionApprove, r.ID))
	require.NoError(t, err)
	h.svc.Wait()
	var dm []string
	for _, c := range h.slack.find("chat.postMessage") {
		if c.Channel == approver2 {
			dm = append(dm, c.Text)
		}
	}
	require.Len(t, dm, 1)
	assert.Contains(t, dm[0], "already")

	// Release is the isolation's undo, as in its thread: it opens the form
	// of the linked release request.
	_, err = h.svc.HandleInteraction(context.Background(), homeClick(approver1, actionUndo, r.ID))
	require.NoError(t, err)
	h.svc.Wait()
	views := h.slack.find("views.open")
	require.NotEmpty(t, views)
	v := views[len(views)-1].View
	assert.Equal(t, callbackUndo, v.CallbackID)
	assert.Contains(t, v.PrivateMetadata, r.ID)
}

func TestStillIsolated(t *testing.T) {
	at := func(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }
	mk := func(n actions.Name, st approval.State, machine string, m int) *approval.Request {
		return &approval.Request{ID: string(n) + machine, Action: n, State: st, Args: actions.Args{MachineID: machine}, UpdatedAt: at(m)}
	}
	done := []*approval.Request{ // newest first
		mk(actions.Isolate, approval.StateSucceeded, "m1", 50),   // isolated again after a release
		mk(actions.Deisolate, approval.StateSucceeded, "m1", 40), // released
		mk(actions.Isolate, approval.StateSucceeded, "m1", 30),
		mk(actions.Deisolate, approval.StateSucceeded, "m2", 20), // released
		mk(actions.Isolate, approval.StateSucceeded, "m2", 10),
		mk(actions.Deisolate, approval.StateFailed, "m3", 9), // the release failed
		mk(actions.Isolate, approval.StateSucceeded, "m3", 8),
		mk(actions.Scan, approval.StateSucceeded, "m4", 7),
	}
	var ids []string
	for _, iso := range stillIsolated(done) {
		for _, m := range iso.Machines {
			ids = append(ids, m.MachineID)
		}
	}
	assert.Equal(t, []string{"m1", "m3"}, ids)
}

// A bulk isolation counts on each machine where it succeeded, also when it
// failed on others; a later release of one of them (on its own or in a bulk
// release) takes that one off.
func TestStillIsolatedWithBulkRequests(t *testing.T) {
	at := func(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }
	bulk := func(id string, n actions.Name, st approval.State, m int, targets map[string]approval.TargetState) *approval.Request {
		r := &approval.Request{ID: id, Action: n, State: st, UpdatedAt: at(m)}
		for _, machine := range []string{"m1", "m2", "m3", "m4"} {
			if ts, ok := targets[machine]; ok {
				r.Targets = append(r.Targets, approval.Target{MachineID: machine, State: ts})
			}
		}
		return r
	}
	ok, failed := approval.TargetSucceeded, approval.TargetFailed
	done := []*approval.Request{ // newest first
		bulk("release-m1-m2", actions.Deisolate, approval.StateFailed, 40, map[string]approval.TargetState{"m1": ok, "m2": failed}),
		{ID: "release-m3", Action: actions.Deisolate, State: approval.StateSucceeded, Args: actions.Args{MachineID: "m3"}, UpdatedAt: at(30)},
		bulk("isolate-all", actions.Isolate, approval.StateFailed, 20, map[string]approval.TargetState{"m1": ok, "m2": ok, "m3": ok, "m4": failed}),
	}
	isos := stillIsolated(done)
	require.Len(t, isos, 1)
	assert.Equal(t, "isolate-all", isos[0].Request.ID)
	require.Len(t, isos[0].Machines, 1)
	assert.Equal(t, "m2", isos[0].Machines[0].MachineID, "m1 released by the bulk release, m3 on its own, m4 never isolated")
}

// An isolation stays on the Home tab however many requests finished after
// it: the list is read from the isolations and releases themselves, not
// from the latest results.
func TestHomeListsAnIsolationOlderThanManyResults(t *testing.T) {
	h := newHarness(t, nil)
	h.def.statuses = []defender.ActionStatus{defender.StatusSucceeded}
	h.command(t, analyst, "isolate ws-001.contoso.com full beaconing")
	r := h.store.only(t)
	_, err := h.svc.HandleInteraction(context.Background(), homeClick(approver1, actionApprove, r.ID))
	require.NoError(t, err)
	h.svc.Wait()
	h.svc.core.Wait()

	later := r.CreatedAt
	for i := range 600 {
		later = later.Add(time.Minute)
		scan := &approval.Request{ID: fmt.Sprintf("scan-%03d", i), Action: actions.Scan,
			Args:        actions.Args{MachineID: "m-other", Comment: "routine", ScanType: "Quick"},
			RequesterID: analyst, ChannelID: "C_SOC", RequiredApprovals: 1, State: approval.StateSucceeded,
			CreatedAt: later, ExpiresAt: later.Add(time.Hour)}
		require.NoError(t, h.store.CreateRequest(context.Background(), scan))
	}
	home := h.home(t, approver1)
	assert.Contains(t, home, "Isolated by defenderbot* (1)")
	assert.Contains(t, home, `"action_id":"undo","value":"`+r.ID+`"`)
}
