// Package msrest is the HTTP transport of defenderbot's Microsoft REST
// clients (Defender for Endpoint in package defender, Graph in package
// graph): bearer tokens with one refresh after a 401, client-side pacing,
// a timeout on every attempt, retries of 429, 503, 5xx and connection
// failures with Retry-After or jittered backoff, and Microsoft's error
// envelope. A call marked Once is never re-sent once the server may have
// received it: it fails with an *UncertainError instead.
//
// Each client turns the *StatusError and *UncertainError values it gets
// into its own error types (defender.APIError, graph.APIError, ...), so
// that callers inspect those.
//
// It owns the transport only: paths, bodies and validation are the
// clients'. It must not import any other defenderbot package but
// internal/httpwait (defender and graph build on it).
package msrest

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// ErrAuthentication is wrapped when no access token could be obtained.
var ErrAuthentication = errors.New("authentication failed")

// maxResponseBody caps a successful response (a 10,000-item page of
// indicators is well under it); maxErrorBody caps an error response.
const (
	maxResponseBody = 64 << 20
	maxErrorBody    = 1 << 20
)

// Tokens supplies bearer tokens.
type Tokens interface {
	Token(ctx context.Context) (string, error)
}

// RefreshingTokens can replace a token the server refused (401); without
// it the transport asks Token again.
type RefreshingTokens interface {
	Tokens
	RefreshToken(ctx context.Context, stale string) (string, error)
}

// Observer receives one event per HTTP attempt and per retry (metrics).
type Observer interface {
	// ObserveCall reports one attempt; status 0 means a transport error.
	ObserveCall(api, method string, status int, d time.Duration)
	// ObserveRetry reports a retry and its reason: "429", "503", "5xx",
	// "conn", "timeout", "401".
	ObserveRetry(api, reason string)
}

// Options configure a Transport. Every field is required except Limiters
// (nil: no pacing) and Logger (nil: discard).
type Options struct {
	// Name prefixes errors ("defender: GET /api/...") and log messages.
	Name string
	// Base is the API root; calls' paths are appended to it and
	// @odata.nextLink URLs must point at its host.
	Base       *url.URL
	HTTPClient *http.Client // copied; redirects are never followed
	Tokens     Tokens
	Logger     *slog.Logger
	Observer   Observer
	Sleep      func(ctx context.Context, d time.Duration) error
	Now        func() time.Time
	// Timeout bounds each attempt and each token request.
	Timeout time.Duration
	// MaxRetries bounds retries of one call (0: none).
	MaxRetries int
	// BaseBackoff is the first wait between attempts; it doubles up to
	// MaxBackoff. A Retry-After longer than MaxBackoff is not waited for.
	BaseBackoff, MaxBackoff time.Duration
	// Limiters pace calls per API name: a call waits until all of its
	// API's limiters allow it.
	Limiters map[string][]*rate.Limiter
}

// Transport sends calls. It is safe for concurrent use.
type Transport struct {
	o  Options
	hc *http.Client
}

