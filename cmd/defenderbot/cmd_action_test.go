package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/defenderbot/defenderbot/actions"
	"github.com/defenderbot/defenderbot/defender/defendertest"
)

const (
	testMachine = "1e5bc9d7e413ddd7902c2932e418702b84d0cc07"
	testAlert   = "da637472900382838869_1364969609"
)

// emulatorEnv is the environment pointing the CLI at srv, without a config file.
func emulatorEnv(srv *defendertest.Server) map[string]string {
	return map[string]string{
		"DEFENDER_BASE_URL":     srv.URL,
		"AZURE_AUTHORITY_HOST":  srv.URL,
		"AZURE_TENANT_ID":       defendertest.TenantID,
		"AZURE_CLIENT_ID":       defendertest.ClientID,
		"AZURE_CLIENT_SECRET":   defendertest.ClientSecret,
		"DEFENDERBOT_LOG_LEVEL": "error",
	}
}

type cliRun struct {
	code           int
	stdout, stderr string
}

func runCLI(t *testing.T, srv *defendertest.Server, env map[string]string, args ...string) cliRun {
	t.Helper()
	var out, errb bytes.Buffer
	c := &cli{stdout: &out, stderr: &errb, getenv: func(k string) string { return env[k] }}
	if srv != nil {
		c.httpClient = srv.HTTPClient()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := run(ctx, c, args)
	return cliRun{code, out.String(), errb.String()}
}

func newEmulator(t *testing.T, opts ...defendertest.Option) *defendertest.Server {
	t.Helper()
	srv := defendertest.NewServer(t, opts...)
	srv.AddMachine(defendertest.Machine{ID: testMachine, ComputerDNSName: "ws1.contoso.com"})
	srv.AddAlert(defendertest.Alert{ID: testAlert, Title: "Suspicious PowerShell", Description: "desc", Category: "Execution"})
	return srv
}

// decodeOne checks stdout holds exactly one JSON object and returns it.
func decodeOne(t *testing.T, stdout string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(stdout))
	var m map[string]any
	require.NoError(t, dec.Decode(&m), "stdout: %q", stdout)
	var extra any
	require.Error(t, dec.Decode(&extra), "stdout holds more than one JSON value")
	return m
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestActionEveryActionAgainstEmulator(t *testing.T) {
	srv := newEmulator(t, defendertest.WithDuplicateBehavior(defendertest.DuplicateReturnExisting))
	env := emulatorEnv(srv)

	// Create a pending action to get and cancel.
	pending := runCLI(t, srv, env, "action", "restrict-code-execution", "--machine-id", testMachine, "--comment", "contain")
	require.Equal(t, 0, pending.code, pending.stderr)
	actionID := decodeOne(t, pending.stdout)["id"].(string)
	require.NotEmpty(t, actionID)

	tests := []struct {
		name  actions.Name
		args  []string
		check map[string]any
	}{
		{actions.Isolate, []string{"--machine-id", testMachine, "--comment", "beaconing", "--isolation-type", "selective"},
			map[string]any{"type": "Isolate", "machineid": testMachine, "status": "Pending", "requestor": defendertest.AppDisplayName}},
		{actions.Deisolate, []string{"--machine-id", testMachine, "--comment", "clean"}, map[string]any{"type": "Unisolate", "machineid": testMachine}},
		{actions.RestrictCodeExecution, []string{"--machine-id", testMachine, "--comment", "again"}, map[string]any{"type": "RestrictCodeExecution"}},
		{actions.UnrestrictCodeExecution, []string{"--machine-id", testMachine, "--comment", "ok"}, map[string]any{"type": "UnrestrictCodeExecution"}},
		{actions.Scan, []string{"--machine-id", testMachine, "--comment", "check", "--scan-type", "quick"}, map[string]any{"type": "RunAntiVirusScan"}},
		{actions.GetAction, []string{"--action-id", actionID}, map[string]any{"id": actionID, "type": "RestrictCodeExecution"}},
		{actions.CancelAction, []string{"--action-id", actionID, "--comment", "mistake"}, map[string]any{"id": actionID}},
		{actions.CommentAlert, []string{"--alert-id", testAlert, "--comment", "looking"}, map[string]any{"id": testAlert}},
		{actions.UpdateAlert, []string{"--alert-id", testAlert, "--status", "resolved", "--classification", "truepositive", "--determination", "malware"},
			map[string]any{"id": testAlert, "status": "Resolved", "classification": "TruePositive", "determination": "Malware",
				"title": "Suspicious PowerShell", "description": "desc", "category": "Execution"}},
	}
	for _, tt := range tests {
		t.Run(string(tt.name), func(t *testing.T) {
			r := runCLI(t, srv, env, append([]string{"action", string(tt.name)}, tt.args...)...)
			require.Equal(t, 0, r.code, "stderr: %s", r.stderr)
			out := decodeOne(t, r.stdout)
			assert.ElementsMatch(t, tt.name.Outputs(), keys(out), "exactly the action's output fields")
			for k, v := range tt.check {
				assert.Equal(t, v, out[k], k)
			}
			// The declared output field order is kept in the printed object.
			assert.True(t, strings.HasPrefix(r.stdout, `{"id":`), r.stdout)
		})
	}
}

func TestActionRaw(t *testing.T) {
	srv := newEmulator(t)
	r := runCLI(t, srv, emulatorEnv(srv), "action", "isolate", "--machine-id", testMachine, "--comment", "c", "--raw")
	require.Equal(t, 0, r.code, r.stderr)
	out := decodeOne(t, r.stdout)
	assert.Contains(t, out, "machineId", "Microsoft's body, not the action's output fields")
	assert.Contains(t, out, "requestorComment")
	assert.Equal(t, "c", out["requestorComment"])
}

func TestActionArgsFile(t *testing.T) {
	srv := newEmulator(t)
	p := filepath.Join(t.TempDir(), "args.json")
	require.NoError(t, os.WriteFile(p, []byte(`{"machine_id":"`+testMachine+`","comment":"from file","scan_type":"Full"}`), 0o600))
	r := runCLI(t, srv, emulatorEnv(srv), "action", "scan", "--args", p, "--comment", "from flag")
	require.Equal(t, 0, r.code, r.stderr)
	reqs := srv.Requests()
	var body string
	for _, q := range reqs {
		if strings.HasSuffix(q.Path, "/runAntiVirusScan") {
			body = string(q.Body)
		}
	}
	assert.Contains(t, body, `"Comment":"from flag"`, "flags override the file")
	assert.Contains(t, body, `"ScanType":"Full"`)
}

func TestActionArgsFileErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(s), 0o600))
		return p
	}
	tests := []struct{ name, path, want string }{
		{"missing", filepath.Join(dir, "none.json"), "no such file"},
		{"not json", write("bad.json", "machine_id: x"), "not a JSON object"},
		{"unknown key", write("unknown.json", `{"machineid":"x"}`), `unknown argument "machineid"`},
		{"not string", write("num.json", `{"machine_id":12}`), "machine_id must be a string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, nil, nil, "action", "deisolate", "--args", tt.path)
			assert.Equal(t, 1, r.code)
			assert.Empty(t, r.stdout)
			assert.Contains(t, r.stderr, tt.want)
		})
	}
}

