package defender

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/defenderbot/defenderbot/internal/httpwait"
	"github.com/defenderbot/defenderbot/internal/msrest"
)

// Scope is the resource a Defender for Endpoint token is requested for
// (WindowsDefenderATP): a token for api.security.microsoft.com/.default
// lacks the MDE roles.
const Scope = "https://api.securitycenter.microsoft.com/.default"

// Config holds what New needs to reach one tenant's Defender API. It has
// no defaults: package config supplies every value (config.Defender.Client).
type Config struct {
	// BaseURL is the API root, https only. Regional and government hosts
	// work the same way.
	BaseURL string
	// AuthorityHost is the Entra ID host, https only, without tenant
	// (not read with WithTokenProvider).
	AuthorityHost string
	TenantID      string
	ClientID      string
	// ClientSecret is never logged nor put in an error message.
	ClientSecret string
	// Scope of the token: Scope for Defender for Endpoint.
	Scope string
	// Timeout bounds each HTTP attempt; it must be positive.
	Timeout time.Duration
	// MaxRetries bounds retries of one call (429, 503, 5xx, connection
	// failures); 0: none.
	MaxRetries int
	// MaxBackoff caps one wait between attempts; a Retry-After longer than
	// it is returned to the caller instead of waited for. It must be positive.
	MaxBackoff time.Duration
	// Limits sets client-side pacing; the zero value is Microsoft's limits.
	Limits Limits
}

// Observer receives one event per HTTP attempt and per retry (metrics).
type Observer = msrest.Observer

// Option customises a Client.
type Option func(*settings) error

type settings struct {
	hc     *http.Client
	log    *slog.Logger
	obs    Observer
	sleep  func(ctx context.Context, d time.Duration) error
	now    func() time.Time
	tokens TokenProvider
}

// WithHTTPClient sets the HTTP client used for both MSAL and API calls (tests
// pass the emulator's TLS client). The client is copied, not modified.
func WithHTTPClient(hc *http.Client) Option {
	return func(s *settings) error {
		if hc == nil {
			return invalid("WithHTTPClient", "client is nil")
		}
		s.hc = hc
		return nil
	}
}

// WithLogger sets the logger; calls are logged at debug level.
func WithLogger(l *slog.Logger) Option {
	return func(s *settings) error {
		if l == nil {
			return invalid("WithLogger", "logger is nil")
		}
		s.log = l
		return nil
	}
}

// WithObserver sets the metrics hook.
func WithObserver(o Observer) Option {
	return func(s *settings) error {
		if o == nil {
			return invalid("WithObserver", "observer is nil")
		}
		s.obs = o
		return nil
	}
}

// WithSleeper replaces how the client waits (pacing, Retry-After, backoff).
// The function must return ctx.Err() when ctx ends first.
func WithSleeper(f func(ctx context.Context, d time.Duration) error) Option {
	return func(s *settings) error {
		if f == nil {
			return invalid("WithSleeper", "function is nil")
		}
		s.sleep = f
		return nil
	}
}

// WithClock replaces the clock the client reads (pacing, Retry-After dates,
// call durations); pair it with WithSleeper so that waits follow it.
func WithClock(now func() time.Time) Option {
	return func(s *settings) error {
		if now == nil {
			return invalid("WithClock", "function is nil")
		}
		s.now = now
		return nil
	}
}

// WithTokenProvider replaces MSAL as the token source; ClientID and
// ClientSecret are then not required.
func WithTokenProvider(p TokenProvider) Option {
	return func(s *settings) error {
		if p == nil {
			return invalid("WithTokenProvider", "provider is nil")
		}
		s.tokens = p
		return nil
	}
}

// Client calls the Defender for Endpoint API. It is safe for concurrent use.
type Client struct {
	rest     *msrest.Transport
	cfg      Config // as validated, defaults applied
	base     *url.URL
	tokens   TokenProvider
	log      *slog.Logger
	now      func() time.Time
	limiters map[string][]*rate.Limiter
}

type nopObserver struct{}

func (nopObserver) ObserveCall(string, string, int, time.Duration) {}
func (nopObserver) ObserveRetry(string, string)                    {}

// applyOptions runs opts (nil ones skipped) on fresh settings.
func applyOptions(opts []Option) (settings, error) {
	var s settings
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&s); err != nil {
			return s, err
		}
	}
	return s, nil
}

var tenantRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.-]*$`)

// New validates cfg (every field is required: see Config) and returns a Client. No network call
// is made; use CheckToken to verify the credentials.
func New(cfg Config, opts ...Option) (*Client, error) {
	s, err := applyOptions(opts)
	if err != nil {
		return nil, err
	}
	base, err := validateConfig(cfg, s.tokens != nil)
	if err != nil {
		return nil, err
	}

	if s.hc == nil {
		s.hc = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.obs == nil {
		s.obs = nopObserver{}
	}
	if s.sleep == nil {
		s.sleep = httpwait.Sleep
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.tokens == nil {
		p, err := newMSALProvider(cfg, s.hc, s.obs)
		if err != nil {
			return nil, err
		}
		s.tokens = p
	}
	limiters := buildLimiters(cfg.Limits)
	rest, err := msrest.New(msrest.Options{
		Name: "defender", Base: base, HTTPClient: s.hc, Tokens: s.tokens, Logger: s.log, Observer: s.obs,
		Sleep: s.sleep, Now: s.now, Timeout: cfg.Timeout, MaxRetries: cfg.MaxRetries,
		BaseBackoff: time.Second, MaxBackoff: cfg.MaxBackoff, Limiters: limiters,
	})
	if err != nil {
		return nil, err
	}
	return &Client{rest: rest, cfg: cfg, base: base, tokens: s.tokens, log: s.log, now: s.now, limiters: limiters}, nil
}

func validateConfig(cfg Config, customTokens bool) (*url.URL, error) {
	if cfg.BaseURL == "" {
		return nil, invalid("BaseURL", "is required (config: defender.base_url)")
	}
	base, err := validateHTTPSURL("BaseURL", cfg.BaseURL, true)
	if err != nil {
		return nil, err
	}
	base.Path = strings.TrimSuffix(base.Path, "/")
	base.RawPath = ""
	if !customTokens {
		if cfg.AuthorityHost == "" {
			return nil, invalid("AuthorityHost", "is required (config: defender.authority_host)")
		}
		if _, err := validateHTTPSURL("AuthorityHost", cfg.AuthorityHost, false); err != nil {
			return nil, err
		}
		if err := validateCredentials(cfg); err != nil {
			return nil, err
		}
	}
	if cfg.Timeout <= 0 {
		return nil, invalid("Timeout", "must be positive (config: defender.timeout)")
	}
	if cfg.MaxRetries < 0 {
		return nil, invalid("MaxRetries", "must not be negative")
	}
	if cfg.MaxBackoff <= 0 {
		return nil, invalid("MaxBackoff", "must be positive")
	}
	if err := validateLimits(cfg.Limits); err != nil {
		return nil, err
	}
	return base, nil
}

// validateCredentials checks what MSAL's client-credentials flow needs.
func validateCredentials(cfg Config) error {
	switch t := strings.ToLower(cfg.TenantID); {
	case t == "":
		return invalid("TenantID", "is required")
	case !tenantRE.MatchString(cfg.TenantID) || len(t) > maxIDLen:
		return invalid("TenantID", "must be a tenant GUID or domain name")
	case t == "common" || t == "organizations" || t == "consumers" || t == "adfs":
		return invalid("TenantID", "%q cannot be used with client credentials: give the tenant GUID or domain", cfg.TenantID)
	}
	if err := validateID("ClientID", cfg.ClientID); err != nil {
		return err
	}
	if cfg.ClientSecret == "" {
		return invalid("ClientSecret", "is required")
	}
	if cfg.Scope == "" || strings.ContainsFunc(cfg.Scope, func(r rune) bool { return r <= ' ' }) {
		return invalid("Scope", "must be one scope without spaces, e.g. %s", Scope)
	}
	return nil
}

func validateHTTPSURL(field, raw string, allowPath bool) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, invalid(field, "is not a valid URL")
	}
	switch {
	case u.Scheme != "https":
		return nil, invalid(field, "must be an https:// URL")
	case u.Host == "":
		return nil, invalid(field, "has no host")
	case u.User != nil:
		return nil, invalid(field, "must not contain credentials")
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return nil, invalid(field, "must not have a query or fragment")
	case !allowPath && u.Path != "" && u.Path != "/":
		return nil, invalid(field, "must be a host only (the tenant is added from TenantID)")
	}
	return u, nil
}

// call describes one API operation.
type call struct {
	api    string
	method string
	path   string // escaped, starting with /api/
	query  string // encoded, without '?'
	next   string // absolute @odata.nextLink; replaces path and query
	body   any    // JSON-encoded when non-nil
	// unsafe marks a machine-action POST: it is never re-sent when Defender
	// may have received it (the caller looks the action up instead).
	unsafe bool
}

// unknownOutcome is returned for an unsafe call that may have reached
// Defender.
type unknownOutcome struct {
	method, path string
	cause        error
}

func (e *unknownOutcome) Error() string {
	return fmt.Sprintf("defender: %s %s: %v: %v", e.method, e.path, ErrOutcomeUnknown, e.cause)
}

func (e *unknownOutcome) Unwrap() []error { return []error{ErrOutcomeUnknown, e.cause} }

// send runs cl through the shared Microsoft REST transport (pacing, token
// handling and retries) and returns the 2xx response or an error
// (*APIError, *RateLimitError, *unknownOutcome, ...).
func (c *Client) send(ctx context.Context, cl *call) (*msrest.Response, error) {
	res, err := c.rest.Send(ctx, &msrest.Call{API: cl.api, Method: cl.method, Path: cl.path, Query: cl.query,
		Next: cl.next, Body: cl.body, Once: cl.unsafe})
	return res, fromREST(err)
}

// fromREST turns the transport's errors into this package's.
func fromREST(err error) error {
	switch e := err.(type) {
	case *msrest.StatusError:
		ae := &APIError{StatusCode: e.StatusCode, Code: e.Code, Message: e.Message, Target: e.Target,
			Method: e.Method, Path: e.Path, RetryAfter: e.RetryAfter}
		if e.Throttled {
			return &RateLimitError{ae}
		}
		return ae
	case *msrest.UncertainError:
		return &unknownOutcome{e.Method, e.Path, fromREST(e.Cause)}
	}
	return err
}

// do sends cl and decodes a JSON response into out (when non-nil).
func (c *Client) do(ctx context.Context, cl *call, out any) ([]byte, error) {
	res, err := c.send(ctx, cl)
	if err != nil {
		return nil, err
	}
	if out != nil {
		var derr error
		if len(bytes.TrimSpace(res.Body)) == 0 {
			derr = fmt.Errorf("defender: %s %s: empty %d response", cl.method, cl.path, res.Status)
		} else if err := json.Unmarshal(res.Body, out); err != nil {
			derr = fmt.Errorf("defender: %s %s: decoding %d response: %w", cl.method, cl.path, res.Status, err)
		}
		if derr != nil {
			if cl.unsafe {
				// Defender said yes but we cannot read what it created.
				return nil, &unknownOutcome{cl.method, cl.path, derr}
			}
			return nil, derr
		}
	}
	return res.Body, nil
}