// New checks o and returns a Transport.
func New(o Options) (*Transport, error) {
	switch {
	case o.Name == "" || o.Base == nil || o.HTTPClient == nil || o.Tokens == nil || o.Observer == nil || o.Sleep == nil || o.Now == nil:
		return nil, errors.New("msrest: Name, Base, HTTPClient, Tokens, Observer, Sleep and Now are required")
	case o.Timeout <= 0 || o.BaseBackoff <= 0 || o.MaxBackoff <= 0:
		return nil, errors.New("msrest: Timeout, BaseBackoff and MaxBackoff must be positive")
	case o.MaxRetries < 0:
		return nil, errors.New("msrest: MaxRetries must not be negative")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	// The bearer token is for this API's host only, which does not
	// redirect: never follow a redirect.
	hc := *o.HTTPClient
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Transport{o: o, hc: &hc}, nil
}

// Call describes one operation.
type Call struct {
	API    string // names the call for pacing and the Observer
	Method string
	Path   string // escaped, relative to the base
	Query  string // encoded, without '?'
	Next   string // absolute @odata.nextLink; replaces Path and Query
	Body   any    // JSON-encoded when non-nil
	// Once marks a call that must not be sent twice (it would act twice):
	// when the server may have received it, it fails with *UncertainError
	// instead of being retried.
	Once bool
}

// Response is a 2xx answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// StatusError is a non-2xx answer. Code, Message, Target and RequestID
// come from Microsoft's {"error":{...}} envelope when the body has one.
type StatusError struct {
	StatusCode int
	Code       string
	Message    string
	Target     string // error.target (Defender's correlation id)
	RequestID  string // error.innerError.request-id or the request-id header (Graph)
	Method     string
	Path       string // without host or query
	RetryAfter time.Duration
	// Throttled is set on a 429 the retries did not outlast, or whose
	// Retry-After exceeds MaxBackoff; RetryAfter then says when to retry.
	Throttled bool
}

func (e *StatusError) Error() string {
	return Describe("msrest", e.Method, e.Path, e.StatusCode, e.Code, e.Message, "", e.RetryAfter)
}

// UncertainError is the failure of a Once call the server may have
// received (timeout, dropped connection, 5xx): it may have acted.
type UncertainError struct {
	Method, Path string
	Cause        error // the transport error, ctx.Err() or a *StatusError
}

func (e *UncertainError) Error() string {
	return fmt.Sprintf("msrest: %s %s: outcome unknown: %v", e.Method, e.Path, e.Cause)
}

func (e *UncertainError) Unwrap() error { return e.Cause }

// Describe formats an API error the way every client prints it:
// "name: METHOD /path: 404 Code: message (ref) (retry after 30s)".
func Describe(name, method, path string, status int, code, message, ref string, retryAfter time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s %s: %d", name, method, path, status)
	if code != "" {
		b.WriteString(" " + code)
	} else if t := http.StatusText(status); t != "" {
		b.WriteString(" " + t)
	}
	if message != "" {
		b.WriteString(": " + message)
	}
	if ref != "" {
		b.WriteString(" (" + ref + ")")
	}
	if retryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", retryAfter)
	}
	return b.String()
}

func (t *Transport) url(cl *Call) (string, string, error) {
	base := t.o.Base
	if cl.Next != "" {
		u, err := url.Parse(cl.Next)
		if err != nil || !u.IsAbs() {
			return "", "", fmt.Errorf("%s: %s: invalid @odata.nextLink", t.o.Name, cl.API)
		}
		// Never send the bearer token anywhere but the configured API host.
		if !strings.EqualFold(u.Scheme, base.Scheme) || !strings.EqualFold(u.Host, base.Host) {
			return "", "", fmt.Errorf("%s: %s: refusing @odata.nextLink to another host (%s)", t.o.Name, cl.API, u.Host)
		}
		return u.String(), u.EscapedPath(), nil
	}
	s := base.String() + cl.Path
	if cl.Query != "" {
		s += "?" + cl.Query
	}
	return s, base.EscapedPath() + cl.Path, nil
}

