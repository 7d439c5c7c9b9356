package defender

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/defenderbot/defenderbot/internal/msrest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// New has no defaults of its own (package config owns them): a missing
// value is an error naming it.
func TestNew_requiresEveryValue(t *testing.T) {
	creds := Config{TenantID: "contoso.onmicrosoft.com", ClientID: "app", ClientSecret: "s3cret"}
	for field, unset := range map[string]func(*Config){
		"BaseURL: is required":          func(c *Config) { c.BaseURL = "" },
		"AuthorityHost: is required":    func(c *Config) { c.AuthorityHost = "" },
		"Scope: must be one scope":      func(c *Config) { c.Scope = "" },
		"Timeout: must be positive":     func(c *Config) { c.Timeout = 0 },
		"MaxBackoff: must be positive":  func(c *Config) { c.MaxBackoff = 0 },
		"MaxRetries: must not be negat": func(c *Config) { c.MaxRetries = -1 },
	} {
		cfg := complete(creds)
		unset(&cfg)
		_, err := New(cfg)
		assert.ErrorIs(t, err, ErrInvalidArgument, field)
		assert.ErrorContains(t, err, field)
	}

	c, err := New(complete(creds))
	require.NoError(t, err)
	assert.Equal(t, "https://api.securitycenter.microsoft.com", c.base.String())
	assert.Len(t, c.limiters[APIMachineActions], 2, "per-minute and per-hour")
	assert.Len(t, c.limiters[APIIndicatorImport], 1, "import has no documented hourly limit")
	assert.IsType(t, &msalProvider{}, c.tokens)
}

func TestNew_validation(t *testing.T) {
	const secret = "SuperSecretValue~123"
	valid := complete(Config{TenantID: "11111111-2222-3333-4444-555555555555", ClientID: "app", ClientSecret: secret})
	tests := []struct {
		name   string
		mod    func(*Config)
		opts   []Option
		substr string
	}{
		{"http base url", func(c *Config) { c.BaseURL = "http://api.securitycenter.microsoft.com" }, nil, "BaseURL: must be an https:// URL"},
		{"base url without host", func(c *Config) { c.BaseURL = "https://" }, nil, "BaseURL: has no host"},
		{"base url with query", func(c *Config) { c.BaseURL = "https://h/?a=b" }, nil, "BaseURL: must not have a query"},
		{"base url with user", func(c *Config) { c.BaseURL = "https://u:" + secret + "@h" }, nil, "BaseURL: must not contain credentials"},
		{"bad base url", func(c *Config) { c.BaseURL = "https://h\x7f" }, nil, "BaseURL: is not a valid URL"},
		{"http authority", func(c *Config) { c.AuthorityHost = "http://login.microsoftonline.com" }, nil, "AuthorityHost: must be an https:// URL"},
		{"authority with tenant path", func(c *Config) { c.AuthorityHost = "https://login.microsoftonline.com/tenant" }, nil, "AuthorityHost: must be a host only"},
		{"missing tenant", func(c *Config) { c.TenantID = "" }, nil, "TenantID: is required"},
		{"tenant with slash", func(c *Config) { c.TenantID = "a/b" }, nil, "TenantID: must be a tenant GUID or domain name"},
		{"common tenant", func(c *Config) { c.TenantID = "common" }, nil, "cannot be used with client credentials"},
		{"missing client id", func(c *Config) { c.ClientID = "" }, nil, "ClientID: is required"},
		{"missing secret", func(c *Config) { c.ClientSecret = "" }, nil, "ClientSecret: is required"},
		{"scope with space", func(c *Config) { c.Scope = "a b" }, nil, "Scope: must be one scope"},
		{"negative timeout", func(c *Config) { c.Timeout = -1 }, nil, "Timeout: must be positive"},
		{"negative retries", func(c *Config) { c.MaxRetries = -1 }, nil, "MaxRetries: must not be negative"},
		{"negative backoff", func(c *Config) { c.MaxBackoff = -1 }, nil, "MaxBackoff: must be positive"},
		{"unknown limit", func(c *Config) { c.Limits.PerMinute = map[string]int{"bogus": 1} }, nil, `unknown API "bogus"`},
		{"nil http client", func(*Config) {}, []Option{WithHTTPClient(nil)}, "WithHTTPClient: client is nil"},
		{"nil logger", func(*Config) {}, []Option{WithLogger(nil)}, "WithLogger: logger is nil"},
		{"nil observer", func(*Config) {}, []Option{WithObserver(nil)}, "WithObserver: observer is nil"},
		{"nil sleeper", func(*Config) {}, []Option{WithSleeper(nil)}, "WithSleeper: function is nil"},
		{"nil token provider", func(*Config) {}, []Option{WithTokenProvider(nil)}, "WithTokenProvider: provider is nil"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid
			tt.mod(&cfg)
			_, err := New(cfg, tt.opts...)
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrInvalidArgument)
			assert.Contains(t, err.Error(), tt.substr)
			assert.NotContains(t, err.Error(), secret)
		})
	}
}

