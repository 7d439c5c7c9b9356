package graph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/defenderbot/defenderbot/defender"
	"github.com/defenderbot/defenderbot/internal/httpwait"
	"github.com/defenderbot/defenderbot/internal/msrest"
)

// DefaultScope is the token scope Scope returns for a host that is not a
// known Graph cloud (a proxy or an emulator standing in for Graph).
const DefaultScope = "https://graph.microsoft.com/.default"

// API is the name under which calls are reported to the Observer.
const API = "graph_alerts"

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

// Config holds what New needs to reach Graph. It has no defaults: package
// config supplies every value (config.Defender.GraphClient).
type Config struct {
	// BaseURL is Graph's root, https only (national clouds have their own).
	BaseURL string
	// Timeout bounds each HTTP attempt; it must be positive.
	Timeout time.Duration
	// MaxRetries bounds retries of one call; 0: none.
	MaxRetries int
	// MaxBackoff caps one wait between attempts; a longer Retry-After is
	// returned to the caller as a *RateLimitError. It must be positive.
	MaxBackoff time.Duration
	// PerMinute paces calls client-side (Graph documents 150 for alerts);
	// negative turns pacing off, zero is an error.
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
	rest *msrest.Transport
	// Set by the options before the transport is built.
	hc    *http.Client
	log   *slog.Logger
	obs   defender.Observer
	sleep func(ctx context.Context, d time.Duration) error
	now   func() time.Time
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
		return nil, invalid("BaseURL", "is required (config: defender.graph_base_url)")
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
	switch {
	case cfg.Timeout <= 0:
		return nil, invalid("Timeout", "must be positive (config: defender.timeout)")
	case cfg.MaxRetries < 0:
		return nil, invalid("MaxRetries", "must not be negative")
	case cfg.MaxBackoff <= 0:
		return nil, invalid("MaxBackoff", "must be positive")
	case cfg.PerMinute == 0:
		return nil, invalid("PerMinute", "must be set (negative: no pacing)")
	}
	c := &Client{log: slog.New(slog.DiscardHandler), obs: nopObserver{}, sleep: httpwait.Sleep, now: time.Now}
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
	var limiters map[string][]*rate.Limiter
	if cfg.PerMinute > 0 {
		limiters = map[string][]*rate.Limiter{API: {msrest.NewLimiter(cfg.PerMinute, time.Minute)}}
	}
	rest, err := msrest.New(msrest.Options{
		Name: "graph", Base: base, HTTPClient: c.hc, Tokens: tokens, Logger: c.log, Observer: c.obs,
		Sleep: c.sleep, Now: c.now, Timeout: cfg.Timeout, MaxRetries: cfg.MaxRetries,
		BaseBackoff: time.Second, MaxBackoff: cfg.MaxBackoff, Limiters: limiters,
	})
	if err != nil {
		return nil, err
	}
	c.rest = rest
	return c, nil
}

// CheckToken obtains a Graph token (from cache or the authority).
func (c *Client) CheckToken(ctx context.Context) error {
	_, err := c.rest.Token(ctx)
	return err
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

// do runs cl through the shared Microsoft REST transport (pacing, token
// handling and retries) and decodes a 2xx JSON body into out.
func (c *Client) do(ctx context.Context, cl *call, out any) error {
	res, err := c.rest.Send(ctx, &msrest.Call{API: API, Method: cl.method, Path: cl.path, Query: cl.query,
		Next: cl.next, Body: cl.body, Once: cl.once})
	if err != nil {
		return fromREST(err)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(res.Body, out); err != nil {
		return fmt.Errorf("graph: %s %s: decoding %d response: %w", cl.method, cl.path, res.Status, err)
	}
	return nil
}

// fromREST turns the transport's errors into this package's. A comment
// Graph may have received is not re-sent; its error is the cause.
func fromREST(err error) error {
	switch e := err.(type) {
	case *msrest.StatusError:
		ae := &APIError{StatusCode: e.StatusCode, Code: e.Code, Message: e.Message, RequestID: e.RequestID,
			Method: e.Method, Path: e.Path, RetryAfter: e.RetryAfter}
		if e.Throttled {
			return &RateLimitError{ae}
		}
		return ae
	case *msrest.UncertainError:
		var se *msrest.StatusError
		if errors.As(e.Cause, &se) {
			return fromREST(se)
		}
		return fmt.Errorf("graph: %s %s: %w", e.Method, e.Path, e.Cause)
	}
	return err
}
