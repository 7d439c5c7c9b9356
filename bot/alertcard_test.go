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
	"github.com/defenderbot/defenderbot/graph"
)

func sampleAlert() *graph.Alert {
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	return &graph.Alert{
		ID: "da637551227677560813_-961444813", Title: "Suspicious PowerShell <!channel> download", Severity: "high",
		Status: "new", Category: "Execution", DetectionSource: "microsoftDefenderForEndpoint",
		ServiceSource: "microsoftDefenderForEndpoint", MitreTechniques: []string{"T1059.001", "T1105"},
		Description:     "PowerShell fetched a payload from <http://evil|here>.",
		CreatedDateTime: t0, LastUpdateDateTime: t0,
		FirstActivityDateTime: t0.Add(-5 * time.Minute), LastActivityDateTime: t0.Add(-time.Minute),
		AlertWebURL: "https://security.microsoft.com/alerts/da637551227677560813_-961444813?tid=t1",
		Evidence: []graph.Evidence{
			{ODataType: graph.EvidenceDevice, MdeDeviceID: machineID, DeviceDNSName: "ws-001.contoso.com", RiskScore: "high", HealthStatus: "active"},
			{ODataType: graph.EvidenceUser, UserAccount: &graph.UserAccount{AccountName: "ana", DomainName: "CONTOSO", DisplayName: "Ana Silva"}},
		},
	}
}

func TestAlertCardGolden(t *testing.T) {
	resolvedAt := time.Date(2026, 11, 27, 11, 0, 0, 0, time.UTC)
	for name, f := range map[string]func() any{
		"alert_new": func() any { return alertCard(sampleAlert(), AlertCardOptions{Collect: true}) },
		"alert_resolved": func() any {
			a := sampleAlert()
			a.Status, a.Classification, a.Determination, a.AssignedTo = "resolved", "truePositive", "malware", "ana@contoso.com"
			a.ResolvedDateTime = &resolvedAt
			a.Comments = []graph.Comment{{Comment: "Resolved by <@U1>: reimaged", CreatedByDisplayName: "defenderbot"}}
			return alertCard(a, AlertCardOptions{})
		},
		"alert_no_device": func() any {
			a := sampleAlert()
			a.Evidence, a.MitreTechniques, a.AlertWebURL = nil, nil, "javascript:alert(1)"
			return alertCard(a, AlertCardOptions{Collect: true})
		},
	} {
		t.Run(name, func(t *testing.T) { golden(t, name, f()) })
	}
}

func TestAlertCardButtons(t *testing.T) {
	ids := func(a *graph.Alert, opt AlertCardOptions) []string {
		var out []string
		for _, el := range alertButtons(a, opt).Elements.ElementSet {
			b := el.(*slack.ButtonBlockElement)
			assert.Equal(t, a.ID, b.Value, "every button carries the alert ID")
			out = append(out, b.ActionID)
		}
		return out
	}
	a := sampleAlert()
	assert.Equal(t, []string{actionAlertIsolate, actionAlertScan, actionAlertCollect, actionAlertAssign, actionAlertResolve,
		actionAlertComment}, ids(a, AlertCardOptions{Collect: true}))
	assert.NotContains(t, ids(a, AlertCardOptions{}), actionAlertCollect, "only when the collect action exists")
	a.Status = graph.StatusResolved
	assert.Equal(t, []string{actionAlertIsolate, actionAlertScan, actionAlertComment}, ids(a, AlertCardOptions{}))
	a.Evidence = nil
	assert.Equal(t, []string{actionAlertComment}, ids(a, AlertCardOptions{}), "no device, no device actions")
}

func TestAlertPosterPostsAndUpdates(t *testing.T) {
	f := newFakeSlack(t)
	p, err := NewAlertPoster(f, AlertCardOptions{}, SlackRetryFrom())
	require.NoError(t, err)
	a := sampleAlert()
	ts, err := p.PostAlert(t.Context(), "C0ALERTS", a)
	require.NoError(t, err)
	assert.NotEmpty(t, ts)
	a.Status = "resolved"
	f.rateLimited = 1
	require.NoError(t, p.UpdateAlert(t.Context(), "C0ALERTS", ts, a), "a 429 is retried")
	up := f.find("chat.update")
	require.Len(t, up, 1)
	assert.Equal(t, ts, up[0].TS)
	assert.Contains(t, up[0].Blocks, "*Resolved* by")
	assert.Equal(t, "High alert: Suspicious PowerShell &lt;!channel&gt; download", f.find("chat.postMessage")[0].Text,
		"the notification text cannot ping")
}

type fakeAlerts map[string]*graph.Alert

func (f fakeAlerts) GetAlert(_ context.Context, id string) (*graph.Alert, error) {
	if a, ok := f[id]; ok {
		return a, nil
	}
	return nil, errors.New("itemNotFound")
}

func TestAlertButtonsBecomeRequests(t *testing.T) {
	a := sampleAlert()
	h := newHarness(t, func(c *Config) { c.ActionsWithoutApproval = []actions.Name{actions.UpdateAlert} })
	h.svc.deps.Alerts = fakeAlerts{a.ID: a}

	// Assign to me: update-alert, exempted here from approval, runs at once.
	cb := blockAction(analyst, actionAlertAssign, a.ID)
	cb.User.Name = "ana"
	_, err := h.svc.HandleInteraction(context.Background(), cb)
	require.NoError(t, err)
	h.svc.Wait()
	require.Len(t, h.def.runs, 1)
	assert.Equal(t, string(actions.UpdateAlert), h.def.runs[0].Action)
	assert.Equal(t, map[string]string{"alert_id": a.ID, "owner": "ana"}, h.def.runs[0].Params)

	// Isolate: a pending request on the alert's device, commented with the alert.
	h.click(t, analyst, actionAlertIsolate, a.ID)
	var pending *approval.Request
	for _, r := range h.store.all(t) {
		if r.Action == actions.Isolate {
			pending = r
		}
	}
	require.NotNil(t, pending)
	assert.Equal(t, approval.StatePending, pending.State)
	assert.Equal(t, machineID, pending.Args.MachineID)
	assert.Contains(t, pending.Args.Comment, a.ID)
	assert.Len(t, h.def.runs, 1, "nothing ran before approval")

	// A forged alert ID is ignored; an unknown one is explained.
	h.click(t, analyst, actionAlertIsolate, "<!channel>")
	h.click(t, analyst, actionAlertScan, "da999_1")
	assert.Contains(t, strings.Join(h.slack.ephemeralTo(analyst), "\n"), "Could not read alert `da999_1`")
}

func TestAlertCardListsAtMostTenDevices(t *testing.T) {
	a := sampleAlert()
	a.Evidence = nil
	for i := range 25 {
		a.Evidence = append(a.Evidence, graph.Evidence{ODataType: graph.EvidenceDevice,
			MdeDeviceID: fmt.Sprintf("%040d", i), DeviceDNSName: strings.Repeat("host", 20) + fmt.Sprint(i), RiskScore: "high"})
	}
	got := blocksJSON(t, alertCard(a, AlertCardOptions{}))
	assert.Contains(t, got, "… and 15 more (see the portal)")
	assert.NotContains(t, got, fmt.Sprintf("%040d", 10))
	assert.Contains(t, got, `"action_id": "alert_isolate"`, "the buttons stay")
}