func TestActionDefenderErrors(t *testing.T) {
	srv := newEmulator(t)
	env := emulatorEnv(srv)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown machine", []string{"isolate", "--machine-id", "123", "--comment", "c"}, "defenderbot: Defender error ResourceNotFound (404): Machine 123 was not found"},
		{"unknown action", []string{"get-action", "--action-id", "00000000-0000-0000-0000-00000000dead"}, "Defender error"},
		{"unknown alert", []string{"comment-alert", "--alert-id", "nope", "--comment", "c"}, "Defender error"},
		{"update unknown alert", []string{"update-alert", "--alert-id", "nope", "--status", "Resolved"}, "Defender error"},
		{"cancel unknown action", []string{"cancel-action", "--action-id", "00000000-0000-0000-0000-00000000dead", "--comment", "c"}, "Defender error"},
		{"scan unknown machine", []string{"scan", "--machine-id", "123", "--comment", "c", "--scan-type", "Full"}, "Machine 123 was not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, srv, env, append([]string{"action"}, tt.args...)...)
			assert.Equal(t, 1, r.code)
			assert.Empty(t, r.stdout)
			assert.Contains(t, r.stderr, tt.want)
			assert.Contains(t, r.stderr, "(404)")
		})
	}
}

func TestActionDuplicateIsExplained(t *testing.T) {
	srv := newEmulator(t)
	env := emulatorEnv(srv)
	first := runCLI(t, srv, env, "action", "isolate", "--machine-id", testMachine, "--comment", "c")
	require.Equal(t, 0, first.code, first.stderr)
	r := runCLI(t, srv, env, "action", "isolate", "--machine-id", testMachine, "--comment", "c")
	assert.Equal(t, 1, r.code)
	assert.Empty(t, r.stdout)
	assert.Contains(t, r.stderr, "Defender error ActiveRequestAlreadyExists (400)")
	assert.Contains(t, r.stderr, "already pending")
}