func TestNew_tokenProviderMakesCredentialsOptional(t *testing.T) {
	_, err := New(complete(Config{}), WithTokenProvider(staticTokens("t")))
	require.NoError(t, err)
	_, err = New(Config{BaseURL: "https://api.securitycenter.microsoft.com", Timeout: time.Second, MaxBackoff: time.Second},
		WithTokenProvider(staticTokens("t")))
	require.NoError(t, err)
}

func TestAPIErrors(t *testing.T) {
	tests := []struct {
		name      string
		status    int
		body      string
		check     func(error) bool
		wantCode  string
		wantMsg   string
		wantInErr string
	}{
		{"not found", 404, `{"error":{"code":"ResourceNotFound","message":"Machine 123 was not found","target":"43f4cb08"}}`,
			IsNotFound, "ResourceNotFound", "Machine 123 was not found",
			"defender: GET /api/machines/123: 404 ResourceNotFound: Machine 123 was not found (target 43f4cb08)"},
		{"already in progress", 400, `{"error":{"code":"ActiveRequestAlreadyExists","message":"Action is already in progress","target":"t"}}`,
			IsActiveRequestAlreadyExists, "ActiveRequestAlreadyExists", "Action is already in progress", "400 ActiveRequestAlreadyExists"},
		{"already in progress, message only", 400, `{"error":{"code":"BadRequest","message":"Action is already in progress"}}`,
			IsActiveRequestAlreadyExists, "BadRequest", "Action is already in progress", "400 BadRequest"},
		{"forbidden", 403, `{"error":{"code":"Forbidden","message":"Missing application roles. API required roles: Machine.Read.All"}}`,
			IsForbidden, "Forbidden", "Missing application roles. API required roles: Machine.Read.All", "403 Forbidden"},
		{"html body", 404, "<html><body>\n<h1>Not   Found</h1>\n</body></html>",
			IsNotFound, "", "<html><body> <h1>Not Found</h1> </body></html>", "404 Not Found: <html>"},
		{"empty body", 403, "", IsForbidden, "", "", "403 Forbidden"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := setup(t)
			h.mux.HandleFunc("GET /api/machines/123", reply(tt.status, tt.body))
			_, err := h.client.GetMachine(t.Context(), "123")
			require.Error(t, err)
			assert.True(t, tt.check(err))
			var ae *APIError
			require.ErrorAs(t, err, &ae)
			assert.Equal(t, tt.status, ae.StatusCode)
			assert.Equal(t, tt.wantCode, ae.Code)
			assert.Equal(t, tt.wantMsg, ae.Message)
			assert.Equal(t, "GET", ae.Method)
			assert.Equal(t, "/api/machines/123", ae.Path)
			assert.Contains(t, err.Error(), tt.wantInErr)
			assert.Len(t, h.Requests(), 1, "4xx is not retried")
		})
	}
}

