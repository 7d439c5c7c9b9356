package actions_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/defenderbot/defenderbot/actions"
	"github.com/defenderbot/defenderbot/defender"
	"github.com/defenderbot/defenderbot/defender/defendertest"
)

// The real client satisfies the actions's consumer interface.
var _ actions.API = (*defender.Client)(nil)

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

func (f *fakeAPI) StopAndQuarantineFile(_ context.Context, id, sha1, c string) (*defender.MachineAction, error) {
	f.record("StopAndQuarantineFile", id, sha1, c)
	return f.ma()
}
func (f *fakeAPI) CollectInvestigationPackage(_ context.Context, id, c string) (*defender.MachineAction, error) {
	f.record("CollectInvestigationPackage", id, c)
	return f.ma()
}
func (f *fakeAPI) GetPackageURI(_ context.Context, id string) (string, error) {
	f.record("GetPackageURI", id)
	if f.err != nil {
		return "", f.err
	}
	return "https://example.test/package.zip?token=t", nil
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
	names := actions.Names()
	require.Len(t, names, 12)
	for _, n := range names {
		got, ok := actions.Lookup(string(n))
		assert.True(t, ok)
		assert.Equal(t, n, got)
		assert.NotEmpty(t, n.Title())
		assert.NotEmpty(t, n.Outputs())
	}

	for in, want := range map[string]actions.Name{
		"ISOLATE": actions.Isolate, "restrict_code_execution": actions.RestrictCodeExecution,
		"isolate_endpoint": actions.Isolate, "get_action_info": actions.GetAction, "unisolate": actions.Deisolate,
		" scan ": actions.Scan,
	} {
		got, ok := actions.Lookup(in)
		assert.True(t, ok, in)
		assert.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "reboot", "push-iocs", "isolate;rm"} {
		_, ok := actions.Lookup(in)
		assert.False(t, ok, in)
	}
}

func TestRegistryDeclarations(t *testing.T) {
	verbs := map[string]bool{}
	for _, s := range actions.All() {
		if s.Verb == "" {
			// only an action whose result must never be posted in Slack
			assert.False(t, s.ChangesState || s.Name.ReturnsMachineAction(), "%s has no Slack verb", s.Name)
		} else {
			assert.False(t, verbs[s.Verb], "verb %q declared twice", s.Verb)
			verbs[s.Verb] = true
		}
		assert.NotEmpty(t, s.Help, s.Name)
		assert.NotEmpty(t, s.Permission, s.Name)
		assert.NotEmpty(t, s.Form, s.Name)
		assert.NotZero(t, s.Target, s.Name)
		if s.Inverse != "" {
			assert.Equal(t, s.Name, s.Inverse.Inverse(), "%s and %s undo each other", s.Name, s.Inverse)
			assert.True(t, s.ChangesState, s.Name)
		}
		for _, a := range append(append([]string{}, s.Required...), s.Optional...) {
			_, ok := actions.ArgSpecOf(a)
			assert.True(t, ok, "%s takes the undeclared argument %s", s.Name, a)
		}
	}
	assert.Equal(t, actions.Deisolate, actions.Isolate.Inverse())
	assert.Equal(t, actions.RestrictCodeExecution, actions.UnrestrictCodeExecution.Inverse())
	assert.Empty(t, actions.Scan.Inverse())
}

// Check reports every problem (a form shows them all), Normalize the first.
func TestCheckListsEveryProblem(t *testing.T) {
	_, errs := actions.Check(actions.UpdateAlert, actions.Args{AlertID: "a/b", Status: "closed", Owner: "two words",
		Comment: strings.Repeat("x", actions.MaxCommentLen+1)})
	var got []string
	for _, e := range errs {
		got = append(got, e.Arg)
		assert.Equal(t, actions.Invalid, e.Kind)
	}
	assert.Equal(t, []string{"alert_id", "comment", "status", "owner"}, got)
	assert.Contains(t, errs[1].Msg, "is too long (1001 characters, at most 1000)")

	_, errs = actions.Check(actions.Isolate, actions.Args{})
	require.Len(t, errs, 2)
	assert.Equal(t, actions.Missing, errs[0].Kind)
	assert.Equal(t, "machine_id", errs[0].Arg)

	v, ok := actions.Canonical(actions.ArgIsolationType, "unmanaged")
	assert.True(t, ok)
	assert.Equal(t, "UnManagedDevice", v)
	_, ok = actions.Canonical(actions.ArgScanType, "deep")
	assert.False(t, ok)

	_, errs = actions.Check(actions.StopAndQuarantineFile, actions.Args{MachineID: machineID, Sha1: "abc", Comment: "c"})
	require.Len(t, errs, 1)
	assert.Equal(t, "sha1", errs[0].Arg)
	assert.Contains(t, errs[0].Msg, "40 hexadecimal digits")
	_, errs = actions.Check(actions.Isolate, actions.Args{MachineID: machineID, Sha1: "87662bc3d60e4200ceaf7aae249d1c343f4b83c9", Comment: "c"})
	require.Len(t, errs, 1, "a sha1 is not an argument of isolate")
	assert.Equal(t, actions.NotAccepted, errs[0].Kind)
}

