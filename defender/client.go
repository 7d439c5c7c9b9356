package defender

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/defenderbot/defenderbot/internal/httpwait"
)

// Defaults applied by New to zero Config fields.
const (
	DefaultBaseURL       = "https://api.securitycenter.microsoft.com"
	DefaultAuthorityHost = "https://login.microsoftonline.com"
	DefaultScope         = "https://api.securitycenter.microsoft.com/.default"
	DefaultTimeout       = 30 * time.Second
	DefaultMaxRetries    = 5
	DefaultMaxBackoff    = 60 * time.Second
)

// maxResponseBody caps a successful response (a 10,000-item page of
// indicators is well under it).
const maxResponseBody = 64 << 20

// Config holds what New needs to reach one tenant's Defender API.
type Config struct {
	// BaseURL is the API root, https only. Regional and government hosts
	// work the same way. Default DefaultBaseURL.
	BaseURL string
	// AuthorityHost is the Entra ID host, https only, without tenant.
	// Default DefaultAuthorityHost.
	AuthorityHost string
	TenantID      string
	ClientID      string
	// ClientSecret is never logged nor put in an error message.
	ClientSecret string
	// Scope of the token. Default DefaultScope (WindowsDefenderATP): a token
	// for api.security.microsoft.com/.default lacks the MDE roles.
	Scope string
	// Timeout bounds each HTTP attempt. Default DefaultTimeout.
	Timeout time.Duration
	// MaxRetries bounds retries of one call (429, 503, 5xx, connection
	// failures). Zero means DefaultMaxRetries.
	MaxRetries int
	// MaxBackoff caps one wait between attempts; a Retry-After longer than
	// it is returned to the caller instead of waited for. Default DefaultMaxBackoff.
	MaxBackoff time.Duration
	// Limits sets client-side pacing; the zero value is Microsoft's limits.
	Limits Limits
}

// Observer receives one event per HTTP attempt and per retry (metrics).
type Observer interface {
	// ObserveCall reports one attempt; status 0 means a transport error.
	ObserveCall(api, method string, status int, d time.Duration)
	// ObserveRetry reports a retry and its reason: "429", "503", "5xx",
	// "conn", "timeout", "401".
	ObserveRetry(api, reason string)
}

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
	base        *url.URL
	hc          *http.Client
	tokens      TokenProvider
	log         *slog.Logger
	obs         Observer
	sleep       func(ctx context.Context, d time.Duration) error
	now         func() time.Time
	timeout     time.Duration
	maxRetries  int
	maxBackoff  time.Duration
	baseBackoff time.Duration
	limiters    map[string][]*rate.Limiter
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

