package config_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/defenderbot/defenderbot/config"
	"github.com/defenderbot/defenderbot/internal/testutil"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

// valid returns a configuration that passes Validate(ForAll).
func valid(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Load("", env(map[string]string{
		"AZURE_TENANT_ID":                    "11111111-2222-3333-4444-555555555555",
		"AZURE_CLIENT_ID":                    "66666666-7777-8888-9999-000000000000",
		"AZURE_CLIENT_SECRET":                "s3cr3t-azure",
		"SLACK_BOT_TOKEN":                    "xoxb-bot-token",
		"SLACK_SIGNING_SECRET":               "signing-s3cr3t",
		"DEFENDERBOT_SLACK_APPROVAL_CHANNEL": "C0123ABCD",
		"DEFENDERBOT_APPROVAL_APPROVERS":     "U0AAA,S0GROUP",
	}))
	require.NoError(t, err)
	require.NoError(t, cfg.Validate(config.ForAll))
	return cfg
}

func TestLoadDefaultsWithoutFile(t *testing.T) {
	cfg, err := config.Load("", nil)
	require.NoError(t, err)
	assert.Equal(t, config.Default(), cfg)
	assert.Equal(t, ":8080", cfg.Listen)
	assert.Equal(t, 15*time.Second, cfg.Defender.PollInterval)
	assert.Equal(t, []string{"get-action"}, cfg.Approval.ActionsWithoutApproval)
	assert.True(t, cfg.IOCs.GenerateAlert)
}

func TestLoadMissingFileIsAnError(t *testing.T) {
	_, err := config.Load(filepath.Join(t.TempDir(), "nope.yaml"), nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "nope.yaml")
	assert.ErrorIs(t, err, os.ErrNotExist)
}

func TestLoadFile(t *testing.T) {
	p := writeFile(t, "c.yaml", `
listen: 127.0.0.1:9000
defender:
  tenant_id: tenant
  poll_interval: 5s
  base_url: https://eu.api.security.microsoft.com/
approval:
  approvers: [U1AAA, U2BBB]
  required_approvals: 2
iocs:
  generate_alert: false
  action: warn
  severity: HIGH
`)
	cfg, err := config.Load(p, nil)
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:9000", cfg.Listen)
	assert.Equal(t, "tenant", cfg.Defender.TenantID)
	assert.Equal(t, 5*time.Second, cfg.Defender.PollInterval)
	assert.Equal(t, "https://eu.api.security.microsoft.com", cfg.Defender.BaseURL, "trailing slash dropped")
	assert.Equal(t, 30*time.Minute, cfg.Defender.PollTimeout, "unset keys keep defaults")
	assert.Equal(t, []string{"U1AAA", "U2BBB"}, cfg.Approval.Approvers)
	assert.False(t, cfg.IOCs.GenerateAlert, "an explicit false overrides the true default")
	assert.Equal(t, "Warn", cfg.IOCs.Action, "enums are canonicalised")
	assert.Equal(t, "High", cfg.IOCs.Severity)
}

func TestLoadRejectsBadYAML(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"unknown top key", "listen: :1\nlistne: :2\n", []string{"line 2: unknown key listne"}},
		{"unknown nested key", "defender:\n  tenant_id: x\n  tenantid: y\n", []string{"line 3: unknown key defender.tenantid"}},
		{"bad duration", "defender:\n  timeout: soon\n", []string{`line 2: defender.timeout: invalid duration "soon"`}},
		{"integer duration", "defender:\n  timeout: 30\n", []string{`line 2: defender.timeout: invalid duration "30" (use Go syntax`}},
		{"bad bool", "iocs:\n  enabled: maybe\n", []string{`line 2: iocs.enabled: invalid boolean "maybe"`}},
		{"bad integer", "defender:\n  max_retries: many\n", []string{`line 2: defender.max_retries: invalid integer "many"`}},
		{"list expected", "approval:\n  approvers: {a: b}\n", []string{"line 2: approval.approvers: must be a list of strings"}},
		{"section not a mapping", "defender: x\n", []string{"line 1: defender must be a mapping of keys"}},
		{"key set twice", "listen: :1\nlisten: :2\n", []string{"line 2: key listen is set twice"}},
		{"every bad key at once", "listne: 1\ndefender:\n  timeout: 5\n  nope: 1\n", []string{
			"line 1: unknown key listne", "line 3: defender.timeout", "line 4: unknown key defender.nope"}},
		{"two documents", "listen: :1\n---\nlisten: :2\n", []string{"more than one YAML document"}},
		{"not a mapping", "- a\n- b\n", []string{"line 1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Load(writeFile(t, "c.yaml", tt.yaml), nil)
			require.Error(t, err)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
			assert.NotContains(t, err.Error(), "config.", "Go type names are internals")
		})
	}
}

func TestLoadNeverEchoesABadSecret(t *testing.T) {
	_, err := config.Load(writeFile(t, "c.yaml", "defender:\n  app_secret: [hunter2-secret]\n"), nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "line 2: defender.app_secret: invalid value")
	assert.NotContains(t, err.Error(), "hunter2")
}

