// Package slackfake is an in-process stand-in for the Slack Web API, used by
// tests and by `defenderbot demo`. It is built on slack-go's slacktest server
// and replaces or adds the methods defenderbot calls (chat.postMessage,
// chat.update, chat.postEphemeral, views.open, usergroups.users.list,
// users.info, auth.test, views.publish) plus a response_url receiver. Every call is recorded
// for assertions; rate limiting (429 + Retry-After) and Slack errors can be
// injected. Like Slack, it refuses a message or view that breaks a Block Kit
// limit (limits.go): invalid_blocks for messages, invalid_arguments for views.
// It plays Slack's side of Socket Mode (SendEnvelope). It also signs requests
// the way Slack does, so tests can drive the real HTTP endpoints.
//
// It must not import any other defenderbot package: it plays Slack, not
// defenderbot.
package slackfake

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slacktest"
)

// Method names recorded in Call.Method.
const (
	MethodPostMessage   = "chat.postMessage"
	MethodUpdate        = "chat.update"
	MethodPostEphemeral = "chat.postEphemeral"
	MethodViewsOpen     = "views.open"
	MethodViewsPublish  = "views.publish"
	MethodGroupMembers  = "usergroups.users.list"
	MethodUsersInfo     = "users.info"
	MethodAuthTest      = "auth.test"
	// MethodResponseURL is a POST to a response_url handed out by ResponseURL.
	MethodResponseURL = "response_url"
)

// Call is one request the fake received.
type Call struct {
	Seq      int    // 1-based order of arrival
	Method   string // one of the Method* constants
	Channel  string
	TS       string // ts of the message created or updated (set by the fake for posts)
	ThreadTS string
	Text     string
	Blocks   json.RawMessage // the blocks as sent, nil when none
	User     string          // ephemeral recipient, users.info user
	// Usergroup is the usergroup of usergroups.users.list.
	Usergroup string
	// TriggerID and View are the views.open arguments.
	TriggerID string
	View      json.RawMessage
	// ResponseURL is the name given to ResponseURL; ResponseType,
	// ReplaceOriginal, DeleteOriginal come from its JSON body.
	ResponseURL     string
	ResponseType    string
	ReplaceOriginal bool
	DeleteOriginal  bool
	// Status is the HTTP status the fake answered (429 for injected rate limits).
	Status int
	// Error is the Slack error code answered ("" when ok).
	Error string
	// Problems are the Block Kit limits a refused payload broke, as Slack
	// words them ("must be less than 3001 characters [json-pointer:/blocks/0/text/text]").
	Problems []string
	// Form holds every form field (form-encoded methods).
	Form url.Values
	// Body is the raw request body.
	Body []byte
}

// Message is the current state of a message posted through the fake.
type Message struct {
	Channel  string
	TS       string
	ThreadTS string
	Text     string
	Blocks   json.RawMessage
	Updates  int // how many chat.update calls changed it
}

type fault struct {
	remaining  int
	retryAfter time.Duration // > 0: 429
	slackErr   string        // else ok:false with this error
}

// Server is the fake Slack. All methods are safe for concurrent use.
type Server struct {
	ts *slacktest.Server

	mu         sync.Mutex
	calls      []Call
	changed    chan struct{} // closed and replaced on every call
	faults     map[string]*fault
	messages   map[string]*Message // channel + "|" + ts
	users      map[string]slack.User
	usergroups map[string][]string
	homes      map[string]json.RawMessage // user -> Home tab view last published
	clock      int64                      // last ts handed out, in microseconds
	sock       socketState
	holds      []*hold
}

// hold keeps the answers to the posts it matches until released.
type hold struct {
	match    func(Call) bool
	released chan struct{}
}

// New starts a fake Slack on a loopback port. Close it when done.
func New() *Server {
	s := &Server{
		changed:    make(chan struct{}),
		faults:     map[string]*fault{},
		messages:   map[string]*Message{},
		users:      map[string]slack.User{},
		usergroups: map[string][]string{},
		homes:      map[string]json.RawMessage{},
	}
	s.initSocket()
	s.ts = slacktest.NewTestServer(func(c slacktest.Customize) {
		// Binders run before slacktest's defaults, so these override them.
		c.Handle("/"+MethodPostMessage, s.handlePostMessage)
		c.Handle("/"+MethodUpdate, s.handleUpdate)
		c.Handle("/"+MethodPostEphemeral, s.handlePostEphemeral)
		c.Handle("/"+MethodViewsOpen, s.handleViewsOpen)
		c.Handle("/"+MethodViewsPublish, s.handleViewsPublish)
		c.Handle("/"+MethodGroupMembers, s.handleGroupMembers)
		c.Handle("/"+MethodUsersInfo, s.handleUsersInfo)
		c.Handle("/"+MethodAuthTest, s.handleAuthTest)
		c.Handle("/response/", s.handleResponseURL)
		// Socket Mode: slacktest's apps.connections.open points here.
		c.Handle("/ws", s.handleSocket)
	})
	s.ts.Start()
	return s
}

