package graph

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/defenderbot/defenderbot/defender"
	"github.com/defenderbot/defenderbot/internal/httpwait"
)

// Defaults applied by New to zero Config fields.
const (
	DefaultBaseURL    = "https://graph.microsoft.com"
	DefaultScope      = "https://graph.microsoft.com/.default"
	DefaultTimeout    = 30 * time.Second
	DefaultMaxRetries = 5
	DefaultMaxBackoff = 60 * time.Second
	// DefaultPerMinute is Graph's documented limit for alerts: 150 requests
	// a minute per app per tenant.
	DefaultPerMinute = 150
)

// API is the name under which calls are reported to the Observer.
const API = "graph_alerts"

// maxResponseBody caps a successful response.
const maxResponseBody = 64 << 20

// Scope returns the token scope for a Graph base URL: the national cloud's
// own Graph host, or Microsoft Graph's global scope for any other host (a
// proxy or an emulator standing in for it).
func Scope(baseURL string) string {
	u, err := url.Parse(baseURL)
	if err != nil {
		return DefaultScope
	}
	switch h := strings.ToLower(u.Hostname()); h {
	case "graph.microsoft.us", "dod-graph.microsoft.us", "microsoftgraph.chinacloudapi.cn", "graph.microsoft.com":
		return "https://" + h + "/.default"
	}
	return DefaultScope
}

// Config holds what New needs to reach Graph.
type Config struct {
	// BaseURL is Graph's root, https only (national clouds have their own).
	// Default DefaultBaseURL.
	BaseURL string
	// Timeout bounds each HTTP attempt. Default DefaultTimeout.
	Timeout time.Duration
	// MaxRetries bounds retries of one call. Zero means DefaultMaxRetries.
	MaxRetries int
	// MaxBackoff caps one wait between attempts; a longer Retry-After is
	// returned to the caller as a *RateLimitError. Default DefaultMaxBackoff.
	MaxBackoff time.Duration
	// PerMinute paces calls client-side; zero means DefaultPerMinute,
	// negative turns pacing off.
	PerMinute int
}

// Option customises a Client.
type Option func(*Client) error

// WithHTTPClient sets the HTTP client (tests pass the emulator's). The
// client is copied, not modified.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) error {
		if hc == nil {
			return invalid("WithHTTPClient", "client is nil")
		}
		cp := *hc
		c.hc = &cp
		return nil
	}
}

// WithLogger sets the logger; calls are logged at debug level.
func WithLogger(l *slog.Logger) Option {
	return func(c *Client) error {
		if l == nil {
			return invalid("WithLogger", "logger is nil")
		}
		c.log = l
		return nil
	}
}

// WithObserver sets the metrics hook (the same one Defender's client uses;
// calls are reported under API).
func WithObserver(o defender.Observer) Option {
	return func(c *Client) error {
		if o == nil {
			return invalid("WithObserver", "observer is nil")
		}
		c.obs = o
		return nil
	}
}

// WithSleeper replaces how the client waits (pacing, Retry-After, backoff).
// The function must return ctx.Err() when ctx ends first.
func WithSleeper(f func(ctx context.Context, d time.Duration) error) Option {
	return func(c *Client) error {
		if f == nil {
			return invalid("WithSleeper", "function is nil")
		}
		c.sleep = f
		return nil
	}
}

// WithClock sets the clock used for pacing and Retry-After dates.
func WithClock(now func() time.Time) Option {
	return func(c *Client) error {
		if now == nil {
			return invalid("WithClock", "function is nil")
		}
		c.now = now
		return nil
	}
}

// Client calls Graph's security alerts. It is safe for concurrent use.
type Client struct {
	base        *url.URL
	hc          *http.Client
	tokens      defender.TokenProvider
	log         *slog.Logger
	obs         defender.Observer
	sleep       func(ctx context.Context, d time.Duration) error
	now         func() time.Time
	timeout     time.Duration
	maxRetries  int
	maxBackoff  time.Duration
	baseBackoff time.Duration
	limiter     *rate.Limiter // nil: no pacing
}

type nopObserver struct{}

func (nopObserver) ObserveCall(string, string, int, time.Duration) {}
func (nopObserver) ObserveRetry(string, string)                    {}