// Check lists the file's bad keys and values together with the validation
// of everything else, so one validate-config run shows every problem.
func TestCheckListsEveryProblem(t *testing.T) {
	p := writeFile(t, "c.yaml", "defender:\n  base_url: http://api.example.com\n  timeout: 5\n  bogus: 1\niocs:\n  mode: weird\n")
	err := config.Check(p, env(map[string]string{"DEFENDERBOT_DEFENDER_POLL_INTERVAL": "xx"}), config.ForDefender)
	var verr *config.ValidationError
	require.ErrorAs(t, err, &verr)
	assert.ElementsMatch(t, []string{
		p + `: line 3: defender.timeout: invalid duration "5" (use Go syntax such as 30s or 1h)`,
		p + ": line 4: unknown key defender.bogus",
		`DEFENDERBOT_DEFENDER_POLL_INTERVAL: invalid duration "xx" (use Go syntax such as 30s or 1h)`,
		`defender.base_url must be https (got "http://api.example.com")`,
		`iocs.mode must be one of incremental, snapshot (got "weird")`,
		"defender.tenant_id is required (or AZURE_TENANT_ID)",
		"defender.app_id is required (or AZURE_CLIENT_ID)",
		"defender.app_secret is required (or defender.app_secret_file, AZURE_CLIENT_SECRET, AZURE_CLIENT_SECRET_FILE)",
	}, verr.Problems)

	ok := writeFile(t, "ok.yaml", "defender:\n  tenant_id: t\n  app_id: a\n  app_secret: s\n")
	require.NoError(t, config.Check(ok, nil, config.ForDefender))

	err = config.Check(filepath.Join(t.TempDir(), "none.yaml"), nil, config.ForDefender)
	require.Error(t, err)
	assert.False(t, errors.As(err, &verr), "an unreadable file is not a list of problems")
}

func TestEmptyFileGivesDefaults(t *testing.T) {
	cfg, err := config.Load(writeFile(t, "c.yaml", "# nothing\n"), nil)
	require.NoError(t, err)
	assert.Equal(t, config.Default(), cfg)
}

func TestEnvOverrides(t *testing.T) {
	p := writeFile(t, "c.yaml", "listen: :1111\ndefender:\n  tenant_id: from-file\n")
	cfg, err := config.Load(p, env(map[string]string{
		"DEFENDERBOT_LISTEN":                            ":2222",
		"DEFENDERBOT_DEFENDER_POLL_INTERVAL":            "45s",
		"DEFENDERBOT_DEFENDER_MAX_RETRIES":              "3",
		"DEFENDERBOT_APPROVAL_APPROVERS":                " U1AAA , S2BBB ,",
		"DEFENDERBOT_APPROVAL_ALLOW_SELF_APPROVAL":      "true",
		"DEFENDERBOT_IOCS_MAX_DELETE_FRACTION":          "0.5",
		"DEFENDERBOT_IOCS_GENERATE_ALERT":               "false",
		"DEFENDERBOT_STORE_DSN":                         "postgres://u:p@db/x",
		"DEFENDERBOT_APPROVAL_ACTIONS_WITHOUT_APPROVAL": "get-action,SCAN",
		"AZURE_TENANT_ID":                               "from-usual", // file < usual
		"AZURE_CLIENT_ID":                               "usual-app",
		"DEFENDERBOT_DEFENDER_APP_ID":                   "specific-app", // usual < DEFENDERBOT_
		"SLACK_API_URL":                                 "https://slack.example/api",
		"DEFENDERBOT_LOG_LEVEL":                         "", // empty: ignored
	}))
	require.NoError(t, err)
	assert.Equal(t, ":2222", cfg.Listen)
	assert.Equal(t, 45*time.Second, cfg.Defender.PollInterval)
	assert.Equal(t, 3, cfg.Defender.MaxRetries)
	assert.Equal(t, []string{"U1AAA", "S2BBB"}, cfg.Approval.Approvers)
	assert.True(t, cfg.Approval.AllowSelfApproval)
	assert.InDelta(t, 0.5, cfg.IOCs.MaxDeleteFraction, 1e-9)
	assert.False(t, cfg.IOCs.GenerateAlert)
	assert.Equal(t, "postgres://u:p@db/x", cfg.Store.DSN.Value())
	assert.Equal(t, []string{"get-action", "scan"}, cfg.Approval.ActionsWithoutApproval)
	assert.Equal(t, "from-usual", cfg.Defender.TenantID)
	assert.Equal(t, "specific-app", cfg.Defender.AppID)
	assert.Equal(t, "https://slack.example/api/", cfg.Slack.APIURL)
	assert.Equal(t, "info", cfg.LogLevel)
}