// Cleaner is the part of testing.TB that NewT needs.
type Cleaner interface{ Cleanup(func()) }

// NewT is New with Close registered as a test cleanup.
func NewT(t Cleaner) *Server {
	s := New()
	t.Cleanup(s.Close)
	return s
}

// Close stops the server.
func (s *Server) Close() { s.ts.Stop() }

// APIURL is the Web API base URL, with the trailing slash slack.OptionAPIURL needs.
func (s *Server) APIURL() string { return s.ts.GetAPIURL() }

// Client returns a Slack client pointed at the fake.
func (s *Server) Client(opts ...slack.Option) *slack.Client {
	return slack.New("xoxb-slackfake", append([]slack.Option{slack.OptionAPIURL(s.APIURL())}, opts...)...)
}

// ResponseURL returns a response_url whose POSTs are recorded as
// MethodResponseURL calls with Call.ResponseURL = name.
func (s *Server) ResponseURL(name string) string {
	return s.APIURL() + "response/" + url.PathEscape(name)
}

// AddUser makes users.info know u.
func (s *Server) AddUser(u slack.User) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[u.ID] = u
}

// SetUsergroup sets the members usergroups.users.list returns for id.
func (s *Server) SetUsergroup(id string, members ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.usergroups[id] = slices.Clone(members)
}

// RateLimit makes the next n calls to method fail with HTTP 429 and
// Retry-After (whole seconds, at least 1, as Slack sends it).
func (s *Server) RateLimit(method string, n int, retryAfter time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[method] = &fault{remaining: n, retryAfter: max(retryAfter, time.Second)}
}

// FailWith makes the next n calls to method answer ok:false with slackErr
// (e.g. "channel_not_found", "expired_trigger_id").
func (s *Server) FailWith(method string, n int, slackErr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[method] = &fault{remaining: n, slackErr: slackErr}
}

// HoldPosts makes chat.postMessage calls matching match wait for their
// answer until release is called: the message exists (it is recorded and
// people can click on it) but the caller does not know its ts yet, as when
// Slack's answer is slow. release is idempotent.
func (s *Server) HoldPosts(match func(Call) bool) (release func()) {
	h := &hold{match: match, released: make(chan struct{})}
	s.mu.Lock()
	s.holds = append(s.holds, h)
	s.mu.Unlock()
	var once sync.Once
	return func() { once.Do(func() { close(h.released) }) }
}

// heldLocked returns the channels a post c waits on.
func (s *Server) heldLocked(c Call) []chan struct{} {
	var out []chan struct{}
	for _, h := range s.holds {
		if h.match(c) {
			out = append(out, h.released)
		}
	}
	return out
}

// Calls returns every call so far, in order of arrival.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// CallsTo returns the calls to one method, in order of arrival.
func (s *Server) CallsTo(method string) []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return filter(s.calls, method)
}

// Message returns the current state of a message posted through the fake.
func (s *Server) Message(channel, ts string) (Message, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.messages[channel+"|"+ts]
	if !ok {
		return Message{}, false
	}
	return *m, true
}

// Messages returns every message currently in channel, oldest first.
func (s *Server) Messages(channel string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Message
	for _, k := range slices.Sorted(maps.Keys(s.messages)) {
		if m := s.messages[k]; m.Channel == channel {
			out = append(out, *m)
		}
	}
	return out
}

// ButtonValue returns the value of the button actionID in Block Kit JSON as
// recorded in Call.Blocks ("" when there is none), so a test can click it.
func ButtonValue(blocks json.RawMessage, actionID string) (string, error) {
	var bs slack.Blocks
	if err := json.Unmarshal(blocks, &bs); err != nil {
		return "", fmt.Errorf("slackfake: blocks: %w", err)
	}
	for _, b := range bs.BlockSet {
		ab, ok := b.(*slack.ActionBlock)
		if !ok || ab.Elements == nil {
			continue
		}
		for _, el := range ab.Elements.ElementSet {
			if btn, ok := el.(*slack.ButtonBlockElement); ok && btn.ActionID == actionID {
				return btn.Value, nil
			}
		}
	}
	return "", nil
}

