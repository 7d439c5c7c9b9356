package machineinfo_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/defenderbot/defenderbot/defender"
	"github.com/defenderbot/defenderbot/defender/defendertest"
	"github.com/defenderbot/defenderbot/machineinfo"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// gatedAPI answers each look-up when its gate is closed (or at once when nil).
type gatedAPI struct {
	machineGate, alertsGate, actionsGate chan struct{}
	machine                              *defender.Machine
	alerts                               []defender.Alert
	actions                              []defender.MachineAction
	machineErr, alertsErr, actionsErr    error
}

func wait(ctx context.Context, gate chan struct{}) error {
	if gate == nil {
		return nil
	}
	select {
	case <-gate:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *gatedAPI) GetMachine(ctx context.Context, _ string) (*defender.Machine, error) {
	if err := wait(ctx, g.machineGate); err != nil {
		return nil, err
	}
	return g.machine, g.machineErr
}

func (g *gatedAPI) ListMachineAlerts(ctx context.Context, _ string, openOnly bool) ([]defender.Alert, error) {
	if !openOnly {
		return nil, errors.New("asked for resolved alerts too")
	}
	if err := wait(ctx, g.alertsGate); err != nil {
		return nil, err
	}
	return g.alerts, g.alertsErr
}

func (g *gatedAPI) LatestMachineActions(ctx context.Context, _ string, n int) ([]defender.MachineAction, error) {
	if err := wait(ctx, g.actionsGate); err != nil {
		return nil, err
	}
	if n != 5 {
		return nil, errors.New("unexpected n")
	}
	return g.actions, g.actionsErr
}

func TestLookup_partsAreIndependent(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	api := &gatedAPI{
		machine:    &defender.Machine{ID: "m1", ComputerDNSName: "host", LastSeen: now.Add(-time.Hour)},
		alertsGate: make(chan struct{}),
		actionsErr: errors.New("defender: 500"),
	}
	timer := make(chan time.Time)
	l := machineinfo.Start(t.Context(), api, "m1", machineinfo.Options{Actions: 5, Timeout: time.Minute, Now: func() time.Time { return now },
		After: func(d time.Duration) <-chan time.Time {
			assert.Equal(t, 2*time.Second, d)
			return timer
		}})

	require.Eventually(t, func() bool {
		i := l.Snapshot()
		return i.Machine.Done && i.Actions.Done
	}, 5*time.Second, time.Millisecond, "the quick look-ups finish")
	got := make(chan machineinfo.Info)
	go func() { got <- l.Wait(t.Context(), 2*time.Second) }()
	timer <- now // the 2 s pass while alerts are still loading
	info := <-got
	assert.False(t, info.Complete())
	assert.True(t, info.Machine.OK())
	assert.Equal(t, "host", info.Machine.Value.ComputerDNSName)
	assert.False(t, info.Alerts.Done, "still loading")
	assert.True(t, info.Actions.Done)
	assert.Error(t, info.Actions.Err, "a failed look-up is reported, not fatal")
	assert.Equal(t, now, info.At)
	select {
	case <-l.Done():
		t.Fatal("done before the alerts came")
	default:
	}

	api.alerts = []defender.Alert{
		{ID: "old", Status: "New", AlertCreationTime: now.Add(-2 * time.Hour)},
		{ID: "resolved", Status: "Resolved", AlertCreationTime: now},
		{ID: "new", Status: "InProgress", AlertCreationTime: now.Add(-time.Hour)},
	}
	close(api.alertsGate)
	<-l.Done()
	info = l.Snapshot()
	require.True(t, info.Complete())
	require.True(t, info.Alerts.OK())
	var ids []string
	for _, a := range info.Alerts.Value {
		ids = append(ids, a.ID)
	}
	assert.Equal(t, []string{"new", "old"}, ids, "open only, newest first")
}

// Options without Timeout or Actions (config supplies both) fail every
// look-up at once with a clear error instead of guessing a value.
func TestLookup_requiresOptions(t *testing.T) {
	api := &gatedAPI{machineGate: make(chan struct{}), alertsGate: make(chan struct{}), actionsGate: make(chan struct{})}
	for _, opts := range []machineinfo.Options{{Actions: 5}, {Timeout: time.Minute}} {
		l := machineinfo.Start(t.Context(), api, "m1", opts)
		<-l.Done()
		info := l.Snapshot()
		for _, err := range []error{info.Machine.Err, info.Alerts.Err, info.Actions.Err} {
			assert.ErrorIs(t, err, machineinfo.ErrOptions)
		}
	}
}

func TestLookup_timeoutAndCancel(t *testing.T) {
	api := &gatedAPI{machineGate: make(chan struct{}), alertsGate: make(chan struct{}), actionsGate: make(chan struct{})}
	l := machineinfo.Start(t.Context(), api, "m1", machineinfo.Options{Actions: 5, Timeout: time.Millisecond})
	<-l.Done()
	info := l.Snapshot()
	for _, err := range []error{info.Machine.Err, info.Alerts.Err, info.Actions.Err} {
		assert.ErrorIs(t, err, machineinfo.ErrTimeout)
	}

	ctx, cancel := context.WithCancel(t.Context())
	l = machineinfo.Start(ctx, api, "m1", machineinfo.Options{Actions: 5, Timeout: time.Hour})
	cancel()
	<-l.Done()
	info = l.Wait(t.Context(), time.Hour)
	assert.ErrorIs(t, info.Machine.Err, context.Canceled)
}

func TestInfo_derivedFacts(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	act := func(id, typ string, st defender.ActionStatus) defender.MachineAction {
		return defender.MachineAction{ID: id, Type: typ, Status: st}
	}
	tests := []struct {
		name                 string
		actions              []defender.MachineAction
		isolated, restricted bool
		isoLast, isoPending  string
		resLast, running     string
	}{
		{name: "nothing"},
		{name: "isolated", actions: []defender.MachineAction{act("2", "RunAntiVirusScan", "Succeeded"), act("1", "Isolate", "Succeeded")},
			isolated: true, isoLast: "1"},
		{name: "released since", actions: []defender.MachineAction{act("2", "Unisolate", "Succeeded"), act("1", "Isolate", "Succeeded")},
			isoLast: "2"},
		{name: "release pending", actions: []defender.MachineAction{act("2", "Unisolate", "InProgress"), act("1", "Isolate", "Succeeded")},
			isolated: true, isoLast: "1", isoPending: "2", running: "2"},
		{name: "failed isolate does not count", actions: []defender.MachineAction{act("2", "Isolate", "Failed"), act("1", "Unisolate", "Succeeded")},
			isoLast: "1"},
		{name: "restricted", actions: []defender.MachineAction{act("3", "RestrictCodeExecution", "Succeeded"), act("2", "Isolate", "Pending")},
			restricted: true, resLast: "3", isoPending: "2", running: "2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			info := machineinfo.Info{At: now, Actions: machineinfo.Part[[]defender.MachineAction]{Value: tc.actions, Done: true}}
			iso, res := info.Isolation(), info.Restriction()
			assert.Equal(t, tc.isolated, iso.Active)
			assert.Equal(t, tc.restricted, res.Active)
			assert.Equal(t, tc.isoLast, idOf(iso.Last))
			assert.Equal(t, tc.isoPending, idOf(iso.Pending))
			assert.Equal(t, tc.resLast, idOf(res.Last))
			var running string
			for _, a := range info.Running() {
				running += a.ID
			}
			assert.Equal(t, tc.running, running)
		})
	}

	m := machineinfo.Part[*defender.Machine]{Value: &defender.Machine{LastSeen: now.Add(-30 * 24 * time.Hour)}, Done: true}
	assert.True(t, machineinfo.Info{At: now, Machine: m}.Stale(7*24*time.Hour), "30 days")
	assert.False(t, machineinfo.Info{At: now, Machine: m}.Stale(31*24*time.Hour))
	m.Value = &defender.Machine{LastSeen: now.Add(-time.Hour)}
	assert.False(t, machineinfo.Info{At: now, Machine: m}.Stale(7*24*time.Hour))
	m.Err = errors.New("x")
	assert.False(t, machineinfo.Info{At: now, Machine: m}.Stale(7*24*time.Hour), "unknown is not stale")
}

