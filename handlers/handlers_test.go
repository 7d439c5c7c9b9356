package handlers_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/defenderbot/defenderbot/config"
	"github.com/defenderbot/defenderbot/handlers"
	"github.com/defenderbot/defenderbot/internal/logctx"
	"github.com/defenderbot/defenderbot/internal/slackfake"
)

const secret = "test-signing-secret"

// testConfig is the handlers' configuration as serve builds it (config's
// values), with secret as the signing secret.
func testConfig() handlers.Config {
	return handlers.Config{SigningSecret: secret, MaxBodyBytes: config.SlackMaxBodyBytes,
		MaxEventBodyBytes: config.SlackMaxEventBodyBytes, ReplayTTL: config.SlackReplayTTL,
		AckTimeout: config.SlackAckTimeout, ReadyTimeout: config.ReadyTimeout}
}

// fakeBot records what reaches it.
type fakeBot struct {
	mu           sync.Mutex
	commands     []slack.SlashCommand
	interactions []slack.InteractionCallback
	requestIDs   []string
	reply        *slack.Msg
	interResp    any
	interErr     error
	panicOn      string
}

func (b *fakeBot) HandleCommand(ctx context.Context, cmd slack.SlashCommand) *slack.Msg {
	if b.panicOn != "" && cmd.Text == b.panicOn {
		panic("boom")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.commands = append(b.commands, cmd)
	b.requestIDs = append(b.requestIDs, logctx.RequestID(ctx))
	return b.reply
}

func (b *fakeBot) HandleInteraction(ctx context.Context, ic slack.InteractionCallback) (any, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.interactions = append(b.interactions, ic)
	return b.interResp, b.interErr
}

func (b *fakeBot) counts() (int, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.commands), len(b.interactions)
}

// memSeen is an in-memory SeenMarker.
type memSeen struct {
	mu   sync.Mutex
	keys map[string]time.Time
	err  error
}

func newMemSeen() *memSeen { return &memSeen{keys: map[string]time.Time{}} }

func (m *memSeen) MarkSeen(_ context.Context, key string, now time.Time, ttl time.Duration) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return false, m.err
	}
	if exp, ok := m.keys[key]; ok && now.Before(exp) {
		return false, nil
	}
	m.keys[key] = now.Add(ttl)
	return true, nil
}

func (m *memSeen) len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.keys)
}

// recMetrics records outcomes per route.
type recMetrics struct {
	mu    sync.Mutex
	got   map[string][]string
	ready []bool
}

func (r *recMetrics) Ready(ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ready = append(r.ready, ok)
}

func (r *recMetrics) SlackRequest(route, outcome string, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.got == nil {
		r.got = map[string][]string{}
	}
	r.got[route] = append(r.got[route], outcome)
}

func (r *recMetrics) outcomes(route string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got[route]...)
}

type env struct {
	bot     *fakeBot
	seen    *memSeen
	metrics *recMetrics
	h       http.Handler
}

func newEnv(t *testing.T, mut ...func(*handlers.Config, *handlers.Deps)) *env {
	t.Helper()
	e := &env{bot: &fakeBot{}, seen: newMemSeen(), metrics: &recMetrics{}}
	cfg := testConfig()
	deps := handlers.Deps{Bot: e.bot, Seen: e.seen, Metrics: e.metrics, Logger: slog.New(slog.DiscardHandler)}
	for _, m := range mut {
		m(&cfg, &deps)
	}
	var err error
	e.h, err = handlers.New(cfg, deps)
	require.NoError(t, err)
	return e
}

func (e *env) do(req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	return rec
}

func commandForm() url.Values {
	return slackfake.CommandForm(slack.SlashCommand{
		Command: "/defender", Text: "isolate WS-01 full beacon", UserID: "U1", UserName: "alice",
		ChannelID: "C1", ResponseURL: "https://hooks.example/r", TriggerID: "t1",
	})
}

func signed(t *testing.T, path string, at time.Time, form url.Values) *http.Request {
	t.Helper()
	req, err := slackfake.SignedRequest(context.Background(), "http://bot"+path, secret, at, form)
	require.NoError(t, err)
	return req
}