func TestEveryKeyHasAnEnvOverride(t *testing.T) {
	for _, f := range config.Fields(config.Default()) {
		t.Run(f.Key, func(t *testing.T) {
			var raw string
			switch f.Key {
			case "defender.timeout", "defender.poll_interval", "defender.poll_timeout", "approval.ttl",
				"alerts.poll_interval", "alerts.backfill", "slack.timeout", "server.read_header_timeout", "server.read_timeout",
				"server.write_timeout", "server.idle_timeout", "server.shutdown_timeout", "iocs.run_timeout":
				raw = "7m"
			case "defender.max_retries", "approval.required_approvals", "approval.max_bulk", "iocs.taxii.page_size", "memory_limit_mib":
				raw = "7"
			case "iocs.max_object_bytes", "iocs.tenant_limit", "iocs.workers":
				raw = "7000"
			case "approval.allow_self_approval", "iocs.enabled", "alerts.enabled":
				raw = "true"
			case "iocs.generate_alert":
				raw = "false"
			case "iocs.max_delete_fraction":
				raw = "0.7"
			default:
				raw = "U7VALUE"
			}
			cfg, err := config.Load("", env(map[string]string{f.Env: raw}))
			if strings.HasSuffix(f.Key, "_file") {
				// Points at a file that does not exist: the error proves the variable was read.
				require.Error(t, err)
				assert.Contains(t, err.Error(), f.Key)
				return
			}
			require.NoError(t, err)
			assert.NotEqual(t, config.Default(), cfg, "%s had no effect", f.Env)
		})
	}
}

func TestEnvErrorsAreAllReportedAndNeverEchoSecrets(t *testing.T) {
	_, err := config.Load("", env(map[string]string{
		"DEFENDERBOT_DEFENDER_TIMEOUT":         "soon",
		"DEFENDERBOT_IOCS_ENABLED":             "yes please",
		"DEFENDERBOT_DEFENDER_MAX_RETRIES":     "many",
		"DEFENDERBOT_IOCS_MAX_DELETE_FRACTION": "half",
	}))
	var verr *config.ValidationError
	require.ErrorAs(t, err, &verr)
	assert.Len(t, verr.Problems, 4)
	assert.Contains(t, err.Error(), "DEFENDERBOT_DEFENDER_TIMEOUT")
	assert.Contains(t, err.Error(), `"soon"`)
}

func TestSecretFiles(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "azure")
	require.NoError(t, os.WriteFile(secret, []byte("from-file-secret\n"), 0o600))
	token := filepath.Join(dir, "bot")
	require.NoError(t, os.WriteFile(token, []byte("xoxb-from-file\r\n"), 0o600))
	dsn := filepath.Join(dir, "dsn")
	require.NoError(t, os.WriteFile(dsn, []byte("postgres://u:pw@h/db"), 0o600))
	p := writeFile(t, "c.yaml", fmt.Sprintf("defender:\n  app_secret_file: %s\nstore:\n  dsn_file: %s\n", secret, dsn))

	cfg, err := config.Load(p, env(map[string]string{"SLACK_BOT_TOKEN_FILE": token}))
	require.NoError(t, err)
	assert.Equal(t, "from-file-secret", cfg.Defender.AppSecret.Value())
	assert.Equal(t, "xoxb-from-file", cfg.Slack.BotToken.Value())
	assert.Equal(t, "postgres://u:pw@h/db", cfg.Store.DSN.Value())
}

func TestSecretFileProblems(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	require.NoError(t, os.WriteFile(empty, []byte("\n"), 0o600))
	_, err := config.Load("", env(map[string]string{
		"AZURE_CLIENT_SECRET":       "inline-secret-value",
		"AZURE_CLIENT_SECRET_FILE":  filepath.Join(dir, "whatever"),
		"SLACK_BOT_TOKEN_FILE":      filepath.Join(dir, "missing"),
		"SLACK_SIGNING_SECRET_FILE": empty,
	}))
	var verr *config.ValidationError
	require.ErrorAs(t, err, &verr)
	require.Len(t, verr.Problems, 3, verr.Problems)
	assert.Contains(t, verr.Problems[0], "defender.app_secret and defender.app_secret_file are both set")
	assert.Contains(t, verr.Problems[1], "slack.bot_token_file")
	assert.Contains(t, verr.Problems[1], "missing")
	assert.Contains(t, verr.Problems[2], "is empty")
	assert.NotContains(t, err.Error(), "inline-secret-value")
}

func TestValidateValid(t *testing.T) {
	cfg := valid(t)
	for _, p := range []config.Purpose{config.ForAll, config.ForDefender, config.ForServe} {
		assert.NoError(t, cfg.Validate(p), p.String())
	}
}