func TestAPIError_helpersOnOtherErrors(t *testing.T) {
	err := errors.New("x")
	assert.False(t, IsNotFound(err))
	assert.False(t, IsForbidden(err))
	assert.False(t, IsActiveRequestAlreadyExists(err))
	assert.False(t, IsRateLimited(err))
	assert.False(t, IsUnauthorized(nil))
	assert.Zero(t, RetryAfterOf(err))
}

func TestAPIError_largeBodyIsCapped(t *testing.T) {
	h := setup(t)
	huge := strings.Repeat("x", 3<<20)
	h.mux.HandleFunc("GET /api/alerts/a1", reply(400, huge))
	_, err := h.client.GetAlert(t.Context(), "a1")
	var ae *APIError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, 400, ae.StatusCode)
	assert.LessOrEqual(t, len(ae.Message), 210, "only a short excerpt is kept")
}

func TestRetry_429HonoursRetryAfter(t *testing.T) {
	tests := []struct {
		name string
		call func(ctx context.Context, c *Client) error
		mp   string
	}{
		{"GET", func(ctx context.Context, c *Client) error { _, err := c.GetMachine(ctx, "m1"); return err }, "GET /api/machines/m1"},
		{"machine action POST", func(ctx context.Context, c *Client) error {
			_, err := c.IsolateMachine(ctx, "m1", "c", IsolationFull)
			return err
		}, "POST /api/machines/m1/isolate"},
		{"PATCH", func(ctx context.Context, c *Client) error { _, err := c.CommentAlert(ctx, "a1", "c"); return err }, "PATCH /api/alerts/a1"},
		{"import POST", func(ctx context.Context, c *Client) error {
			_, err := c.ImportIndicators(ctx, []Indicator{validIndicator()})
			return err
		}, "POST /api/indicators/import"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := setup(t)
			var n atomic.Int32
			h.mux.HandleFunc(tt.mp, func(w http.ResponseWriter, r *http.Request) {
				if n.Add(1) <= 2 {
					w.Header().Set("Retry-After", "7")
					reply(429, `{"error":{"code":"TooManyRequests","message":"slow down"}}`)(w, r)
					return
				}
				reply(200, `{"id":"x","value":[]}`)(w, r)
			})
			require.NoError(t, tt.call(t.Context(), h.client))
			assert.Equal(t, int32(3), n.Load())
			assert.Equal(t, []time.Duration{7 * time.Second, 7 * time.Second}, h.Sleeps())
			assert.Len(t, h.obs.Retries(), 2)
			assert.Contains(t, h.obs.Retries()[0], " 429")
		})
	}
}

func TestRetry_retryAfterHTTPDate(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	h := setup(t, WithClock(func() time.Time { return now }))
	var n atomic.Int32
	h.mux.HandleFunc("GET /api/machines/m1", func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			w.Header().Set("Retry-After", now.Add(12*time.Second).Format(http.TimeFormat))
			reply(503, `{"error":{"code":"ServiceUnavailable"}}`)(w, r)
			return
		}
		reply(200, `{"id":"m1"}`)(w, r)
	})
	m, err := h.client.GetMachine(t.Context(), "m1")
	require.NoError(t, err)
	assert.Equal(t, "m1", m.ID)
	assert.Equal(t, []time.Duration{12 * time.Second}, h.Sleeps())
	assert.Equal(t, []string{"machines 503"}, h.obs.Retries())
}