// New validates cfg and returns a Client that gets its tokens from tokens
// (defender.NewTokenProvider with Scope(cfg.BaseURL)). No call is made.
func New(cfg Config, tokens defender.TokenProvider, opts ...Option) (*Client, error) {
	if tokens == nil {
		return nil, invalid("tokens", "a token provider is required")
	}
	cfg.BaseURL = strings.TrimSpace(cfg.BaseURL)
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	base, err := url.Parse(cfg.BaseURL)
	switch {
	case err != nil:
		return nil, invalid("BaseURL", "is not a valid URL")
	case base.Scheme != "https":
		return nil, invalid("BaseURL", "must be an https:// URL")
	case base.Host == "":
		return nil, invalid("BaseURL", "has no host")
	case base.User != nil:
		return nil, invalid("BaseURL", "must not contain credentials")
	case base.RawQuery != "" || base.Fragment != "":
		return nil, invalid("BaseURL", "must not have a query or fragment")
	}
	base.Path = strings.TrimSuffix(base.Path, "/")
	base.RawPath = ""
	if cfg.Timeout < 0 || cfg.MaxRetries < 0 || cfg.MaxBackoff < 0 {
		return nil, invalid("Config", "Timeout, MaxRetries and MaxBackoff must not be negative")
	}
	c := &Client{
		base:        base,
		tokens:      tokens,
		log:         slog.New(slog.DiscardHandler),
		obs:         nopObserver{},
		sleep:       httpwait.Sleep,
		now:         time.Now,
		timeout:     cmp(cfg.Timeout, DefaultTimeout),
		maxRetries:  cmp(cfg.MaxRetries, DefaultMaxRetries),
		maxBackoff:  cmp(cfg.MaxBackoff, DefaultMaxBackoff),
		baseBackoff: time.Second,
	}
	if n := cmp(cfg.PerMinute, DefaultPerMinute); n > 0 {
		// A tenth of the minute's budget as a burst, the rest spread evenly:
		// never more than n in any minute.
		b := max(1, n/10)
		c.limiter = rate.NewLimiter(rate.Every(time.Minute/time.Duration(max(1, n-b))), b)
	}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(c); err != nil {
			return nil, err
		}
	}
	if c.hc == nil {
		c.hc = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	// The bearer token is for Graph only: never follow a redirect.
	c.hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return c, nil
}

// cmp returns v, or def when v is zero.
func cmp[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// CheckToken obtains a Graph token (from cache or the authority).
func (c *Client) CheckToken(ctx context.Context) error {
	_, err := c.token(ctx, "")
	return err
}

func (c *Client) token(ctx context.Context, stale string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var tok string
	var err error
	if r, ok := c.tokens.(defender.RefreshingTokenProvider); ok && stale != "" {
		tok, err = r.RefreshToken(ctx, stale)
	} else {
		tok, err = c.tokens.Token(ctx)
	}
	if err == nil && tok == "" {
		err = errors.New("token provider returned an empty token")
	}
	if err != nil {
		if !errors.Is(err, defender.ErrAuthentication) {
			err = fmt.Errorf("graph: %w: %w", defender.ErrAuthentication, err)
		}
		c.log.WarnContext(ctx, "graph token", "error", err)
		return "", err
	}
	return tok, nil
}

// call describes one operation.
type call struct {
	method string
	path   string // escaped, relative to the base, starting with /v1.0/
	query  string // encoded, without '?'
	next   string // absolute @odata.nextLink; replaces path and query
	body   any
	// once marks a call that must not be re-sent once Graph may have
	// received it (POST comments).
	once bool
}

func (c *Client) url(cl *call) (string, string, error) {
	if cl.next != "" {
		u, err := url.Parse(cl.next)
		if err != nil || !u.IsAbs() {
			return "", "", errors.New("graph: invalid @odata.nextLink")
		}
		if !strings.EqualFold(u.Scheme, c.base.Scheme) || !strings.EqualFold(u.Host, c.base.Host) {
			return "", "", fmt.Errorf("graph: refusing @odata.nextLink to another host (%s)", u.Host)
		}
		return u.String(), u.EscapedPath(), nil
	}
	s := c.base.String() + cl.path
	if cl.query != "" {
		s += "?" + cl.query
	}
	return s, c.base.EscapedPath() + cl.path, nil
}

// do runs cl with pacing, token handling and retries and decodes a 2xx JSON
// body into out.
func (c *Client) do(ctx context.Context, cl *call, out any) error {
	u, path, err := c.url(cl)
	if err != nil {
		return err
	}
	var body []byte
	if cl.body != nil {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(cl.body); err != nil {
			return fmt.Errorf("graph: %s %s: encoding body: %w", cl.method, path, err)
		}
		body = bytes.TrimRight(buf.Bytes(), "\n")
	}
	refreshed := false
	tok := ""
	for attempt := 0; ; attempt++ {
		if err := c.pace(ctx); err != nil {
			return err
		}
		if tok == "" {
			if tok, err = c.token(ctx, ""); err != nil {
				return err
			}
		}
		status, header, data, sent, err := c.attempt(ctx, cl.method, u, path, body, tok, attempt)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("graph: %s %s: %w", cl.method, path, ctx.Err())
			}
			if (cl.once && sent) || attempt >= c.maxRetries {
				return fmt.Errorf("graph: %s %s: %w", cl.method, path, err)
			}
			c.obs.ObserveRetry(API, "conn")
			if err := c.wait(ctx, cl, path, c.backoff(attempt)); err != nil {
				return err
			}
			continue
		}
		if status >= 200 && status < 300 {
			if out == nil {
				return nil
			}
			if err := json.Unmarshal(data, out); err != nil {
				return fmt.Errorf("graph: %s %s: decoding %d response: %w", cl.method, path, status, err)
			}
			return nil
		}
		ae := newAPIError(cl.method, path, status, header, data, c.now())
		switch {
		case status == http.StatusUnauthorized && !refreshed:
			refreshed = true
			c.obs.ObserveRetry(API, "401")
			if tok, err = c.token(ctx, tok); err != nil {
				return err
			}
			continue
		case status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable:
			// A definite "not done": safe to retry for every method.
			d := ae.RetryAfter
			if d == 0 {
				d = c.backoff(attempt)
			}
			if attempt >= c.maxRetries || d > c.maxBackoff {
				if status == http.StatusTooManyRequests {
					ae.RetryAfter = d
					return &RateLimitError{ae}
				}
				return ae
			}
			c.obs.ObserveRetry(API, strconv.Itoa(status))
			if err := c.wait(ctx, cl, path, d); err != nil {
				return err
			}
			continue
		case status >= 500 && !cl.once && attempt < c.maxRetries:
			c.obs.ObserveRetry(API, "5xx")
			if err := c.wait(ctx, cl, path, c.backoff(attempt)); err != nil {
				return err
			}
			continue
		}
		return ae
	}
}