func TestNameProperties(t *testing.T) {
	var readOnly, machine []actions.Name
	for _, n := range actions.Names() {
		if n.ReadOnly() {
			readOnly = append(readOnly, n)
		}
		if n.TargetsMachine() {
			machine = append(machine, n)
		}
	}
	assert.Equal(t, []actions.Name{actions.GetPackageURI, actions.GetAction}, readOnly)
	assert.ElementsMatch(t, []actions.Name{actions.Isolate, actions.Deisolate, actions.RestrictCodeExecution,
		actions.UnrestrictCodeExecution, actions.Scan, actions.StopAndQuarantineFile, actions.CollectInvestigationPackage}, machine)
	assert.False(t, actions.GetPackageURI.ReturnsMachineAction(), "a link, not a machine action to wait for")
	assert.Equal(t, []string{"machine_id", "sha1", "comment"}, actions.StopAndQuarantineFile.RequiredArgs())
	assert.Equal(t, "Isolate a machine", actions.Isolate.Title())
	assert.Equal(t, "Get action info", actions.GetAction.Title())
	assert.Equal(t, []string{"id", "type", "scope", "status", "requestor", "title", "machineid"}, actions.Scan.Outputs())
	assert.Equal(t, []string{"id"}, actions.CommentAlert.Outputs())
	assert.Equal(t, []string{"machine_id", "comment", "scan_type"}, actions.Scan.RequiredArgs())
}

func TestArgsMapRoundTrip(t *testing.T) {
	a := actions.Args{AlertID: "a", Comment: "c", MachineID: "m", IsolationType: "Full", ScanType: "Quick",
		ActionID: "x", Status: "New", Classification: "TruePositive", Determination: "Malware", Owner: "o@x"}
	m := a.Map()
	assert.Len(t, m, 10)
	back0, err := actions.ArgsFromMap(m)
	require.NoError(t, err)
	assert.Equal(t, a, back0)
	js, err := json.Marshal(a)
	require.NoError(t, err)
	var back map[string]string
	require.NoError(t, json.Unmarshal(js, &back))
	assert.Equal(t, m, back, "JSON names are the argument names")
	assert.Equal(t, map[string]string{"machine_id": "m"}, actions.Args{MachineID: "m"}.Map())

	_, err = actions.ArgsFromMap(map[string]string{"machineid": "m"})
	assert.ErrorIs(t, err, actions.ErrInvalidArgs)
	assert.ErrorContains(t, err, `unknown argument "machineid"`)
}

