package bot

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/stretchr/testify/require"

	"github.com/defenderbot/defenderbot/actions"
	"github.com/defenderbot/defenderbot/approval"
	"github.com/defenderbot/defenderbot/config"
	"github.com/defenderbot/defenderbot/defender"
	"github.com/defenderbot/defenderbot/internal/slackfake"
	"github.com/defenderbot/defenderbot/store"
	"github.com/defenderbot/defenderbot/store/storetest"
)

// testStore is the real SQLite store (a temporary file) with the look-ups
// tests use; faultStore wraps a store to inject failures.
type testStore struct{ store.Store }

func newTestStore(t *testing.T, clock *fakeClock) *testStore {
	t.Helper()
	return &testStore{storetest.OpenSQLite(t, store.WithClock(clock.Now))}
}

// all lists every stored request.
func (s *testStore) all(t *testing.T) []*approval.Request {
	t.Helper()
	rs, err := s.ListRequests(context.Background(), approval.RequestFilter{})
	require.NoError(t, err)
	return rs
}

// auditKinds lists the kinds of the audit lines of requestID ("": all), in order.
func (s *testStore) auditKinds(requestID string) []string {
	evs, err := s.ListAudit(context.Background(), time.Time{})
	if err != nil {
		panic(err)
	}
	var out []string
	for _, e := range evs {
		if requestID == "" || e.RequestID == requestID {
			out = append(out, e.Kind)
		}
	}
	return out
}

// only returns the one stored request.
func (s *testStore) only(t *testing.T) *approval.Request {
	t.Helper()
	rs := s.all(t)
	require.Len(t, rs, 1)
	return rs[0]
}

// slackCall is one recorded Slack Web API call.
type slackCall struct {
	Method  string
	Channel string
	User    string
	TS      string // chat.update target
	Thread  string
	Text    string
	Blocks  string // the blocks' JSON
	View    *slack.ModalViewRequest
	At      time.Time // fakeSlack.now when it arrived (zero without)
}

// fakeSlack records calls; groups maps user-group IDs to members.
type fakeSlack struct {
	mu     sync.Mutex
	calls  []slackCall
	groups map[string][]string
	n      int
	// rateLimited makes the next n calls answer 429.
	rateLimited int
	groupCalls  int
	client      *slack.Client
	// now, when set, stamps each call's At.
	now func() time.Time
}