func TestRetry_429ExhaustedIsRateLimitError(t *testing.T) {
	h := setupConfig(t, func(c *Config) { c.MaxRetries = 3 })
	h.mux.HandleFunc("GET /api/machines/m1", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "2")
		reply(429, `{"error":{"code":"TooManyRequests","message":"quota"}}`)(w, r)
	})
	_, err := h.client.GetMachine(t.Context(), "m1")
	require.Error(t, err)
	var rl *RateLimitError
	require.ErrorAs(t, err, &rl)
	assert.True(t, IsRateLimited(err))
	assert.Equal(t, 2*time.Second, RetryAfterOf(err))
	var ae *APIError
	require.ErrorAs(t, err, &ae, "a RateLimitError is also an APIError")
	assert.Equal(t, 429, ae.StatusCode)
	assert.Equal(t, 4, h.countOf("GET", "/api/machines/m1"), "1 attempt + MaxRetries")
	assert.Len(t, h.Sleeps(), 3)
}

func TestRetry_retryAfterBeyondMaxBackoffReturnsAtOnce(t *testing.T) {
	h := setup(t)
	h.mux.HandleFunc("POST /api/indicators/BatchDelete", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "3600")
		reply(429, `{"error":{"code":"TooManyRequests"}}`)(w, r)
	})
	err := h.client.DeleteIndicators(t.Context(), []string{"1"})
	require.True(t, IsRateLimited(err))
	assert.Equal(t, time.Hour, RetryAfterOf(err))
	assert.Empty(t, h.Sleeps())
	assert.Equal(t, 1, h.countOf("POST", "/api/indicators/BatchDelete"))
}

func TestRetry_503Bounded(t *testing.T) {
	h := setupConfig(t, func(c *Config) { c.MaxRetries = 2 })
	h.mux.HandleFunc("POST /api/machines/m1/isolate", reply(503, `{"error":{"code":"ServiceUnavailable","message":"busy"}}`))
	_, err := h.client.IsolateMachine(t.Context(), "m1", "c", IsolationFull)
	var ae *APIError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, 503, ae.StatusCode)
	assert.NotErrorIs(t, err, ErrOutcomeUnknown, "503 is a definite not-done")
	assert.Equal(t, 3, h.countOf("POST", "/api/machines/m1/isolate"))
	sleeps := h.Sleeps()
	require.Len(t, sleeps, 2)
	// Exponential backoff with jitter: [d/2, d] for d = 1s, 2s.
	assert.GreaterOrEqual(t, sleeps[0], 500*time.Millisecond)
	assert.LessOrEqual(t, sleeps[0], time.Second)
	assert.GreaterOrEqual(t, sleeps[1], time.Second)
	assert.LessOrEqual(t, sleeps[1], 2*time.Second)
}

func TestRetry_5xxRetriedForIdempotent(t *testing.T) {
	h := setup(t)
	var n atomic.Int32
	h.mux.HandleFunc("GET /api/alerts/a1", func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			reply(500, `{"error":{"code":"InternalServerError"}}`)(w, r)
			return
		}
		reply(200, `{"id":"a1","title":"t"}`)(w, r)
	})
	a, err := h.client.GetAlert(t.Context(), "a1")
	require.NoError(t, err)
	assert.Equal(t, "t", a.Title)
	assert.Equal(t, []string{"alerts 5xx"}, h.obs.Retries())
}

func TestRetry_connectionFailureRetriedForIdempotent(t *testing.T) {
	h := setup(t)
	var n atomic.Int32
	h.mux.HandleFunc("POST /api/indicators/BatchDelete", func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			hangUp(t)(w, r)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	require.NoError(t, h.client.DeleteIndicators(t.Context(), []string{"1", "2"}))
	assert.Equal(t, int32(2), n.Load())
	assert.Equal(t, []string{"indicators_batchdelete conn"}, h.obs.Retries())
}

func TestRetry_contextCanceledWhileWaiting(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	h := setup(t, WithSleeper(func(ctx context.Context, _ time.Duration) error {
		cancel()
		return ctx.Err()
	}))
	h.mux.HandleFunc("GET /api/machines/m1", reply(503, ``))
	_, err := h.client.GetMachine(ctx, "m1")
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, 1, h.countOf("GET", "/api/machines/m1"))
}