// Reset forgets recorded calls (not users, groups or messages).
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = nil
	s.notifyLocked()
}

// Wait blocks until cond holds for the recorded calls or ctx is done. It
// wakes on every new call, so there is no blind sleeping.
func (s *Server) Wait(ctx context.Context, cond func(calls []Call) bool) error {
	for {
		s.mu.Lock()
		ok := cond(s.calls)
		ch := s.changed
		n := len(s.calls)
		s.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("slackfake: condition not met after %d calls: %w", n, ctx.Err())
		}
	}
}

// WaitFor waits until method was called at least n times and returns those calls.
func (s *Server) WaitFor(ctx context.Context, method string, n int) ([]Call, error) {
	err := s.Wait(ctx, func(calls []Call) bool { return len(filter(calls, method)) >= n })
	if err != nil {
		return s.CallsTo(method), fmt.Errorf("waiting for %d %s calls: %w", n, method, err)
	}
	return s.CallsTo(method), nil
}

// WaitNth waits until n calls (counted from 1) match match and returns the
// nth one.
func (s *Server) WaitNth(ctx context.Context, n int, match func(Call) bool) (Call, error) {
	var found Call
	err := s.Wait(ctx, func(calls []Call) bool {
		seen := 0
		for _, c := range calls {
			if match(c) {
				if seen++; seen == n {
					found = c
					return true
				}
			}
		}
		return false
	})
	return found, err
}

func filter(calls []Call, method string) []Call {
	var out []Call
	for _, c := range calls {
		if c.Method == method {
			out = append(out, c)
		}
	}
	return out
}

func (s *Server) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// record is recordLocked for callers that do not hold s.mu.
func (s *Server) record(c Call) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recordLocked(c)
}

// recordLocked appends c (setting Seq) and wakes waiters.
func (s *Server) recordLocked(c Call) {
	c.Seq = len(s.calls) + 1
	s.calls = append(s.calls, c)
	s.notifyLocked()
}

// nextTSLocked hands out unique, increasing Slack-style timestamps.
func (s *Server) nextTSLocked() string {
	now := time.Now().UnixMicro()
	if now <= s.clock {
		now = s.clock + 1
	}
	s.clock = now
	return fmt.Sprintf("%d.%06d", now/1_000_000, now%1_000_000)
}

// takeFaultLocked consumes one injected fault for method, if any.
func (s *Server) takeFaultLocked(method string) *fault {
	f, ok := s.faults[method]
	if !ok || f.remaining <= 0 {
		return nil
	}
	f.remaining--
	cp := *f
	return &cp
}

// begin reads the request, records it if a fault applies (and answers it),
// and returns the call to fill in with ok=false in that case.
func (s *Server) begin(w http.ResponseWriter, r *http.Request, method string) (Call, bool) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 4<<20))
	c := Call{Method: method, Body: body, Status: http.StatusOK}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		c.Form, _ = url.ParseQuery(string(body))
		// Never keep a token in recorded calls.
		c.Form.Del("token")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.takeFaultLocked(method)
	if f == nil {
		return c, true
	}
	fillFromForm(&c)
	if f.retryAfter > 0 {
		c.Status = http.StatusTooManyRequests
		c.Error = "ratelimited"
		s.recordLocked(c)
		w.Header().Set("Retry-After", strconv.Itoa(int(f.retryAfter.Round(time.Second)/time.Second)))
		writeJSON(w, http.StatusTooManyRequests, map[string]any{"ok": false, "error": "ratelimited"})
		return c, false
	}
	c.Error = f.slackErr
	s.recordLocked(c)
	writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": f.slackErr})
	return c, false
}

func fillFromForm(c *Call) {
	if c.Form == nil {
		return
	}
	c.Channel = c.Form.Get("channel")
	c.ThreadTS = c.Form.Get("thread_ts")
	c.Text = c.Form.Get("text")
	c.User = c.Form.Get("user")
	c.Usergroup = c.Form.Get("usergroup")
	if b := c.Form.Get("blocks"); b != "" {
		c.Blocks = json.RawMessage(b)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) fail(w http.ResponseWriter, c Call, slackErr string) {
	c.Error = slackErr
	s.record(c)
	writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": slackErr})
}

// refuseBlocks answers invalid_blocks, as Slack does, when the message's
// blocks break a Block Kit limit.
func (s *Server) refuseBlocks(w http.ResponseWriter, c Call) bool {
	errs := limitErrors(c.Blocks, MaxMessageBlocks, "/blocks")
	if len(errs) == 0 {
		return false
	}
	c.Error, c.Problems = "invalid_blocks", errs
	s.record(c)
	writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": "invalid_blocks", "errors": errs,
		"response_metadata": map[string]any{"messages": prefixed(errs)}})
	return true
}