func TestSlashCommandReachesBotAndRepliesAtOnce(t *testing.T) {
	e := newEnv(t)
	e.bot.reply = &slack.Msg{ResponseType: slack.ResponseTypeEphemeral, Text: "request R1 sent for approval"}

	rec := e.do(signed(t, "/slack/commands", time.Now(), commandForm()))

	require.Equal(t, http.StatusOK, rec.Code)
	var got slack.Msg
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &got))
	assert.Equal(t, "request R1 sent for approval", got.Text)
	assert.Equal(t, "ephemeral", got.ResponseType)
	require.Len(t, e.bot.commands, 1)
	cmd := e.bot.commands[0]
	assert.Equal(t, "/defender", cmd.Command)
	assert.Equal(t, "isolate WS-01 full beacon", cmd.Text)
	assert.Equal(t, "U1", cmd.UserID)
	assert.Equal(t, "https://hooks.example/r", cmd.ResponseURL)
	assert.Equal(t, []string{"ok"}, e.metrics.outcomes("/slack/commands"))
}

func TestNilReplyIsEmpty200(t *testing.T) {
	e := newEnv(t)
	rec := e.do(signed(t, "/slack/commands", time.Now(), commandForm()))
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.Empty(t, rec.Body.String())
}

func TestBadSignaturesAreRefusedWithNoEffect(t *testing.T) {
	form := commandForm()
	body := form.Encode()
	now := time.Now()
	goodTS, goodSig := slackfake.Sign(secret, now, []byte(body))
	staleTS, staleSig := slackfake.Sign(secret, now.Add(-6*time.Minute), []byte(body))
	futureTS, futureSig := slackfake.Sign(secret, now.Add(6*time.Minute), []byte(body))
	_, otherSig := slackfake.Sign("not-the-secret", now, []byte(body))

	tests := []struct {
		name    string
		ts, sig string
		body    string
		secret  string
	}{
		{name: "no headers"},
		{name: "no signature", ts: goodTS},
		{name: "no timestamp", sig: goodSig},
		{name: "signature without v0=", ts: goodTS, sig: strings.TrimPrefix(goodSig, "v0=")},
		{name: "signature not hex", ts: goodTS, sig: "v0=zz"},
		{name: "signature too short", ts: goodTS, sig: goodSig[:20]},
		{name: "timestamp not a number", ts: "yesterday", sig: goodSig},
		{name: "wrong secret", ts: goodTS, sig: otherSig},
		{name: "stale timestamp (6 min old)", ts: staleTS, sig: staleSig},
		{name: "future timestamp (6 min ahead)", ts: futureTS, sig: futureSig},
		{name: "timestamp swapped", ts: staleTS, sig: goodSig},
		{name: "body tampered", ts: goodTS, sig: goodSig, body: strings.Replace(body, "U1", "U9", 1)},
		{name: "server has no secret", ts: goodTS, sig: goodSig, secret: "-"},
	}
	for _, tc := range tests {
		for _, path := range []string{"/slack/commands", "/slack/interactions"} {
			t.Run(tc.name+" "+path, func(t *testing.T) {
				e := newEnv(t, func(c *handlers.Config, _ *handlers.Deps) {
					if tc.secret == "-" {
						c.SigningSecret = ""
					}
				})
				b := body
				if tc.body != "" {
					b = tc.body
				}
				req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(b))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				if tc.ts != "" {
					req.Header.Set("X-Slack-Request-Timestamp", tc.ts)
				}
				if tc.sig != "" {
					req.Header.Set("X-Slack-Signature", tc.sig)
				}
				rec := e.do(req)
				assert.Equal(t, http.StatusUnauthorized, rec.Code)
				assert.NotContains(t, rec.Body.String(), secret)
				c, i := e.bot.counts()
				assert.Zero(t, c+i, "bot must not be reached")
				assert.Zero(t, e.seen.len(), "nothing stored")
				assert.Equal(t, []string{"unauthorized"}, e.metrics.outcomes(path))
			})
		}
	}
}

func TestReplayIsAcknowledgedWithoutEffect(t *testing.T) {
	e := newEnv(t)
	e.bot.reply = &slack.Msg{Text: "sent"}
	req := signed(t, "/slack/commands", time.Now(), commandForm())
	body, _ := io.ReadAll(req.Body)
	replay := func() *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/slack/commands", strings.NewReader(string(body)))
		r.Header = req.Header.Clone()
		return r
	}

	first := e.do(replay())
	second := e.do(replay())

	assert.Equal(t, http.StatusOK, first.Code)
	assert.Contains(t, first.Body.String(), "sent")
	assert.Equal(t, http.StatusOK, second.Code)
	assert.Empty(t, second.Body.String())
	c, _ := e.bot.counts()
	assert.Equal(t, 1, c)
	assert.Equal(t, []string{"ok", "replay"}, e.metrics.outcomes("/slack/commands"))
}

