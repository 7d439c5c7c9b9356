package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/slack-go/slack"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/defenderbot/defenderbot/actions"
	"github.com/defenderbot/defenderbot/approval"
	"github.com/defenderbot/defenderbot/bot"
	"github.com/defenderbot/defenderbot/config"
	"github.com/defenderbot/defenderbot/defender"
	"github.com/defenderbot/defenderbot/defender/defendertest"
	"github.com/defenderbot/defenderbot/graph"
	"github.com/defenderbot/defenderbot/handlers"
	"github.com/defenderbot/defenderbot/internal/slackfake"
	"github.com/defenderbot/defenderbot/store"
	"github.com/defenderbot/defenderbot/store/storetest"
)

// The cast: Alice requests, Bob and Carol approve, Mallory is neither.
const (
	channel    = "C0SOC"
	alice      = "U0ALICE"
	bob        = "U0BOB"
	carol      = "U0CAROL"
	mallory    = "U0MALLORY"
	secret     = "e2e-signing-secret"
	machine1   = defendertest.SampleMachineID1
	machine1DN = "finance-laptop-01.contoso.com"
)

// clock is a settable clock shared by the bot and the store.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// polls lets the processes' machine-action follow-ups poll only when a
// poll can learn something: while every action's status in the emulator
// is the one last read, a follow-up's wait lasts until the emulated clock
// moves (world.advance) or its process stops, never on the real clock.
type polls struct {
	mu    sync.Mutex
	moved chan struct{}     // closed (and replaced) by every advance
	read  map[string]string // machine action ID -> status last read
}

// news reports whether an emulator action has a status no poll read yet.
func (p *polls) news(emu *defendertest.Server) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, a := range emu.MachineActions() {
		got := p.read[a.ID]
		if got == "" {
			got = "Pending" // as Defender accepted it
		}
		if got != string(a.Status) {
			return true
		}
	}
	return false
}

// pollInterval is the processes' follow-up interval: world.wait stands
// for it.
const pollInterval = 10 * time.Millisecond

