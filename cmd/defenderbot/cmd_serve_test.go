package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/slack-go/slack"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/defenderbot/defenderbot/actions"
	"github.com/defenderbot/defenderbot/approval"
	"github.com/defenderbot/defenderbot/config"
	"github.com/defenderbot/defenderbot/defender/defendertest"
	"github.com/defenderbot/defenderbot/internal/slackfake"
	"github.com/defenderbot/defenderbot/internal/testutil"
	"github.com/defenderbot/defenderbot/ioc"
	"github.com/defenderbot/defenderbot/store"
	"github.com/defenderbot/defenderbot/taxii/taxiitest"
)

// syncBuffer is a bytes.Buffer safe for concurrent writes, so a test can
// read a running command's output (a server's log) while it writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// serveFreeAddr is an address nothing listens on (for a store that must
// fail to connect). A server under test listens on port 0 instead and
// reports its address (servedAddr): a port picked here and listened on later
// could be taken in between.
func serveFreeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// servingRE finds serve's "defenderbot serving" line, in JSON or text.
var servingRE = regexp.MustCompile(`"msg":"defenderbot serving".*?"listen":"([^"]+)"|msg="defenderbot serving" listen=(\S+)`)

// servedAddr waits for serve (run with listen 127.0.0.1:0) to log the
// address it listens on, and returns it; it fails if serve exits first.
func servedAddr(t *testing.T, logs *syncBuffer, exited <-chan struct{}) string {
	t.Helper()
	var addr string
	require.Eventually(t, func() bool {
		if m := servingRE.FindStringSubmatch(logs.String()); m != nil {
			addr = m[1] + m[2]
			return true
		}
		select {
		case <-exited:
			require.FailNow(t, "serve exited before listening", "%s", logs.String())
		default:
		}
		return false
	}, 30*time.Second, 10*time.Millisecond, "serve did not log its address:\n%s", logs.String())
	return addr
}

const serveSecret = "serve-test-signing-secret"

func writeServeConfig(t *testing.T, emu *defendertest.Server, sf *slackfake.Server, listen, db string) string {
	t.Helper()
	yaml := fmt.Sprintf(`listen: %q
log_format: text
log_level: debug
defender:
  base_url: %q
  authority_host: %q
  tenant_id: %q
  app_id: %q
  app_secret: %q
  poll_interval: 50ms
slack:
  bot_token: xoxb-serve-test
  signing_secret: %q
  api_url: %q
  approval_channel: C0SOC
approval:
  approvers: [U0BOB]
store:
  driver: sqlite
  dsn: %q
`, listen, emu.URL, emu.URL, defendertest.TenantID, defendertest.ClientID, defendertest.ClientSecret, serveSecret, sf.APIURL(), db)
	path := filepath.Join(t.TempDir(), "defenderbot.yaml")
	require.NoError(t, os.WriteFile(path, []byte(yaml), 0o600))
	return path
}

func serveGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestServeRunsAndShutsDownKeepingPendingRequests(t *testing.T) {
	emu := defendertest.NewServer(t)
	emu.AddSampleData()
	sf := slackfake.NewT(t)
	db := filepath.Join(t.TempDir(), "serve.db")
	cfgPath := writeServeConfig(t, emu, sf, "127.0.0.1:0", db)

	var stdout, stderr syncBuffer
	c := &cli{stdout: &stdout, stderr: &stderr, getenv: func(string) string { return "" }, httpClient: emu.HTTPClient()}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	exit, exited := make(chan int, 1), make(chan struct{})
	go func() { exit <- runServe(ctx, c, []string{"--config", cfgPath}); close(exited) }()

	base := "http://" + servedAddr(t, &stderr, exited)
	require.Eventually(t, func() bool { code, _ := serveGet(t, base+"/healthz"); return code == 200 }, 10*time.Second, 10*time.Millisecond,
		"server did not come up; stderr:\n%s", stderr.String())

	code, body := serveGet(t, base+"/readyz")
	assert.Equal(t, http.StatusOK, code, body)
	assert.JSONEq(t, `{"status":"ready","checks":{"store":"ok","defender_token":"ok"}}`, body)

	form := slackfake.CommandForm(slack.SlashCommand{Command: "/defender", Text: "isolate finance-laptop-01.contoso.com full beacon",
		UserID: "U0ALICE", UserName: "alice", ChannelID: "C1", ResponseURL: sf.ResponseURL("cmd")})
	req, err := slackfake.SignedRequest(ctx, base+"/slack/commands", serveSecret, time.Now(), form)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	posts, err := sf.WaitFor(wctx, slackfake.MethodPostMessage, 1)
	require.NoError(t, err)
	assert.Equal(t, "C0SOC", posts[0].Channel)

	_, metrics := serveGet(t, base+"/metrics")
	assert.Contains(t, metrics, `defenderbot_slack_requests_total{outcome="ok",route="/slack/commands"} 1`)
	assert.Contains(t, metrics, `defenderbot_slack_ack_seconds_bucket`)
	assert.Contains(t, metrics, `defenderbot_approval_requests_total{state="pending"} 1`)
	assert.Contains(t, metrics, `defenderbot_defender_calls_total{api="machines",status="200"}`)
	assert.Contains(t, metrics, "\ndefenderbot_ready 1\n", "the passed readiness check is exported")
	assert.Contains(t, metrics, "\ndefenderbot_approval_ttl_seconds 3600\n", "the start-up sweep exports the approval backlog")

	cancel()
	select {
	case code := <-exit:
		assert.Equal(t, 0, code, "stderr:\n%s", stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
	assert.Contains(t, stderr.String(), "shutting down")
	assert.NotContains(t, stderr.String(), serveSecret)
	assert.NotContains(t, stderr.String(), defendertest.ClientSecret)
	code, _ = serveGet(t, base+"/healthz")
	assert.Zero(t, code, "the port is closed after shutdown")

	st, err := store.Open(context.Background(), "sqlite", db)
	require.NoError(t, err)
	defer st.Close()
	pending, err := st.ListRequests(context.Background(), approval.RequestFilter{States: []approval.State{approval.StatePending}})
	require.NoError(t, err)
	require.Len(t, pending, 1, "the pending request survives the shutdown")
	assert.Equal(t, actions.Isolate, pending[0].Action)
	assert.Empty(t, emu.MachineActions(), "nothing ran without approval")
}

func TestServeRefusesBadConfig(t *testing.T) {
	var stdout, stderr bytes.Buffer
	env := map[string]string{"SLACK_BOT_TOKEN": "xoxb-very-secret-token"}
	c := &cli{stdout: &stdout, stderr: &stderr, getenv: func(k string) string { return env[k] }}

	assert.Equal(t, 1, runServe(context.Background(), c, nil))
	out := stderr.String()
	for _, want := range []string{"defender.tenant_id", "slack.signing_secret", "slack.approval_channel", "approval.approvers"} {
		assert.Contains(t, out, want)
	}
	assert.NotContains(t, out, "xoxb-very-secret-token")

	stderr.Reset()
	assert.Equal(t, 2, runServe(context.Background(), c, []string{"extra"}))
	assert.Equal(t, 2, runServe(context.Background(), c, []string{"--bogus"}))
	assert.Equal(t, 0, runServe(context.Background(), c, []string{"-h"}))
	assert.True(t, strings.Contains(stderr.String(), "--config") || strings.Contains(stderr.String(), "-config"))
}

// TestServeWiresTheIOCSync checks that serve schedules the STIX -> Defender
// sync under the "iocs-sync" lease and reports each run to Slack.
func TestServeWiresTheIOCSync(t *testing.T) {
	t.Run("file", func(t *testing.T) {
		serveIOCSync(t, map[string]string{
			"DEFENDERBOT_IOCS_STIX_OBJECTS_PATH": testutil.Fixture(t, "sekoia/stix_objects_ipv4_and_file_hash.json"),
		})
	})
	t.Run("taxii", func(t *testing.T) {
		ts := taxiitest.NewServer(t, taxiitest.WithBearerToken("serve-taxii-token"))
		ts.AddSampleData()
		emu, db := serveIOCSync(t, map[string]string{
			"DEFENDERBOT_IOCS_TAXII_URL":        ts.APIRoot(),
			"DEFENDERBOT_IOCS_TAXII_COLLECTION": taxiitest.SampleCollectionID,
			"DEFENDERBOT_IOCS_TAXII_TOKEN":      "serve-taxii-token",
		})
		assert.Len(t, emu.Indicators(), 4, "the sample collection's hash, IP, domain and URL")
		st, err := store.Open(context.Background(), "sqlite", db)
		require.NoError(t, err)
		defer st.Close()
		pos, err := st.FeedCursor(context.Background(), "TAXII collection "+taxiitest.SampleCollectionID+" at "+ts.APIRoot())
		require.NoError(t, err)
		assert.Equal(t, "2026-01-01T00:05:00.000000Z", pos)
	})
}

// serveIOCSync runs serve with the IOC sync on the feed env names, triggers
// one run and checks it was reported, counted and recorded.
func serveIOCSync(t *testing.T, feedEnv map[string]string) (*defendertest.Server, string) {
	emu := defendertest.NewServer(t)
	sf := slackfake.NewT(t)
	db := filepath.Join(t.TempDir(), "serve.db")
	cfgPath := writeServeConfig(t, emu, sf, "127.0.0.1:0", db)
	env := map[string]string{
		"DEFENDERBOT_IOCS_ENABLED":        "true",
		"DEFENDERBOT_IOCS_SCHEDULE":       "@every 1h",
		"DEFENDERBOT_IOCS_REPORT_CHANNEL": "C0IOCS",
	}
	maps.Copy(env, feedEnv)
	c := &cli{stdout: io.Discard, stderr: io.Discard, getenv: func(k string) string { return env[k] }, httpClient: emu.HTTPClient()}
	cfg, err := loadConfig(c, cfgPath)
	require.NoError(t, err)
	require.NoError(t, cfg.Validate(config.ForServe))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	app, err := newServeApp(ctx, c, cfg, newLoggerTo(io.Discard, cfg))
	require.NoError(t, err)
	require.NotNil(t, app.sched, "iocs.enabled schedules the sync")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- app.run(ctx, ln) }()

	require.NoError(t, app.sched.Trigger(ioc.LeaseName))
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	posts, err := sf.WaitFor(wctx, slackfake.MethodPostMessage, 1)
	require.NoError(t, err)
	assert.Equal(t, "C0IOCS", posts[0].Channel)
	assert.NotEmpty(t, posts[0].Text)
	mfs, err := app.metrics.Registry.Gather()
	require.NoError(t, err)
	runs := map[string]bool{}
	for _, mf := range mfs {
		runs[mf.GetName()] = true
	}
	assert.True(t, runs["defenderbot_ioc_sync_runs_total"], "IOC sync runs are counted")
	assert.Equal(t, 3600.0, gaugeValue(t, app.metrics.Registry, "defenderbot_ioc_sync_period_seconds", ""), "the schedule's period is exported")
	assert.Positive(t, gaugeValue(t, app.metrics.Registry, "defenderbot_ioc_last_success_timestamp_seconds", ""))
	require.Eventually(t, func() bool {
		return gaugeValue(t, app.metrics.Registry, "defenderbot_leases_held", "iocs-sync") == 0
	}, 5*time.Second, 10*time.Millisecond, "the sync lease was counted and is released after the run")

	cancel()
	require.NoError(t, <-done)
	st, err := store.Open(context.Background(), "sqlite", db)
	require.NoError(t, err)
	defer st.Close()
	run, err := st.LastSyncRun(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "schedule", run.Trigger)
	assert.True(t, run.OK, run.Summary)
	return emu, db
}

// TestServeSocketMode runs serve with slack.app_token set: Slack's events
// arrive over the Socket Mode connection and reach the same bot, with the
// same replay protection.
func TestServeSocketMode(t *testing.T) {
	emu := defendertest.NewServer(t)
	emu.AddSampleData()
	sf := slackfake.NewT(t)
	cfgPath := writeServeConfig(t, emu, sf, "127.0.0.1:0", filepath.Join(t.TempDir(), "serve.db"))
	var stderr syncBuffer
	c := &cli{stdout: io.Discard, stderr: &stderr, httpClient: emu.HTTPClient(),
		getenv: func(k string) string { return map[string]string{"SLACK_APP_TOKEN": "xapp-serve-test"}[k] }}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	exit := make(chan int, 1)
	go func() { exit <- runServe(ctx, c, []string{"--config", cfgPath}) }()

	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	require.NoError(t, sf.WaitSocket(wctx), "stderr:\n%s", stderr.String())

	cmd := slack.SlashCommand{Command: "/defender", Text: "isolate finance-laptop-01.contoso.com full beacon",
		UserID: "U0ALICE", UserName: "alice", ChannelID: "C1", ResponseURL: sf.ResponseURL("cmd")}
	ack, err := sf.SendEnvelope(wctx, slackfake.EnvelopeSlashCommands, "", cmd)
	require.NoError(t, err)
	assert.Contains(t, string(ack), "Working on it")

	posts, err := sf.WaitFor(wctx, slackfake.MethodPostMessage, 1)
	require.NoError(t, err)
	id, err := slackfake.ButtonValue(posts[0].Blocks, "approve")
	require.NoError(t, err)
	require.NotEmpty(t, id)

	click := slackfake.BlockAction("U0BOB", "approve", id, "C0SOC", posts[0].TS, "")
	for range 2 { // the second delivery is a redelivery of the same envelope
		_, err = sf.SendEnvelope(wctx, slackfake.EnvelopeInteractive, "env-click", &click)
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool { return len(emu.MachineActions()) == 1 }, 10*time.Second, 5*time.Millisecond)

	cancel()
	select {
	case code := <-exit:
		assert.Equal(t, 0, code, "stderr:\n%s", stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
	assert.Len(t, emu.MachineActions(), 1, "one Defender call for two deliveries")
	assert.Contains(t, stderr.String(), "slack_mode=socket")
	assert.NotContains(t, stderr.String(), "xapp-serve-test")
}

// gaugeValue is the value of a gauge (with the given "kind" label, if any)
// in reg, or -1 when it is not exported.
func gaugeValue(t *testing.T, reg prometheus.Gatherer, name, kind string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := kind == ""
			for _, l := range m.GetLabel() {
				if l.GetName() == "kind" && l.GetValue() == kind {
					match = true
				}
			}
			if match {
				return m.GetGauge().GetValue()
			}
		}
	}
	return -1
}

// TestServeWiresTheAlertFeed runs serve with alerts.enabled: a high alert
// in Graph reaches the alert channel as a card, and readiness checks the
// Graph token.
func TestServeWiresTheAlertFeed(t *testing.T) {
	emu := defendertest.NewServer(t)
	emu.AddSampleData()
	high := emu.NewDeviceAlert(defendertest.SampleMachineID1, "Credential theft", "high")
	sf := slackfake.NewT(t)
	cfgPath := writeServeConfig(t, emu, sf, "127.0.0.1:0", filepath.Join(t.TempDir(), "serve.db"))
	c := &cli{stdout: io.Discard, stderr: io.Discard, getenv: func(k string) string {
		return map[string]string{
			"DEFENDERBOT_ALERTS_ENABLED":          "true",
			"DEFENDERBOT_ALERTS_CHANNEL":          "C0ALERTS",
			"DEFENDERBOT_DEFENDER_GRAPH_BASE_URL": emu.URL,
		}[k]
	}, httpClient: emu.HTTPClient()}
	cfg, err := loadConfig(c, cfgPath)
	require.NoError(t, err)
	require.NoError(t, cfg.Validate(config.ForServe))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	app, err := newServeApp(ctx, c, cfg, newLoggerTo(io.Discard, cfg))
	require.NoError(t, err)
	require.NotNil(t, app.alerts, "alerts.enabled runs the alert feed")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- app.run(ctx, ln) }()

	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	posts, err := sf.WaitFor(wctx, slackfake.MethodPostMessage, 1)
	require.NoError(t, err)
	assert.Equal(t, "C0ALERTS", posts[0].Channel)
	assert.Contains(t, string(posts[0].Blocks), high.ID)
	status, body := serveGet(t, "http://"+ln.Addr().String()+"/readyz")
	assert.Equal(t, http.StatusOK, status, body)
	cancel()
	require.NoError(t, <-done)
}

// TestServeTakesItsTimeoutsFromConfig: the HTTP server's timeouts are the
// server.* keys and each Slack Web API call is bounded by slack.timeout.
func TestServeTakesItsTimeoutsFromConfig(t *testing.T) {
	cfg := config.Default()
	cfg.Server = config.Server{ReadHeaderTimeout: time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: 3 * time.Second, IdleTimeout: 4 * time.Second}
	cfg.Slack.Timeout = 7 * time.Second
	srv := newHTTPServer(cfg.Server, http.NotFoundHandler(), newLoggerTo(io.Discard, cfg))
	assert.Equal(t, []time.Duration{time.Second, 2 * time.Second, 3 * time.Second, 4 * time.Second},
		[]time.Duration{srv.ReadHeaderTimeout, srv.ReadTimeout, srv.WriteTimeout, srv.IdleTimeout})
	assert.Equal(t, 7*time.Second, slackHTTPClient(cfg.Slack).Timeout)
}