func TestValidateProblems(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *config.Config)
		want   string
	}{
		{"tenant", func(c *config.Config) { c.Defender.TenantID = "" }, "defender.tenant_id is required"},
		{"tenant chars", func(c *config.Config) { c.Defender.TenantID = "a/b" }, "defender.tenant_id must be"},
		{"app id", func(c *config.Config) { c.Defender.AppID = "" }, "defender.app_id is required"},
		{"app secret", func(c *config.Config) { c.Defender.AppSecret = "" }, "defender.app_secret is required"},
		{"http base", func(c *config.Config) { c.Defender.BaseURL = "http://api.example.com" }, "defender.base_url must be https"},
		{"relative base", func(c *config.Config) { c.Defender.BaseURL = "api.example.com" }, "defender.base_url must be an absolute https URL"},
		{"authority", func(c *config.Config) { c.Defender.AuthorityHost = "ftp://x" }, "defender.authority_host must be"},
		{"timeout", func(c *config.Config) { c.Defender.Timeout = 0 }, "defender.timeout must be a positive duration"},
		{"poll interval", func(c *config.Config) { c.Defender.PollInterval = -time.Second }, "defender.poll_interval must be a positive duration"},
		{"poll order", func(c *config.Config) { c.Defender.PollTimeout = time.Second }, "defender.poll_timeout (1s) must not be shorter"},
		{"retries", func(c *config.Config) { c.Defender.MaxRetries = -1 }, "defender.max_retries must be between 1 and 20"},
		{"tenant common", func(c *config.Config) { c.Defender.TenantID = "common" }, "cannot be used with client credentials"},
		{"loopback http defender", func(c *config.Config) { c.Defender.BaseURL = "http://127.0.0.1:9" }, "defender.base_url must be https"},
		{"authority path", func(c *config.Config) { c.Defender.AuthorityHost = "https://login.microsoftonline.com/tenant" }, "defender.authority_host must be a host only"},
		{"listen", func(c *config.Config) { c.Listen = "8080" }, "listen must be host:port"},
		{"log level", func(c *config.Config) { c.LogLevel = "trace" }, "log_level must be one of debug, info, warn, error"},
		{"log format", func(c *config.Config) { c.LogFormat = "xml" }, "log_format must be one of json, text"},
		{"memory limit", func(c *config.Config) { c.MemoryLimitMiB = -1 }, "memory_limit_mib must be 0"},
		{"bot token missing", func(c *config.Config) { c.Slack.BotToken = "" }, "slack.bot_token is required"},
		{"bot token kind", func(c *config.Config) { c.Slack.BotToken = "xapp-wrong" }, "slack.bot_token must be a bot token"},
		{"app token kind", func(c *config.Config) { c.Slack.AppToken = "xoxb-wrong" }, "slack.app_token must be an app-level token"},
		{"signing", func(c *config.Config) { c.Slack.SigningSecret = "" }, "slack.signing_secret is required unless slack.app_token"},
		{"channel missing", func(c *config.Config) { c.Slack.ApprovalChannel = "" }, "slack.approval_channel is required"},
		{"channel name", func(c *config.Config) { c.Slack.ApprovalChannel = "#soc" }, "slack.approval_channel must be a channel ID"},
		{"command", func(c *config.Config) { c.Slack.Command = "defender" }, "slack.command must be a slash command"},
		{"api url", func(c *config.Config) { c.Slack.APIURL = "http://slack.com/api/" }, "slack.api_url must be https"},
		{"approvers", func(c *config.Config) { c.Approval.Approvers = nil }, "approval.approvers must list at least one approver"},
		{"approver id", func(c *config.Config) { c.Approval.Approvers = []string{"alice"} }, `approval.approvers[0] must be a Slack user ID (U…/W…) or user-group ID (S…) (got "alice")`},
		{"requester id", func(c *config.Config) { c.Approval.Requesters = []string{"U1AAA", "C123"} }, "approval.requesters[1] must be"},
		{"dup approver", func(c *config.Config) { c.Approval.Approvers = []string{"U1AAA", "U1AAA"} }, "approval.approvers lists U1AAA twice"},
		{"approvals zero", func(c *config.Config) { c.Approval.RequiredApprovals = 0 }, "approval.required_approvals must be at least 1"},
		{"approvals too many", func(c *config.Config) {
			c.Approval.Approvers = []string{"U1AAA", "U2BBB"}
			c.Approval.RequiredApprovals = 3
		}, "approval.required_approvals (3) exceeds the number of approvers (2)"},
		{"ttl", func(c *config.Config) { c.Approval.TTL = 0 }, "approval.ttl must be a positive duration"},
		{"slack timeout", func(c *config.Config) { c.Slack.Timeout = 0 }, "slack.timeout must be a positive duration"},
		{"read header timeout", func(c *config.Config) { c.Server.ReadHeaderTimeout = 0 }, "server.read_header_timeout must be a positive duration"},
		{"read timeout", func(c *config.Config) { c.Server.ReadTimeout = -time.Second }, "server.read_timeout must be a positive duration"},
		{"write timeout", func(c *config.Config) { c.Server.WriteTimeout = 0 }, "server.write_timeout must be a positive duration"},
		{"write timeout within the ack", func(c *config.Config) { c.Server.WriteTimeout = 2 * time.Second },
			"server.write_timeout (2s) must be longer than Slack's acknowledgement time (2.5s)"},
		{"idle timeout", func(c *config.Config) { c.Server.IdleTimeout = 0 }, "server.idle_timeout must be a positive duration"},
		{"shutdown timeout", func(c *config.Config) { c.Server.ShutdownTimeout = 0 }, "server.shutdown_timeout must be a positive duration"},
		{"IOC run timeout", func(c *config.Config) { c.IOCs.RunTimeout = -time.Minute }, "iocs.run_timeout must be a positive duration (got -1m0s)"},
		{"unknown action", func(c *config.Config) { c.Approval.ActionsWithoutApproval = []string{"reboot"} }, `approval.actions_without_approval[0]: unknown action "reboot"`},
		{"bulk zero", func(c *config.Config) { c.Approval.MaxBulk = 0 }, "approval.max_bulk must be between 1 and 50 (got 0)"},
		{"bulk over one message", func(c *config.Config) { c.Approval.MaxBulk = 51 }, "approval.max_bulk must be between 1 and 50 (got 51)"},
		{"driver", func(c *config.Config) { c.Store.Driver = "mysql" }, "store.driver must be one of sqlite, postgres"},
		{"dsn", func(c *config.Config) { c.Store.DSN = "" }, "store.dsn is required"},
		{"cron", func(c *config.Config) { c.IOCs.Schedule = "every hour" }, `iocs.schedule "every hour" is not a valid cron spec`},
		{"cron tz panic", func(c *config.Config) { c.IOCs.Schedule = "TZ=0" }, "time zone prefix must be followed by a schedule"},
		{"cron crontz panic", func(c *config.Config) { c.IOCs.Schedule = "CRON_TZ=UTC" }, "is not a valid cron spec"},
		{"cron seconds", func(c *config.Config) { c.IOCs.Schedule = "0 0 * * * *" }, "is not a valid cron spec"},
		{"ioc action", func(c *config.Config) { c.IOCs.Action = "Nuke" }, "iocs.action must be one of Warn, Block, Audit, Alert, AlertAndBlock, BlockAndRemediate, Allowed"},
		{"audit alert", func(c *config.Config) { c.IOCs.Action = "Audit"; c.IOCs.GenerateAlert = false }, "iocs.action Audit requires iocs.generate_alert"},
		{"severity", func(c *config.Config) { c.IOCs.Severity = "Critical" }, "iocs.severity must be one of Informational, Low, Medium, High"},
		{"mode", func(c *config.Config) { c.IOCs.Mode = "full" }, "iocs.mode must be one of incremental, snapshot"},
		{"patterns", func(c *config.Config) { c.IOCs.Patterns = "some" }, "iocs.patterns must be one of all, simple"},
		{"fraction", func(c *config.Config) { c.IOCs.MaxDeleteFraction = 1.5 }, "iocs.max_delete_fraction must be between 0 and 1"},
		{"tenant limit", func(c *config.Config) { c.IOCs.TenantLimit = 0 }, "iocs.tenant_limit must be at least 1 (got 0)"},
		{"workers", func(c *config.Config) { c.IOCs.Workers = -1 }, "iocs.workers must not be negative (got -1; 0: one per CPU)"},
		{"sekoia url", func(c *config.Config) { c.IOCs.SekoiaBaseURL = "http://app.sekoia.io" }, "iocs.sekoia_base_url must be https"},
		{"report channel", func(c *config.Config) { c.IOCs.ReportChannel = "soc" }, "iocs.report_channel must be a channel ID"},
		{"stix path", func(c *config.Config) { c.IOCs.Enabled = true }, "iocs.stix_objects_path is required when iocs.enabled is true"},
		{"feed twice", func(c *config.Config) {
			c.IOCs.STIXObjectsPath, c.IOCs.TAXII.URL, c.IOCs.TAXII.Collection = "feed.json", "https://taxii.example/api1/", "c1"
		}, "iocs.stix_objects_path and iocs.taxii.url are both set"},
		{"taxii http", func(c *config.Config) { c.IOCs.TAXII.URL, c.IOCs.TAXII.Collection = "http://taxii.example/api1/", "c1" }, "iocs.taxii.url must be https"},
		{"taxii collection", func(c *config.Config) { c.IOCs.TAXII.URL = "https://taxii.example/api1/" }, "iocs.taxii.collection is required"},
		{"taxii collection path", func(c *config.Config) {
			c.IOCs.TAXII.URL, c.IOCs.TAXII.Collection = "https://taxii.example/api1/", "c1/objects/"
		}, "iocs.taxii.collection must be a collection ID"},
		{"taxii both auths", func(c *config.Config) {
			c.IOCs.TAXII = config.TAXII{URL: "https://taxii.example/", Collection: "c", Username: "u", Password: "p", Token: "t", PageSize: 10}
		}, "not both"},
		{"taxii user alone", func(c *config.Config) {
			c.IOCs.TAXII = config.TAXII{URL: "https://taxii.example/", Collection: "c", Username: "u", PageSize: 10}
		}, "iocs.taxii.username needs iocs.taxii.password"},
		{"taxii page size", func(c *config.Config) { c.IOCs.TAXII.PageSize = 0 }, "iocs.taxii.page_size must be between 1 and 10000"},
		{"graph url", func(c *config.Config) { c.Defender.GraphBaseURL = "http://graph.microsoft.com" }, "defender.graph_base_url must be https"},
		{"alerts api", func(c *config.Config) { c.Defender.AlertsAPI = "beta" }, "defender.alerts_api must be one of legacy, graph"},
		{"min severity", func(c *config.Config) { c.Alerts.MinSeverity = "critical" }, "alerts.min_severity must be one of informational, low, medium, high"},
		{"alerts poll", func(c *config.Config) { c.Alerts.PollInterval = time.Second }, "alerts.poll_interval must be at least 10s"},
		{"backfill", func(c *config.Config) { c.Alerts.Backfill = -time.Hour }, "alerts.backfill must be between 0 and 720h"},
		{"service source", func(c *config.Config) { c.Alerts.ServiceSources = []string{"mde"} }, `alerts.service_sources[0]: unknown service source "mde"`},
		{"alerts channel", func(c *config.Config) { c.Alerts.Channel = "#soc" }, "alerts.channel must be a channel ID"},
		{"alerts enabled", func(c *config.Config) { c.Alerts.Enabled = true }, "alerts.channel is required when alerts.enabled is true"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid(t)
			tt.mutate(cfg)
			err := cfg.Validate(config.ForAll)
			var verr *config.ValidationError
			require.ErrorAs(t, err, &verr)
			assert.Contains(t, strings.Join(verr.Problems, "\n"), tt.want)
		})
	}
}