// rotatingTokens hands out tok-1, tok-2, ... on refresh.
type rotatingTokens struct {
	n         atomic.Int32
	refreshes atomic.Int32
}

func (r *rotatingTokens) Token(context.Context) (string, error) {
	return "tok-" + string(rune('1'+r.n.Load())), nil
}

func (r *rotatingTokens) RefreshToken(context.Context, string) (string, error) {
	r.refreshes.Add(1)
	r.n.Add(1)
	return "tok-" + string(rune('1'+r.n.Load())), nil
}

func TestAuth_401RefreshesTokenOnce(t *testing.T) {
	tokens := &rotatingTokens{}
	h := setup(t, WithTokenProvider(tokens))
	h.mux.HandleFunc("POST /api/machines/m1/isolate", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok-2" {
			reply(401, `{"error":{"code":"Unauthorized","message":"Invalid Authorization payload."}}`)(w, r)
			return
		}
		reply(201, `{"id":"i1","type":"Isolate"}`)(w, r)
	})
	ma, err := h.client.IsolateMachine(t.Context(), "m1", "c", IsolationFull)
	require.NoError(t, err)
	assert.Equal(t, "i1", ma.ID)
	assert.Equal(t, int32(1), tokens.refreshes.Load())
	reqs := h.Requests()
	require.Len(t, reqs, 2)
	assert.Equal(t, "Bearer tok-1", reqs[0].Header.Get("Authorization"))
	assert.Equal(t, "Bearer tok-2", reqs[1].Header.Get("Authorization"))
	assert.Equal(t, []string{"machineactions 401"}, h.obs.Retries())
}

func TestAuth_401TwiceIsUnauthorized(t *testing.T) {
	tokens := &rotatingTokens{}
	h := setup(t, WithTokenProvider(tokens))
	h.mux.HandleFunc("GET /api/alerts/a1", reply(401, `{"error":{"code":"Unauthorized","message":"nope"}}`))
	_, err := h.client.GetAlert(t.Context(), "a1")
	require.True(t, IsUnauthorized(err))
	assert.Equal(t, 2, h.countOf("GET", "/api/alerts/a1"))
	assert.Equal(t, int32(1), tokens.refreshes.Load())
}

type failingTokens struct{}

func (failingTokens) Token(context.Context) (string, error) { return "", errors.New("vault sealed") }

func TestAuth_tokenFailureSendsNothing(t *testing.T) {
	h := setup(t, WithTokenProvider(failingTokens{}))
	_, err := h.client.GetAlert(t.Context(), "a1")
	require.ErrorIs(t, err, ErrAuthentication)
	assert.Contains(t, err.Error(), "vault sealed")
	assert.Empty(t, h.Requests())
	require.ErrorIs(t, h.client.CheckToken(t.Context()), ErrAuthentication)
}

func TestPacing_waitsWhenLimitReached(t *testing.T) {
	h := setup(t)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c, err := New(complete(Config{BaseURL: h.srv.URL, Limits: Limits{PerMinute: map[string]int{APIMachines: 2}}}),
		WithHTTPClient(h.srv.Client()), WithTokenProvider(staticTokens(testToken)),
		WithSleeper(func(ctx context.Context, d time.Duration) error {
			h.mu.Lock()
			h.sleeps = append(h.sleeps, d)
			h.mu.Unlock()
			return nil
		}), WithClock(func() time.Time { return now }))
	require.NoError(t, err)
	h.mux.HandleFunc("GET /api/machines/m1", reply(200, `{"id":"m1"}`))
	for range 3 {
		_, err := c.GetMachine(t.Context(), "m1")
		require.NoError(t, err)
	}
	// Limit 2/min: burst 1, refill 1 per minute, so calls 2 and 3 wait.
	assert.Equal(t, []time.Duration{time.Minute, 2 * time.Minute}, h.Sleeps())
	// Other APIs are paced separately.
	h.mux.HandleFunc("GET /api/alerts/a1", reply(200, `{"id":"a1"}`))
	_, err = c.GetAlert(t.Context(), "a1")
	require.NoError(t, err)
	assert.Len(t, h.Sleeps(), 2)
}