// wait is the processes' sleep. A follow-up's wait returns at once when a
// poll would read a new status, else when the emulated clock moves or
// defenderbot calls Defender; any other wait (a Slack Retry-After) is
// over at once.
func (w *world) wait(ctx context.Context, d time.Duration) error {
	if d != pollInterval {
		return ctx.Err()
	}
	w.polls.mu.Lock()
	moved := w.polls.moved
	w.polls.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	if w.polls.news(w.emu) {
		return nil
	}
	select {
	case <-moved:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// advance moves the emulated clock (machine actions progress) and wakes
// the follow-ups.
func (w *world) advance(d time.Duration) {
	w.emu.Advance(d)
	w.polls.wake()
}

func (p *polls) wake() {
	p.mu.Lock()
	defer p.mu.Unlock()
	close(p.moved)
	p.moved = make(chan struct{})
}

// readingDefender records the status each follow-up poll read, and wakes
// the follow-ups after each action (a cancel changes another's status).
type readingDefender struct {
	bot.Defender
	polls *polls
}

func (d readingDefender) Run(ctx context.Context, n actions.Name, a actions.Args) (*actions.Result, error) {
	defer d.polls.wake()
	return d.Defender.Run(ctx, n, a)
}

func (d readingDefender) GetMachineAction(ctx context.Context, id string) (*defender.MachineAction, error) {
	ma, err := d.Defender.GetMachineAction(ctx, id)
	if err == nil {
		d.polls.mu.Lock()
		d.polls.read[ma.ID] = string(ma.Status)
		d.polls.mu.Unlock()
	}
	return ma, err
}

// world is what outlives a bot process: Defender, Slack, the database.
// Every process started on a world shares all three, as replicas do.
type world struct {
	emu    *defendertest.Server
	slack  *slackfake.Server
	driver string // store.DriverSQLite or store.DriverPostgres
	db     string // the store DSN
	clock  *clock
	// limits is the Defender client pacing of every process (zero: Microsoft's).
	limits defender.Limits
	// logs, when set, receives every process's logs (JSON, debug level).
	logs io.Writer
	// graphAlerts: processes read alerts from Graph and send the alert
	// actions there (defender.alerts_api: graph), as serve wires them.
	graphAlerts bool
	polls       *polls
}

// backends are the store drivers the end-to-end tests run against.
var backends = []string{store.DriverSQLite, store.DriverPostgres}

func newWorld(t testing.TB, opts ...defendertest.Option) *world {
	t.Helper()
	return newWorldOn(t, store.DriverSQLite, opts...)
}

// newWorldOn is newWorld on the given store backend; PostgreSQL gets a fresh
// schema and skips the test without DEFENDERBOT_TEST_POSTGRES_DSN.
func newWorldOn(t testing.TB, driver string, opts ...defendertest.Option) *world {
	t.Helper()
	var dsn string
	switch driver {
	case store.DriverSQLite:
		dsn = filepath.Join(t.TempDir(), "e2e.db")
	case store.DriverPostgres:
		dsn = storetest.PostgresDSN(t)
	default:
		t.Fatalf("unknown store driver %q", driver)
	}
	emu := defendertest.NewServer(t, opts...)
	emu.AddSampleData()
	return &world{
		emu:    emu,
		slack:  slackfake.NewT(t),
		driver: driver,
		db:     dsn,
		clock:  &clock{now: time.Now()},
		polls:  &polls{moved: make(chan struct{}), read: map[string]string{}},
	}
}

// noPacing turns the Defender client's pacing off for every API: load tests
// measure defenderbot, not Microsoft's per-minute budget.
func noPacing() defender.Limits {
	l := defender.Limits{PerMinute: map[string]int{}, PerHour: map[string]int{}}
	for _, api := range []string{defender.APIMachineActions, defender.APIMachines, defender.APIAlerts,
		defender.APIIndicators, defender.APIIndicatorImport, defender.APIIndicatorDelete} {
		l.PerMinute[api], l.PerHour[api] = -1, -1
	}
	return l
}

// proc is one defenderbot process: store, bot, handlers on an HTTP server.
type proc struct {
	t      testing.TB
	w      *world
	store  store.Store
	bot    *bot.Service
	srv    *httptest.Server
	cancel context.CancelFunc
	ran    chan struct{}
	once   sync.Once
}

type procOption func(*bot.Config)

func approvers(ids ...string) procOption {
	return func(c *bot.Config) { c.Approvers = ids }
}

// start runs a bot process against the world; it stops at test end.
func (w *world) start(t testing.TB, opts ...procOption) *proc {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, w.driver, w.db, store.WithClock(w.clock.Now))
	require.NoError(t, err)
	logger := slog.New(slog.DiscardHandler)
	if w.logs != nil {
		logger = slog.New(slog.NewJSONHandler(w.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	dcfg := w.emu.ClientConfig()
	dcfg.MaxRetries, dcfg.Limits = 1, w.limits
	client, err := defender.New(dcfg, defender.WithHTTPClient(w.emu.HTTPClient()), defender.WithLogger(logger))
	require.NoError(t, err)

	cfg := bot.ConfigFrom(config.Default(), "replica-"+uuid.NewString()[:8])
	cfg.ApprovalChannel = channel
	cfg.Approvers = []string{alice, bob, carol}
	// Follow-ups wait for the emulated clock (world.wait), not this interval.
	cfg.PollInterval, cfg.PollTimeout = pollInterval, time.Minute
	// The Slack stand-in serves response_url on its own host.
	cfg.ResponseURLHosts = []string{urlHost(t, w.slack.APIURL())}
	for _, o := range opts {
		o(&cfg)
	}
	deps := bot.Deps{
		Store:       st,
		Slack:       w.slack.Client(),
		Defender:    bot.NewDefender(actions.NewRunner(client), client),
		MachineInfo: client,
		Logger:      logger,
		Now:         w.clock.Now,
		Sleep:       w.wait,
	}
	if w.graphAlerts {
		gc := w.graphClient(t)
		deps.Defender = bot.NewDefender(actions.NewRunner(client, graph.NewDefenderAlerts(gc)), client)
		deps.Alerts, deps.AlertLinks = gc, st
	}
	deps.Defender = readingDefender{Defender: deps.Defender, polls: w.polls}
	b, err := bot.New(cfg, deps)
	require.NoError(t, err)
	h, err := handlers.New(handlers.Config{SigningSecret: secret, MaxBodyBytes: config.SlackMaxBodyBytes,
		MaxEventBodyBytes: config.SlackMaxEventBodyBytes, ReplayTTL: config.SlackReplayTTL,
		AckTimeout: config.SlackAckTimeout, ReadyTimeout: config.ReadyTimeout}, handlers.Deps{
		Bot: b, Events: b, Seen: st, Logger: logger,
		Readiness: []handlers.ReadinessCheck{{Name: "store", Check: st.Ping}, {Name: "defender_token", Check: client.CheckToken}},
	})
	require.NoError(t, err)
	p := &proc{t: t, w: w, store: st, bot: b, srv: httptest.NewServer(h), ran: make(chan struct{})}
	runCtx, cancel := context.WithCancel(ctx)
	p.cancel = cancel
	go func() { defer close(p.ran); _ = b.Run(runCtx) }()
	t.Cleanup(p.stop)
	return p
}

// stop shuts the process down the way serve does.
func (p *proc) stop() {
	p.once.Do(func() {
		p.srv.Close()
		p.cancel()
		<-p.ran
		p.bot.Wait()
		_ = p.store.Close()
	})
}

// post sends form to path signed with key at time at.
func (p *proc) post(path, key string, at time.Time, form url.Values) (int, string) {
	p.t.Helper()
	req, err := slackfake.SignedRequest(context.Background(), p.srv.URL+path, key, at, form)
	require.NoError(p.t, err)
	return p.do(req)
}

func (p *proc) do(req *http.Request) (int, string) {
	p.t.Helper()
	resp, err := p.srv.Client().Do(req)
	require.NoError(p.t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// command sends user's signed /defender text and returns the ack.
func (p *proc) command(user, text string) (int, string) {
	p.t.Helper()
	return p.post("/slack/commands", secret, time.Now(), commandForm(p.w, user, text))
}

func commandForm(w *world, user, text string) url.Values {
	return slackfake.CommandForm(slack.SlashCommand{
		Command: "/defender", Text: text, UserID: user, UserName: strings.ToLower(user[2:]),
		ChannelID: "C0ANALYSTS", ResponseURL: w.slack.ResponseURL("cmd-" + user), TriggerID: "trig-" + user,
	})
}

// click sends user's signed click on button actionID of request id.
func (p *proc) click(user, actionID, id, messageTS string) (int, string) {
	p.t.Helper()
	form, err := slackfake.InteractionForm(slackfake.BlockAction(user, actionID, id, channel, messageTS, p.w.slack.ResponseURL("click-"+user)))
	require.NoError(p.t, err)
	return p.post("/slack/interactions", secret, time.Now(), form)
}

// openedForm waits for the nth form (views.open) and returns its view.
func (w *world) openedForm(t *testing.T, n int) slack.View {
	t.Helper()
	open := w.waitCall(t, n, func(c slackfake.Call) bool { return c.Method == slackfake.MethodViewsOpen })
	var view slack.View
	require.NoError(t, jsonUnmarshal(open.View, &view))
	return view
}

// submitText submits view, a form opened to user, with its one text input
// field set to value, and returns the answer.
func (p *proc) submitText(user string, view slack.View, field, value string) (int, string) {
	p.t.Helper()
	ic := slack.InteractionCallback{Type: slack.InteractionTypeViewSubmission, User: slack.User{ID: user, Name: user},
		View: slack.View{ID: "V-" + field, CallbackID: view.CallbackID, PrivateMetadata: view.PrivateMetadata,
			State: &slack.ViewState{Values: map[string]map[string]slack.BlockAction{field: {field: {Type: "plain_text_input", Value: value}}}}}}
	form, err := slackfake.InteractionForm(ic)
	require.NoError(p.t, err)
	return p.post("/slack/interactions", secret, time.Now(), form)
}

// approveTogether has every user click Approve on request id at the same
// moment, user i through procs[i%len(procs)], and returns the HTTP statuses.
func approveTogether(t *testing.T, procs []*proc, users []string, id, messageTS string) []int {
	t.Helper()
	reqs := make([]*http.Request, len(users))
	for i, u := range users {
		form, err := slackfake.InteractionForm(slackfake.BlockAction(u, "approve", id, channel, messageTS, ""))
		require.NoError(t, err)
		reqs[i], err = signedRequest(context.Background(), procs[i%len(procs)].srv.URL+"/slack/interactions", form)
		require.NoError(t, err)
	}
	return sendTogether(t, reqs)
}

// sendTogether sends every request at the same moment and returns the HTTP
// statuses, in order (0 for a request that failed, with a test error).
func sendTogether(t *testing.T, reqs []*http.Request) []int {
	t.Helper()
	codes := make([]int, len(reqs))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, req := range reqs {
		wg.Go(func() {
			<-start
			resp, err := http.DefaultClient.Do(req)
			if !assert.NoError(t, err) {
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codes[i] = resp.StatusCode
		})
	}
	close(start)
	wg.Wait()
	return codes
}

// numberedApprovers returns n distinct user IDs, U0APPROVER00 onwards.
func numberedApprovers(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("U0APPROVER%02d", i)
	}
	return ids
}

// approvalMessage waits for the nth approval request posted in the channel
// and returns it and the request ID carried by its Approve button.
func (w *world) approvalMessage(t *testing.T, n int) (slackfake.Call, string) {
	t.Helper()
	c := w.waitCall(t, n, func(c slackfake.Call) bool {
		return c.Method == slackfake.MethodPostMessage && c.Channel == channel && c.ThreadTS == "" && c.Error == ""
	})
	id, err := slackfake.ButtonValue(c.Blocks, "approve")
	require.NoError(t, err)
	require.NotEmpty(t, id, "approval message without an Approve button: %s", c.Blocks)
	return c, id
}

// waitCall waits for the nth Slack call matching match.
func (w *world) waitCall(t *testing.T, n int, match func(slackfake.Call) bool) slackfake.Call {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	found, err := w.slack.WaitNth(ctx, n, match)
	require.NoError(t, err, "Slack calls so far:\n%s", dumpCalls(w.slack.Calls()))
	return found
}

// ephemeralTo waits for the nth ephemeral message to user.
func (w *world) ephemeralTo(t *testing.T, user string, n int) slackfake.Call {
	t.Helper()
	return w.waitCall(t, n, func(c slackfake.Call) bool { return c.Method == slackfake.MethodPostEphemeral && c.User == user })
}

// dmTo waits for the nth direct message to user.
func (w *world) dmTo(t *testing.T, user string, n int) slackfake.Call {
	t.Helper()
	return w.waitCall(t, n, func(c slackfake.Call) bool { return c.Method == slackfake.MethodPostMessage && c.Channel == user })
}

// responseTo waits for the nth response_url post answering user's command.
func (w *world) responseTo(t *testing.T, user string, n int) slackfake.Call {
	t.Helper()
	return w.waitCall(t, n, func(c slackfake.Call) bool {
		return c.Method == slackfake.MethodResponseURL && c.ResponseURL == "cmd-"+user
	})
}

// waitState waits until request id is in state want.
func (p *proc) waitState(id string, want approval.State) *approval.Request {
	p.t.Helper()
	var (
		r   *approval.Request
		err error
	)
	ok := assert.Eventually(p.t, func() bool {
		r, err = p.store.GetRequest(context.Background(), id)
		return err == nil && r.State == want
	}, 10*time.Second, 5*time.Millisecond)
	if !ok {
		p.t.Fatalf("request %s never reached %s: last %+v, error %v\nSlack calls:\n%s", id, want, r, err, dumpCalls(p.w.slack.Calls()))
	}
	return r
}

// defenderWrites are the state-changing Defender API calls, "METHOD /path".
func (w *world) defenderWrites() []string {
	var out []string
	for _, r := range w.emu.Requests() {
		if r.API == defendertest.APIToken || r.Method == http.MethodGet {
			continue
		}
		out = append(out, r.Method+" "+r.Path)
	}
	return out
}

func dumpCalls(calls []slackfake.Call) string {
	var b strings.Builder
	for _, c := range calls {
		fmt.Fprintf(&b, "  #%d %s ch=%s user=%s thread=%s err=%s text=%q\n", c.Seq, c.Method, c.Channel, c.User, c.ThreadTS, c.Error, c.Text)
	}
	return b.String()
}

// audit returns the audit trail's kinds for request id, in order.
func (p *proc) auditKinds(id string) []string {
	p.t.Helper()
	evs, err := p.store.ListAudit(context.Background(), time.Time{})
	require.NoError(p.t, err)
	var out []string
	for _, e := range evs {
		if e.RequestID == id {
			out = append(out, e.Kind)
		}
	}
	return out
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

func signedRequest(ctx context.Context, target string, form url.Values) (*http.Request, error) {
	return slackfake.SignedRequest(ctx, target, secret, time.Now(), form)
}

func urlHost(t testing.TB, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	require.NoError(t, err)
	return u.Host
}