// A captured request replayed with its signature re-spelled (upper- or
// mixed-case hex still verifies, since the verifier decodes the hex) is
// still a replay.
func TestReplayWithRespelledSignatureIsAReplay(t *testing.T) {
	e := newEnv(t)
	req := signed(t, "/slack/commands", time.Now(), commandForm())
	body, _ := io.ReadAll(req.Body)
	sig := req.Header.Get("X-Slack-Signature")
	for _, s := range []string{sig, "v0=" + strings.ToUpper(strings.TrimPrefix(sig, "v0=")), "v0=" + strings.ToUpper(sig[3:10]) + sig[10:]} {
		r := httptest.NewRequest(http.MethodPost, "/slack/commands", strings.NewReader(string(body)))
		r.Header = req.Header.Clone()
		r.Header.Set("X-Slack-Signature", s)
		assert.Equal(t, http.StatusOK, e.do(r).Code, s)
	}
	c, _ := e.bot.counts()
	assert.Equal(t, 1, c, "a re-spelled signature must not get past the replay check")
	assert.Equal(t, []string{"ok", "replay", "replay"}, e.metrics.outcomes("/slack/commands"))
}

// A ReplayTTL shorter than the signature window would let a request be
// replayed once its mark expired while its timestamp still verified: the
// handlers refuse it, as they refuse a missing limit, and name the field.
func TestConfigIsCompleteAndSafe(t *testing.T) {
	deps := handlers.Deps{Bot: &fakeBot{}, Seen: newMemSeen()}
	for name, tc := range map[string]struct {
		mod  func(*handlers.Config)
		want string
	}{
		"short ReplayTTL": {func(c *handlers.Config) { c.ReplayTTL = 10 * time.Minute }, "Config.ReplayTTL must be at least 11m0s"},
		"no ReplayTTL":    {func(c *handlers.Config) { c.ReplayTTL = 0 }, "Config.ReplayTTL must be at least 11m0s"},
		"MaxBodyBytes":    {func(c *handlers.Config) { c.MaxBodyBytes = 0 }, "MaxBodyBytes, MaxEventBodyBytes, AckTimeout and ReadyTimeout must be positive"},
		"MaxEventBodyBytes": {func(c *handlers.Config) { c.MaxEventBodyBytes = 0 },
			"MaxBodyBytes, MaxEventBodyBytes, AckTimeout and ReadyTimeout must be positive"},
		"AckTimeout":   {func(c *handlers.Config) { c.AckTimeout = 0 }, "MaxBodyBytes, MaxEventBodyBytes, AckTimeout and ReadyTimeout must be positive"},
		"ReadyTimeout": {func(c *handlers.Config) { c.ReadyTimeout = 0 }, "MaxBodyBytes, MaxEventBodyBytes, AckTimeout and ReadyTimeout must be positive"},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig()
			tc.mod(&cfg)
			_, err := handlers.New(cfg, deps)
			assert.ErrorContains(t, err, tc.want)
			err = handlers.RunSocketMode(context.Background(), socketmode.New(slack.New("xoxb-test", slack.OptionAppLevelToken("xapp-test"))), cfg, deps)
			assert.ErrorContains(t, err, tc.want)
		})
	}
	cfg := testConfig()
	cfg.ReplayTTL = handlers.MinReplayTTL
	_, err := handlers.New(cfg, deps)
	assert.NoError(t, err, "the minimum itself is allowed")
}

func TestConcurrentReplaysActOnce(t *testing.T) {
	e := newEnv(t)
	form, err := slackfake.InteractionForm(slackfake.BlockAction("U2", "approve", "R1", "C1", "1.000001", ""))
	require.NoError(t, err)
	req := signed(t, "/slack/interactions", time.Now(), form)
	body, _ := io.ReadAll(req.Body)

	var wg sync.WaitGroup
	for range 30 {
		wg.Go(func() {
			r := httptest.NewRequest(http.MethodPost, "/slack/interactions", strings.NewReader(string(body)))
			r.Header = req.Header.Clone()
			assert.Equal(t, http.StatusOK, e.do(r).Code)
		})
	}
	wg.Wait()
	_, i := e.bot.counts()
	assert.Equal(t, 1, i)
}