func idOf(a *defender.MachineAction) string {
	if a == nil {
		return ""
	}
	return a.ID
}

// Against the emulator through the real client: the look-ups Defender documents.
func TestLookup_emulator(t *testing.T) {
	srv := defendertest.NewServer(t)
	srv.AddSampleData()
	c, err := defender.New(srv.ClientConfig(), defender.WithHTTPClient(srv.HTTPClient()))
	require.NoError(t, err)
	_, err = c.IsolateMachine(t.Context(), defendertest.SampleMachineID1, "isolate (defenderbot request r1, U1)", "")
	require.NoError(t, err)

	l := machineinfo.Start(t.Context(), c, defendertest.SampleMachineID1, machineinfo.Options{Timeout: time.Minute, Actions: 10})
	<-l.Done()
	info := l.Snapshot()
	require.True(t, info.Machine.OK(), "%v", info.Machine.Err)
	require.True(t, info.Alerts.OK(), "%v", info.Alerts.Err)
	require.True(t, info.Actions.OK(), "%v", info.Actions.Err)
	assert.Equal(t, "finance-laptop-01.contoso.com", info.Machine.Value.ComputerDNSName)
	require.Len(t, info.Alerts.Value, 1)
	assert.Equal(t, defendertest.SampleAlertID1, info.Alerts.Value[0].ID)
	require.NotNil(t, info.Isolation().Pending)
	assert.Len(t, info.Running(), 1)

	// an unknown machine: every part fails on its own
	l = machineinfo.Start(t.Context(), c, "0000000000000000000000000000000000000000", machineinfo.Options{Timeout: time.Minute, Actions: 10})
	<-l.Done()
	info = l.Snapshot()
	assert.True(t, defender.IsNotFound(info.Machine.Err))
	assert.True(t, defender.IsNotFound(info.Alerts.Err))
	assert.True(t, info.Actions.OK(), "no actions is not an error")
}