func TestActionValidationErrorsSendNothing(t *testing.T) {
	srv := newEmulator(t)
	env := emulatorEnv(srv)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"scan", "--machine-id", testMachine, "--comment", "c"}, "scan: scan_type is required (Quick or Full)"},
		{[]string{"isolate", "--machine-id", testMachine}, "isolate: comment is required"},
		{[]string{"isolate", "--machine-id", "../x", "--comment", "c"}, `machine_id must not contain ".."`},
		{[]string{"update-alert", "--alert-id", testAlert}, "needs at least one of"},
		{[]string{"update-alert", "--alert-id", testAlert, "--classification", "FalsePositive", "--determination", "Malware"}, "does not match classification FalsePositive"},
		{[]string{"get-action", "--action-id", "a1", "--machine-id", "m"}, "machine_id is not an argument of get-action"},
	}
	for _, tt := range tests {
		t.Run(tt.args[0], func(t *testing.T) {
			r := runCLI(t, srv, env, append([]string{"action"}, tt.args...)...)
			assert.Equal(t, 1, r.code)
			assert.Empty(t, r.stdout)
			assert.Contains(t, r.stderr, tt.want)
		})
	}
	assert.Empty(t, srv.Requests(), "no request may reach Defender")
}

func TestActionConfigErrors(t *testing.T) {
	r := runCLI(t, nil, map[string]string{"AZURE_CLIENT_SECRET": "top-secret-value"}, "action", "get-action", "--action-id", "a1")
	assert.Equal(t, 1, r.code)
	assert.Empty(t, r.stdout)
	assert.Contains(t, r.stderr, "defenderbot: configuration: defender.tenant_id is required")
	assert.Contains(t, r.stderr, "defenderbot: configuration: defender.app_id is required")
	assert.NotContains(t, r.stderr, "top-secret-value")

	r = runCLI(t, nil, map[string]string{"DEFENDERBOT_CONFIG": filepath.Join(t.TempDir(), "missing.yaml")}, "action", "get-action", "--action-id", "a1")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "missing.yaml")
}

func TestActionUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no name", []string{"action"}, 2, "missing action name"},
		{"unknown", []string{"action", "reboot"}, 2, `unknown action "reboot"`},
		{"flag first", []string{"action", "--machine-id", "m"}, 2, "the action name comes first"},
		{"bad flag", []string{"action", "isolate", "--machine", "m"}, 2, "flag provided but not defined"},
		{"stray arg", []string{"action", "isolate", "m1"}, 2, `unexpected argument "m1"`},
		{"wait on alert", []string{"action", "comment-alert", "--wait"}, 2, "--wait applies to machine actions"},
		{"help", []string{"action", "-h"}, 0, "actions:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, nil, nil, tt.args...)
			assert.Equal(t, tt.code, r.code)
			assert.Empty(t, r.stdout)
			assert.Contains(t, r.stderr, tt.want)
			if tt.code == 2 && tt.name != "wait on alert" && tt.name != "stray arg" {
				for _, n := range actions.Names() {
					assert.Contains(t, r.stderr, string(n), "usage lists every action")
				}
			}
		})
	}
}

func TestActionWait(t *testing.T) {
	srv := newEmulator(t, defendertest.WithActionTimings(time.Millisecond, 5*time.Millisecond))
	r := runCLI(t, srv, emulatorEnv(srv), "action", "isolate", "--machine-id", testMachine, "--comment", "c", "--wait", "--poll-interval", "2ms")
	require.Equal(t, 0, r.code, r.stderr)
	out := decodeOne(t, r.stdout)
	assert.Equal(t, "Succeeded", out["status"])
	assert.ElementsMatch(t, actions.Isolate.Outputs(), keys(out))
}