// Send runs cl with pacing, token handling and retries, and returns the
// 2xx response or an error: *StatusError, *UncertainError (Once calls),
// an error wrapping ErrAuthentication, ctx's error or a transport error.
func (t *Transport) Send(ctx context.Context, cl *Call) (*Response, error) {
	u, path, err := t.url(cl)
	if err != nil {
		return nil, err
	}
	var body []byte
	if cl.Body != nil {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(cl.Body); err != nil {
			return nil, fmt.Errorf("%s: %s %s: encoding body: %w", t.o.Name, cl.Method, path, err)
		}
		body = bytes.TrimRight(buf.Bytes(), "\n")
	}

	refreshed := false
	tok := ""
	for attempt := 0; ; attempt++ {
		if err := t.pace(ctx, cl.API); err != nil {
			return nil, err
		}
		if tok == "" {
			if tok, err = t.Token(ctx); err != nil {
				return nil, err
			}
		}
		res, maybeReceived, err := t.attempt(ctx, cl, u, path, body, tok, attempt)
		if err != nil {
			if ctx.Err() != nil {
				if cl.Once && maybeReceived {
					return nil, &UncertainError{cl.Method, path, ctx.Err()}
				}
				return nil, fmt.Errorf("%s: %s %s: %w", t.o.Name, cl.Method, path, ctx.Err())
			}
			reason := "conn"
			if errors.Is(err, context.DeadlineExceeded) {
				reason = "timeout"
			}
			if cl.Once && maybeReceived {
				return nil, &UncertainError{cl.Method, path, err}
			}
			if attempt >= t.o.MaxRetries {
				return nil, fmt.Errorf("%s: %s %s: giving up after %d attempts: %w", t.o.Name, cl.Method, path, attempt+1, err)
			}
			t.o.Observer.ObserveRetry(cl.API, reason)
			if err := t.wait(ctx, cl.Method, path, t.Backoff(attempt)); err != nil {
				return nil, err
			}
			continue
		}
		if res.Status >= 200 && res.Status < 300 {
			return res, nil
		}

		se := newStatusError(cl.Method, path, res.Status, res.Header, res.Body, t.o.Now())
		switch {
		case res.Status == http.StatusUnauthorized && !refreshed:
			// Expired or revoked token: a 401 means nothing ran, so one
			// retry with a fresh token is safe for every method.
			refreshed = true
			t.o.Observer.ObserveRetry(cl.API, "401")
			if tok, err = t.refresh(ctx, tok); err != nil {
				return nil, err
			}
			continue
		case res.Status == http.StatusTooManyRequests || res.Status == http.StatusServiceUnavailable:
			// A definite "not done": safe to retry for every method.
			d := se.RetryAfter
			if d == 0 {
				d = t.Backoff(attempt)
			}
			if attempt >= t.o.MaxRetries || d > t.o.MaxBackoff {
				if res.Status == http.StatusTooManyRequests {
					se.RetryAfter, se.Throttled = d, true
				}
				return nil, se
			}
			t.o.Observer.ObserveRetry(cl.API, strconv.Itoa(res.Status))
			if err := t.wait(ctx, cl.Method, path, d); err != nil {
				return nil, err
			}
			continue
		case res.Status >= 500:
			if cl.Once {
				// 500/502/504: the server may have acted.
				return nil, &UncertainError{cl.Method, path, se}
			}
			if attempt >= t.o.MaxRetries {
				return nil, se
			}
			t.o.Observer.ObserveRetry(cl.API, "5xx")
			if err := t.wait(ctx, cl.Method, path, t.Backoff(attempt)); err != nil {
				return nil, err
			}
			continue
		}
		return nil, se
	}
}

func (t *Transport) wait(ctx context.Context, method, path string, d time.Duration) error {
	if err := t.o.Sleep(ctx, d); err != nil {
		return fmt.Errorf("%s: %s %s: waiting to retry: %w", t.o.Name, method, path, err)
	}
	return nil
}

// Backoff is the wait before retry attempt+1: exponential from
// BaseBackoff, capped at MaxBackoff, with equal jitter.
func (t *Transport) Backoff(attempt int) time.Duration {
	d := t.o.BaseBackoff
	for i := 0; i < attempt && d < t.o.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, t.o.MaxBackoff)
	half := d / 2
	if half <= 0 {
		return d
	}
	return half + rand.N(half+1)
}