func TestSameSecondDifferentRequestsAreNotReplays(t *testing.T) {
	e := newEnv(t)
	now := time.Now()
	f1, f2 := commandForm(), commandForm()
	f2.Set("text", "status")
	assert.Equal(t, http.StatusOK, e.do(signed(t, "/slack/commands", now, f1)).Code)
	assert.Equal(t, http.StatusOK, e.do(signed(t, "/slack/commands", now, f2)).Code)
	c, _ := e.bot.counts()
	assert.Equal(t, 2, c)
}

func TestReplayStoreDownRefuses(t *testing.T) {
	e := newEnv(t)
	e.seen.err = errors.New("database is locked")
	rec := e.do(signed(t, "/slack/commands", time.Now(), commandForm()))
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.NotContains(t, rec.Body.String(), "database")
	c, _ := e.bot.counts()
	assert.Zero(t, c)
	assert.Equal(t, []string{"error"}, e.metrics.outcomes("/slack/commands"))
}

func TestNotWiredIs503(t *testing.T) {
	e := newEnv(t, func(_ *handlers.Config, d *handlers.Deps) { d.Seen = nil })
	rec := e.do(signed(t, "/slack/commands", time.Now(), commandForm()))
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	c, _ := e.bot.counts()
	assert.Zero(t, c)
}

func TestMalformedRequestsAre400(t *testing.T) {
	validPayload, err := slackfake.InteractionForm(slackfake.BlockAction("U2", "approve", "R1", "C1", "1.1", ""))
	require.NoError(t, err)
	noUser := slackfake.BlockAction("", "approve", "R1", "C1", "1.1", "")
	noUserForm, err := slackfake.InteractionForm(noUser)
	require.NoError(t, err)

	tests := []struct {
		name        string
		path        string
		contentType string
		body        string
		query       string
		want        int
	}{
		{"json body", "/slack/commands", "application/json", `{"command":"/defender"}`, "", 400},
		{"no content type", "/slack/commands", "", commandForm().Encode(), "", 400},
		{"bad form escape", "/slack/commands", "application/x-www-form-urlencoded", "command=%zz", "", 400},
		{"no command", "/slack/commands", "application/x-www-form-urlencoded", "user_id=U1&text=x", "", 400},
		{"no user", "/slack/commands", "application/x-www-form-urlencoded", "command=%2Fdefender&text=x", "", 400},
		{"empty interaction", "/slack/interactions", "application/x-www-form-urlencoded", "", "", 400},
		{"payload not json", "/slack/interactions", "application/x-www-form-urlencoded", "payload=%7Bnope", "", 400},
		{"payload only in query string", "/slack/interactions", "application/x-www-form-urlencoded", "", "?" + validPayload.Encode(), 400},
		{"interaction without user", "/slack/interactions", "application/x-www-form-urlencoded", noUserForm.Encode(), "", 400},
		{"body over 64 KiB", "/slack/commands", "application/x-www-form-urlencoded", "text=" + strings.Repeat("a", 70<<10), "", 413},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			ts, sig := slackfake.Sign(secret, time.Now(), []byte(tc.body))
			req := httptest.NewRequest(http.MethodPost, tc.path+tc.query, strings.NewReader(tc.body))
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			req.Header.Set("X-Slack-Request-Timestamp", ts)
			req.Header.Set("X-Slack-Signature", sig)
			rec := e.do(req)
			assert.Equal(t, tc.want, rec.Code)
			assert.Contains(t, rec.Body.String(), `"error"`)
			c, i := e.bot.counts()
			assert.Zero(t, c+i)
			assert.Zero(t, e.seen.len(), "a malformed request leaves no trace")
			assert.Equal(t, []string{"bad_request"}, e.metrics.outcomes(tc.path))
		})
	}
}

