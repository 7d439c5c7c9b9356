package playbook_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/defenderbot/defenderbot/config"
	"github.com/defenderbot/defenderbot/defender"
	"github.com/defenderbot/defenderbot/defender/defendertest"
	"github.com/defenderbot/defenderbot/playbook"
)

// The real client satisfies the playbook's consumer interface.
var _ playbook.API = (*defender.Client)(nil)

type call struct {
	method string
	args   []any
}

type fakeAPI struct {
	calls   []call
	action  *defender.MachineAction
	alert   *defender.Alert
	err     error
	polls   []defender.ActionStatus // statuses returned by successive GetMachineAction
	pollErr error
}

func (f *fakeAPI) record(m string, args ...any) { f.calls = append(f.calls, call{m, args}) }

func (f *fakeAPI) ma() (*defender.MachineAction, error) {
	if f.err != nil {
		return nil, f.err
	}
	return f.action, nil
}

func (f *fakeAPI) IsolateMachine(_ context.Context, id, c string, t defender.IsolationType) (*defender.MachineAction, error) {
	f.record("IsolateMachine", id, c, t)
	return f.ma()
}
func (f *fakeAPI) UnisolateMachine(_ context.Context, id, c string) (*defender.MachineAction, error) {
	f.record("UnisolateMachine", id, c)
	return f.ma()
}
func (f *fakeAPI) RestrictCodeExecution(_ context.Context, id, c string) (*defender.MachineAction, error) {
	f.record("RestrictCodeExecution", id, c)
	return f.ma()
}
func (f *fakeAPI) UnrestrictCodeExecution(_ context.Context, id, c string) (*defender.MachineAction, error) {
	f.record("UnrestrictCodeExecution", id, c)
	return f.ma()
}
func (f *fakeAPI) RunAntivirusScan(_ context.Context, id, c string, t defender.ScanType) (*defender.MachineAction, error) {
	f.record("RunAntivirusScan", id, c, t)
	return f.ma()
}
func (f *fakeAPI) GetMachineAction(_ context.Context, id string) (*defender.MachineAction, error) {
	f.record("GetMachineAction", id)
	if f.pollErr != nil {
		return nil, f.pollErr
	}
	if len(f.polls) > 0 {
		a := *f.action
		a.Status = f.polls[0]
		if len(f.polls) > 1 {
			f.polls = f.polls[1:]
		}
		return &a, nil
	}
	return f.ma()
}
func (f *fakeAPI) CancelMachineAction(_ context.Context, id, c string) (*defender.MachineAction, error) {
	f.record("CancelMachineAction", id, c)
	return f.ma()
}
func (f *fakeAPI) UpdateAlert(_ context.Context, id string, u defender.AlertUpdate) (*defender.Alert, error) {
	f.record("UpdateAlert", id, u)
	if f.err != nil {
		return nil, f.err
	}
	return f.alert, nil
}
func (f *fakeAPI) CommentAlert(_ context.Context, id, c string) (*defender.Alert, error) {
	f.record("CommentAlert", id, c)
	if f.err != nil {
		return nil, f.err
	}
	return f.alert, nil
}

func strp(s string) *string { return &s }

const machineID = "1e5bc9d7e413ddd7902c2932e418702b84d0cc07"

func sampleAction() *defender.MachineAction {
	return &defender.MachineAction{
		ID: "6b001073-5500-4205-8287-6f1184936f67", Type: "Isolate", Title: nil, Scope: strp("Full"),
		Requestor: "Defender for Endpoint API", RequestorComment: "c", Status: defender.StatusPending,
		MachineID: machineID, ComputerDNSName: "ws1", Raw: json.RawMessage(`{"id":"6b001073-5500-4205-8287-6f1184936f67","@odata.context":"x"}`),
	}
}

func sampleAlert() *defender.Alert {
	return &defender.Alert{
		ID: "da637472900382838869_1364969609", Title: "Suspicious PowerShell", Description: "desc",
		Status: "Resolved", Classification: strp("TruePositive"), Determination: nil, Category: "Execution",
		Raw: json.RawMessage(`{"id":"da637472900382838869_1364969609"}`),
	}
}

