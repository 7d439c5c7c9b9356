package graph_test

import (
	"cmp"
	"context"
	"errors"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/defenderbot/defenderbot/config"
	"github.com/defenderbot/defenderbot/defender"
	"github.com/defenderbot/defenderbot/defender/defendertest"
	"github.com/defenderbot/defenderbot/graph"
)

const machineID = "1e5bc9d7e413ddd7902c2932e418702b84d0cc07"

type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.d = append(s.d, d)
	return ctx.Err()
}

func (s *sleeps) all() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.d...)
}

// setup starts the emulator (rate limits off) with one machine and returns a
// client that gets real MSAL tokens for Graph from it and never really sleeps.
func setup(t *testing.T, cfg graph.Config, opts ...defendertest.Option) (*defendertest.Server, *graph.Client, *sleeps) {
	t.Helper()
	s := defendertest.NewServer(t, append([]defendertest.Option{defendertest.WithRateLimits(false)}, opts...)...)
	s.AddMachine(defendertest.Machine{ID: machineID, ComputerDNSName: "host1.contoso.com", RiskScore: "High"})
	tokens, err := defender.NewTokenProvider(defender.Config{AuthorityHost: s.URL, TenantID: defendertest.TenantID,
		ClientID: defendertest.ClientID, ClientSecret: defendertest.ClientSecret, Scope: graph.Scope(s.URL)},
		defender.WithHTTPClient(s.HTTPClient()))
	require.NoError(t, err)
	sl := &sleeps{}
	if cfg.BaseURL == "" {
		cfg.BaseURL = s.URL
	}
	if cfg.PerMinute == 0 {
		cfg.PerMinute = -1
	}
	def := config.Default().Defender.GraphClient()
	cfg.Timeout = cmp.Or(cfg.Timeout, def.Timeout)
	cfg.MaxRetries = cmp.Or(cfg.MaxRetries, def.MaxRetries)
	cfg.MaxBackoff = cmp.Or(cfg.MaxBackoff, def.MaxBackoff)
	c, err := graph.New(cfg, tokens, graph.WithHTTPClient(s.HTTPClient()), graph.WithSleeper(sl.sleep))
	require.NoError(t, err)
	return s, c, sl
}

func TestScope(t *testing.T) {
	for in, want := range map[string]string{
		"https://graph.microsoft.com":     "https://graph.microsoft.com/.default",
		"https://graph.microsoft.us/":     "https://graph.microsoft.us/.default",
		"https://dod-graph.microsoft.us":  "https://dod-graph.microsoft.us/.default",
		"https://127.0.0.1:8443":          "https://graph.microsoft.com/.default",
		"https://graph-proxy.contoso.com": "https://graph.microsoft.com/.default",
	} {
		assert.Equal(t, want, graph.Scope(in), in)
	}
}

func TestNewValidates(t *testing.T) {
	tok := staticTokens("t")
	for _, cfg := range []graph.Config{{BaseURL: "http://graph.microsoft.com"}, {BaseURL: "https://u:p@graph.microsoft.com"},
		{BaseURL: "https://graph.microsoft.com?x=1"}, {Timeout: -1}} {
		_, err := graph.New(cfg, tok)
		assert.ErrorIs(t, err, graph.ErrInvalidArgument, "%+v", cfg)
	}
	// No defaults of its own: config's values pass, a missing one is named.
	_, err := graph.New(config.Default().Defender.GraphClient(), tok)
	require.NoError(t, err)
	for field, unset := range map[string]func(*graph.Config){
		"BaseURL: is required":         func(c *graph.Config) { c.BaseURL = "" },
		"Timeout: must be positive":    func(c *graph.Config) { c.Timeout = 0 },
		"MaxBackoff: must be positive": func(c *graph.Config) { c.MaxBackoff = 0 },
		"PerMinute: must be set":       func(c *graph.Config) { c.PerMinute = 0 },
	} {
		cfg := config.Default().Defender.GraphClient()
		unset(&cfg)
		_, err := graph.New(cfg, tok)
		assert.ErrorIs(t, err, graph.ErrInvalidArgument, field)
		assert.ErrorContains(t, err, field)
	}
	_, err = graph.New(graph.Config{}, nil)
	assert.ErrorIs(t, err, graph.ErrInvalidArgument)
}

type staticTokens string