func TestInteractionTypes(t *testing.T) {
	submission := slack.InteractionCallback{Type: slack.InteractionTypeViewSubmission, User: slack.User{ID: "U2"},
		View: slack.View{ID: "V1", CallbackID: "reject_reason"}}
	closed := slack.InteractionCallback{Type: slack.InteractionTypeViewClosed, User: slack.User{ID: "U2"}}
	shortcut := slack.InteractionCallback{Type: slack.InteractionTypeShortcut, User: slack.User{ID: "U2"}}

	t.Run("block_actions reaches bot, empty 200", func(t *testing.T) {
		e := newEnv(t)
		form, err := slackfake.InteractionForm(slackfake.BlockAction("U2", "approve", "R1", "C1", "1.000001", ""))
		require.NoError(t, err)
		rec := e.do(signed(t, "/slack/interactions", time.Now(), form))
		assert.Equal(t, http.StatusOK, rec.Code)
		assert.Empty(t, rec.Body.String())
		require.Len(t, e.bot.interactions, 1)
		assert.Equal(t, "approve", e.bot.interactions[0].ActionCallback.BlockActions[0].ActionID)
		assert.Equal(t, "R1", e.bot.interactions[0].ActionCallback.BlockActions[0].Value)
	})
	t.Run("view_submission response is returned as JSON", func(t *testing.T) {
		e := newEnv(t)
		e.bot.interResp = slack.NewErrorsViewSubmissionResponse(map[string]string{"reason": "say why"})
		form, err := slackfake.InteractionForm(submission)
		require.NoError(t, err)
		rec := e.do(signed(t, "/slack/interactions", time.Now(), form))
		assert.Equal(t, http.StatusOK, rec.Code)
		assert.JSONEq(t, `{"response_action":"errors","errors":{"reason":"say why"}}`, rec.Body.String())
		require.Len(t, e.bot.interactions, 1)
		assert.Equal(t, "reject_reason", e.bot.interactions[0].View.CallbackID)
	})
	t.Run("typed nil response is empty 200", func(t *testing.T) {
		e := newEnv(t)
		e.bot.interResp = (*slack.ViewSubmissionResponse)(nil)
		form, err := slackfake.InteractionForm(submission)
		require.NoError(t, err)
		rec := e.do(signed(t, "/slack/interactions", time.Now(), form))
		assert.Equal(t, http.StatusOK, rec.Code)
		assert.Empty(t, rec.Body.String())
	})
	for name, ic := range map[string]slack.InteractionCallback{"view_closed": closed, "shortcut": shortcut} {
		t.Run(name+" ignored", func(t *testing.T) {
			e := newEnv(t)
			form, err := slackfake.InteractionForm(ic)
			require.NoError(t, err)
			rec := e.do(signed(t, "/slack/interactions", time.Now(), form))
			assert.Equal(t, http.StatusOK, rec.Code)
			_, i := e.bot.counts()
			assert.Zero(t, i)
			assert.Equal(t, []string{"ignored"}, e.metrics.outcomes("/slack/interactions"))
		})
	}
	t.Run("bot error is 500 without detail", func(t *testing.T) {
		e := newEnv(t)
		e.bot.interErr = errors.New("store: disk I/O error at /var/lib/x")
		form, err := slackfake.InteractionForm(slackfake.BlockAction("U2", "approve", "R1", "C1", "1.1", ""))
		require.NoError(t, err)
		rec := e.do(signed(t, "/slack/interactions", time.Now(), form))
		assert.Equal(t, http.StatusInternalServerError, rec.Code)
		assert.NotContains(t, rec.Body.String(), "disk")
		assert.Equal(t, []string{"error"}, e.metrics.outcomes("/slack/interactions"))
	})
}

func TestPanicInBotIs500(t *testing.T) {
	e := newEnv(t)
	e.bot.panicOn = "explode"
	f := commandForm()
	f.Set("text", "explode")
	rec := e.do(signed(t, "/slack/commands", time.Now(), f))
	assert.Equal(t, http.StatusInternalServerError, rec.Code)
	// The server keeps serving.
	assert.Equal(t, http.StatusOK, e.do(signed(t, "/slack/commands", time.Now(), commandForm())).Code)
}

func TestRequestID(t *testing.T) {
	e := newEnv(t)
	req := signed(t, "/slack/commands", time.Now(), commandForm())
	req.Header.Set("X-Request-ID", "abc-123")
	rec := e.do(req)
	assert.Equal(t, "abc-123", rec.Header().Get("X-Request-ID"))

	req = signed(t, "/slack/commands", time.Now().Add(-time.Second), commandForm())
	req.Header.Set("X-Request-ID", "evil\nlevel=ERROR msg=forged")
	rec = e.do(req)
	generated := rec.Header().Get("X-Request-ID")
	assert.NotContains(t, generated, "evil")
	assert.Len(t, generated, 36)

	assert.Equal(t, []string{"abc-123", generated}, e.bot.requestIDs)
}

func TestHealthz(t *testing.T) {
	e := newEnv(t)
	rec := e.do(httptest.NewRequest(http.MethodGet, "/healthz", nil))
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.JSONEq(t, `{"status":"ok"}`, rec.Body.String())
}