func TestPacing_neverExceedsLimitInAWindow(t *testing.T) {
	for _, n := range []int{1, 2, 30, 100, 1500} {
		l := msrest.NewLimiter(n, time.Minute)
		start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		allowed := 0
		for i := range 10 * n {
			at := start.Add(time.Duration(i) * time.Minute / time.Duration(10*n))
			if l.AllowN(at, 1) {
				allowed++
			}
		}
		assert.LessOrEqual(t, allowed, n, "limit %d", n)
		assert.Positive(t, allowed)
	}
}

func TestPacing_cancelledWaitReturnsError(t *testing.T) {
	h := setup(t)
	c, err := New(complete(Config{BaseURL: h.srv.URL, Limits: Limits{PerMinute: map[string]int{APIMachines: 1}}}),
		WithHTTPClient(h.srv.Client()), WithTokenProvider(staticTokens(testToken)),
		WithSleeper(func(context.Context, time.Duration) error { return context.Canceled }))
	require.NoError(t, err)
	h.mux.HandleFunc("GET /api/machines/m1", reply(200, `{"id":"m1"}`))
	_, err = c.GetMachine(t.Context(), "m1")
	require.NoError(t, err)
	_, err = c.GetMachine(t.Context(), "m1")
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, 1, h.countOf("GET", "/api/machines/m1"))
}

func TestLogging_debugWithoutSecrets(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h := setup(t, WithLogger(log))
	h.mux.HandleFunc("GET /api/machines/m1", reply(200, `{"id":"m1"}`))
	_, err := h.client.GetMachine(t.Context(), "m1")
	require.NoError(t, err)
	out := buf.String()
	assert.Contains(t, out, "method=GET")
	assert.Contains(t, out, "path=/api/machines/m1")
	assert.Contains(t, out, "status=200")
	assert.Contains(t, out, "attempt=1")
	assert.NotContains(t, out, testToken)
	assert.NotContains(t, out, "Bearer")
}

func TestObserver_callsAndTransportErrors(t *testing.T) {
	h := setup(t)
	h.mux.HandleFunc("GET /api/machines/m1", reply(200, `{"id":"m1"}`))
	_, err := h.client.GetMachine(t.Context(), "m1")
	require.NoError(t, err)
	h.obs.mu.Lock()
	defer h.obs.mu.Unlock()
	assert.Equal(t, []string{"machines GET OK"}, h.obs.calls)
}

func TestNoRedirects(t *testing.T) {
	h := setup(t)
	h.mux.HandleFunc("GET /api/machines/m1", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "https://evil.example/steal", http.StatusFound)
	})
	_, err := h.client.GetMachine(t.Context(), "m1")
	var ae *APIError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, http.StatusFound, ae.StatusCode)
}

func TestNextLinkToOtherHostRefused(t *testing.T) {
	h := setup(t)
	h.mux.HandleFunc("GET /api/indicators", reply(200, `{"value":[{"id":"1"}],"@odata.nextLink":"https://evil.example/api/indicators?$skip=1"}`))
	_, err := h.client.ListIndicators(t.Context(), IndicatorListOptions{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "refusing @odata.nextLink to another host")
	assert.Len(t, h.Requests(), 1)
}

func BenchmarkGetMachine(b *testing.B) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/machines/m1", reply(200, machineJSON))
	srv := httptest.NewTLSServer(mux)
	b.Cleanup(srv.Close)
	c, err := New(complete(Config{BaseURL: srv.URL, Limits: noLimits()}), WithHTTPClient(srv.Client()), WithTokenProvider(staticTokens("t")))
	require.NoError(b, err)
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.GetMachine(b.Context(), "m1"); err != nil {
			b.Fatal(err)
		}
	}
}