// newFakeSlack serves chat.* on loopback so that the messages are encoded by
// slack-go exactly as Slack would receive them, and records them.
func newFakeSlack(t *testing.T) *fakeSlack {
	f := &fakeSlack{groups: map[string][]string{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		method := strings.TrimPrefix(r.URL.Path, "/")
		c := slackCall{Method: method, Channel: r.Form.Get("channel"), User: r.Form.Get("user"), Thread: r.Form.Get("thread_ts"),
			Text: r.Form.Get("text"), Blocks: r.Form.Get("blocks"), TS: r.Form.Get("ts")}
		if p := slackfake.MessageProblems(json.RawMessage(c.Blocks)); len(p) > 0 {
			// As Slack does: the whole message is refused.
			t.Errorf("Slack would refuse %s: %v", method, p)
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"ok":false,"error":"invalid_blocks"}`)
			return
		}
		f.mu.Lock()
		if f.now != nil {
			c.At = f.now()
		}
		if method == "chat.postMessage" {
			f.n++
			c.TS = fmt.Sprintf("1700000000.%06d", f.n)
		}
		f.calls = append(f.calls, c)
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `{"ok":true,"channel":%q,"ts":%q,"message_ts":"1"}`, c.Channel, c.TS)
	}))
	t.Cleanup(srv.Close)
	f.client = slack.New("xoxb-test", slack.OptionAPIURL(srv.URL+"/"))
	return f
}

// limited consumes one injected 429.
func (f *fakeSlack) limited() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rateLimited > 0 {
		f.rateLimited--
		return &slack.RateLimitedError{RetryAfter: time.Millisecond}
	}
	return nil
}

func (f *fakeSlack) record(c slackCall) error {
	if err := f.limited(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, c)
	return nil
}

func (f *fakeSlack) PostMessageContext(ctx context.Context, ch string, opts ...slack.MsgOption) (string, string, error) {
	if err := f.limited(); err != nil {
		return "", "", err
	}
	return f.client.PostMessageContext(ctx, ch, opts...)
}

func (f *fakeSlack) UpdateMessageContext(ctx context.Context, ch, ts string, opts ...slack.MsgOption) (string, string, string, error) {
	if err := f.limited(); err != nil {
		return "", "", "", err
	}
	return f.client.UpdateMessageContext(ctx, ch, ts, opts...)
}

func (f *fakeSlack) PostEphemeralContext(ctx context.Context, ch, user string, opts ...slack.MsgOption) (string, error) {
	if err := f.limited(); err != nil {
		return "", err
	}
	return f.client.PostEphemeralContext(ctx, ch, user, opts...)
}

func (f *fakeSlack) OpenViewContext(_ context.Context, trigger string, v slack.ModalViewRequest) (*slack.ViewResponse, error) {
	if raw, err := json.Marshal(v); err != nil || len(slackfake.ViewProblems(raw)) > 0 {
		return nil, fmt.Errorf("invalid_arguments: %v %v", err, slackfake.ViewProblems(raw))
	}
	return &slack.ViewResponse{}, f.record(slackCall{Method: "views.open", TS: trigger, View: &v})
}

func (f *fakeSlack) PublishViewContext(_ context.Context, req slack.PublishViewContextRequest) (*slack.ViewResponse, error) {
	raw, err := json.Marshal(req.View)
	if err != nil || len(slackfake.ViewProblems(raw)) > 0 {
		return nil, fmt.Errorf("invalid_arguments: %v %v", err, slackfake.ViewProblems(raw))
	}
	return &slack.ViewResponse{}, f.record(slackCall{Method: "views.publish", User: req.UserID, Blocks: string(raw)})
}

func (f *fakeSlack) GetUserGroupMembersContext(_ context.Context, g string, _ ...slack.GetUserGroupMembersOption) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.groupCalls++
	m, ok := f.groups[g]
	if !ok {
		return nil, fmt.Errorf("no_such_subteam")
	}
	return m, nil
}

func (f *fakeSlack) find(method string) []slackCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []slackCall
	for _, c := range f.calls {
		if c.Method == method {
			out = append(out, c)
		}
	}
	return out
}

func (f *fakeSlack) ephemeralTo(user string) []string {
	var out []string
	for _, c := range f.find("chat.postEphemeral") {
		if c.User == user {
			out = append(out, c.Text)
		}
	}
	return out
}

// fakeDefender is a scripted Defender.
type fakeDefender struct {
	mu       sync.Mutex
	machines []defender.Machine
	runs     []runCall
	runErr   error
	// statuses are returned by successive GetMachineAction calls.
	statuses []defender.ActionStatus
	polls    int
	listed   []defender.MachineAction
	listErr  error
	// runStatus is the status of the action Run returns.
	runStatus defender.ActionStatus
	// findErr, when set, is FindMachinesByName's error.
	findErr error
	// perMachine: each machine's action is "ma-<first 6 of its ID>", and
	// Run fails for the machines in failFor.
	perMachine bool
	failFor    map[string]error
}

type runCall struct {
	Action string
	Params map[string]string
}

const machineID = "1e5bc9d7e413ddd7902c2932e418702b84d0cc07"

func newFakeDefender() *fakeDefender {
	return &fakeDefender{
		machines: []defender.Machine{
			{ID: machineID, ComputerDNSName: "ws-001.contoso.com", HealthStatus: "Active", LastSeen: time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)},
			{ID: "2e5bc9d7e413ddd7902c2932e418702b84d0cc07", ComputerDNSName: "dup.contoso.com", HealthStatus: "Active", LastSeen: time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)},
			{ID: "3e5bc9d7e413ddd7902c2932e418702b84d0cc07", ComputerDNSName: "dup.contoso.com", HealthStatus: "Inactive", LastSeen: time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)},
		},
		runStatus: defender.StatusPending,
	}
}

func (d *fakeDefender) Run(_ context.Context, n actions.Name, a actions.Args) (*actions.Result, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.runs = append(d.runs, runCall{string(n), a.Map()})
	if d.runErr != nil {
		return nil, d.runErr
	}
	if err := d.failFor[a.MachineID]; err != nil {
		return nil, err
	}
	if n.TargetsMachine() {
		id := "ma-1"
		if d.perMachine {
			id = "ma-" + a.MachineID[:6]
		}
		ma := &defender.MachineAction{ID: id, Type: n.MachineActionType(), Status: d.runStatus, MachineID: a.MachineID, RequestorComment: a.Comment}
		return &actions.Result{Output: map[string]any{"id": ma.ID, "status": string(ma.Status)}, MachineAction: ma}, nil
	}
	return &actions.Result{Output: map[string]any{"id": "x-1", "status": "Succeeded"}}, nil
}

func (d *fakeDefender) GetMachine(_ context.Context, id string) (*defender.Machine, error) {
	for _, m := range d.machines {
		if m.ID == id {
			return &m, nil
		}
	}
	return nil, &defender.APIError{StatusCode: 404, Code: "ResourceNotFound", Message: "Machine not found"}
}

func (d *fakeDefender) FindMachinesByName(_ context.Context, name string) ([]defender.Machine, error) {
	if d.findErr != nil {
		return nil, d.findErr
	}
	var out []defender.Machine
	for _, m := range d.machines {
		if m.ComputerDNSName == name {
			out = append(out, m)
		}
	}
	return out, nil
}

func (d *fakeDefender) GetMachineAction(_ context.Context, id string) (*defender.MachineAction, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := defender.StatusInProgress
	if d.polls < len(d.statuses) {
		st = d.statuses[d.polls]
	} else if len(d.statuses) > 0 {
		st = d.statuses[len(d.statuses)-1]
	}
	d.polls++
	return &defender.MachineAction{ID: id, Type: "Isolate", Status: st}, nil
}

func (d *fakeDefender) ListMachineActions(_ context.Context, machineID, typ string) ([]defender.MachineAction, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.listed, d.listErr
}

func (d *fakeDefender) runCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.runs)
}

// fakeClock is a settable clock; SleepUntil waits for it to move.
type fakeClock struct {
	mu    sync.Mutex
	t     time.Time
	moved chan struct{} // closed (and replaced) by Advance
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	if c.moved != nil {
		close(c.moved)
		c.moved = nil
	}
	c.mu.Unlock()
}

// SleepUntil waits until the clock reads until (others move it), or ctx
// ends: a timer on the fake clock.
func (c *fakeClock) SleepUntil(ctx context.Context, until time.Time) error {
	for {
		c.mu.Lock()
		if !c.t.Before(until) {
			c.mu.Unlock()
			return nil
		}
		if c.moved == nil {
			c.moved = make(chan struct{})
		}
		moved := c.moved
		c.mu.Unlock()
		select {
		case <-moved:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

type harness struct {
	svc   *Service
	store *testStore
	slack *fakeSlack
	def   *fakeDefender
	clock *fakeClock
	// afterSleep, when set, runs after each Deps.Sleep has moved the clock
	// (a test waits there for what the move made due).
	afterSleep func()
}

const (
	analyst   = "UANALYST"
	approver1 = "UAPPROVER1"
	approver2 = "UAPPROVER2"
	outsider  = "UOUTSIDER"
	groupMem  = "UGROUPMEMBER"
	approvals = "CAPPROVALS"
)

func newHarness(t *testing.T, mod func(*Config)) *harness {
	t.Helper()
	cfg := ConfigFrom(config.Default(), "r1")
	cfg.ApprovalChannel = approvals
	cfg.Approvers = []string{approver1, approver2, "SSOCLEADS"}
	cfg.PollInterval, cfg.PollTimeout = time.Second, time.Hour
	if mod != nil {
		mod(&cfg)
	}
	h := &harness{slack: newFakeSlack(t), def: newFakeDefender(), clock: &fakeClock{t: t0}}
	h.store = newTestStore(t, h.clock)
	// Polls advance the fake clock instead of sleeping.
	sleep := func(ctx context.Context, d time.Duration) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		h.clock.Advance(d)
		if h.afterSleep != nil {
			h.afterSleep()
		}
		return nil
	}
	svc, err := New(cfg, Deps{Store: h.store, Slack: h.slack, Defender: h.def, Logger: slog.New(slog.DiscardHandler), Now: h.clock.Now, Sleep: sleep})
	require.NoError(t, err)
	h.slack.groups["SSOCLEADS"] = []string{groupMem}
	h.svc = svc
	t.Cleanup(func() { svc.core.Stop(); svc.Wait() })
	return h
}

func (h *harness) command(t *testing.T, user, text string) *slack.Msg {
	t.Helper()
	msg := h.svc.HandleCommand(context.Background(), slack.SlashCommand{UserID: user, UserName: user, ChannelID: "CSOC", Text: text, TriggerID: "trig"})
	h.svc.Wait()
	return msg
}

func (h *harness) click(t *testing.T, user, actionID, requestID string) {
	t.Helper()
	_, err := h.svc.HandleInteraction(context.Background(), blockAction(user, actionID, requestID))
	require.NoError(t, err)
	h.svc.Wait()
}

func blockAction(user, actionID, value string) slack.InteractionCallback {
	cb := slack.InteractionCallback{Type: slack.InteractionTypeBlockActions, TriggerID: "trig2"}
	cb.User.ID = user
	cb.Channel.ID = approvals
	cb.ActionCallback.BlockActions = []*slack.BlockAction{{ActionID: actionID, BlockID: blockDecision, Value: value}}
	return cb
}
