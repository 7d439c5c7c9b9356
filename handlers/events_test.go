package handlers_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"
	"github.com/slack-go/slack/socketmode"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/defenderbot/defenderbot/handlers"
	"github.com/defenderbot/defenderbot/internal/slackfake"
)

// fakeEvents records the events that reach it.
type fakeEvents struct {
	mu     sync.Mutex
	events []slackevents.EventsAPIEvent
}

func (f *fakeEvents) HandleEvent(_ context.Context, ev slackevents.EventsAPIEvent) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, ev)
}

func (f *fakeEvents) homeOpenedBy() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var users []string
	for _, ev := range f.events {
		if h, ok := ev.InnerEvent.Data.(*slackevents.AppHomeOpenedEvent); ok {
			users = append(users, h.User)
		}
	}
	return users
}

func signedJSON(t *testing.T, at time.Time, body []byte) *http.Request {
	t.Helper()
	req, err := slackfake.SignedJSONRequest(context.Background(), "http://bot/slack/events", secret, at, body)
	require.NoError(t, err)
	return req
}

func withEvents(ev handlers.Events) func(*handlers.Config, *handlers.Deps) {
	return func(_ *handlers.Config, d *handlers.Deps) { d.Events = ev }
}

func TestURLVerificationIsAnswered(t *testing.T) {
	ev := &fakeEvents{}
	e := newEnv(t, withEvents(ev))
	rec := e.do(signedJSON(t, time.Now(), slackfake.URLVerification("3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P")))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	var got struct{ Challenge string }
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &got))
	assert.Equal(t, "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P", got.Challenge)
	assert.Empty(t, ev.homeOpenedBy())

	// Slack signs the check too: a forged one is refused.
	req := signedJSON(t, time.Now(), slackfake.URLVerification("x"))
	req.Header.Set("X-Slack-Signature", "v0="+strings.Repeat("0", 64))
	assert.Equal(t, http.StatusUnauthorized, e.do(req).Code)
}

func TestAppHomeOpenedReachesTheBotOnce(t *testing.T) {
	ev := &fakeEvents{}
	e := newEnv(t, withEvents(ev))
	body := slackfake.AppHomeOpened("Ev0001", "U0ALICE")
	at := time.Now()

	rec := e.do(signedJSON(t, at, body))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.Equal(t, []string{"U0ALICE"}, ev.homeOpenedBy())

	// A replay (same signature) and Slack's retry (new signature, same
	// event_id) are acknowledged and do nothing.
	assert.Equal(t, http.StatusOK, e.do(signedJSON(t, at, body)).Code)
	retry := signedJSON(t, at.Add(2*time.Second), body)
	retry.Header.Set("X-Slack-Retry-Num", "1")
	retry.Header.Set("X-Slack-Retry-Reason", "http_timeout")
	assert.Equal(t, http.StatusOK, e.do(retry).Code)
	assert.Equal(t, []string{"U0ALICE"}, ev.homeOpenedBy())
	assert.Equal(t, []string{"ok", "replay", "replay"}, e.metrics.outcomes("/slack/events"))

	// Another event is another event.
	require.Equal(t, http.StatusOK, e.do(signedJSON(t, at, slackfake.AppHomeOpened("Ev0002", "U0BOB"))).Code)
	assert.Equal(t, []string{"U0ALICE", "U0BOB"}, ev.homeOpenedBy())
}

func TestBadEventRequestsAreRefused(t *testing.T) {
	ev := &fakeEvents{}
	e := newEnv(t, withEvents(ev))
	body := slackfake.AppHomeOpened("Ev0001", "U0ALICE")
	now := time.Now()

	stale := signedJSON(t, now.Add(-6*time.Minute), body)
	assert.Equal(t, http.StatusUnauthorized, e.do(stale).Code)

	wrongSecret, err := slackfake.SignedJSONRequest(context.Background(), "http://bot/slack/events", "not-the-secret", now, body)
	require.NoError(t, err)
	assert.Equal(t, http.StatusUnauthorized, e.do(wrongSecret).Code)

	unsigned, err := http.NewRequest(http.MethodPost, "http://bot/slack/events", strings.NewReader(string(body)))
	require.NoError(t, err)
	unsigned.Header.Set("Content-Type", "application/json")
	assert.Equal(t, http.StatusUnauthorized, e.do(unsigned).Code)

	form := signedJSON(t, now, body)
	form.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	assert.Equal(t, http.StatusBadRequest, e.do(form).Code)

	assert.Equal(t, http.StatusBadRequest, e.do(signedJSON(t, now, []byte(`{"type":`))).Code)
	noID := []byte(`{"type":"event_callback","event":{"type":"app_home_opened","user":"U1"}}`)
	assert.Equal(t, http.StatusBadRequest, e.do(signedJSON(t, now, noID)).Code)

	huge := signedJSON(t, now, []byte(`{"type":"event_callback","pad":"`+strings.Repeat("x", int(testConfig().MaxEventBodyBytes))+`"}`))
	assert.Equal(t, http.StatusRequestEntityTooLarge, e.do(huge).Code)

	assert.Empty(t, ev.homeOpenedBy(), "nothing refused reaches the bot")
}

func TestEventsWithoutAHandlerAreAcknowledged(t *testing.T) {
	e := newEnv(t)
	rec := e.do(signedJSON(t, time.Now(), slackfake.AppHomeOpened("Ev0001", "U0ALICE")))
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, []string{"ignored"}, e.metrics.outcomes("/slack/events"))
}

// TestSocketModeDeliversTheSameEvents: over Socket Mode an event arrives in
// an events_api envelope; a retry comes in a new envelope with the same
// event_id and is acknowledged without acting.
func TestSocketModeDeliversTheSameEvents(t *testing.T) {
	fake := slackfake.NewT(t)
	api := slack.New("xoxb-test", slack.OptionAppLevelToken("xapp-test"), slack.OptionAPIURL(fake.APIURL()))
	ev := &fakeEvents{}
	metrics := &recMetrics{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- handlers.RunSocketMode(ctx, socketmode.New(api), testConfig(), handlers.Deps{Bot: &fakeBot{}, Events: ev, Seen: newMemSeen(),
			Metrics: metrics, Logger: slog.New(slog.DiscardHandler)})
	}()
	t.Cleanup(func() { cancel(); <-done })
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	require.NoError(t, fake.WaitSocket(wctx))

	payload := json.RawMessage(slackfake.AppHomeOpened("Ev0001", "U0ALICE"))
	_, err := fake.SendEnvelope(wctx, slackfake.EnvelopeEventsAPI, "", payload)
	require.NoError(t, err)
	_, err = fake.SendEnvelope(wctx, slackfake.EnvelopeEventsAPI, "", payload) // Slack's retry
	require.NoError(t, err)
	assert.Equal(t, []string{"U0ALICE"}, ev.homeOpenedBy())
	// Each outcome is counted once its envelope is handled, which may be
	// after Slack got the acknowledgement.
	require.Eventually(t, func() bool { return len(metrics.outcomes("socket:events_api")) == 2 }, 5*time.Second, time.Millisecond)
	assert.ElementsMatch(t, []string{"ok", "replay"}, metrics.outcomes("socket:events_api"))
}