// New validates cfg, applies defaults and returns a Client. No network call
// is made; use CheckToken to verify the credentials.
func New(cfg Config, opts ...Option) (*Client, error) {
	s, err := applyOptions(opts)
	if err != nil {
		return nil, err
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	if cfg.AuthorityHost == "" {
		cfg.AuthorityHost = DefaultAuthorityHost
	}
	if cfg.Scope == "" {
		cfg.Scope = DefaultScope
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxRetries == 0 {
		cfg.MaxRetries = DefaultMaxRetries
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
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
	// The API client never follows redirects: the bearer token is for the
	// Defender host only, and Defender does not redirect.
	api := *s.hc
	api.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	return &Client{
		base:        base,
		hc:          &api,
		tokens:      s.tokens,
		log:         s.log,
		obs:         s.obs,
		sleep:       s.sleep,
		now:         s.now,
		timeout:     cfg.Timeout,
		maxRetries:  cfg.MaxRetries,
		maxBackoff:  cfg.MaxBackoff,
		baseBackoff: time.Second,
		limiters:    buildLimiters(cfg.Limits),
	}, nil
}

func validateConfig(cfg Config, customTokens bool) (*url.URL, error) {
	base, err := validateHTTPSURL("BaseURL", cfg.BaseURL, true)
	if err != nil {
		return nil, err
	}
	base.Path = strings.TrimSuffix(base.Path, "/")
	base.RawPath = ""
	if _, err := validateHTTPSURL("AuthorityHost", cfg.AuthorityHost, false); err != nil {
		return nil, err
	}
	if !customTokens {
		if err := validateCredentials(cfg); err != nil {
			return nil, err
		}
	}
	if cfg.Timeout < 0 {
		return nil, invalid("Timeout", "must not be negative")
	}
	if cfg.MaxRetries < 0 {
		return nil, invalid("MaxRetries", "must not be negative")
	}
	if cfg.MaxBackoff < 0 {
		return nil, invalid("MaxBackoff", "must not be negative")
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
		return invalid("Scope", "must be one scope without spaces, e.g. %s", DefaultScope)
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

// unknownOutcome is returned by send for an unsafe call that may have
// reached Defender.
type unknownOutcome struct {
	method, path string
	cause        error
}

func (e *unknownOutcome) Error() string {
	return fmt.Sprintf("defender: %s %s: %v: %v", e.method, e.path, ErrOutcomeUnknown, e.cause)
}

func (e *unknownOutcome) Unwrap() []error { return []error{ErrOutcomeUnknown, e.cause} }

func (c *Client) url(cl *call) (string, string, error) {
	if cl.next != "" {
		u, err := url.Parse(cl.next)
		if err != nil || !u.IsAbs() {
			return "", "", fmt.Errorf("defender: %s: invalid @odata.nextLink", cl.api)
		}
		// Never send the bearer token anywhere but the configured API host.
		if !strings.EqualFold(u.Scheme, c.base.Scheme) || !strings.EqualFold(u.Host, c.base.Host) {
			return "", "", fmt.Errorf("defender: %s: refusing @odata.nextLink to another host (%s)", cl.api, u.Host)
		}
		return u.String(), u.EscapedPath(), nil
	}
	s := c.base.String() + cl.path
	if cl.query != "" {
		s += "?" + cl.query
	}
	return s, c.base.EscapedPath() + cl.path, nil
}

// send runs cl with pacing, token handling and retries, and returns the 2xx
// response or an error (*APIError, *RateLimitError, *unknownOutcome, ...).
func (c *Client) send(ctx context.Context, cl *call) (*attemptResult, error) {
	u, path, err := c.url(cl)
	if err != nil {
		return nil, err
	}
	var body []byte
	if cl.body != nil {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(cl.body); err != nil {
			return nil, fmt.Errorf("defender: %s %s: encoding body: %w", cl.method, path, err)
		}
		body = bytes.TrimRight(buf.Bytes(), "\n")
	}

	refreshed := false
	tok := ""
	for attempt := 0; ; attempt++ {
		if err := c.pace(ctx, cl.api); err != nil {
			return nil, err
		}
		if tok == "" {
			if tok, err = c.token(ctx); err != nil {
				return nil, err
			}
		}
		res, maybeReceived, err := c.attempt(ctx, cl, u, path, body, tok, attempt)
		if err != nil {
			if ctx.Err() != nil {
				if cl.unsafe && maybeReceived {
					return nil, &unknownOutcome{cl.method, path, ctx.Err()}
				}
				return nil, fmt.Errorf("defender: %s %s: %w", cl.method, path, ctx.Err())
			}
			reason := "conn"
			if errors.Is(err, context.DeadlineExceeded) {
				reason = "timeout"
			}
			if cl.unsafe && maybeReceived {
				return nil, &unknownOutcome{cl.method, path, err}
			}
			if attempt >= c.maxRetries {
				return nil, fmt.Errorf("defender: %s %s: giving up after %d attempts: %w", cl.method, path, attempt+1, err)
			}
			c.obs.ObserveRetry(cl.api, reason)
			if err := c.wait(ctx, cl.method, path, c.backoff(attempt)); err != nil {
				return nil, err
			}
			continue
		}
		if res.status >= 200 && res.status < 300 {
			return res, nil
		}

		ae := newAPIError(cl.method, path, res.status, res.header, res.body, c.now())
		switch {
		case res.status == http.StatusUnauthorized && !refreshed:
			// Expired or revoked token: a 401 means nothing ran, so one
			// retry with a fresh token is safe for every method.
			refreshed = true
			c.obs.ObserveRetry(cl.api, "401")
			if tok, err = c.refresh(ctx, tok); err != nil {
				return nil, err
			}
			continue
		case res.status == http.StatusTooManyRequests || res.status == http.StatusServiceUnavailable:
			// A definite "not done": safe to retry for every method.
			d := ae.RetryAfter
			if d == 0 {
				d = c.backoff(attempt)
			}
			if attempt >= c.maxRetries || d > c.maxBackoff {
				if res.status == http.StatusTooManyRequests {
					if ae.RetryAfter == 0 {
						ae.RetryAfter = d
					}
					return nil, &RateLimitError{ae}
				}
				return nil, ae
			}
			c.obs.ObserveRetry(cl.api, strconv.Itoa(res.status))
			if err := c.wait(ctx, cl.method, path, d); err != nil {
				return nil, err
			}
			continue
		case res.status >= 500:
			if cl.unsafe {
				// 500/502/504: Defender may have created the action.
				return nil, &unknownOutcome{cl.method, path, ae}
			}
			if attempt >= c.maxRetries {
				return nil, ae
			}
			c.obs.ObserveRetry(cl.api, "5xx")
			if err := c.wait(ctx, cl.method, path, c.backoff(attempt)); err != nil {
				return nil, err
			}
			continue
		}
		return nil, ae
	}
}

func (c *Client) wait(ctx context.Context, method, path string, d time.Duration) error {
	if err := c.sleep(ctx, d); err != nil {
		return fmt.Errorf("defender: %s %s: waiting to retry: %w", method, path, err)
	}
	return nil
}

// attemptResult is one HTTP exchange, any status.
type attemptResult struct {
	status int
	header http.Header
	body   []byte
}

// attempt performs one HTTP exchange. maybeReceived is false only when the
// request certainly never left the client (dial, DNS or TLS failure before
// any header was written).
func (c *Client) attempt(ctx context.Context, cl *call, u, path string, body []byte, tok string, n int) (*attemptResult, bool, error) {
	actx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var wrote atomic.Bool
	actx = httptrace.WithClientTrace(actx, &httptrace.ClientTrace{WroteHeaders: func() { wrote.Store(true) }})

	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(actx, cl.method, u, rd)
	if err != nil {
		return nil, false, fmt.Errorf("building request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "defenderbot")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}

	start := c.now()
	resp, err := c.hc.Do(req)
	if err != nil {
		d := c.now().Sub(start)
		c.obs.ObserveCall(cl.api, cl.method, 0, d)
		c.log.DebugContext(ctx, "defender call", "api", cl.api, "method", cl.method, "path", path,
			"status", 0, "duration", d, "attempt", n+1, "error", err)
		return nil, wrote.Load() || !neverSent(err), err
	}
	defer resp.Body.Close()
	limit := int64(maxResponseBody)
	if resp.StatusCode >= 300 {
		limit = maxErrorBody
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	d := c.now().Sub(start)
	c.obs.ObserveCall(cl.api, cl.method, resp.StatusCode, d)
	c.log.DebugContext(ctx, "defender call", "api", cl.api, "method", cl.method, "path", path,
		"status", resp.StatusCode, "duration", d, "attempt", n+1)
	if err != nil {
		return nil, true, fmt.Errorf("reading %d response: %w", resp.StatusCode, err)
	}
	if int64(len(data)) > limit {
		if resp.StatusCode < 300 {
			return nil, true, fmt.Errorf("%d response larger than %d bytes", resp.StatusCode, limit)
		}
		data = data[:limit]
	}
	return &attemptResult{status: resp.StatusCode, header: resp.Header, body: data}, true, nil
}

// neverSent reports errors that happen before a request can reach the server.
func neverSent(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return true
	}
	var cv *tls.CertificateVerificationError
	return errors.As(err, &cv)
}

// do sends cl and decodes a JSON response into out (when non-nil).
func (c *Client) do(ctx context.Context, cl *call, out any) ([]byte, error) {
	res, err := c.send(ctx, cl)
	if err != nil {
		return nil, err
	}
	if out != nil {
		var derr error
		if len(bytes.TrimSpace(res.body)) == 0 {
			derr = fmt.Errorf("defender: %s %s: empty %d response", cl.method, cl.path, res.status)
		} else if err := json.Unmarshal(res.body, out); err != nil {
			derr = fmt.Errorf("defender: %s %s: decoding %d response: %w", cl.method, cl.path, res.status, err)
		}
		if derr != nil {
			if cl.unsafe {
				// Defender said yes but we cannot read what it created.
				return nil, &unknownOutcome{cl.method, cl.path, derr}
			}
			return nil, derr
		}
	}
	return res.body, nil
}
