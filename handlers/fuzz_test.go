package handlers_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/slack-go/slack"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/defenderbot/defenderbot/actions"
	"github.com/defenderbot/defenderbot/bot"
	"github.com/defenderbot/defenderbot/config"
	"github.com/defenderbot/defenderbot/defender"
	"github.com/defenderbot/defenderbot/defender/defendertest"
	"github.com/defenderbot/defenderbot/handlers"
	"github.com/defenderbot/defenderbot/internal/slackfake"
	"github.com/defenderbot/defenderbot/store/storetest"
)

// The fuzz targets send correctly signed Slack requests with fuzzed bodies
// through the real gin engine into a real bot, Defender client (against the
// emulator), Slack client (against the stand-in) and SQLite store. A signed
// body is as hostile as input gets once past the signature: Slack signs
// whatever a workspace user types. The invariants:
//   - no panic, in the handler or in the bot's background work;
//   - the status is 200, 400 (malformed) or 413 (too large), never 401
//     (the signature is valid) and never 5xx (the only documented 5xx are a
//     replay store or bot failure, neither of which is injected here);
//   - Defender receives no state-changing call: nothing was approved.
//
// Run each for a while with, e.g.:
//
//	go test -run '^$' -fuzz FuzzInteractionPayload -fuzztime 60s ./handlers/
//	go test -run '^$' -fuzz FuzzSlashCommandForm -fuzztime 60s ./handlers/

const (
	fzSecret   = "fuzz-signing-secret"
	fzChannel  = "C0SOC"
	fzApprover = "U0BOB"
)

// panicLog records log lines that report a recovered panic.
type panicLog struct {
	mu     sync.Mutex
	panics []string
}

func (p *panicLog) Enabled(context.Context, slog.Level) bool { return true }
func (p *panicLog) WithAttrs([]slog.Attr) slog.Handler {
	return &panicLogView{p: p}
}
func (p *panicLog) WithGroup(string) slog.Handler { return &panicLogView{p: p} }
func (p *panicLog) Handle(_ context.Context, r slog.Record) error {
	if !strings.Contains(strings.ToLower(r.Message), "panic") {
		return nil
	}
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s=%v", a.Key, a.Value); return true })
	p.mu.Lock()
	defer p.mu.Unlock()
	p.panics = append(p.panics, b.String())
	return nil
}

func (p *panicLog) take() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.panics
	p.panics = nil
	return out
}

// panicLogView is panicLog under With/WithGroup (attributes are not needed
// to detect a panic line).
type panicLogView struct{ p *panicLog }

func (v *panicLogView) Enabled(ctx context.Context, l slog.Level) bool { return v.p.Enabled(ctx, l) }
func (v *panicLogView) Handle(ctx context.Context, r slog.Record) error {
	return v.p.Handle(ctx, r)
}
func (v *panicLogView) WithAttrs([]slog.Attr) slog.Handler { return v }
func (v *panicLogView) WithGroup(string) slog.Handler      { return v }

// onlyHost is a transport that refuses every host but one, so a fuzzed
// response_url cannot make the bot wait on the network.
type onlyHost struct {
	host string
	next http.RoundTripper
}

func (o onlyHost) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Host != o.host {
		return nil, errors.New("fuzz: host not allowed: " + r.URL.Host)
	}
	return o.next.RoundTrip(r)
}

// fuzzStack is the wiring every fuzz iteration goes through.
type fuzzStack struct {
	engine *gin.Engine
	bot    *bot.Service
	emu    *defendertest.Server
	slack  *slackfake.Server
	log    *panicLog
}

