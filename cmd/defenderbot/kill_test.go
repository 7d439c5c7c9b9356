package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/defenderbot/defenderbot/defender/defendertest"
	"github.com/defenderbot/defenderbot/internal/slackfake"
	"github.com/defenderbot/defenderbot/store"
	"github.com/defenderbot/defenderbot/store/storetest"
)

// The kill tests run the real binary: two `serve` replicas share one
// database, Defender (the emulator) and Slack (the stand-in); replica A is
// killed with SIGKILL at a point of an approved isolation, and replica B
// must show the outcome within two minutes without calling Defender again
// (issue 11 §6).

const killSecret = "kill-test-signing-secret"

// killWorld is what outlives a replica.
type killWorld struct {
	emu  *defendertest.Server
	sf   *slackfake.Server
	cfg  string // config file (listen comes from the environment)
	ca   string // the emulator's CA certificate, trusted through SSL_CERT_FILE
	bin  string
	logs []*syncBuffer
}

// newKillWorld starts Defender and Slack and writes the replicas' config:
// the database is a fresh SQLite file or PostgreSQL schema (driver; the
// PostgreSQL run is skipped without DEFENDERBOT_TEST_POSTGRES_DSN).
func newKillWorld(t *testing.T, bin, driver string, opts ...defendertest.Option) *killWorld {
	t.Helper()
	dir := t.TempDir()
	dsn := filepath.Join(dir, "kill.db")
	if driver == store.DriverPostgres {
		dsn = storetest.PostgresDSN(t)
	}
	w := &killWorld{emu: defendertest.NewServer(t, opts...), sf: slackfake.NewT(t), bin: bin}
	w.emu.AddSampleData()
	w.ca = filepath.Join(dir, "ca.pem")
	require.NoError(t, os.WriteFile(w.ca, w.emu.CACertPEM(), 0o600))
	// The production timings, except the follow-up polls (1 s, so the test
	// does not wait for Defender longer than needed).
	yaml := fmt.Sprintf(`log_format: json
log_level: debug
defender:
  base_url: %q
  authority_host: %q
  tenant_id: %q
  app_id: %q
  app_secret: %q
  poll_interval: 1s
slack:
  bot_token: xoxb-kill-test
  signing_secret: %q
  api_url: %q
  approval_channel: C0SOC
approval:
  approvers: [U0BOB]
store:
  driver: %s
  dsn: %q
`, w.emu.URL, w.emu.URL, defendertest.TenantID, defendertest.ClientID, defendertest.ClientSecret, killSecret, w.sf.APIURL(), driver, dsn)
	w.cfg = filepath.Join(dir, "defenderbot.yaml")
	require.NoError(t, os.WriteFile(w.cfg, []byte(yaml), 0o600))
	return w
}

// replica is one running `defenderbot serve`.
type replica struct {
	cmd  *exec.Cmd
	base string
	done chan struct{}
}

func (w *killWorld) start(t *testing.T, name string) *replica {
	t.Helper()
	// Port 0: the replica reports the port the kernel gave it.
	cmd := exec.Command(w.bin, "serve", "--config", w.cfg)
	cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+w.ca, "DEFENDERBOT_LISTEN=127.0.0.1:0", "DEFENDERBOT_REPLICA_ID="+name)
	logs := &syncBuffer{}
	w.logs = append(w.logs, logs)
	cmd.Stdout, cmd.Stderr = logs, logs
	require.NoError(t, cmd.Start())
	r := &replica{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(r.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-r.done
		if t.Failed() {
			t.Logf("%s logs:\n%s", name, logs.String())
		}
	})
	r.base = "http://" + servedAddr(t, logs, r.done)
	require.Eventually(t, func() bool { code, _ := serveGet(t, r.base+"/healthz"); return code == http.StatusOK },
		30*time.Second, 20*time.Millisecond, "%s did not come up:\n%s", name, logs.String())
	return r
}

// kill ends the replica at once, as a crashed node or OOM kill would.
func (r *replica) kill(t *testing.T) time.Time {
	t.Helper()
	require.NoError(t, r.cmd.Process.Kill())
	<-r.done
	return time.Now()
}