// pace waits until every limiter of api allows one more call.
func (t *Transport) pace(ctx context.Context, api string) error {
	lims := t.o.Limiters[api]
	if len(lims) == 0 {
		return nil
	}
	now := t.o.Now()
	var wait time.Duration
	res := make([]*rate.Reservation, 0, len(lims))
	for _, l := range lims {
		r := l.ReserveN(now, 1)
		if !r.OK() {
			for _, p := range res {
				p.CancelAt(now)
			}
			return fmt.Errorf("%s: %s: pacing: burst exceeded", t.o.Name, api)
		}
		res = append(res, r)
		wait = max(wait, r.DelayFrom(now))
	}
	if wait <= 0 {
		return nil
	}
	t.o.Logger.DebugContext(ctx, t.o.Name+" pacing", "api", api, "wait", wait)
	if err := t.o.Sleep(ctx, wait); err != nil {
		for _, r := range res {
			r.CancelAt(now)
		}
		return fmt.Errorf("%s: %s: waiting for client-side rate limit: %w", t.o.Name, api, err)
	}
	return nil
}

// Token returns a bearer token (cached or new) within Timeout.
func (t *Transport) Token(ctx context.Context) (string, error) {
	return t.getToken(ctx, "")
}

// refresh forces a new token after a 401.
func (t *Transport) refresh(ctx context.Context, stale string) (string, error) {
	return t.getToken(ctx, stale)
}

func (t *Transport) getToken(ctx context.Context, stale string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, t.o.Timeout)
	defer cancel()
	var tok string
	var err error
	if r, ok := t.o.Tokens.(RefreshingTokens); ok && stale != "" {
		tok, err = r.RefreshToken(ctx, stale)
	} else {
		tok, err = t.o.Tokens.Token(ctx)
	}
	if err == nil && tok == "" {
		err = errors.New("token provider returned an empty token")
	}
	if err != nil {
		if !errors.Is(err, ErrAuthentication) {
			err = fmt.Errorf("%s: %w: %w", t.o.Name, ErrAuthentication, err)
		}
		msg := t.o.Name + " token"
		if stale != "" {
			msg += " refresh"
		}
		t.o.Logger.WarnContext(ctx, msg, "error", err)
		return "", err
	}
	return tok, nil
}

// attempt performs one HTTP exchange. maybeReceived is false only when the
// request certainly never left the client (dial, DNS or TLS failure before
// any header was written).
func (t *Transport) attempt(ctx context.Context, cl *Call, u, path string, body []byte, tok string, n int) (*Response, bool, error) {
	actx, cancel := context.WithTimeout(ctx, t.o.Timeout)
	defer cancel()
	var wrote atomic.Bool
	actx = httptrace.WithClientTrace(actx, &httptrace.ClientTrace{WroteHeaders: func() { wrote.Store(true) }})

	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(actx, cl.Method, u, rd)
	if err != nil {
		return nil, false, fmt.Errorf("building request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "defenderbot")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}

	msg := t.o.Name + " call"
	start := t.o.Now()
	resp, err := t.hc.Do(req)
	if err != nil {
		d := t.o.Now().Sub(start)
		t.o.Observer.ObserveCall(cl.API, cl.Method, 0, d)
		t.o.Logger.DebugContext(ctx, msg, "api", cl.API, "method", cl.Method, "path", path,
			"status", 0, "duration", d, "attempt", n+1, "error", err)
		return nil, wrote.Load() || !NeverSent(err), err
	}
	defer resp.Body.Close()
	limit := int64(maxResponseBody)
	if resp.StatusCode >= 300 {
		limit = maxErrorBody
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	d := t.o.Now().Sub(start)
	t.o.Observer.ObserveCall(cl.API, cl.Method, resp.StatusCode, d)
	t.o.Logger.DebugContext(ctx, msg, "api", cl.API, "method", cl.Method, "path", path,
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
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: data}, true, nil
}

// NeverSent reports errors that happen before a request can reach the
// server.
func NeverSent(err error) bool {
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

// NewLimiter returns a token bucket that never lets more than n calls
// through in any window w: a burst of a tenth of n plus an even refill.
func NewLimiter(n int, w time.Duration) *rate.Limiter {
	b := max(1, n/10)
	if n <= b {
		return rate.NewLimiter(rate.Every(w/time.Duration(n)), n)
	}
	return rate.NewLimiter(rate.Every(w/time.Duration(n-b)), b)
}