func TestActionWaitFailedOutcome(t *testing.T) {
	srv := newEmulator(t, defendertest.WithActionTimings(time.Millisecond, 5*time.Millisecond))
	srv.SetActionOutcome(testMachine, "Failed")
	r := runCLI(t, srv, emulatorEnv(srv), "action", "scan", "--machine-id", testMachine, "--comment", "c", "--scan-type", "Quick", "--wait", "--poll-interval", "2ms")
	assert.Equal(t, 1, r.code)
	assert.Equal(t, "Failed", decodeOne(t, r.stdout)["status"])
	assert.Contains(t, r.stderr, "ended Failed")
}

func TestActionWaitTimeout(t *testing.T) {
	srv := newEmulator(t) // actions take 2 emulated minutes
	env := emulatorEnv(srv)
	env["DEFENDERBOT_DEFENDER_POLL_INTERVAL"] = "2ms"
	env["DEFENDERBOT_DEFENDER_POLL_TIMEOUT"] = "20ms"
	r := runCLI(t, srv, env, "action", "deisolate", "--machine-id", testMachine, "--comment", "c", "--wait")
	assert.Equal(t, 1, r.code)
	out := decodeOne(t, r.stdout)
	assert.Contains(t, []any{"Pending", "InProgress"}, out["status"])
	assert.Contains(t, r.stderr, "check later with: defenderbot action get-action --action-id "+out["id"].(string))
}

func TestActionForensics(t *testing.T) {
	srv := newEmulator(t)
	env := emulatorEnv(srv)

	r := runCLI(t, srv, env, "action", "stop-and-quarantine-file", "--machine-id", testMachine,
		"--sha1", "87662BC3D60E4200CEAF7AAE249D1C343F4B83C9", "--comment", "dropper")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, "StopAndQuarantineFile", decodeOne(t, r.stdout)["type"])
	r = runCLI(t, srv, env, "action", "stop-and-quarantine-file", "--machine-id", testMachine, "--sha1", "abc", "--comment", "x")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "sha1")
	assert.Empty(t, r.stdout)

	r = runCLI(t, srv, env, "action", "collect-investigation-package", "--machine-id", testMachine, "--comment", "for IR")
	require.Equal(t, 0, r.code, r.stderr)
	out := decodeOne(t, r.stdout)
	assert.Equal(t, "CollectInvestigationPackage", out["type"])
	id := out["id"].(string)

	r = runCLI(t, srv, env, "action", "get-package-uri", "--action-id", id)
	assert.Equal(t, 1, r.code, "not collected yet")
	assert.Empty(t, r.stdout)
	assert.NotEmpty(t, r.stderr)

	srv.Advance(5 * time.Minute)
	r = runCLI(t, srv, env, "action", "get-package-uri", "--action-id", id)
	require.Equal(t, 0, r.code, r.stderr)
	out = decodeOne(t, r.stdout)
	assert.Equal(t, []string{"package_uri"}, keys(out))
	assert.True(t, strings.HasPrefix(out["package_uri"].(string), srv.URL+"/safedownload/"), out["package_uri"])
	assert.NotContains(t, r.stderr, "safedownload", "the link goes to stdout only")

	r = runCLI(t, srv, env, "action", "get-package-uri", "--action-id", id, "--wait")
	assert.Equal(t, 2, r.code, "a usage error: there is no machine action to wait for")
	assert.Empty(t, r.stdout)
}