func (s staticTokens) Token(context.Context) (string, error) { return string(s), nil }

func TestListAlertsFiltersAndFollowsNextLink(t *testing.T) {
	s, c, _ := setup(t, graph.Config{}, defendertest.WithPageSize(2))
	t0 := s.Now()
	s.AddGraphAlert(defendertest.GraphAlert{Title: "before", Severity: "high", CreatedDateTime: t0.Add(-time.Hour)})
	for _, sev := range []string{"high", "low", "high", "high", "medium"} {
		s.NewDeviceAlert(machineID, sev+" one", sev)
	}
	ctx := t.Context()

	all, err := c.ListAlerts(ctx, graph.ListAlertsOptions{CreatedSince: t0.Add(-time.Minute)})
	require.NoError(t, err)
	assert.Len(t, all, 5, "three pages followed")
	high, err := c.ListAlerts(ctx, graph.ListAlertsOptions{CreatedSince: t0.Add(-time.Minute), Severity: "High", Top: 2})
	require.NoError(t, err)
	assert.Len(t, high, 3)

	a := high[0]
	assert.Equal(t, "high", a.Severity)
	require.Len(t, a.Devices(), 1)
	assert.Equal(t, machineID, a.Devices()[0].MdeDeviceID)
	assert.Equal(t, "high", a.Devices()[0].RiskScore)
	assert.NotEmpty(t, a.Raw)

	var filters []string
	for _, r := range s.Requests() {
		if r.API == defendertest.APIGraphAlerts {
			q, err := url.ParseQuery(r.RawQuery)
			require.NoError(t, err)
			filters = append(filters, q.Get("$filter"))
		}
	}
	assert.Contains(t, filters, "createdDateTime ge "+t0.Add(-time.Minute).UTC().Format("2006-01-02T15:04:05.0000000Z")+" and severity eq 'high'")

	s.Advance(time.Hour)
	mark := s.Now()
	_, err = c.UpdateAlert(ctx, a.ID, graph.AlertUpdate{AssignedTo: ptr("ana@contoso.com")})
	require.NoError(t, err)
	changed, err := c.ListAlerts(ctx, graph.ListAlertsOptions{UpdatedSince: mark})
	require.NoError(t, err)
	require.Len(t, changed, 1)
	assert.Equal(t, "ana@contoso.com", changed[0].AssignedTo)

	_, err = c.ListAlerts(ctx, graph.ListAlertsOptions{Severity: "urgent"})
	assert.ErrorIs(t, err, graph.ErrInvalidArgument)
}

func ptr(s string) *string { return &s }

func TestUpdateAcceptsBothSpellings(t *testing.T) {
	s, c, _ := setup(t, graph.Config{})
	a := s.NewDeviceAlert(machineID, "x", "high")
	got, err := c.UpdateAlert(t.Context(), a.ID, graph.AlertUpdate{Status: ptr("Resolved"),
		Classification: ptr("TruePositive"), Determination: ptr("Malware")})
	require.NoError(t, err)
	assert.Equal(t, "resolved", got.Status)
	assert.Equal(t, "truePositive", got.Classification)
	assert.Equal(t, "malware", got.Determination)
	require.NotNil(t, got.ResolvedDateTime)

	got, err = c.UpdateAlert(t.Context(), a.ID, graph.AlertUpdate{Status: ptr("in progress")})
	require.NoError(t, err)
	assert.Equal(t, "inProgress", got.Status)

	n := len(s.Requests())
	for _, u := range []graph.AlertUpdate{{}, {Status: ptr("closed")}, {Classification: ptr("maybe")}, {AssignedTo: ptr(" ")}} {
		_, err := c.UpdateAlert(t.Context(), a.ID, u)
		assert.ErrorIs(t, err, graph.ErrInvalidArgument, "%+v", u)
	}
	_, err = c.UpdateAlert(t.Context(), "a/b", graph.AlertUpdate{Status: ptr("new")})
	assert.ErrorIs(t, err, graph.ErrInvalidArgument)
	assert.Len(t, s.Requests(), n, "nothing sent for invalid input")
}