func TestReadyz(t *testing.T) {
	ok := func(context.Context) error { return nil }
	tests := []struct {
		name   string
		checks []handlers.ReadinessCheck
		want   int
		body   string
	}{
		{"no checks", nil, 200, `{"status":"ready","checks":{}}`},
		{"all ok", []handlers.ReadinessCheck{{Name: "store", Check: ok}, {Name: "defender_token", Check: ok}}, 200,
			`{"status":"ready","checks":{"store":"ok","defender_token":"ok"}}`},
		{"token fails", []handlers.ReadinessCheck{
			{Name: "store", Check: ok},
			{Name: "defender_token", Check: func(context.Context) error {
				return errors.New("AADSTS7000215: invalid client secret 'hunter2'")
			}},
		}, 503, `{"status":"not ready","failed":["defender_token"],"checks":{"store":"ok","defender_token":"failed"}}`},
		{"panicking and nil checks fail", []handlers.ReadinessCheck{
			{Name: "store", Check: func(context.Context) error { panic("x") }},
			{Name: "nil"},
		}, 503, `{"status":"not ready","failed":["store","nil"],"checks":{"store":"failed","nil":"failed"}}`},
		{"check honours timeout", []handlers.ReadinessCheck{
			{Name: "slow", Check: func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }},
		}, 503, `{"status":"not ready","failed":["slow"],"checks":{"slow":"failed"}}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(c *handlers.Config, d *handlers.Deps) {
				d.Readiness = tc.checks
				c.ReadyTimeout = 10 * time.Millisecond
			})
			rec := e.do(httptest.NewRequest(http.MethodGet, "/readyz", nil))
			assert.Equal(t, tc.want, rec.Code)
			assert.JSONEq(t, tc.body, rec.Body.String())
			assert.NotContains(t, rec.Body.String(), "hunter2")
			e.metrics.mu.Lock()
			defer e.metrics.mu.Unlock()
			assert.Equal(t, []bool{tc.want == 200}, e.metrics.ready, "each check's outcome reaches the readiness gauge")
		})
	}
}

func TestMetricsEndpointServesGatherer(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "defenderbot_test_total", Help: "t"})
	reg.MustRegister(c)
	c.Add(3)
	e := newEnv(t, func(_ *handlers.Config, d *handlers.Deps) { d.Gatherer = reg })
	rec := e.do(httptest.NewRequest(http.MethodGet, "/metrics", nil))
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.Contains(t, rec.Body.String(), "defenderbot_test_total 3")
}

func TestUnknownRouteAndMethod(t *testing.T) {
	e := newEnv(t)
	assert.Equal(t, http.StatusNotFound, e.do(httptest.NewRequest(http.MethodGet, "/nope", nil)).Code)
	assert.Equal(t, http.StatusNotFound, e.do(httptest.NewRequest(http.MethodGet, "/slack/commands", nil)).Code)
}

func TestReplayKey(t *testing.T) {
	a := handlers.ReplayKey("1700000000", "v0=aa")
	assert.Equal(t, a, handlers.ReplayKey("1700000000", "v0=aa"))
	assert.NotEqual(t, a, handlers.ReplayKey("1700000001", "v0=aa"))
	assert.NotEqual(t, a, handlers.ReplayKey("1700000000", "v0=ab"))
	assert.Equal(t, a, handlers.ReplayKey("1700000000", "v0=AA"), "hex case does not make a new request")
	assert.NotContains(t, a, "v0=aa", "the key is a hash, not the signature")
}

func TestLogLinesCarryTheRequestIDOnce(t *testing.T) {
	for _, wrapped := range []bool{false, true} {
		var buf syncBuf
		var h slog.Handler = slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})
		if wrapped {
			h = logctx.NewHandler(h)
		}
		e := newEnv(t, func(_ *handlers.Config, d *handlers.Deps) { d.Logger = slog.New(h) })
		req := signed(t, "/slack/commands", time.Now(), commandForm())
		req.Header.Set("X-Request-ID", "req-42")
		e.do(req)
		bad := httptest.NewRequest(http.MethodPost, "/slack/commands", strings.NewReader("x=1"))
		bad.Header.Set("X-Request-ID", "req-43")
		e.do(bad)

		lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
		require.Len(t, lines, 3, buf.String()) // two request lines and one refusal
		for _, l := range lines {
			assert.Equal(t, 1, strings.Count(l, `"request_id"`), l)
			assert.NotContains(t, l, secret)
		}
		assert.Contains(t, lines[0], `"request_id":"req-42"`)
		assert.Contains(t, lines[1], `"msg":"slack request refused"`)
		assert.Contains(t, lines[1], `"request_id":"req-43"`)
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