func TestTAXIIFeed(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "taxii-pw")
	require.NoError(t, os.WriteFile(pw, []byte("taxii-s3cret-from-file\n"), 0o600))
	cfg, err := config.Load("", env(map[string]string{
		"DEFENDERBOT_IOCS_ENABLED":             "true",
		"DEFENDERBOT_IOCS_TAXII_URL":           "http://127.0.0.1:9000/api1/",
		"DEFENDERBOT_IOCS_TAXII_COLLECTION":    "365fed99-08fa-fdcd-a1b3-fb247eb41d01",
		"DEFENDERBOT_IOCS_TAXII_USERNAME":      "analyst",
		"DEFENDERBOT_IOCS_TAXII_PASSWORD_FILE": pw,
		"DEFENDERBOT_IOCS_TAXII_PAGE_SIZE":     "200",
	}))
	require.NoError(t, err)
	assert.Equal(t, config.TAXII{URL: "http://127.0.0.1:9000/api1/", Collection: "365fed99-08fa-fdcd-a1b3-fb247eb41d01",
		Username: "analyst", Password: "taxii-s3cret-from-file", PasswordFile: pw, PageSize: 200}, cfg.IOCs.TAXII)
	assert.NotContains(t, cfg.String(), "taxii-s3cret-from-file")
	var logBuf bytes.Buffer
	slog.New(slog.NewJSONHandler(&logBuf, nil)).Info("config", "cfg", cfg)
	assert.NotContains(t, logBuf.String(), "taxii-s3cret-from-file")
	assert.Contains(t, logBuf.String(), `"password":"[REDACTED]"`)

	// Enabled with TAXII and no file: valid (http is fine on loopback).
	cfg.Defender.TenantID, cfg.Defender.AppID, cfg.Defender.AppSecret = "t", "a", "s"
	require.NoError(t, cfg.Validate(config.ForDefender))
	cfg.IOCs.TAXII.URL = ""
	assert.ErrorContains(t, cfg.Validate(config.ForDefender), "iocs.stix_objects_path is required when iocs.enabled is true (or iocs.taxii.url")

	_, err = config.Load("", env(map[string]string{"DEFENDERBOT_IOCS_TAXII_TOKEN": "inline-tok-secret", "DEFENDERBOT_IOCS_TAXII_TOKEN_FILE": pw}))
	require.ErrorContains(t, err, "iocs.taxii.token and iocs.taxii.token_file are both set")
	assert.NotContains(t, err.Error(), "inline-tok-secret")
}