// TestActionAlertsThroughGraph: with defender.alerts_api graph, the alert
// actions go to Graph alerts_v2 (either enum spelling), and the JSON keeps
// the same field names.
func TestActionAlertsThroughGraph(t *testing.T) {
	srv := newEmulator(t)
	ga := srv.NewDeviceAlert(testMachine, "Credential theft", "high")
	env := emulatorEnv(srv)
	env["DEFENDERBOT_DEFENDER_ALERTS_API"] = "graph"
	env["DEFENDERBOT_DEFENDER_GRAPH_BASE_URL"] = srv.URL

	r := runCLI(t, srv, env, "action", "update-alert", "--alert-id", ga.ID, "--status", "InProgress",
		"--classification", "TruePositive", "--determination", "Malware", "--owner", "ana@contoso.com", "--comment", "on it")
	require.Equal(t, 0, r.code, r.stderr)
	out := decodeOne(t, r.stdout)
	assert.ElementsMatch(t, actions.UpdateAlert.Outputs(), keys(out))
	assert.Equal(t, map[string]any{"id": ga.ID, "title": "Credential theft", "description": "", "status": "inProgress",
		"classification": "truePositive", "determination": "malware", "category": "Execution"}, out)
	got, _ := srv.GraphAlert(ga.ID)
	assert.Equal(t, "inProgress", got.Status)
	require.NotNil(t, got.AssignedTo)
	assert.Equal(t, "ana@contoso.com", *got.AssignedTo)
	require.Len(t, got.Comments, 1)
	assert.Equal(t, "on it", got.Comments[0].Comment)

	r = runCLI(t, srv, env, "action", "comment-alert", "--alert-id", ga.ID, "--comment", "isolated")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, map[string]any{"id": ga.ID}, decodeOne(t, r.stdout))
	got, _ = srv.GraphAlert(ga.ID)
	assert.Len(t, got.Comments, 2)
	assert.Zero(t, srv.Calls("PATCH", "/api/alerts/"+ga.ID), "the legacy API is not called")

	r = runCLI(t, srv, env, "action", "comment-alert", "--alert-id", "da000_1", "--comment", "x")
	assert.Equal(t, 1, r.code)
	assert.Empty(t, r.stdout)
	assert.Contains(t, r.stderr, "itemNotFound")
}

// An action that may run on several machines takes a comma-separated
// --machine-id: one call per machine, one JSON line per machine in the
// order given; a machine Defender refuses is named on stderr and the exit
// code is 1, the others still run.
func TestActionOnSeveralMachines(t *testing.T) {
	const second = "2b5bc9d7e413ddd7902c2932e418702b84d0cc07"
	srv := newEmulator(t)
	srv.AddMachine(defendertest.Machine{ID: second, ComputerDNSName: "ws2.contoso.com"})
	env := emulatorEnv(srv)

	r := runCLI(t, srv, env, "action", "isolate", "--machine-id", testMachine+","+second, "--comment", "outbreak", "--isolation-type", "selective")
	require.Equal(t, 0, r.code, r.stderr)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	require.Len(t, lines, 2, r.stdout)
	for i, id := range []string{testMachine, second} {
		out := decodeOne(t, lines[i])
		assert.Equal(t, id, out["machineid"])
		assert.Equal(t, "Isolate", out["type"])
	}
	assert.Equal(t, 1, srv.Calls(http.MethodPost, "/api/machines/"+testMachine+"/isolate"))
	assert.Equal(t, 1, srv.Calls(http.MethodPost, "/api/machines/"+second+"/isolate"))

	// One unknown machine: the others run, it is named, exit 1.
	const ghost = "0000000000000000000000000000000000000bad"
	r = runCLI(t, srv, env, "action", "scan", "--machine-id", ghost+","+second, "--comment", "sweep", "--scan-type", "quick")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "machine "+ghost)
	assert.Equal(t, second, decodeOne(t, r.stdout)["machineid"])

	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"isolate", "--machine-id", testMachine + "," + testMachine, "--comment", "c"}, "lists " + testMachine + " twice"},
		{[]string{"stop-and-quarantine-file", "--machine-id", testMachine + "," + second, "--sha1", "87662BC3D60E4200CEAF7AAE249D1C343F4B83C9", "--comment", "c"}, "runs on one machine"},
		{[]string{"isolate", "--machine-id", testMachine + ",," + second, "--comment", "c"}, `--machine-id "":`},
	} {
		before := len(srv.Requests())
		r := runCLI(t, srv, env, append([]string{"action"}, tt.args...)...)
		assert.Equal(t, 1, r.code, tt.want)
		assert.Contains(t, r.stderr, tt.want)
		assert.Empty(t, r.stdout)
		assert.Len(t, srv.Requests(), before, "nothing sent")
	}
}

func TestActionOnSeveralMachinesAtMostMaxBulk(t *testing.T) {
	srv := newEmulator(t)
	env := emulatorEnv(srv)
	env["DEFENDERBOT_APPROVAL_MAX_BULK"] = "1"
	r := runCLI(t, srv, env, "action", "isolate", "--machine-id", testMachine+",2b5bc9d7e413ddd7902c2932e418702b84d0cc07", "--comment", "c")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "2 machines listed: at most 1 per run (approval.max_bulk)")
	assert.Zero(t, srv.Calls(http.MethodPost, "/api/machines/"+testMachine+"/isolate"))
}