func newFuzzStack(f testing.TB) *fuzzStack {
	f.Helper()
	emu := defendertest.NewServer(f, defendertest.WithRateLimits(false))
	emu.AddSampleData()
	sf := slackfake.NewT(f)
	noPacing := defender.Limits{PerMinute: map[string]int{}, PerHour: map[string]int{}}
	for _, api := range []string{defender.APIMachineActions, defender.APIMachines, defender.APIAlerts,
		defender.APIIndicators, defender.APIIndicatorImport, defender.APIIndicatorDelete} {
		noPacing.PerMinute[api], noPacing.PerHour[api] = -1, -1
	}
	dcfg := emu.ClientConfig()
	dcfg.MaxRetries, dcfg.Limits = 1, noPacing
	client, err := defender.New(dcfg, defender.WithHTTPClient(emu.HTTPClient()))
	if err != nil {
		f.Fatal(err)
	}
	st := storetest.OpenSQLite(f)
	pl := &panicLog{}
	logger := slog.New(pl)
	api, err := url.Parse(sf.APIURL())
	if err != nil {
		f.Fatal(err)
	}
	cfg := bot.ConfigFrom(config.Default(), "fuzz")
	cfg.ApprovalChannel = fzChannel
	cfg.Approvers = []string{fzApprover, "U0CAROL"}
	// A follow-up polls 20 times and gives up, on a clock its waits move:
	// no input waits on the real clock.
	cfg.PollInterval, cfg.PollTimeout = 10*time.Millisecond, 200*time.Millisecond
	clock := &fuzzClock{t: time.Now()}
	// The Slack stand-in serves response_url on its own host.
	cfg.ResponseURLHosts = []string{api.Host}
	b, err := bot.New(cfg, bot.Deps{
		Store:      st,
		Slack:      sf.Client(),
		Defender:   bot.NewDefender(actions.NewRunner(client), client),
		Logger:     logger,
		HTTPClient: &http.Client{Timeout: 5 * time.Second, Transport: onlyHost{host: api.Host, next: http.DefaultTransport}},
		Now:        clock.now,
		Sleep:      clock.sleep,
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(b.Wait)
	hcfg := testConfig()
	hcfg.SigningSecret = fzSecret
	h, err := handlers.New(hcfg, handlers.Deps{Bot: b, Seen: st, Logger: logger})
	if err != nil {
		f.Fatal(err)
	}
	return &fuzzStack{engine: h, bot: b, emu: emu, slack: sf, log: pl}
}

// serve signs body, serves it and waits for the background work it started.
func (s *fuzzStack) serve(path, body string) *httptest.ResponseRecorder {
	ts, sig := slackfake.Sign(fzSecret, time.Now(), []byte(body))
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Slack-Request-Timestamp", ts)
	req.Header.Set("X-Slack-Signature", sig)
	rec := httptest.NewRecorder()
	s.engine.ServeHTTP(rec, req)
	// The background work the request started must end too, so a late
	// panic or Defender call is attributed to this input.
	s.bot.Wait()
	return rec
}

// writes returns and forgets the state-changing Defender calls so far.
func (s *fuzzStack) writes() []string {
	var out []string
	for _, r := range s.emu.Requests() {
		if r.API != defendertest.APIToken && r.Method != http.MethodGet {
			out = append(out, r.Method+" "+r.Path)
		}
	}
	s.emu.ResetRequests()
	return out
}

// send serves a signed body and checks the invariants.
func (s *fuzzStack) send(t *testing.T, path, body string) {
	rec := s.serve(path, body)
	switch rec.Code {
	case http.StatusOK, http.StatusBadRequest, http.StatusRequestEntityTooLarge:
	default:
		t.Errorf("HTTP %d for body %q: %s", rec.Code, body, rec.Body.String())
	}
	if p := s.log.take(); len(p) > 0 {
		t.Errorf("panic for body %q: %s", body, strings.Join(p, "\n"))
	}
	if writes := s.writes(); len(writes) > 0 {
		t.Errorf("unapproved Defender calls %v for body %q", writes, body)
	}
	// The stand-in's record is not needed and would only grow.
	s.slack.Reset()
}

// TestFuzzStackDetectsApproval shows the fuzz wiring is live and its
// Defender-write check can fail: a real command reaches the bot and posts an
// approval message, and a real approval is seen as a Defender write.
func TestFuzzStackDetectsApproval(t *testing.T) {
	s := newFuzzStack(t)
	form := slackfake.CommandForm(slack.SlashCommand{Command: "/defender", UserID: "U0ALICE", ChannelID: "C0ANALYSTS",
		Text: "isolate finance-laptop-01.contoso.com full beacon", ResponseURL: s.slack.ResponseURL("fuzz")})
	rec := s.serve("/slack/commands", form.Encode())
	require.Equal(t, http.StatusOK, rec.Code)
	assert.Contains(t, rec.Body.String(), "Working on it")
	posts := s.slack.CallsTo(slackfake.MethodPostMessage)
	require.Len(t, posts, 1)
	assert.Equal(t, fzChannel, posts[0].Channel)
	id, err := slackfake.ButtonValue(posts[0].Blocks, "approve")
	require.NoError(t, err)
	require.NotEmpty(t, id)
	assert.Empty(t, s.writes())

	click, err := slackfake.InteractionForm(slackfake.BlockAction(fzApprover, "approve", id, fzChannel, posts[0].TS, ""))
	require.NoError(t, err)
	rec = s.serve("/slack/interactions", click.Encode())
	require.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, []string{"POST /api/machines/" + defendertest.SampleMachineID1 + "/isolate"}, s.writes())
	assert.Empty(t, s.log.take())
}

func FuzzSlashCommandForm(f *testing.F) {
	s := newFuzzStack(f)
	for _, seed := range []struct{ user, text, extra string }{
		{"U0ALICE", "isolate finance-laptop-01.contoso.com full suspicious beacon", ""},
		{"U0ALICE", "isolate " + defendertest.SampleMachineID1 + " selective beacon", ""},
		{"U0ALICE", "release " + defendertest.SampleMachineID1 + " cleaned", ""},
		{"U0ALICE", "scan finance-laptop-01.contoso.com quick routine", ""},
		{"U0ALICE", "action 00000000-0000-0000-0000-000000000001", ""},
		{"U0ALICE", "cancel 00000000-0000-0000-0000-000000000001 stop", ""},
		{"U0ALICE", "alert comment " + defendertest.SampleAlertID1 + " triaged", ""},
		{"U0ALICE", "alert update " + defendertest.SampleAlertID2 + " status=Resolved classification=TruePositive", ""},
		{"U0ALICE", "iocs sync", ""},
		{"U0BOB", "help", ""},
		{"U0BOB", "isolate", ""}, // opens a modal
		{"U0ALICE", "", ""},
		{"", "isolate x full y", ""},
		{"U0ALICE", "isolate x full y", "command=%2Fother&user_id=U0EVE"},
		{"U0ALICE", "scan x", "response_url=http%3A%2F%2F169.254.169.254%2F"},
		{"U0ALICE", "x", "%zz"},
		{"U0ALICE", "\x00\xff\u202e", "text=" + strings.Repeat("a", 5000)},
	} {
		f.Add(seed.user, seed.text, seed.extra)
	}
	respURL := s.slack.ResponseURL("fuzz")
	f.Fuzz(func(t *testing.T, user, text, extra string) {
		form := slackfake.CommandForm(slack.SlashCommand{
			Command: "/defender", Text: text, UserID: user, UserName: "fuzz", ChannelID: "C0ANALYSTS",
			ResponseURL: respURL, TriggerID: "trig-fuzz", TeamID: "T0", APIAppID: "A0",
		})
		body := form.Encode()
		if extra != "" {
			// Fields in extra come first, so they win over the built ones.
			body = extra + "&" + body
		}
		s.send(t, "/slack/commands", body)
	})
}

func FuzzInteractionPayload(f *testing.F) {
	s := newFuzzStack(f)
	const id = "0123456789abcdef0123456789abcdef"
	seeds := []slack.InteractionCallback{
		slackfake.BlockAction(fzApprover, "approve", id, fzChannel, "1700000000.000100", ""),
		slackfake.BlockAction(fzApprover, "reject", id, fzChannel, "1700000000.000100", ""),
		slackfake.BlockAction("U0ALICE", "approve", "not an id", fzChannel, "1.2", s.slack.ResponseURL("fuzz")),
		slackfake.BlockAction("", "approve", id, "", "", ""),
		{Type: slack.InteractionTypeViewSubmission, User: slack.User{ID: fzApprover}, View: slack.View{
			CallbackID: "defenderbot_reject", PrivateMetadata: `{"r":"` + id + `","c":"C0SOC"}`,
			State: &slack.ViewState{Values: map[string]map[string]slack.BlockAction{"reason": {"reason": {Type: "plain_text_input", Value: "no"}}}}}},
		{Type: slack.InteractionTypeViewSubmission, User: slack.User{ID: "U0ALICE"}, View: slack.View{
			CallbackID: "defenderbot_cmd", PrivateMetadata: `{"v":"isolate","c":"C0ANALYSTS"}`,
			State: &slack.ViewState{Values: map[string]map[string]slack.BlockAction{
				"machine": {"machine": {Type: "plain_text_input", Value: "finance-laptop-01.contoso.com"}},
				"comment": {"comment": {Type: "plain_text_input", Value: "beacon"}}}}}},
		{Type: slack.InteractionTypeViewClosed, User: slack.User{ID: fzApprover}},
		{Type: slack.InteractionTypeShortcut, User: slack.User{ID: fzApprover}},
	}
	// Each input is a raw payload, or (when the raw payload is empty) a
	// callback built from fuzzed fields: raw JSON mostly dies in the JSON
	// decoder, fields reach the bot's own decisions.
	for _, ic := range seeds {
		form, err := slackfake.InteractionForm(ic)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(form.Get("payload"), "", "", "", "", "", "", "")
	}
	for _, raw := range []string{``, `{}`, `null`, `[]`, `{"type":"block_actions"}`,
		`{"type":"block_actions","user":{"id":"U0BOB"},"actions":[null,{"action_id":"approve","value":"` + id + `"}]}`,
		`{"type":"view_submission","user":{"id":"U0BOB"},"view":{"callback_id":"defenderbot_reject","private_metadata":"{","state":{"values":{"reason":null}}}}`,
		`{"type":"block_actions","user":{"id":"U0BOB"},"actions":[{"action_id":"approve","value":1}]}`,
	} {
		f.Add(raw, "", "", "", "", "", "", "")
	}
	for _, fields := range [][7]string{
		{"block_actions", fzApprover, "approve", id, "", "", ""},
		{"block_actions", fzApprover, "reject", id, "", "", ""},
		{"block_actions", "U0ALICE", "approve", "../../etc/passwd", "", "", ""},
		{"view_submission", fzApprover, "", "", "defenderbot_reject", `{"r":"` + id + `","c":"C0SOC"}`, "not enough evidence"},
		{"view_submission", fzApprover, "", "", "defenderbot_reject", `{"r":"` + id + `"}`, ""},
		{"view_submission", "U0ALICE", "", "", "defenderbot_cmd", `{"v":"isolate","c":"C0ANALYSTS","u":"http://127.0.0.1:1/"}`, "finance-laptop-01.contoso.com"},
		{"view_submission", "U0ALICE", "", "", "defenderbot_cmd", `{"v":"scan"}`, ""},
		{"view_submission", "U0ALICE", "", "", "defenderbot_cmd", `{"v":"iocs sync"}`, ""},
		{"view_closed", fzApprover, "", "", "defenderbot_reject", "", ""},
	} {
		f.Add("", fields[0], fields[1], fields[2], fields[3], fields[4], fields[5], fields[6])
	}
	f.Fuzz(func(t *testing.T, payload, typ, user, actionID, value, callbackID, meta, input string) {
		if payload == "" {
			ic := slackfake.BlockAction(user, actionID, value, fzChannel, "1700000000.000100", "")
			ic.Type = slack.InteractionType(typ)
			if typ != string(slack.InteractionTypeBlockActions) {
				ic.View = slack.View{ID: "V1", CallbackID: callbackID, PrivateMetadata: meta, State: &slack.ViewState{
					Values: map[string]map[string]slack.BlockAction{}}}
				// The same text in every input block the bot's forms have.
				for _, block := range []string{"reason", "machine", "comment", "isolation_type", "scan_type", "action_id", "alert_id", "status", "classification", "determination", "owner"} {
					ic.View.State.Values[block] = map[string]slack.BlockAction{block: {Type: "plain_text_input", Value: input}}
				}
			}
			form, err := slackfake.InteractionForm(ic)
			if err != nil {
				t.Skip(err)
			}
			payload = form.Get("payload")
		}
		s.send(t, "/slack/interactions", url.Values{"payload": {payload}}.Encode())
	})
}

// fuzzClock is the bot's clock: a wait moves it instead of passing.
type fuzzClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fuzzClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fuzzClock) sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
	return ctx.Err()
}