func TestValidateReportsEveryProblem(t *testing.T) {
	cfg := config.Default()
	cfg.Approval.RequiredApprovals = 0
	cfg.IOCs.Action = "Nope"
	err := cfg.Validate(config.ForServe)
	var verr *config.ValidationError
	require.ErrorAs(t, err, &verr)
	assert.ElementsMatch(t, []string{
		"approval.required_approvals must be at least 1 (got 0)",
		`iocs.action must be one of Warn, Block, Audit, Alert, AlertAndBlock, BlockAndRemediate, Allowed (got "Nope")`,
		"defender.tenant_id is required (or AZURE_TENANT_ID)",
		"defender.app_id is required (or AZURE_CLIENT_ID)",
		"defender.app_secret is required (or defender.app_secret_file, AZURE_CLIENT_SECRET, AZURE_CLIENT_SECRET_FILE)",
		"slack.bot_token is required (or slack.bot_token_file, SLACK_BOT_TOKEN)",
		"slack.signing_secret is required unless slack.app_token is set (or slack.signing_secret_file, SLACK_SIGNING_SECRET)",
		"slack.approval_channel is required",
		"approval.approvers must list at least one approver",
	}, verr.Problems)
	assert.Contains(t, err.Error(), "invalid configuration (9 problems)")
}

func TestValidatePurposes(t *testing.T) {
	cfg, err := config.Load("", env(map[string]string{
		"AZURE_TENANT_ID": "t", "AZURE_CLIENT_ID": "c", "AZURE_CLIENT_SECRET": "s",
	}))
	require.NoError(t, err)
	assert.NoError(t, cfg.Validate(config.ForDefender), "defender creds are enough for action/push-iocs")
	assert.Error(t, cfg.Validate(config.ForServe))
	assert.Error(t, cfg.Validate(config.ForAll))

	// Socket Mode needs no signing secret.
	cfg.Slack.BotToken = "xoxb-1"
	cfg.Slack.AppToken = "xapp-1"
	cfg.Slack.ApprovalChannel = "C1AAA"
	cfg.Approval.Approvers = []string{"U1AAA"}
	assert.NoError(t, cfg.Validate(config.ForServe))

	// Defender purpose still needs the credentials.
	cfg.Defender.AppSecret = ""
	assert.ErrorContains(t, cfg.Validate(config.ForDefender), "defender.app_secret is required")
}