// request makes Alice ask replica r for an isolation and Bob approve it
// there; it returns the approval message's ts.
func (w *killWorld) requestAndApprove(t *testing.T, r *replica) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	form := slackfake.CommandForm(slack.SlashCommand{Command: "/defender", Text: "isolate finance-laptop-01.contoso.com full beaconing",
		UserID: "U0ALICE", UserName: "alice", ChannelID: "C1", ResponseURL: w.sf.ResponseURL("cmd")})
	w.signedPost(t, r.base+"/slack/commands", form)
	msg, err := w.sf.WaitNth(ctx, 1, func(c slackfake.Call) bool {
		return c.Method == slackfake.MethodPostMessage && c.Channel == "C0SOC" && c.ThreadTS == "" && c.Error == ""
	})
	require.NoError(t, err)
	id, err := slackfake.ButtonValue(msg.Blocks, "approve")
	require.NoError(t, err)
	// Clickable once the requester was told where it waits.
	_, err = w.sf.WaitFor(ctx, slackfake.MethodResponseURL, 1)
	require.NoError(t, err)
	click, err := slackfake.InteractionForm(slackfake.BlockAction("U0BOB", "approve", id, "C0SOC", msg.TS, ""))
	require.NoError(t, err)
	w.signedPost(t, r.base+"/slack/interactions", click)
	return msg.TS
}

func (w *killWorld) signedPost(t *testing.T, target string, form url.Values) {
	t.Helper()
	req, err := slackfake.SignedRequest(context.Background(), target, killSecret, time.Now(), form)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

// outcomeShown waits until the approval message shows a final state and
// returns it ("succeeded" or "failed") and when.
func (w *killWorld) outcomeShown(t *testing.T, ts string, within time.Duration) (string, time.Time) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	var state string
	err := w.sf.Wait(ctx, func(calls []slackfake.Call) bool {
		for _, c := range calls {
			if c.Method != slackfake.MethodUpdate || c.TS != ts || c.Error != "" {
				continue
			}
			for _, s := range []string{"succeeded", "failed"} {
				if strings.HasSuffix(c.Text, "("+s+")") {
					state = s
					return true
				}
			}
		}
		return false
	})
	require.NoError(t, err, "no outcome shown")
	return state, time.Now()
}

func (w *killWorld) isolateCalls() int {
	n := 0
	for _, r := range w.emu.Requests() {
		if r.Method == http.MethodPost && strings.HasSuffix(strings.ToLower(r.Path), "/isolate") {
			n++
		}
	}
	return n
}

func TestKillAReplicaAtEachCrashPoint(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real binary for about a minute")
	}
	const bound = 2 * time.Minute
	bin := defenderbotBinary(t)
	tests := []struct {
		name string
		// arm prepares the emulator before the approval; killWhen says when A dies.
		arm      func(w *killWorld)
		killWhen func(w *killWorld) bool
		want     string
	}{
		{
			name: "before Defender accepted the call",
			arm: func(w *killWorld) {
				w.emu.InjectFault(defendertest.Fault{Method: http.MethodPost, Path: "/isolate", Delay: 10 * time.Minute})
			},
			killWhen: func(w *killWorld) bool { return w.isolateCalls() == 1 },
			want:     "failed", // nothing ran: the survivor says so, and does not run it
		},
		{
			name: "after Defender answered, before the store write",
			arm: func(w *killWorld) {
				w.emu.InjectFault(defendertest.Fault{Method: http.MethodPost, Path: "/isolate", Hold: 10 * time.Minute})
			},
			killWhen: func(w *killWorld) bool { return len(w.emu.MachineActions()) == 1 },
			want:     "succeeded",
		},
		{
			name: "during follow-up",
			arm:  func(*killWorld) {},
			killWhen: func(w *killWorld) bool {
				return len(w.sf.CallsTo(slackfake.MethodPostMessage)) > 0 && hasDM(w.sf, "U0ALICE", "I will tell you the outcome")
			},
			want: "succeeded",
		},
	}
	for _, tt := range tests {
		for _, driver := range []string{store.DriverSQLite, store.DriverPostgres} {
			t.Run(driver+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				w := newKillWorld(t, bin, driver, defendertest.WithActionTimings(2*time.Second, 20*time.Second))
				a := w.start(t, "replica-a")
				w.start(t, "replica-b")
				tt.arm(w)
				ts := w.requestAndApprove(t, a)
				require.Eventually(t, func() bool { return tt.killWhen(w) }, 30*time.Second, 5*time.Millisecond, "the crash point was not reached")
				died := a.kill(t)

				state, at := w.outcomeShown(t, ts, bound+30*time.Second)
				took := at.Sub(died)
				t.Logf("outcome %q shown %s after replica A died", state, took.Round(time.Second))
				assert.Equal(t, tt.want, state)
				assert.LessOrEqual(t, took, bound)
				assert.Equal(t, 1, w.isolateCalls(), "Defender was called once")
			})
		}
	}
}

func hasDM(sf *slackfake.Server, user, text string) bool {
	for _, c := range sf.CallsTo(slackfake.MethodPostMessage) {
		if c.Channel == user && strings.Contains(c.Text, text) {
			return true
		}
	}
	return false
}