func TestNormalize(t *testing.T) {
	tests := []struct {
		name    string
		n       actions.Name
		in      actions.Args
		want    actions.Args
		wantErr string
	}{
		{"isolate default", actions.Isolate, actions.Args{MachineID: " m1 ", Comment: " why "},
			actions.Args{MachineID: "m1", Comment: "why", IsolationType: "Full"}, ""},
		{"isolate selective", actions.Isolate, actions.Args{MachineID: "m1", Comment: "c", IsolationType: "selective"},
			actions.Args{MachineID: "m1", Comment: "c", IsolationType: "Selective"}, ""},
		{"isolate bad type", actions.Isolate, actions.Args{MachineID: "m1", Comment: "c", IsolationType: "partial"},
			actions.Args{}, `isolate: isolation_type "partial" is not allowed (Full, Selective or UnManagedDevice)`},
		{"isolate no machine", actions.Isolate, actions.Args{Comment: "c"}, actions.Args{}, "isolate: machine_id is required"},
		{"isolate no comment", actions.Isolate, actions.Args{MachineID: "m"}, actions.Args{}, "isolate: comment is required"},
		{"isolate extra arg", actions.Isolate, actions.Args{MachineID: "m", Comment: "c", ScanType: "Quick"}, actions.Args{},
			"isolate: scan_type is not an argument of isolate (it takes machine_id, comment, isolation_type)"},
		{"machine id path", actions.Deisolate, actions.Args{MachineID: "../alerts", Comment: "c"}, actions.Args{}, `machine_id must not contain ".."`},
		{"machine id slash", actions.Deisolate, actions.Args{MachineID: "a/b", Comment: "c"}, actions.Args{}, `machine_id must not contain '/'`},
		{"machine id space", actions.RestrictCodeExecution, actions.Args{MachineID: "a b", Comment: "c"}, actions.Args{}, "must not contain spaces"},
		{"comment control", actions.UnrestrictCodeExecution, actions.Args{MachineID: "m", Comment: "a\x00b"}, actions.Args{}, "comment must not contain control characters"},
		{"scan", actions.Scan, actions.Args{MachineID: "m", Comment: "c", ScanType: "QUICK"},
			actions.Args{MachineID: "m", Comment: "c", ScanType: "Quick"}, ""},
		{"scan missing type", actions.Scan, actions.Args{MachineID: "m", Comment: "c"}, actions.Args{}, "scan: scan_type is required (Quick or Full)"},
		{"scan bad type", actions.Scan, actions.Args{MachineID: "m", Comment: "c", ScanType: "deep"}, actions.Args{}, `scan_type "deep" is not allowed (Quick or Full)`},
		{"get action", actions.GetAction, actions.Args{ActionID: "a1"}, actions.Args{ActionID: "a1"}, ""},
		{"get action missing", actions.GetAction, actions.Args{}, actions.Args{}, "get-action: action_id is required"},
		{"get action comment", actions.GetAction, actions.Args{ActionID: "a1", Comment: "c"}, actions.Args{}, "comment is not an argument of get-action"},
		{"cancel", actions.CancelAction, actions.Args{ActionID: "a1"}, actions.Args{}, "cancel-action: comment is required"},
		{"comment alert", actions.CommentAlert, actions.Args{AlertID: "al", Comment: "c"}, actions.Args{AlertID: "al", Comment: "c"}, ""},
		{"comment alert missing", actions.CommentAlert, actions.Args{AlertID: "al"}, actions.Args{}, "comment-alert: comment is required"},
		{"update nothing", actions.UpdateAlert, actions.Args{AlertID: "al"}, actions.Args{},
			"update-alert needs at least one of status, classification, determination, comment, owner"},
		{"update canonical", actions.UpdateAlert,
			actions.Args{AlertID: "al", Status: "in progress", Classification: "truepositive", Determination: "MALWARE"},
			actions.Args{AlertID: "al", Status: "InProgress", Classification: "TruePositive", Determination: "Malware"}, ""},
		{"update owner only", actions.UpdateAlert, actions.Args{AlertID: "al", Owner: "a@b.c"}, actions.Args{AlertID: "al", Owner: "a@b.c"}, ""},
		{"update bad status", actions.UpdateAlert, actions.Args{AlertID: "al", Status: "closed"}, actions.Args{},
			`status "closed" is not allowed (New, InProgress or Resolved)`},
		{"update bad classification", actions.UpdateAlert, actions.Args{AlertID: "al", Classification: "maybe"}, actions.Args{},
			`classification "maybe" is not allowed`},
		{"determination needs classification", actions.UpdateAlert, actions.Args{AlertID: "al", Determination: "Malware"}, actions.Args{},
			"determination requires classification"},
		{"determination mismatch", actions.UpdateAlert, actions.Args{AlertID: "al", Classification: "FalsePositive", Determination: "Malware"}, actions.Args{},
			`determination "Malware" does not match classification FalsePositive (allowed: NotMalicious, Clean, InsufficientData, Other)`},
		{"unknown action", actions.Name("reboot"), actions.Args{}, actions.Args{}, `unknown action "reboot"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := actions.Normalize(tt.n, tt.in)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.ErrorIs(t, err, actions.ErrInvalidArgs)
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
		n    actions.Name
		args actions.Args
		want want
	}{
		{actions.Isolate, actions.Args{MachineID: machineID, Comment: "c"}, want{call{"IsolateMachine", []any{machineID, "c", defender.IsolationFull}}, scoped}},
		{actions.Deisolate, actions.Args{MachineID: machineID, Comment: "c"}, want{call{"UnisolateMachine", []any{machineID, "c"}}, maOut}},
		{actions.RestrictCodeExecution, actions.Args{MachineID: machineID, Comment: "c"}, want{call{"RestrictCodeExecution", []any{machineID, "c"}}, maOut}},
		{actions.UnrestrictCodeExecution, actions.Args{MachineID: machineID, Comment: "c"}, want{call{"UnrestrictCodeExecution", []any{machineID, "c"}}, maOut}},
		{actions.Scan, actions.Args{MachineID: machineID, Comment: "c", ScanType: "full"}, want{call{"RunAntivirusScan", []any{machineID, "c", defender.ScanFull}}, scoped}},
		{actions.StopAndQuarantineFile, actions.Args{MachineID: machineID, Sha1: " 87662BC3D60E4200CEAF7AAE249D1C343F4B83C9", Comment: "c"},
			want{call{"StopAndQuarantineFile", []any{machineID, "87662bc3d60e4200ceaf7aae249d1c343f4b83c9", "c"}}, maOut}},
		{actions.CollectInvestigationPackage, actions.Args{MachineID: machineID, Comment: "c"}, want{call{"CollectInvestigationPackage", []any{machineID, "c"}}, maOut}},
		{actions.GetPackageURI, actions.Args{ActionID: "a1"}, want{call{"GetPackageURI", []any{"a1"}},
			map[string]any{"package_uri": "https://example.test/package.zip?token=t"}}},
		{actions.GetAction, actions.Args{ActionID: "a1"}, want{call{"GetMachineAction", []any{"a1"}}, maOut}},
		{actions.CancelAction, actions.Args{ActionID: "a1", Comment: "oops"}, want{call{"CancelMachineAction", []any{"a1", "oops"}}, maOut}},
		{actions.CommentAlert, actions.Args{AlertID: "al1", Comment: "seen"}, want{call{"CommentAlert", []any{"al1", "seen"}},
			map[string]any{"id": "da637472900382838869_1364969609"}}},
		{actions.UpdateAlert, actions.Args{AlertID: "al1", Status: "resolved", Classification: "TruePositive", Determination: "malware", Owner: "me@x"},
			want{call{"UpdateAlert", []any{"al1", defender.AlertUpdate{Status: strp("Resolved"), AssignedTo: strp("me@x"),
				Classification: strp("TruePositive"), Determination: strp("Malware")}}},
				map[string]any{"id": "da637472900382838869_1364969609", "title": "Suspicious PowerShell", "description": "desc",
					"status": "Resolved", "classification": "TruePositive", "determination": nil, "category": "Execution"}}},
	}
	covered := map[actions.Name]bool{}
	for _, tt := range tests {
		t.Run(string(tt.n), func(t *testing.T) {
			covered[tt.n] = true
			api := &fakeAPI{action: sampleAction(), alert: sampleAlert()}
			res, err := actions.NewRunner(api).Run(context.Background(), tt.n, tt.args)
			require.NoError(t, err)
			require.Len(t, api.calls, 1)
			assert.Equal(t, tt.want.call, api.calls[0])
			assert.Equal(t, tt.want.output, res.Output)
			keys := make([]string, 0, len(res.Output))
			for k := range res.Output {
				keys = append(keys, k)
			}
			assert.ElementsMatch(t, tt.n.Outputs(), keys)
			if tt.n == actions.GetPackageURI {
				assert.Equal(t, "https://example.test/package.zip?token=t", res.PackageURI)
				return
			}
			assert.NotEmpty(t, res.Raw)
			if tt.n.TargetsAlert() {
				assert.NotNil(t, res.Alert)
			} else {
				assert.NotNil(t, res.MachineAction)
			}
		})
	}
	assert.Len(t, covered, len(actions.Names()), "every action is covered")
}

func TestRunInvalidArgsSendsNothing(t *testing.T) {
	api := &fakeAPI{action: sampleAction()}
	_, err := actions.NewRunner(api).Run(context.Background(), actions.Scan, actions.Args{MachineID: "m", Comment: "c"})
	require.ErrorIs(t, err, actions.ErrInvalidArgs)
	assert.Empty(t, api.calls)
}

func TestRunPassesDefenderErrors(t *testing.T) {
	apiErr := &defender.APIError{StatusCode: 404, Code: "ResourceNotFound", Message: "Machine 123 was not found"}
	api := &fakeAPI{err: apiErr}
	_, err := actions.NewRunner(api).Run(context.Background(), actions.Isolate, actions.Args{MachineID: "123", Comment: "c"})
	var got *defender.APIError
	require.ErrorAs(t, err, &got)
	assert.Equal(t, "ResourceNotFound", got.Code)
	assert.False(t, errors.Is(err, actions.ErrInvalidArgs))

	_, err = actions.NewRunner(&fakeAPI{}).Run(context.Background(), actions.CommentAlert, actions.Args{AlertID: "a", Comment: "c"})
	assert.ErrorIs(t, err, actions.ErrNoResponse)
	_, err = actions.NewRunner(&fakeAPI{}).Run(context.Background(), actions.GetAction, actions.Args{ActionID: "a"})
	assert.ErrorIs(t, err, actions.ErrNoResponse)
}

func TestWait(t *testing.T) {
	api := &fakeAPI{action: sampleAction(), polls: []defender.ActionStatus{defender.StatusPending, defender.StatusInProgress, defender.StatusSucceeded}}
	res, err := actions.NewRunner(api).Wait(context.Background(), actions.Isolate, "a1", time.Millisecond)
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
	res, err := actions.NewRunner(wrapped).Wait(ctx, actions.GetAction, "a1", time.Millisecond)
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
	r := actions.NewRunner(&fakeAPI{action: sampleAction(), pollErr: fmt.Errorf("boom")})
	_, err := r.Wait(context.Background(), actions.Scan, "a1", time.Millisecond)
	assert.ErrorContains(t, err, "boom")
	_, err = r.Wait(context.Background(), actions.CommentAlert, "a1", time.Millisecond)
	assert.ErrorIs(t, err, actions.ErrInvalidArgs)
	_, err = r.Wait(context.Background(), actions.Scan, "a/1", time.Millisecond)
	assert.ErrorIs(t, err, actions.ErrInvalidArgs)
	_, err = r.Wait(context.Background(), actions.Scan, "a1", 0)
	assert.ErrorIs(t, err, actions.ErrInvalidArgs)
}

// MachineActionType must be the type Defender records for each action, or a
// request left "executing" by a crash could not be found again. The emulator
// spells the types independently of the defender package.
func TestMachineActionTypeIsWhatDefenderRecords(t *testing.T) {
	for _, n := range actions.Names() {
		if !n.TargetsMachine() {
			assert.Empty(t, n.MachineActionType(), n)
			continue
		}
		t.Run(string(n), func(t *testing.T) {
			emu := defendertest.NewServer(t)
			emu.AddSampleData()
			client, err := defender.New(emu.ClientConfig(), defender.WithHTTPClient(emu.HTTPClient()))
			require.NoError(t, err)
			args := actions.Args{MachineID: defendertest.SampleMachineID1, Comment: "type check"}
			if n == actions.Scan {
				args.ScanType = "Quick"
			}
			if n == actions.StopAndQuarantineFile {
				args.Sha1 = "87662bc3d60e4200ceaf7aae249d1c343f4b83c9"
			}
			res, err := actions.NewRunner(client).Run(context.Background(), n, args)
			require.NoError(t, err)
			require.NotNil(t, res.MachineAction)
			assert.NotEmpty(t, n.MachineActionType())
			assert.Equal(t, res.MachineAction.Type, n.MachineActionType())
		})
	}
}

// TestCheckMachines: the one rule of machine lists the approval core, the
// Slack command and the CLI apply.
func TestCheckMachines(t *testing.T) {
	const a, b = "1e5c8f0d6e7b4a3c2d1e0f9a8b7c6d5e4f3a2b1c", "2b5bc9d7e413ddd7902c2932e418702b84d0cc07"
	for name, tt := range map[string]struct {
		action   actions.Name
		machines []string
		max      int
		want     *actions.MachineListError
	}{
		"fine":                {actions.Isolate, []string{a, b}, 2, nil},
		"limit unknown":       {actions.Isolate, []string{a, b}, actions.UnknownMax, nil},
		"one machine only":    {actions.StopAndQuarantineFile, []string{a, b}, 20, &actions.MachineListError{Fault: actions.FaultOneMachine, Action: actions.StopAndQuarantineFile}},
		"over the limit":      {actions.Isolate, []string{a, b}, 1, &actions.MachineListError{Fault: actions.FaultTooMany, Action: actions.Isolate, Count: 2, Max: 1}},
		"limit 0: no list":    {actions.Isolate, []string{a}, 0, &actions.MachineListError{Fault: actions.FaultTooMany, Action: actions.Isolate, Count: 1, Max: 0}},
		"empty entry":         {actions.Isolate, []string{a, "", b}, 20, &actions.MachineListError{Fault: actions.FaultEmpty, Action: actions.Isolate}},
		"twice, another case": {actions.Scan, []string{"ws-1", b, "WS-1"}, 20, &actions.MachineListError{Fault: actions.FaultTwice, Action: actions.Scan, Machine: "WS-1", First: "ws-1"}},
	} {
		t.Run(name, func(t *testing.T) {
			got := actions.CheckMachines(tt.action, tt.machines, tt.max)
			assert.Equal(t, tt.want, got)
			if got != nil {
				assert.NotEmpty(t, got.Error())
			}
		})
	}
}