func TestNamesAndLookup(t *testing.T) {
	names := playbook.Names()
	require.Len(t, names, 9)
	var s []string
	for _, n := range names {
		s = append(s, string(n))
		got, ok := playbook.Lookup(string(n))
		assert.True(t, ok)
		assert.Equal(t, n, got)
		assert.NotEmpty(t, n.Title())
		assert.NotEmpty(t, n.Outputs())
	}
	assert.ElementsMatch(t, config.PlaybookActions, s, "config.PlaybookActions must list the playbook's actions")

	for in, want := range map[string]playbook.Name{
		"ISOLATE": playbook.Isolate, "restrict_code_execution": playbook.RestrictCodeExecution,
		"isolate_endpoint": playbook.Isolate, "get_action_info": playbook.GetAction, "unisolate": playbook.Deisolate,
		" scan ": playbook.Scan,
	} {
		got, ok := playbook.Lookup(in)
		assert.True(t, ok, in)
		assert.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "reboot", "push-iocs", "isolate;rm"} {
		_, ok := playbook.Lookup(in)
		assert.False(t, ok, in)
	}
}

func TestNameProperties(t *testing.T) {
	var readOnly, machine []playbook.Name
	for _, n := range playbook.Names() {
		if n.ReadOnly() {
			readOnly = append(readOnly, n)
		}
		if n.TargetsMachine() {
			machine = append(machine, n)
		}
	}
	assert.Equal(t, []playbook.Name{playbook.GetAction}, readOnly)
	assert.ElementsMatch(t, []playbook.Name{playbook.Isolate, playbook.Deisolate, playbook.RestrictCodeExecution,
		playbook.UnrestrictCodeExecution, playbook.Scan}, machine)
	assert.Equal(t, "Isolate a machine", playbook.Isolate.Title())
	assert.Equal(t, "Get action info", playbook.GetAction.Title())
	assert.Equal(t, []string{"id", "type", "scope", "status", "requestor", "title", "machineid"}, playbook.Scan.Outputs())
	assert.Equal(t, []string{"id"}, playbook.CommentAlert.Outputs())
	assert.Equal(t, []string{"machine_id", "comment", "scan_type"}, playbook.Scan.RequiredArgs())
}

func TestArgsMapRoundTrip(t *testing.T) {
	a := playbook.Args{AlertID: "a", Comment: "c", MachineID: "m", IsolationType: "Full", ScanType: "Quick",
		ActionID: "x", Status: "New", Classification: "TruePositive", Determination: "Malware", Owner: "o@x"}
	m := a.Map()
	assert.Len(t, m, 10)
	assert.Equal(t, a, playbook.ArgsFromMap(m))
	js, err := json.Marshal(a)
	require.NoError(t, err)
	var back map[string]string
	require.NoError(t, json.Unmarshal(js, &back))
	assert.Equal(t, m, back, "JSON names are the seed's argument names")
	assert.Equal(t, map[string]string{"machine_id": "m"}, playbook.Args{MachineID: "m"}.Map())

	_, err = playbook.ArgsFromMapStrict(map[string]string{"machineid": "m"})
	assert.ErrorIs(t, err, playbook.ErrInvalidArgs)
	assert.ErrorContains(t, err, `unknown argument "machineid"`)
}