func (c *Client) wait(ctx context.Context, cl *call, path string, d time.Duration) error {
	if err := c.sleep(ctx, d); err != nil {
		return fmt.Errorf("graph: %s %s: waiting to retry: %w", cl.method, path, err)
	}
	return nil
}

// pace waits for the client-side limiter.
func (c *Client) pace(ctx context.Context) error {
	if c.limiter == nil {
		return nil
	}
	now := c.now()
	r := c.limiter.ReserveN(now, 1)
	d := r.DelayFrom(now)
	if d <= 0 {
		return nil
	}
	c.log.DebugContext(ctx, "graph pacing", "wait", d)
	if err := c.sleep(ctx, d); err != nil {
		r.CancelAt(now)
		return fmt.Errorf("graph: waiting for client-side rate limit: %w", err)
	}
	return nil
}

// backoff is exponential from baseBackoff, capped, with equal jitter.
func (c *Client) backoff(attempt int) time.Duration {
	d := c.baseBackoff << min(attempt, 16)
	d = min(d, c.maxBackoff)
	half := d / 2
	if half <= 0 {
		return d
	}
	return half + rand.N(half+1)
}

// attempt performs one exchange. sent is false only when the request
// certainly never reached the server (dial or DNS failure).
func (c *Client) attempt(ctx context.Context, method, u, path string, body []byte, tok string, n int) (status int, header http.Header, data []byte, sent bool, err error) {
	actx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(actx, method, u, rd)
	if err != nil {
		return 0, nil, nil, false, fmt.Errorf("building request: %w", err)
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
		c.obs.ObserveCall(API, method, 0, c.now().Sub(start))
		c.log.DebugContext(ctx, "graph call", "method", method, "path", path, "status", 0, "attempt", n+1, "error", err)
		return 0, nil, nil, !neverSent(err), err
	}
	defer resp.Body.Close()
	limit := int64(maxResponseBody)
	if resp.StatusCode >= 300 {
		limit = maxErrorBody
	}
	data, err = io.ReadAll(io.LimitReader(resp.Body, limit+1))
	d := c.now().Sub(start)
	c.obs.ObserveCall(API, method, resp.StatusCode, d)
	c.log.DebugContext(ctx, "graph call", "method", method, "path", path, "status", resp.StatusCode,
		"duration", d, "attempt", n+1)
	if err != nil {
		return 0, nil, nil, true, fmt.Errorf("reading %d response: %w", resp.StatusCode, err)
	}
	if int64(len(data)) > limit {
		if resp.StatusCode < 300 {
			return 0, nil, nil, true, fmt.Errorf("%d response larger than %d bytes", resp.StatusCode, limit)
		}
		data = data[:limit]
	}
	return resp.StatusCode, resp.Header, data, true, nil
}

func neverSent(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}
