package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/defenderbot/defenderbot/defender/defendertest"
	"github.com/defenderbot/defenderbot/internal/slackfake"
	"github.com/defenderbot/defenderbot/internal/testutil"
	"github.com/defenderbot/defenderbot/store/storetest"
)

// Distinctive secrets: if one leaks, a plain substring search finds it.
const (
	leakBotToken      = "xoxb-4242-LEAKCHECK-bot-token-9f8e7d6c"
	leakSigningSecret = "LEAKCHECK-signing-secret-5a4b3c2d1e"
	leakAppToken      = "xapp-1-LEAKCHECK-app-token-77aa66bb"
	leakDBPassword    = "LEAKCHECK-db-password-31415"
)

// TestServeLeaksNoSecret runs serve with every secret set, at debug level,
// through a full flow including failures, and searches everything it wrote
// (its whole log, every message it sent to Slack) for each secret. It also
// checks that the log is JSON lines and that a Slack request's line and the
// Defender calls it caused share one request_id.
func TestServeLeaksNoSecret(t *testing.T) {
	emu := defendertest.NewServer(t)
	emu.AddSampleData()
	sf := slackfake.NewT(t)

	// The store DSN is a secret too: PostgreSQL's carries a password. Without
	// a PostgreSQL server SQLite runs, and only the other secrets are checked.
	driver, dsn := "sqlite", filepath.Join(t.TempDir(), "serve.db")
	secrets := map[string]string{
		"slack bot token":      leakBotToken,
		"slack signing secret": leakSigningSecret,
		"slack app token":      leakAppToken,
		"azure client secret":  defendertest.ClientSecret,
	}
	if os.Getenv(storetest.PostgresDSNEnv) != "" {
		driver, dsn = "postgres", storetest.PostgresDSN(t)
		u, err := url.Parse(dsn)
		require.NoError(t, err)
		pw, ok := u.User.Password()
		require.True(t, ok, "the test DSN carries a password")
		secrets["database password"] = pw
		secrets["database DSN"] = dsn
	}

	cfgPath := writeLeakConfig(t, emu, sf, "127.0.0.1:0", driver, dsn)
	var stdout, stderr syncBuffer
	// Resolved here, on the test's goroutine: Fixture may skip the test,
	// which must not happen inside serve's goroutine.
	feed := testutil.Fixture(t, "sekoia/stix_objects_ipv4_and_file_hash.json")
	c := &cli{stdout: &stdout, stderr: &stderr, httpClient: emu.HTTPClient(), getenv: func(k string) string {
		return map[string]string{
			"SLACK_APP_TOKEN":                    leakAppToken,
			"DEFENDERBOT_IOCS_ENABLED":           "true",
			"DEFENDERBOT_IOCS_STIX_OBJECTS_PATH": feed,
			"DEFENDERBOT_IOCS_SCHEDULE":          "@every 24h",
		}[k]
	}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	exit, exited := make(chan int, 1), make(chan struct{})
	go func() { exit <- runServe(ctx, c, []string{"--config", cfgPath}); close(exited) }()
	base := "http://" + servedAddr(t, &stderr, exited)
	require.Eventually(t, func() bool { code, _ := serveGet(t, base+"/healthz"); return code == http.StatusOK },
		10*time.Second, 10*time.Millisecond, "server did not come up; stderr:\n%s", stderr.String())
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	defer wcancel()
	require.NoError(t, sf.WaitSocket(wctx), "Socket Mode connects with the app token")

	post := func(path, key string, form url.Values) (int, string) {
		t.Helper()
		req, err := slackfake.SignedRequest(ctx, base+path, key, time.Now(), form)
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("X-Request-ID")
	}
	command := func(user, text string) string {
		t.Helper()
		code, rid := post("/slack/commands", leakSigningSecret, slackfake.CommandForm(slack.SlashCommand{
			Command: "/defender", Text: text, UserID: user, UserName: strings.ToLower(user), ChannelID: "C0ANALYSTS",
			ResponseURL: sf.ResponseURL("cmd-" + user), TriggerID: "trig-" + user}))
		require.Equal(t, http.StatusOK, code, text)
		return rid
	}
	click := func(user, id, ts string) string {
		t.Helper()
		form, err := slackfake.InteractionForm(slackfake.BlockAction(user, "approve", id, "C0SOC", ts, ""))
		require.NoError(t, err)
		code, rid := post("/slack/interactions", leakSigningSecret, form)
		require.Equal(t, http.StatusOK, code)
		return rid
	}
	// waitNth waits for the nth Slack call that matches.
	waitNth := func(what string, n int, match func(slackfake.Call) bool) slackfake.Call {
		t.Helper()
		found, err := sf.WaitNth(wctx, n, match)
		require.NoError(t, err, "waiting for %s; stderr:\n%s", what, stderr.String())
		return found
	}
	waitCall := func(what string, match func(slackfake.Call) bool) slackfake.Call {
		t.Helper()
		return waitNth(what, 1, match)
	}
	approvalFor := func(n int) (slackfake.Call, string) {
		t.Helper()
		msg := waitNth("approval message", n, func(c slackfake.Call) bool {
			return c.Method == slackfake.MethodPostMessage && c.Channel == "C0SOC" && c.ThreadTS == "" && c.Error == ""
		})
		id, err := slackfake.ButtonValue(msg.Blocks, "approve")
		require.NoError(t, err)
		require.NotEmpty(t, id)
		// Clickable once the requester was told where it waits: that reply
		// follows the recording of the message's ts, which a decision needs
		// to update the card (a click before it leaves the card unchanged).
		waitNth("requester told where the request waits", n, func(c slackfake.Call) bool {
			return c.Method == slackfake.MethodResponseURL && strings.Contains(c.Text, "is waiting for")
		})
		return msg, id
	}

	// 1. A command; its machine look-up is a Defender call.
	cmdRID := command("U0ALICE", "isolate finance-laptop-01.contoso.com full beacon")
	msg, id := approvalFor(1)
	// 2. Self-approval is refused.
	click("U0ALICE", id, msg.TS)
	waitCall("self-approval refusal", func(c slackfake.Call) bool {
		return c.Method == slackfake.MethodPostEphemeral && c.User == "U0ALICE" && strings.Contains(c.Text, "own request")
	})
	// 3. Approval, the Defender call and its follow-up.
	approveRID := click("U0BOB", id, msg.TS)
	require.Eventually(t, func() bool { return len(emu.MachineActions()) == 1 }, 10*time.Second, 5*time.Millisecond)
	emu.Advance(3 * time.Minute)
	require.Eventually(t, func() bool {
		m, _ := sf.Message("C0SOC", msg.TS)
		return strings.Contains(m.Text, "succeeded")
	}, 10*time.Second, 5*time.Millisecond, "follow-up; stderr:\n%s", stderr.String())
	// 4. Defender errors: an unknown machine (404 on look-up) and an
	// approved cancel of an unknown machine action (404 on the write).
	command("U0ALICE", "isolate no-such-host.contoso.com full beacon")
	waitCall("unknown machine reply", func(c slackfake.Call) bool {
		return c.Method == slackfake.MethodResponseURL && strings.Contains(c.Text, "no-such-host")
	})
	command("U0ALICE", "cancel 00000000-0000-0000-0000-000000000404 stop it")
	msg2, id2 := approvalFor(2)
	click("U0BOB", id2, msg2.TS)
	waitCall("failure DM", func(c slackfake.Call) bool {
		return c.Method == slackfake.MethodPostMessage && c.Channel == "U0ALICE" && strings.Contains(c.Text, "failed")
	})
	// 5. A forged request.
	code, _ := post("/slack/commands", "attacker-guess", slackfake.CommandForm(slack.SlashCommand{
		Command: "/defender", Text: "isolate x full y", UserID: "U0MALLORY", ChannelID: "C1"}))
	assert.Equal(t, http.StatusUnauthorized, code)
	// 6. Over Socket Mode (the app token's path).
	_, err := sf.SendEnvelope(wctx, slackfake.EnvelopeSlashCommands, "", slack.SlashCommand{
		Command: "/defender", Text: "help", UserID: "U0ALICE", ChannelID: "C1", ResponseURL: sf.ResponseURL("socket")})
	require.NoError(t, err)
	// 7. An IOC sync while Azure AD is down: the token must be renewed, and
	// cannot be (MSAL's error path carries the token request).
	emu.ExpireTokens()
	emu.SetTokenEndpointDown(true)
	command("U0BOB", "iocs sync")
	failed := waitCall("IOC sync failure reply", func(c slackfake.Call) bool {
		return c.Method == slackfake.MethodResponseURL && c.ResponseURL == "cmd-U0BOB" && strings.Contains(c.Text, "IOC sync failed")
	})
	t.Logf("IOC sync failure as the analyst sees it: %s", failed.Text)
	emu.SetTokenEndpointDown(false)

	cancel()
	select {
	case code := <-exit:
		assert.Equal(t, 0, code, "stderr:\n%s", stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}

	logs := stderr.String()
	require.NotEmpty(t, logs)
	slackOut := slackOutput(t, sf.Calls())
	// "LEAKCHECK" is the shared part of the planted secrets: it catches
	// partial leaks (a prefix, a suffix) the full strings would miss.
	secrets["planted secret fragment"] = "LEAKCHECK"
	for name, s := range secrets {
		noLeak(t, "the log", logs, name, s)
		noLeak(t, "stdout", stdout.String(), name, s)
		noLeak(t, "Slack", slackOut, name, s)
		// Form bodies are URL-encoded.
		noLeak(t, "Slack", slackOut, name, url.QueryEscape(s))
	}

	lines := logLines(t, logs)
	assert.True(t, hasLine(lines, func(l map[string]any) bool { return l["level"] == "DEBUG" }), "debug level is on")
	assert.True(t, hasLine(lines, func(l map[string]any) bool {
		return l["msg"] == "slack request refused"
	}), "the forged request is logged")

	// One request ID ties the Slack request to the Defender calls it caused.
	require.NotEmpty(t, cmdRID)
	require.NotEmpty(t, approveRID)
	require.NotEqual(t, cmdRID, approveRID)
	for _, tc := range []struct {
		rid, path, defenderPath string
	}{
		{cmdRID, "/slack/commands", "/api/machines"},
		{approveRID, "/slack/interactions", "/api/machines/" + defendertest.SampleMachineID1 + "/isolate"},
	} {
		assert.True(t, hasLine(lines, func(l map[string]any) bool {
			return l["request_id"] == tc.rid && l["msg"] == "http request" && l["path"] == tc.path
		}), "http request line of %s with request_id %s", tc.path, tc.rid)
		assert.True(t, hasLine(lines, func(l map[string]any) bool {
			p, _ := l["path"].(string)
			return l["request_id"] == tc.rid && l["msg"] == "defender call" && strings.HasPrefix(p, tc.defenderPath)
		}), "Defender call %s logged with request_id %s", tc.defenderPath, tc.rid)
	}
}

// TestServeStoreErrorLeaksNoPassword: a store that cannot be reached with a
// DSN holding a password fails serve with an error that names the problem,
// not the password.
func TestServeStoreErrorLeaksNoPassword(t *testing.T) {
	emu := defendertest.NewServer(t)
	sf := slackfake.NewT(t)
	// A closed loopback port: refused at once, no server needed.
	dsn := fmt.Sprintf("postgres://defenderbot:%s@%s/defenderbot?sslmode=disable&connect_timeout=2", leakDBPassword, serveFreeAddr(t))
	cfgPath := writeLeakConfig(t, emu, sf, serveFreeAddr(t), "postgres", dsn)
	var stdout, stderr syncBuffer
	c := &cli{stdout: &stdout, stderr: &stderr, httpClient: emu.HTTPClient(), getenv: func(string) string { return "" }}
	assert.Equal(t, 1, runServe(context.Background(), c, []string{"--config", cfgPath}))
	out := stderr.String()
	assert.Contains(t, out, "open store (postgres)")
	for _, s := range []string{leakDBPassword, "LEAKCHECK", leakBotToken, leakSigningSecret, defendertest.ClientSecret} {
		noLeak(t, "stderr", out, "secret", s)
		noLeak(t, "stdout", stdout.String(), "secret", s)
	}
}

// noLeak fails if secret is in haystack, showing where without dumping it all.
func noLeak(t *testing.T, where, haystack, name, secret string) {
	t.Helper()
	if i := strings.Index(haystack, secret); i >= 0 {
		from, to := max(0, i-200), min(len(haystack), i+len(secret)+200)
		t.Errorf("the %s is in %s: ...%s...", name, where, haystack[from:to])
	}
}

func writeLeakConfig(t *testing.T, emu *defendertest.Server, sf *slackfake.Server, listen, driver, dsn string) string {
	t.Helper()
	yaml := fmt.Sprintf(`listen: %q
log_format: json
log_level: debug
replica_id: leak-test
defender:
  base_url: %q
  authority_host: %q
  tenant_id: %q
  app_id: %q
  app_secret: %q
  poll_interval: 50ms
  max_retries: 1
slack:
  bot_token: %q
  signing_secret: %q
  api_url: %q
  approval_channel: C0SOC
approval:
  approvers: [U0BOB, U0ALICE]
store:
  driver: %s
  dsn: %q
`, listen, emu.URL, emu.URL, defendertest.TenantID, defendertest.ClientID, defendertest.ClientSecret,
		leakBotToken, leakSigningSecret, sf.APIURL(), driver, dsn)
	path := filepath.Join(t.TempDir(), "defenderbot.yaml")
	require.NoError(t, os.WriteFile(path, []byte(yaml), 0o600))
	return path
}

// slackOutput is everything the bot said to Slack: message text, blocks,
// views and request bodies. The form field "token" is dropped: Slack's Web
// API is where the bot token belongs (slack-go sends it there).
func slackOutput(t *testing.T, calls []slackfake.Call) string {
	t.Helper()
	var b strings.Builder
	for _, c := range calls {
		fmt.Fprintf(&b, "%s\n%s\n%s\n", c.Text, c.Blocks, c.View)
		if c.Form != nil {
			f := url.Values{}
			for k, v := range c.Form {
				if k != "token" {
					f[k] = v
				}
			}
			b.WriteString(f.Encode())
		} else {
			b.Write(c.Body)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// logLines parses every log line, failing on one that is not a JSON object.
func logLines(t *testing.T, logs string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		var m map[string]any
		if !assert.NoError(t, json.Unmarshal(sc.Bytes(), &m), "log line %d is not JSON: %s", n, sc.Text()) {
			continue
		}
		out = append(out, m)
	}
	require.NoError(t, sc.Err())
	return out
}

func hasLine(lines []map[string]any, match func(map[string]any) bool) bool {
	for _, l := range lines {
		if match(l) {
			return true
		}
	}
	return false
}