func TestGetAlertNotFound(t *testing.T) {
	_, c, _ := setup(t, graph.Config{})
	_, err := c.GetAlert(t.Context(), "da000_1")
	require.Error(t, err)
	assert.True(t, graph.IsNotFound(err))
	var ae *graph.APIError
	require.True(t, errors.As(err, &ae))
	assert.Equal(t, graph.CodeItemNotFound, ae.Code)
	assert.NotEmpty(t, ae.RequestID)
	assert.Contains(t, err.Error(), "GET /v1.0/security/alerts_v2/da000_1: 404 itemNotFound")
}

func TestCreateComment(t *testing.T) {
	s, c, _ := setup(t, graph.Config{})
	a := s.NewDeviceAlert(machineID, "x", "high")
	comments, err := c.CreateComment(t.Context(), a.ID, "isolated by defenderbot")
	require.NoError(t, err)
	require.Len(t, comments, 1)
	assert.Equal(t, "isolated by defenderbot", comments[0].Comment)
	_, err = c.CreateComment(t.Context(), a.ID, "  ")
	assert.ErrorIs(t, err, graph.ErrInvalidArgument)
	body := string(s.Requests()[len(s.Requests())-1].Body)
	assert.JSONEq(t, `{"@odata.type":"microsoft.graph.security.alertComment","comment":"isolated by defenderbot"}`, body)
}

func TestRetries(t *testing.T) {
	s, c, sl := setup(t, graph.Config{MaxBackoff: 10 * time.Second})
	a := s.NewDeviceAlert(machineID, "x", "high")
	ctx := t.Context()

	// 429 with Retry-After then success: waited exactly as told.
	s.InjectFault(defendertest.Fault{Path: defendertest.APIGraphAlerts, Status: http.StatusTooManyRequests, RetryAfter: 3 * time.Second})
	_, err := c.GetAlert(ctx, a.ID)
	require.NoError(t, err)
	assert.Equal(t, []time.Duration{3 * time.Second}, sl.all())

	// 5xx on a read: retried.
	s.InjectFault(defendertest.Fault{Path: defendertest.APIGraphAlerts, Status: http.StatusBadGateway})
	_, err = c.GetAlert(ctx, a.ID)
	require.NoError(t, err)

	// 5xx on a comment: not re-sent (it may have been stored).
	s.ResetRequests()
	s.InjectFault(defendertest.Fault{Method: "POST", Path: defendertest.APIGraphAlerts, Status: http.StatusInternalServerError})
	_, err = c.CreateComment(ctx, a.ID, "once")
	require.Error(t, err)
	assert.Equal(t, 1, s.Calls("POST", "/v1.0/security/alerts_v2/"+a.ID+"/comments"))
	// 503 on a comment is a definite "not done": retried.
	s.InjectFault(defendertest.Fault{Method: "POST", Path: defendertest.APIGraphAlerts, Status: http.StatusServiceUnavailable})
	_, err = c.CreateComment(ctx, a.ID, "again")
	require.NoError(t, err)

	// A Retry-After beyond MaxBackoff comes back as a RateLimitError.
	s.InjectFault(defendertest.Fault{Path: defendertest.APIGraphAlerts, Status: http.StatusTooManyRequests, RetryAfter: time.Minute})
	_, err = c.GetAlert(ctx, a.ID)
	var rl *graph.RateLimitError
	require.ErrorAs(t, err, &rl)
	assert.True(t, graph.IsRateLimited(err))
	assert.Equal(t, time.Minute, graph.RetryAfterOf(err))

	// An expired token: one refresh, then success.
	s.ExpireTokens()
	_, err = c.GetAlert(ctx, a.ID)
	require.NoError(t, err)

	// A missing permission is not retried.
	s.SetGraphRoles(defendertest.RoleSecurityAlertReadAll)
	s.ExpireTokens()
	_, err = c.UpdateAlert(ctx, a.ID, graph.AlertUpdate{Status: ptr("resolved")})
	assert.True(t, graph.IsForbidden(err), "%v", err)
}

func TestPacing(t *testing.T) {
	s, c, sl := setup(t, graph.Config{PerMinute: 20})
	a := s.NewDeviceAlert(machineID, "x", "high")
	for range 5 {
		_, err := c.GetAlert(t.Context(), a.ID)
		require.NoError(t, err)
	}
	// A burst of 2 (a tenth of 20), then calls spaced by the limiter.
	require.NotEmpty(t, sl.all(), "calls beyond the burst wait")
	for _, d := range sl.all() {
		assert.LessOrEqual(t, d, time.Minute)
	}
}