// refuseView answers invalid_arguments, as Slack's views.* methods do, when
// the view breaks a Block Kit limit.
func (s *Server) refuseView(w http.ResponseWriter, c Call, view json.RawMessage) bool {
	errs := viewLimitErrors(view)
	if len(errs) == 0 {
		return false
	}
	c.Error, c.Problems = "invalid_arguments", errs
	s.record(c)
	writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": "invalid_arguments",
		"response_metadata": map[string]any{"messages": prefixed(errs)}})
	return true
}

func prefixed(errs []string) []string {
	out := make([]string, len(errs))
	for i, e := range errs {
		out[i] = "[ERROR] " + e
	}
	return out
}

func (s *Server) handlePostMessage(w http.ResponseWriter, r *http.Request) {
	c, ok := s.begin(w, r, MethodPostMessage)
	if !ok {
		return
	}
	fillFromForm(&c)
	if s.refuseBlocks(w, c) {
		return
	}
	if c.Channel == "" {
		s.fail(w, c, "channel_not_found")
		return
	}
	s.mu.Lock()
	c.TS = s.nextTSLocked()
	s.messages[c.Channel+"|"+c.TS] = &Message{Channel: c.Channel, TS: c.TS, ThreadTS: c.ThreadTS, Text: c.Text, Blocks: c.Blocks}
	s.recordLocked(c)
	held := s.heldLocked(c)
	s.mu.Unlock()
	for _, ch := range held {
		select {
		case <-ch:
		case <-r.Context().Done():
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "channel": c.Channel, "ts": c.TS,
		"message": map[string]any{"type": "message", "text": c.Text, "ts": c.TS}})
}

func (s *Server) handleUpdate(w http.ResponseWriter, r *http.Request) {
	c, ok := s.begin(w, r, MethodUpdate)
	if !ok {
		return
	}
	fillFromForm(&c)
	c.TS = c.Form.Get("ts")
	if s.refuseBlocks(w, c) {
		return
	}
	s.mu.Lock()
	m, found := s.messages[c.Channel+"|"+c.TS]
	if !found {
		s.mu.Unlock()
		s.fail(w, c, "message_not_found")
		return
	}
	m.Text, m.Blocks = c.Text, c.Blocks
	m.Updates++
	s.recordLocked(c)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "channel": c.Channel, "ts": c.TS, "text": c.Text})
}

func (s *Server) handlePostEphemeral(w http.ResponseWriter, r *http.Request) {
	c, ok := s.begin(w, r, MethodPostEphemeral)
	if !ok {
		return
	}
	fillFromForm(&c)
	if s.refuseBlocks(w, c) {
		return
	}
	if c.Channel == "" || c.User == "" {
		s.fail(w, c, "channel_not_found")
		return
	}
	s.mu.Lock()
	c.TS = s.nextTSLocked()
	s.recordLocked(c)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "message_ts": c.TS})
}

func (s *Server) handleViewsOpen(w http.ResponseWriter, r *http.Request) {
	c, ok := s.begin(w, r, MethodViewsOpen)
	if !ok {
		return
	}
	var req struct {
		TriggerID string          `json:"trigger_id"`
		View      json.RawMessage `json:"view"`
	}
	if err := json.Unmarshal(c.Body, &req); err != nil || req.TriggerID == "" {
		s.fail(w, c, "invalid_arguments")
		return
	}
	c.TriggerID, c.View = req.TriggerID, req.View
	if s.refuseView(w, c, req.View) {
		return
	}
	var view map[string]any
	_ = json.Unmarshal(req.View, &view)
	s.mu.Lock()
	id := fmt.Sprintf("V%06d", len(s.calls)+1)
	s.recordLocked(c)
	s.mu.Unlock()
	view["id"] = id
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "view": view})
}

func (s *Server) handleGroupMembers(w http.ResponseWriter, r *http.Request) {
	s.handleLookup(w, r, MethodGroupMembers, "users", "no_such_subteam", func(c Call) (any, bool) {
		members, found := s.usergroups[c.Usergroup]
		return members, found
	})
}

