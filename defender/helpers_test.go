package defender

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/defenderbot/defenderbot/internal/testutil"
	"github.com/stretchr/testify/require"
)

const testToken = "test-token-XYZ"

// recorded is one request seen by the test server.
type recorded struct {
	Method string
	Path   string // escaped path
	Query  url.Values
	Header http.Header
	Body   []byte
}

// recObserver records Observer events.
type recObserver struct {
	mu      sync.Mutex
	calls   []string // "api method status"
	retries []string // "api reason"
}

func (o *recObserver) ObserveCall(api, method string, status int, _ time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.calls = append(o.calls, api+" "+method+" "+http.StatusText(status))
}

func (o *recObserver) ObserveRetry(api, reason string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.retries = append(o.retries, api+" "+reason)
}

func (o *recObserver) Retries() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.retries...)
}

// staticTokens is a TokenProvider returning a fixed token.
type staticTokens string

func (s staticTokens) Token(context.Context) (string, error) { return string(s), nil }

// harness is an in-package test server plus a client pointed at it.
type harness struct {
	t      *testing.T
	srv    *httptest.Server
	mux    *http.ServeMux
	client *Client
	obs    *recObserver

	mu     sync.Mutex
	reqs   []recorded
	sleeps []time.Duration
}

// setup starts a TLS server whose unknown routes fail the test, and a client
// with instant, recorded sleeps and pacing disabled.
func setup(t *testing.T, opts ...Option) *harness {
	t.Helper()
	return setupConfig(t, nil, opts...)
}

// setupConfig is setup with cfg changed by mod.
func setupConfig(t *testing.T, mod func(*Config), opts ...Option) *harness {
	t.Helper()
	h := &harness{t: t, mux: http.NewServeMux(), obs: &recObserver{}}
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("unexpected request %s %s", r.Method, r.URL)
		http.Error(w, "unexpected", http.StatusTeapot)
	})
	h.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		h.mu.Lock()
		h.reqs = append(h.reqs, recorded{Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.Query(), Header: r.Header.Clone(), Body: body})
		h.mu.Unlock()
		h.mux.ServeHTTP(w, r)
	}))
	t.Cleanup(h.srv.Close)
	all := append([]Option{
		WithHTTPClient(h.srv.Client()),
		WithTokenProvider(staticTokens(testToken)),
		WithObserver(h.obs),
		WithSleeper(func(ctx context.Context, d time.Duration) error {
			h.mu.Lock()
			h.sleeps = append(h.sleeps, d)
			h.mu.Unlock()
			return ctx.Err()
		}),
	}, opts...)
	cfg := complete(Config{BaseURL: h.srv.URL, Limits: noLimits()})
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(cfg, all...)
	require.NoError(t, err)
	h.client = c
	return h
}

func noLimits() Limits {
	pm, ph := defaultLimits()
	l := Limits{PerMinute: map[string]int{}, PerHour: map[string]int{}}
	for k := range pm {
		l.PerMinute[k] = -1
	}
	for k := range ph {
		l.PerHour[k] = -1
	}
	return l
}

func (h *harness) Requests() []recorded {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]recorded(nil), h.reqs...)
}

func (h *harness) Sleeps() []time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]time.Duration(nil), h.sleeps...)
}

// countOf counts recorded requests with that method and path.
func (h *harness) countOf(method, path string) int {
	n := 0
	for _, r := range h.Requests() {
		if r.Method == method && r.Path == path {
			n++
		}
	}
	return n
}

// reply returns a handler writing status and body as JSON.
func reply(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

// fixture reads a shared fixture file.
func fixture(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(testutil.Fixture(t, rel))
	require.NoError(t, err)
	return string(b)
}

// requireJSONBody asserts the request body equals want as JSON (key order
// and whitespace aside, key casing included).
func requireJSONBody(t *testing.T, want string, got []byte) {
	t.Helper()
	require.JSONEq(t, want, string(got))
}

// complete fills what New requires and cfg leaves unset with the values
// config.Default gives (package config imports this one, so its tests
// cannot ask it).
func complete(cfg Config) Config {
	if cfg.BaseURL == "" {
		cfg.BaseURL = "https://api.securitycenter.microsoft.com"
	}
	if cfg.AuthorityHost == "" {
		cfg.AuthorityHost = "https://login.microsoftonline.com"
	}
	if cfg.Scope == "" {
		cfg.Scope = Scope
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.MaxRetries == 0 {
		cfg.MaxRetries = 5
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = time.Minute
	}
	return cfg
}
