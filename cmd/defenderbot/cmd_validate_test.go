package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/defenderbot/defenderbot/internal/testutil"
)

func TestValidateConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(s), 0o600))
		return p
	}
	good := write("good.yaml", `
defender:
  tenant_id: contoso.onmicrosoft.com
  app_id: 66666666-7777-8888-9999-000000000000
  app_secret: very-secret-value
slack:
  bot_token: xoxb-1
  signing_secret: sig
  approval_channel: C0123ABCD
approval:
  approvers: [U0AAA]
`)
	bad := write("bad.yaml", `
defender:
  base_url: http://api.example.com
  app_secret: very-secret-value
approval:
  required_approvals: 0
iocs:
  action: Audit
  generate_alert: false
`)
	unknown := write("unknown.yaml", "listen: :1\nslack:\n  bot_tokn: x\n")
	badKeys := write("badkeys.yaml", "defender:\n  base_url: http://api.example.com\n  timeout: 5\n  bogus: 1\n")
	defenderOnly := write("defender.yaml", "defender:\n  tenant_id: t\n  app_id: a\n  app_secret: s\n")
	example := filepath.Join(testutil.RepoRoot(t), "config.example.yaml")

	tests := []struct {
		name      string
		args      []string
		env       map[string]string
		code      int
		stdout    []string // each must appear
		lineCount int      // lines on stdout, 0: don't check
	}{
		{"ok", []string{"--config", good}, nil, 0, []string{"configuration OK"}, 1},
		{"ok via env var", nil, map[string]string{"DEFENDERBOT_CONFIG": good}, 0, []string{"configuration OK"}, 1},
		{"every problem", []string{"--config", bad}, nil, 1, []string{
			"defender.base_url must be https",
			"approval.required_approvals must be at least 1",
			"iocs.action Audit requires iocs.generate_alert",
			"defender.tenant_id is required",
			"defender.app_id is required",
			"slack.bot_token is required",
			"slack.approval_channel is required",
			"approval.approvers must list at least one approver",
		}, 9},
		{"unknown key", []string{"--config", unknown}, nil, 1, []string{"line 3: unknown key slack.bot_tokn"}, 0},
		{"bad keys do not hide the rest", []string{"--config", badKeys}, nil, 1, []string{
			`line 3: defender.timeout: invalid duration "5"`,
			"line 4: unknown key defender.bogus",
			"defender.base_url must be https",
			"slack.bot_token is required",
		}, 10},
		{"defender purpose", []string{"--config", defenderOnly, "--for", "defender"}, nil, 0, []string{"configuration OK"}, 1},
		{"serve purpose", []string{"--config", defenderOnly, "--for", "serve"}, nil, 1, []string{"slack.bot_token is required"}, 0},
		{"example needs credentials", []string{"--config", example}, nil, 1, []string{"defender.tenant_id is required"}, 0},
		{"env fills example", []string{"--config", example, "--for", "defender"}, map[string]string{
			"AZURE_TENANT_ID": "t", "AZURE_CLIENT_ID": "a", "AZURE_CLIENT_SECRET": "s"}, 0, []string{"configuration OK"}, 1},
		{"missing file", []string{"--config", filepath.Join(dir, "none.yaml")}, nil, 1, []string{"none.yaml"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, nil, tt.env, append([]string{"validate-config"}, tt.args...)...)
			assert.Equal(t, tt.code, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
			for _, s := range tt.stdout {
				assert.Contains(t, r.stdout, s)
			}
			if tt.lineCount > 0 {
				assert.Len(t, strings.Split(strings.TrimSpace(r.stdout), "\n"), tt.lineCount, r.stdout)
			}
			assert.NotContains(t, r.stdout+r.stderr, "very-secret-value")
		})
	}
}

func TestValidateConfigUsage(t *testing.T) {
	r := runCLI(t, nil, nil, "validate-config", "--for", "bot")
	assert.Equal(t, 2, r.code)
	assert.Contains(t, r.stderr, `unknown purpose "bot"`)

	r = runCLI(t, nil, nil, "validate-config", "extra")
	assert.Equal(t, 2, r.code)

	r = runCLI(t, nil, nil, "validate-config", "--nope")
	assert.Equal(t, 2, r.code)

	r = runCLI(t, nil, nil, "validate-config", "-h")
	assert.Equal(t, 0, r.code)
	assert.Contains(t, r.stderr, "--for")
}

func TestValidateConfigWarnsAboutMisspelledVariables(t *testing.T) {
	var out, errb bytes.Buffer
	env := []string{"DEFENDERBOT_DEFENDER_POLL_INTERVALL=30s", "DEFENDERBOT_LISTEN=:9000"}
	c := &cli{stdout: &out, stderr: &errb, getenv: func(string) string { return "" }, environ: func() []string { return env }}
	run(context.Background(), c, []string{"validate-config", "--for", "all"})
	assert.Contains(t, errb.String(), "DEFENDERBOT_DEFENDER_POLL_INTERVALL is not a configuration variable")
	assert.NotContains(t, errb.String(), "DEFENDERBOT_LISTEN is not")
}

func TestValidateConfigWarnsWhenApprovalsCannotBeMet(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.yaml")
	require.NoError(t, os.WriteFile(p, []byte(`
defender: {tenant_id: t, app_id: a, app_secret: s}
slack: {bot_token: xoxb-1, signing_secret: sig, approval_channel: C0123ABCD}
approval: {approvers: [U0AAA, U0BBB], required_approvals: 2}
`), 0o600))
	r := runCLI(t, nil, nil, "validate-config", "--config", p)
	assert.Equal(t, 0, r.code, "a warning is not a problem")
	assert.Contains(t, r.stdout, "configuration OK")
	assert.Contains(t, r.stderr, "defenderbot: warning: approval.required_approvals (2) cannot be met when an approver (such as U0AAA) requests")
}

func TestValidateConfigWarnsWhenTheSyncIsOffButAFeedIsSet(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.yaml")
	require.NoError(t, os.WriteFile(p, []byte(`
defender: {tenant_id: t, app_id: a, app_secret: s}
slack: {bot_token: xoxb-1, signing_secret: sig, approval_channel: C0123ABCD}
approval: {approvers: [U0AAA, U0BBB]}
iocs: {stix_objects_path: /feeds/sekoia.json}
`), 0o600))
	r := runCLI(t, nil, nil, "validate-config", "--config", p)
	assert.Equal(t, 0, r.code, "a warning is not a problem")
	assert.Contains(t, r.stderr, "defenderbot: warning: iocs.stix_objects_path (or iocs.taxii.url) is set but iocs.enabled is off: serve will not run the IOC sync")
	assert.Contains(t, r.stderr, "set iocs.enabled: true")
}