func (s *Server) handleUsersInfo(w http.ResponseWriter, r *http.Request) {
	s.handleLookup(w, r, MethodUsersInfo, "user", "user_not_found", func(c Call) (any, bool) {
		u, found := s.users[c.User]
		return u, found
	})
}

// handleLookup answers a form-encoded read method: lookup (run under s.mu)
// finds the value returned as field, or the method fails with notFound.
func (s *Server) handleLookup(w http.ResponseWriter, r *http.Request, method, field, notFound string, lookup func(Call) (any, bool)) {
	c, ok := s.begin(w, r, method)
	if !ok {
		return
	}
	fillFromForm(&c)
	s.mu.Lock()
	v, found := lookup(c)
	s.mu.Unlock()
	if !found {
		s.fail(w, c, notFound)
		return
	}
	s.record(c)
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, field: v})
}

func (s *Server) handleAuthTest(w http.ResponseWriter, r *http.Request) {
	c, ok := s.begin(w, r, MethodAuthTest)
	if !ok {
		return
	}
	s.record(c)
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "url": "https://slackfake.example/",
		"team": "slackfake", "user": "defenderbot", "team_id": "T0FAKE", "user_id": "U0BOT", "bot_id": "B0BOT"})
}

// handleResponseURL accepts what Slack accepts on a response_url: a JSON
// message with response_type / replace_original / delete_original.
func (s *Server) handleResponseURL(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	c, ok := s.begin(w, r, MethodResponseURL)
	if !ok {
		return
	}
	c.ResponseURL, _ = url.PathUnescape(strings.TrimPrefix(r.URL.Path, "/response/"))
	var msg struct {
		Text            string          `json:"text"`
		Blocks          json.RawMessage `json:"blocks"`
		ResponseType    string          `json:"response_type"`
		ReplaceOriginal bool            `json:"replace_original"`
		DeleteOriginal  bool            `json:"delete_original"`
		ThreadTS        string          `json:"thread_ts"`
	}
	if err := json.Unmarshal(c.Body, &msg); err != nil {
		c.Status = http.StatusBadRequest
		c.Error = "invalid_payload"
		s.record(c)
		http.Error(w, "invalid_payload", http.StatusBadRequest)
		return
	}
	c.Text, c.ResponseType, c.ReplaceOriginal, c.DeleteOriginal, c.ThreadTS = msg.Text, msg.ResponseType, msg.ReplaceOriginal, msg.DeleteOriginal, msg.ThreadTS
	if len(msg.Blocks) > 0 && string(msg.Blocks) != "null" {
		c.Blocks = msg.Blocks
	}
	if errs := limitErrors(c.Blocks, MaxMessageBlocks, "/blocks"); len(errs) > 0 {
		// A response_url answers a refused message with 400 and the code.
		c.Status, c.Error, c.Problems = http.StatusBadRequest, "invalid_blocks", errs
		s.record(c)
		http.Error(w, "invalid_blocks", http.StatusBadRequest)
		return
	}
	s.record(c)
	// Slack answers a response_url with a plain "ok".
	w.Header().Set("Content-Type", "text/plain")
	_, _ = io.WriteString(w, "ok")
}

// HomeView returns the Home tab last published for user (nil if none).
func (s *Server) HomeView(user string) json.RawMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.homes[user]
}

// handleViewsPublish accepts a Home tab view for a user (views.publish):
// type home, within the view limits, and a hash that matches when given.
func (s *Server) handleViewsPublish(w http.ResponseWriter, r *http.Request) {
	c, ok := s.begin(w, r, MethodViewsPublish)
	if !ok {
		return
	}
	var req struct {
		UserID string          `json:"user_id"`
		View   json.RawMessage `json:"view"`
		Hash   string          `json:"hash"`
	}
	var view struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(c.Body, &req); err != nil || req.UserID == "" ||
		json.Unmarshal(req.View, &view) != nil || view.Type != "home" {
		s.fail(w, c, "invalid_arguments")
		return
	}
	c.User, c.View = req.UserID, req.View
	if s.refuseView(w, c, req.View) {
		return
	}
	s.mu.Lock()
	s.homes[req.UserID] = req.View
	id := fmt.Sprintf("VHOME%s", req.UserID)
	s.recordLocked(c)
	s.mu.Unlock()
	var out map[string]any
	_ = json.Unmarshal(req.View, &out)
	out["id"] = id
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "view": out})
}