func TestValidateAllowsLoopbackHTTPForSlack(t *testing.T) {
	cfg := valid(t)
	cfg.Slack.APIURL = "http://127.0.0.1:8443/api/"
	assert.NoError(t, cfg.Validate(config.ForAll))
}

func TestParsePurpose(t *testing.T) {
	for _, p := range []config.Purpose{config.ForAll, config.ForDefender, config.ForServe} {
		got, err := config.ParsePurpose(strings.ToUpper(p.String()))
		require.NoError(t, err)
		assert.Equal(t, p, got)
	}
	_, err := config.ParsePurpose("bot")
	assert.ErrorContains(t, err, `unknown purpose "bot"`)
}

func TestSecretsNeverPrinted(t *testing.T) {
	cfg := valid(t)
	cfg.Slack.AppToken = "xapp-app-secret-token"
	cfg.Store.DSN = "postgres://user:dbpassword@db/x"
	secrets := []string{"s3cr3t-azure", "xoxb-bot-token", "signing-s3cr3t", "xapp-app-secret-token", "dbpassword"}

	var logBuf bytes.Buffer
	slog.New(slog.NewJSONHandler(&logBuf, nil)).Info("config", "cfg", cfg, "defender", cfg.Defender, "secret", cfg.Defender.AppSecret)
	var textBuf bytes.Buffer
	slog.New(slog.NewTextHandler(&textBuf, nil)).Info("config", "cfg", cfg, "slack", cfg.Slack)
	js, err := json.Marshal(cfg)
	require.NoError(t, err)
	ym, err := yaml.Marshal(cfg)
	require.NoError(t, err)

	outputs := map[string]string{
		"String":   cfg.String(),
		"%v":       fmt.Sprintf("%v", cfg),
		"%+v":      fmt.Sprintf("%+v", *cfg),
		"%#v":      fmt.Sprintf("%#v", cfg),
		"%s slack": fmt.Sprintf("%s %v %q %x", cfg.Slack.BotToken, cfg.Slack, cfg.Slack.SigningSecret, cfg.Defender.AppSecret),
		"json":     string(js),
		"yaml":     string(ym),
		"slog":     logBuf.String(),
		"slogtext": textBuf.String(),
	}
	for name, out := range outputs {
		for _, s := range secrets {
			assert.NotContains(t, out, s, "%s leaks a secret", name)
		}
		assert.Contains(t, out, "REDACTED", name)
	}
	// Non-secret values are still visible for debugging.
	assert.Contains(t, logBuf.String(), `"tenant_id":"11111111-2222-3333-4444-555555555555"`)
	assert.Contains(t, cfg.String(), "C0123ABCD")
}

// TestExampleMatchesDefaults keeps config.example.yaml in step with the code:
// it loads with unknown keys rejected, documents every key with a comment
// naming its environment variable, and each value is the default.
func TestExampleMatchesDefaults(t *testing.T) {
	path := filepath.Join(testutil.RepoRoot(t), "config.example.yaml")
	cfg, err := config.Load(path, nil)
	require.NoError(t, err)
	assert.Equal(t, config.Default(), cfg, "config.example.yaml values must equal config.Default()")

	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var root yaml.Node
	require.NoError(t, yaml.Unmarshal(data, &root))
	documented := map[string]string{} // key -> comment
	var walk func(n *yaml.Node, prefix string)
	walk = func(n *yaml.Node, prefix string) {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			key := prefix + k.Value
			if v.Kind == yaml.MappingNode {
				walk(v, key+".")
				continue
			}
			documented[key] = k.HeadComment
		}
	}
	walk(root.Content[0], "")
	for _, f := range config.Fields(config.Default()) {
		comment, ok := documented[f.Key]
		if !assert.True(t, ok, "config.example.yaml lacks %s", f.Key) {
			continue
		}
		assert.Contains(t, comment, f.Env, "comment of %s must name %s", f.Key, f.Env)
		delete(documented, f.Key)
	}
	assert.Empty(t, documented, "config.example.yaml documents keys the code does not have")
	for name, key := range config.UsualEnv() {
		assert.Contains(t, string(data), name, "usual variable for %s is undocumented", key)
	}
}

func TestValidateScheduleAcceptsDescriptorsAndTZ(t *testing.T) {
	for _, spec := range []string{"@every 1h", "@hourly", "*/15 * * * *", "CRON_TZ=Europe/Paris 30 4 * * *", "TZ=UTC 0 0 * * 1"} {
		assert.NoError(t, config.ValidateSchedule(spec), spec)
	}
	for _, spec := range []string{"", "TZ=", "@every", "@every -1h", "61 * * * *", "CRON_TZ=Nowhere/City 0 0 * * *"} {
		assert.Error(t, config.ValidateSchedule(spec), spec)
	}
}