func TestNormalize(t *testing.T) {
	tests := []struct {
		name    string
		n       playbook.Name
		in      playbook.Args
		want    playbook.Args
		wantErr string
	}{
		{"isolate default", playbook.Isolate, playbook.Args{MachineID: " m1 ", Comment: " why "},
			playbook.Args{MachineID: "m1", Comment: "why", IsolationType: "Full"}, ""},
		{"isolate selective", playbook.Isolate, playbook.Args{MachineID: "m1", Comment: "c", IsolationType: "selective"},
			playbook.Args{MachineID: "m1", Comment: "c", IsolationType: "Selective"}, ""},
		{"isolate bad type", playbook.Isolate, playbook.Args{MachineID: "m1", Comment: "c", IsolationType: "partial"},
			playbook.Args{}, `isolate: isolation_type "partial" is not allowed (Full, Selective or UnManagedDevice)`},
		{"isolate no machine", playbook.Isolate, playbook.Args{Comment: "c"}, playbook.Args{}, "isolate: machine_id is required"},
		{"isolate no comment", playbook.Isolate, playbook.Args{MachineID: "m"}, playbook.Args{}, "isolate: comment is required"},
		{"isolate extra arg", playbook.Isolate, playbook.Args{MachineID: "m", Comment: "c", ScanType: "Quick"}, playbook.Args{},
			"isolate: scan_type is not an argument of isolate (it takes machine_id, comment, isolation_type)"},
		{"machine id path", playbook.Deisolate, playbook.Args{MachineID: "../alerts", Comment: "c"}, playbook.Args{}, `machine_id must not contain ".."`},
		{"machine id slash", playbook.Deisolate, playbook.Args{MachineID: "a/b", Comment: "c"}, playbook.Args{}, `machine_id must not contain '/'`},
		{"machine id space", playbook.RestrictCodeExecution, playbook.Args{MachineID: "a b", Comment: "c"}, playbook.Args{}, "must not contain spaces"},
		{"comment control", playbook.UnrestrictCodeExecution, playbook.Args{MachineID: "m", Comment: "a\x00b"}, playbook.Args{}, "comment must not contain control characters"},
		{"scan", playbook.Scan, playbook.Args{MachineID: "m", Comment: "c", ScanType: "QUICK"},
			playbook.Args{MachineID: "m", Comment: "c", ScanType: "Quick"}, ""},
		{"scan missing type", playbook.Scan, playbook.Args{MachineID: "m", Comment: "c"}, playbook.Args{}, "scan: scan_type is required (Quick or Full)"},
		{"scan bad type", playbook.Scan, playbook.Args{MachineID: "m", Comment: "c", ScanType: "deep"}, playbook.Args{}, `scan_type "deep" is not allowed (Quick or Full)`},
		{"get action", playbook.GetAction, playbook.Args{ActionID: "a1"}, playbook.Args{ActionID: "a1"}, ""},
		{"get action missing", playbook.GetAction, playbook.Args{}, playbook.Args{}, "get-action: action_id is required"},
		{"get action comment", playbook.GetAction, playbook.Args{ActionID: "a1", Comment: "c"}, playbook.Args{}, "comment is not an argument of get-action"},
		{"cancel", playbook.CancelAction, playbook.Args{ActionID: "a1"}, playbook.Args{}, "cancel-action: comment is required"},
		{"comment alert", playbook.CommentAlert, playbook.Args{AlertID: "al", Comment: "c"}, playbook.Args{AlertID: "al", Comment: "c"}, ""},
		{"comment alert missing", playbook.CommentAlert, playbook.Args{AlertID: "al"}, playbook.Args{}, "comment-alert: comment is required"},
		{"update nothing", playbook.UpdateAlert, playbook.Args{AlertID: "al"}, playbook.Args{},
			"update-alert needs at least one of status, classification, determination, comment, owner"},
		{"update canonical", playbook.UpdateAlert,
			playbook.Args{AlertID: "al", Status: "in progress", Classification: "truepositive", Determination: "MALWARE"},
			playbook.Args{AlertID: "al", Status: "InProgress", Classification: "TruePositive", Determination: "Malware"}, ""},
		{"update owner only", playbook.UpdateAlert, playbook.Args{AlertID: "al", Owner: "a@b.c"}, playbook.Args{AlertID: "al", Owner: "a@b.c"}, ""},
		{"update bad status", playbook.UpdateAlert, playbook.Args{AlertID: "al", Status: "closed"}, playbook.Args{},
			`status "closed" is not allowed (New, InProgress or Resolved)`},
		{"update bad classification", playbook.UpdateAlert, playbook.Args{AlertID: "al", Classification: "maybe"}, playbook.Args{},
			`classification "maybe" is not allowed`},
		{"determination needs classification", playbook.UpdateAlert, playbook.Args{AlertID: "al", Determination: "Malware"}, playbook.Args{},
			"determination requires classification"},
		{"determination mismatch", playbook.UpdateAlert, playbook.Args{AlertID: "al", Classification: "FalsePositive", Determination: "Malware"}, playbook.Args{},
			`determination "Malware" does not match classification FalsePositive (allowed: NotMalicious, Clean, InsufficientData, Other)`},
		{"unknown action", playbook.Name("reboot"), playbook.Args{}, playbook.Args{}, `unknown action "reboot"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := playbook.Normalize(tt.n, tt.in)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.ErrorIs(t, err, playbook.ErrInvalidArgs)
				assert.ErrorIs(t, err, defender.ErrInvalidArgument)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestRunCallsTheClientAndShapesOutput(t *testing.T) {
	type want struct {
		call   call
		output map[string]any
	}
	maOut := map[string]any{"id": "6b001073-5500-4205-8287-6f1184936f67", "type": "Isolate", "status": "Pending",
		"requestor": "Defender for Endpoint API", "title": nil, "machineid": machineID}
	scoped := map[string]any{"scope": "Full"}
	for k, v := range maOut {
		scoped[k] = v
	}
	tests := []struct {
		n    playbook.Name
		args playbook.Args
		want want
	}{
		{playbook.Isolate, playbook.Args{MachineID: machineID, Comment: "c"}, want{call{"IsolateMachine", []any{machineID, "c", defender.IsolationFull}}, scoped}},
		{playbook.Deisolate, playbook.Args{MachineID: machineID, Comment: "c"}, want{call{"UnisolateMachine", []any{machineID, "c"}}, maOut}},
		{playbook.RestrictCodeExecution, playbook.Args{MachineID: machineID, Comment: "c"}, want{call{"RestrictCodeExecution", []any{machineID, "c"}}, maOut}},
		{playbook.UnrestrictCodeExecution, playbook.Args{MachineID: machineID, Comment: "c"}, want{call{"UnrestrictCodeExecution", []any{machineID, "c"}}, maOut}},
		{playbook.Scan, playbook.Args{MachineID: machineID, Comment: "c", ScanType: "full"}, want{call{"RunAntivirusScan", []any{machineID, "c", defender.ScanFull}}, scoped}},
		{playbook.GetAction, playbook.Args{ActionID: "a1"}, want{call{"GetMachineAction", []any{"a1"}}, maOut}},
		{playbook.CancelAction, playbook.Args{ActionID: "a1", Comment: "oops"}, want{call{"CancelMachineAction", []any{"a1", "oops"}}, maOut}},
		{playbook.CommentAlert, playbook.Args{AlertID: "al1", Comment: "seen"}, want{call{"CommentAlert", []any{"al1", "seen"}},
			map[string]any{"id": "da637472900382838869_1364969609"}}},
		{playbook.UpdateAlert, playbook.Args{AlertID: "al1", Status: "resolved", Classification: "TruePositive", Determination: "malware", Owner: "me@x"},
			want{call{"UpdateAlert", []any{"al1", defender.AlertUpdate{Status: strp("Resolved"), AssignedTo: strp("me@x"),
				Classification: strp("TruePositive"), Determination: strp("Malware")}}},
				map[string]any{"id": "da637472900382838869_1364969609", "title": "Suspicious PowerShell", "description": "desc",
					"status": "Resolved", "classification": "TruePositive", "determination": nil, "category": "Execution"}}},
	}
	covered := map[playbook.Name]bool{}
	for _, tt := range tests {
		t.Run(string(tt.n), func(t *testing.T) {
			covered[tt.n] = true
			api := &fakeAPI{action: sampleAction(), alert: sampleAlert()}
			res, err := playbook.NewRunner(api).Run(context.Background(), tt.n, tt.args)
			require.NoError(t, err)
			require.Len(t, api.calls, 1)
			assert.Equal(t, tt.want.call, api.calls[0])
			assert.Equal(t, tt.want.output, res.Output)
			keys := make([]string, 0, len(res.Output))
			for k := range res.Output {
				keys = append(keys, k)
			}
			assert.ElementsMatch(t, tt.n.Outputs(), keys)
			assert.NotEmpty(t, res.Raw)
			if tt.n.TargetsAlert() {
				assert.NotNil(t, res.Alert)
			} else {
				assert.NotNil(t, res.MachineAction)
			}
		})
	}
	assert.Len(t, covered, len(playbook.Names()), "every action is covered")
}

func TestRunInvalidArgsSendsNothing(t *testing.T) {
	api := &fakeAPI{action: sampleAction()}
	_, err := playbook.NewRunner(api).Run(context.Background(), playbook.Scan, playbook.Args{MachineID: "m", Comment: "c"})
	require.ErrorIs(t, err, playbook.ErrInvalidArgs)
	assert.Empty(t, api.calls)
}

func TestRunPassesDefenderErrors(t *testing.T) {
	apiErr := &defender.APIError{StatusCode: 404, Code: "ResourceNotFound", Message: "Machine 123 was not found"}
	api := &fakeAPI{err: apiErr}
	_, err := playbook.NewRunner(api).Run(context.Background(), playbook.Isolate, playbook.Args{MachineID: "123", Comment: "c"})
	var got *defender.APIError
	require.ErrorAs(t, err, &got)
	assert.Equal(t, "ResourceNotFound", got.Code)
	assert.False(t, errors.Is(err, playbook.ErrInvalidArgs))

	_, err = playbook.NewRunner(&fakeAPI{}).Run(context.Background(), playbook.CommentAlert, playbook.Args{AlertID: "a", Comment: "c"})
	assert.ErrorIs(t, err, playbook.ErrNoResponse)
	_, err = playbook.NewRunner(&fakeAPI{}).Run(context.Background(), playbook.GetAction, playbook.Args{ActionID: "a"})
	assert.ErrorIs(t, err, playbook.ErrNoResponse)
}

func TestWait(t *testing.T) {
	api := &fakeAPI{action: sampleAction(), polls: []defender.ActionStatus{defender.StatusPending, defender.StatusInProgress, defender.StatusSucceeded}}
	res, err := playbook.NewRunner(api).Wait(context.Background(), playbook.Isolate, "a1", time.Millisecond)
	require.NoError(t, err)
	assert.Equal(t, "Succeeded", res.Output["status"])
	assert.Contains(t, res.Output, "scope", "output follows the waited action's fields")
	assert.Len(t, api.calls, 3)
}

func TestWaitTimeoutReturnsLastStatus(t *testing.T) {
	api := &fakeAPI{action: sampleAction(), polls: []defender.ActionStatus{defender.StatusInProgress}}
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	// Cancel after a few polls instead of relying on wall-clock time.
	wrapped := &cancelAfter{fakeAPI: api, n: 3, cancel: cancel, count: &calls}
	res, err := playbook.NewRunner(wrapped).Wait(ctx, playbook.GetAction, "a1", time.Millisecond)
	require.ErrorIs(t, err, context.Canceled)
	require.NotNil(t, res)
	assert.Equal(t, "InProgress", res.Output["status"])
	assert.ErrorContains(t, err, "still InProgress")
}

type cancelAfter struct {
	*fakeAPI
	n      int
	count  *int
	cancel context.CancelFunc
}

func (c *cancelAfter) GetMachineAction(ctx context.Context, id string) (*defender.MachineAction, error) {
	*c.count++
	if *c.count >= c.n {
		c.cancel()
	}
	return c.fakeAPI.GetMachineAction(ctx, id)
}

func TestWaitErrors(t *testing.T) {
	r := playbook.NewRunner(&fakeAPI{action: sampleAction(), pollErr: fmt.Errorf("boom")})
	_, err := r.Wait(context.Background(), playbook.Scan, "a1", time.Millisecond)
	assert.ErrorContains(t, err, "boom")
	_, err = r.Wait(context.Background(), playbook.CommentAlert, "a1", time.Millisecond)
	assert.ErrorIs(t, err, playbook.ErrInvalidArgs)
	_, err = r.Wait(context.Background(), playbook.Scan, "a/1", time.Millisecond)
	assert.ErrorIs(t, err, playbook.ErrInvalidArgs)
	_, err = r.Wait(context.Background(), playbook.Scan, "a1", 0)
	assert.ErrorIs(t, err, playbook.ErrInvalidArgs)
}

func TestDescribe(t *testing.T) {
	tests := []struct {
		n    playbook.Name
		a    playbook.Args
		want string
	}{
		{playbook.Isolate, playbook.Args{MachineID: machineID, Comment: "suspicious\nbeaconing"}, "Isolate machine 1e5bc9d7… (Full): suspicious beaconing"},
		{playbook.Isolate, playbook.Args{MachineID: "short", Comment: "c", IsolationType: "selective"}, "Isolate machine short (Selective): c"},
		{playbook.Deisolate, playbook.Args{MachineID: "m1", Comment: "clean"}, "Release machine m1 from isolation: clean"},
		{playbook.RestrictCodeExecution, playbook.Args{MachineID: "m1", Comment: "c"}, "Restrict code execution on machine m1: c"},
		{playbook.UnrestrictCodeExecution, playbook.Args{MachineID: "m1", Comment: "c"}, "Remove the code execution restriction on machine m1: c"},
		{playbook.Scan, playbook.Args{MachineID: "m1", Comment: "c", ScanType: "quick"}, "Run a Quick antivirus scan on machine m1: c"},
		{playbook.GetAction, playbook.Args{ActionID: "a1"}, "Get the status of machine action a1"},
		{playbook.CancelAction, playbook.Args{ActionID: "a1", Comment: "mistake"}, "Cancel machine action a1: mistake"},
		{playbook.CommentAlert, playbook.Args{AlertID: "al1", Comment: "seen"}, "Comment alert al1: seen"},
		{playbook.UpdateAlert, playbook.Args{AlertID: "al1", Status: "resolved", Classification: "falsepositive", Determination: "other"},
			"Update alert al1 (status Resolved, classification FalsePositive, determination Other)"},
		{playbook.Name("nope"), playbook.Args{}, `Unknown action "nope"`},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, playbook.Describe(tt.n, tt.a))
	}
	long := playbook.Describe(playbook.CommentAlert, playbook.Args{AlertID: "a", Comment: string(slices.Repeat([]byte("x"), 500))})
	assert.Less(t, len([]rune(long)), 160)
}

// MachineActionType must be the type Defender records for each action, or a
// request left "executing" by a crash could not be found again. The emulator
// spells the types independently of the defender package.
func TestMachineActionTypeIsWhatDefenderRecords(t *testing.T) {
	for _, n := range playbook.Names() {
		if !n.TargetsMachine() {
			assert.Empty(t, n.MachineActionType(), n)
			continue
		}
		t.Run(string(n), func(t *testing.T) {
			emu := defendertest.NewServer(t)
			emu.AddSampleData()
			client, err := defender.New(defender.Config{
				BaseURL: emu.URL, AuthorityHost: emu.URL, TenantID: defendertest.TenantID,
				ClientID: defendertest.ClientID, ClientSecret: defendertest.ClientSecret,
			}, defender.WithHTTPClient(emu.HTTPClient()))
			require.NoError(t, err)
			args := playbook.Args{MachineID: defendertest.SampleMachineID1, Comment: "type check"}
			if n == playbook.Scan {
				args.ScanType = "Quick"
			}
			res, err := playbook.NewRunner(client).Run(context.Background(), n, args)
			require.NoError(t, err)
			require.NotNil(t, res.MachineAction)
			assert.NotEmpty(t, n.MachineActionType())
			assert.Equal(t, res.MachineAction.Type, n.MachineActionType())
		})
	}
}
