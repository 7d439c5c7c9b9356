package bot

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/defenderbot/defenderbot/approval"
	"github.com/defenderbot/defenderbot/config"
	"github.com/defenderbot/defenderbot/defender"
	"github.com/defenderbot/defenderbot/machineinfo"
	"github.com/defenderbot/defenderbot/store/storetest"
)

// sampleInfo is a complete context: an isolated, stale, risky laptop with
// four open alerts and a scan running.
func sampleInfo() machineinfo.Info {
	at := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	group, build := "Finance <EU>", int64(22631)
	return machineinfo.Info{
		MachineID: machineID,
		At:        at,
		Machine: machineinfo.Part[*defender.Machine]{Done: true, Value: &defender.Machine{
			ID: machineID, ComputerDNSName: "ws-001.contoso.com", OSPlatform: "Windows11", Version: "23H2", OSBuild: &build,
			HealthStatus: "Active", RiskScore: "High", ExposureLevel: "Medium", LastSeen: at.Add(-30 * 24 * time.Hour),
			LastIPAddress: "10.0.1.15", RBACGroupName: &group, MachineTags: []string{"finance", "vip"},
		}},
		Alerts: machineinfo.Part[[]defender.Alert]{Done: true, Value: []defender.Alert{
			{Title: "Suspicious PowerShell <script>", Severity: "High"},
			{Title: "Connection to a known malicious IP", Severity: "Medium"},
			{Title: "Credential dumping", Severity: "High"},
			{Title: "Fourth alert", Severity: "Low"},
		}},
		Actions: machineinfo.Part[[]defender.MachineAction]{Done: true, Value: []defender.MachineAction{
			{ID: "a3", Type: "RunAntiVirusScan", Status: defender.StatusInProgress, Requestor: "analyst@contoso.com"},
			{ID: "a2", Type: "Isolate", Status: defender.StatusSucceeded, LastUpdateDateTimeUTC: at.Add(-3 * time.Hour),
				RequestorComment: "beacon (defenderbot request 11111111-2222-3333-4444-555555555555, approved by U2)"},
		}},
	}
}

func TestRenderContextGolden(t *testing.T) {
	cases := map[string]func() any{
		"approval_context": func() any {
			info := sampleInfo()
			return renderApprovalWith(sampleRequest(approval.StatePending), &info, config.StaleAfter, config.CardAlerts)
		},
		"approval_context_partial": func() any {
			info := sampleInfo()
			info.Machine.Value.LastSeen = info.At.Add(-5 * time.Minute)
			info.Alerts = machineinfo.Part[[]defender.Alert]{Done: true, Err: errors.New("defender: 500 InternalServerError")}
			info.Actions = machineinfo.Part[[]defender.MachineAction]{}
			return renderApprovalWith(sampleRequest(approval.StatePending), &info, config.StaleAfter, config.CardAlerts)
		},
		"undo_offer": func() any {
			r := sampleRequest(approval.StateSucceeded)
			_, blocks := renderUndoOffer(r)
			return blocks
		},
		"undo_modal": func() any { return undoModal(sampleRequest(approval.StateSucceeded), "CSOC", "1700000000.000100") },
		"approval_undone": func() any {
			orig := sampleRequest(approval.StateSucceeded)
			orig.Approvals, orig.MachineActionID, orig.MachineActionStatus = []approval.Vote{{UserID: approver1}}, "ma-1", "Succeeded"
			undo := &approval.Request{ID: "9c0ffee0-0000-4000-8000-000000000001", Action: "deisolate", RequesterID: approver2}
			return renderUndone(orig, undo, sampleInfo().At, config.StaleAfter)
		},
		"approval_context_unavailable": func() any {
			info := machineinfo.Info{At: sampleInfo().At,
				Machine: machineinfo.Part[*defender.Machine]{Done: true, Err: machineinfo.ErrTimeout},
				Alerts:  machineinfo.Part[[]defender.Alert]{Done: true, Err: &defender.APIError{StatusCode: 404, Code: "ResourceNotFound"}},
				Actions: machineinfo.Part[[]defender.MachineAction]{Done: true},
			}
			return renderApprovalWith(sampleRequest(approval.StatePending), &info, config.StaleAfter, config.CardAlerts)
		},
	}
	for name, f := range cases {
		t.Run(name, func(t *testing.T) { golden(t, name, f()) })
	}
}

func TestAgo(t *testing.T) {
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	for d, want := range map[time.Duration]string{
		10 * time.Second: "just now", time.Minute: "1 minute ago", 59 * time.Minute: "59 minutes ago",
		time.Hour: "1 hour ago", 47 * time.Hour: "47 hours ago", 72 * time.Hour: "3 days ago",
	} {
		assert.Equal(t, want, ago(now, now.Add(-d)), d)
	}
}

func TestCardInfoIsForgottenAfterTwoTTLs(t *testing.T) {
	s := &Service{cfg: Config{TTL: time.Hour}, cards: map[string]machineinfo.Info{},
		deps: Deps{Store: storetest.OpenSQLite(t)}, log: slog.New(slog.DiscardHandler)}
	ctx := context.Background()
	cached := func(id string) bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		_, ok := s.cards[id]
		return ok
	}
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	s.setCardInfo(ctx, "old", machineinfo.Info{At: t0})
	s.setCardInfo(ctx, "recent", machineinfo.Info{At: t0.Add(90 * time.Minute)})
	assert.True(t, cached("old"))
	s.setCardInfo(ctx, "new", machineinfo.Info{At: t0.Add(3 * time.Hour)})
	assert.False(t, cached("old"), "decided elsewhere long ago")
	assert.True(t, cached("recent"))
	assert.True(t, cached("new"))
	s.dropCardInfo("new")
	assert.False(t, cached("new"))
	// What this replica forgot, the store still has (another replica's card).
	got := s.cardInfo(ctx, "old")
	require.NotNil(t, got)
	assert.True(t, got.At.Equal(t0))
	assert.Nil(t, s.cardInfo(ctx, "never"))
}

// A card's context read back from the store renders as it did where it was
// looked up, failed look-ups included.
func TestCardInfoRoundTripsThroughTheStore(t *testing.T) {
	at := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	info := machineinfo.Info{MachineID: "m1", At: at,
		Machine: machineinfo.Part[*defender.Machine]{Done: true, Value: &defender.Machine{ID: "m1", ComputerDNSName: "host.contoso.com", OSPlatform: "Windows11"}},
		Alerts:  machineinfo.Part[[]defender.Alert]{Done: true, Err: machineinfo.ErrTimeout},
		Actions: machineinfo.Part[[]defender.MachineAction]{Done: false},
	}
	roundTrip := func(info machineinfo.Info) machineinfo.Info {
		data, err := json.Marshal(wireOf(info))
		require.NoError(t, err)
		var w wireInfo
		require.NoError(t, json.Unmarshal(data, &w))
		return w.info()
	}
	complete := sampleInfo()
	assert.Equal(t, renderContext(complete, 7*24*time.Hour, config.CardAlerts), renderContext(roundTrip(complete), 7*24*time.Hour, config.CardAlerts))
	back := roundTrip(info)
	assert.Equal(t, renderContext(info, 7*24*time.Hour, config.CardAlerts), renderContext(back, 7*24*time.Hour, config.CardAlerts))
	rendered, err := json.Marshal(renderContext(back, 7*24*time.Hour, config.CardAlerts))
	require.NoError(t, err)
	assert.Contains(t, string(rendered), "did not answer in time")
}