func TestReplica(t *testing.T) {
	cfg := config.Default()
	cfg.ReplicaID = "pod-a"
	assert.Equal(t, "pod-a", cfg.Replica())
	cfg.ReplicaID = ""
	got := cfg.Replica()
	assert.Contains(t, got, "-")
	assert.NotEqual(t, "pod-a", got)
	assert.Equal(t, got, cfg.Replica(), "stable within one process")
}

func TestUnknownEnv(t *testing.T) {
	got := config.UnknownEnv([]string{
		"DEFENDERBOT_DEFENDER_POLL_INTERVAL=30s", // a key
		"DEFENDERBOT_DEFENDER_POLL_INTERVALL=30s",
		"DEFENDERBOT_LISTEN=:9000",
		"DEFENDERBOT_CONFIG=/etc/defenderbot.yaml",
		"DEFENDERBOT_STORE_DSN_FILE=/run/secrets/dsn",
		"DEFENDERBOT_SLACK_TOKEN=xoxb-secret-value",
		"AZURE_TENANT_ID=t",
		"PATH=/usr/bin",
	})
	assert.Equal(t, []string{"DEFENDERBOT_DEFENDER_POLL_INTERVALL", "DEFENDERBOT_SLACK_TOKEN"}, got)
}

func TestAlertsFromEnvironment(t *testing.T) {
	cfg, err := config.Load("", env(map[string]string{
		"DEFENDERBOT_ALERTS_ENABLED":          "true",
		"DEFENDERBOT_ALERTS_CHANNEL":          "C0ALERTS",
		"DEFENDERBOT_ALERTS_MIN_SEVERITY":     "High",
		"DEFENDERBOT_ALERTS_SERVICE_SOURCES":  "MicrosoftDefenderForEndpoint, microsoftDefenderForIdentity",
		"DEFENDERBOT_DEFENDER_ALERTS_API":     "Graph",
		"DEFENDERBOT_DEFENDER_GRAPH_BASE_URL": "https://graph.microsoft.us/",
	}))
	require.NoError(t, err)
	assert.Equal(t, config.Alerts{Enabled: true, Channel: "C0ALERTS", MinSeverity: "high", PollInterval: time.Minute,
		Backfill: time.Hour, ServiceSources: []string{"microsoftDefenderForEndpoint", "microsoftDefenderForIdentity"}}, cfg.Alerts)
	assert.Equal(t, config.AlertsAPIGraph, cfg.Defender.AlertsAPI)
	assert.Equal(t, "https://graph.microsoft.us", cfg.Defender.GraphBaseURL)
}

func TestWarningsWhenAnApproverCannotBeApprovedFor(t *testing.T) {
	tests := []struct {
		name       string
		approvers  []string
		requesters []string
		required   int
		self       bool
		warn       bool
	}{
		{"one approver, anyone requests", []string{"U0A"}, nil, 1, false, true},
		{"two approvers, one needed", []string{"U0A", "U0B"}, nil, 1, false, false},
		{"two approvers, two needed", []string{"U0A", "U0B"}, nil, 2, false, true},
		{"self approval allowed", []string{"U0A", "U0B"}, nil, 2, true, false},
		{"approvers cannot request", []string{"U0A", "U0B"}, []string{"U0C"}, 2, false, false},
		{"an approver may request", []string{"U0A", "U0B"}, []string{"U0C", "U0B"}, 2, false, true},
		{"requesters by group may include an approver", []string{"U0A", "U0B"}, []string{"S0SOC"}, 2, false, true},
		{"approver groups can grow", []string{"S0SOC"}, nil, 2, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := config.Default()
			c.Approval.Approvers, c.Approval.Requesters = tt.approvers, tt.requesters
			c.Approval.RequiredApprovals, c.Approval.AllowSelfApproval = tt.required, tt.self
			w := c.Warnings()
			if !tt.warn {
				assert.Empty(t, w)
				return
			}
			require.Len(t, w, 1)
			assert.Contains(t, w[0], fmt.Sprintf("approval.required_approvals (%d) cannot be met", tt.required))
			assert.Contains(t, w[0], fmt.Sprintf("only %d other approver(s)", len(tt.approvers)-1))
		})
	}
}

func TestResponseURLHosts(t *testing.T) {
	assert.Equal(t, []string{"hooks.slack.com", "hooks.slack-gov.com"}, config.Slack{APIURL: "https://slack.com/api/"}.ResponseURLHosts())
	assert.Equal(t, []string{"hooks.slack.com", "hooks.slack-gov.com", "127.0.0.1:4390"}, config.Slack{APIURL: "http://127.0.0.1:4390/api/"}.ResponseURLHosts())
}

func TestWarningWhenAFeedIsSetButTheSyncIsOff(t *testing.T) {
	c := config.Default()
	assert.Empty(t, c.Warnings())
	c.IOCs.STIXObjectsPath = "/feeds/sekoia.json"
	w := c.Warnings()
	require.Len(t, w, 1)
	assert.Contains(t, w[0], "iocs.enabled is off: serve will not run the IOC sync")
	assert.Contains(t, w[0], "set iocs.enabled: true (or DEFENDERBOT_IOCS_ENABLED=true)")
	c.IOCs.Enabled = true
	assert.Empty(t, c.Warnings())
}
