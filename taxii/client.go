package taxii

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/defenderbot/defenderbot/internal/httpwait"
)

// MediaType is TAXII 2.1's media type, sent as Accept on every request.
const MediaType = "application/taxii+json;version=2.1"

// Config is what New needs to reach one TAXII 2.1 API root.
type Config struct {
	// APIRoot is the API root URL, e.g. https://taxii.example/api1/ (a
	// missing trailing slash is added). It must not hold credentials.
	APIRoot string
	// Username and Password authenticate with HTTP Basic; Token with
	// Bearer. At most one kind; none for an open server. They are never
	// logged nor put in an error.
	Username, Password string
	Token              string

	// Timeout bounds each HTTP attempt, body included; it must be positive.
	Timeout time.Duration
	// MaxRetries bounds the retries of one request (429, 5xx, transport
	// failures, cut-off pages); 0: none.
	MaxRetries int
	// MaxWait caps one wait between attempts; a Retry-After longer than it
	// ends the request with an *Error carrying RetryAfter. It must be positive.
	MaxWait time.Duration
	// MaxPageBytes caps one page's body: a page is held whole so that a
	// page cut off in transit can be fetched again without handing on any
	// of its objects twice. It must be positive.
	MaxPageBytes int64
}

// Option customises a Client.
type Option func(*Client) error

// WithHTTPClient sets the HTTP client (TLS, proxy). Its Timeout, if any,
// applies to each attempt on top of the client's own per-attempt timeout.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) error {
		if hc == nil {
			return errors.New("taxii: WithHTTPClient: client is nil")
		}
		c.hc = hc
		return nil
	}
}

// WithSleeper replaces how the client waits before a retry (tests).
func WithSleeper(f func(ctx context.Context, d time.Duration) error) Option {
	return func(c *Client) error {
		if f == nil {
			return errors.New("taxii: WithSleeper: function is nil")
		}
		c.sleep = f
		return nil
	}
}

// WithClock sets the clock used to read an HTTP-date Retry-After (tests).
func WithClock(now func() time.Time) Option {
	return func(c *Client) error {
		if now == nil {
			return errors.New("taxii: WithClock: function is nil")
		}
		c.now = now
		return nil
	}
}

// WithLogger sets where retries are logged (default: nowhere).
func WithLogger(l *slog.Logger) Option {
	return func(c *Client) error {
		if l == nil {
			return errors.New("taxii: WithLogger: logger is nil")
		}
		c.log = l
		return nil
	}
}

// Client reads a TAXII 2.1 API root. It is safe for concurrent use.
type Client struct {
	root       *url.URL
	auth       string // the Authorization header value, or ""
	hc         *http.Client
	timeout    time.Duration
	maxRetries int
	maxWait    time.Duration
	maxPage    int64
	sleep      func(ctx context.Context, d time.Duration) error
	now        func() time.Time
	log        *slog.Logger
}

// New checks cfg and returns a Client.
func New(cfg Config, opts ...Option) (*Client, error) {
	raw := strings.TrimSpace(cfg.APIRoot)
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("taxii: API root must be an absolute http(s) URL (got %q)", raw)
	}
	if u.User != nil {
		return nil, errors.New("taxii: API root must not contain credentials: set the username and password (or token) instead")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("taxii: API root must not have a query or fragment (got %q)", raw)
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
		u.RawPath = ""
	}
	switch {
	case cfg.Timeout <= 0:
		return nil, errors.New("taxii: Config.Timeout must be positive")
	case cfg.MaxRetries < 0:
		return nil, errors.New("taxii: Config.MaxRetries must not be negative")
	case cfg.MaxWait <= 0:
		return nil, errors.New("taxii: Config.MaxWait must be positive")
	case cfg.MaxPageBytes <= 0:
		return nil, errors.New("taxii: Config.MaxPageBytes must be positive")
	}
	c := &Client{root: u, hc: &http.Client{}, timeout: cfg.Timeout, maxRetries: cfg.MaxRetries,
		maxWait: cfg.MaxWait, maxPage: cfg.MaxPageBytes, sleep: httpwait.Sleep, now: time.Now,
		log: slog.New(slog.DiscardHandler)}
	switch {
	case cfg.Token != "" && (cfg.Username != "" || cfg.Password != ""):
		return nil, errors.New("taxii: give a username and password (Basic) or a token (Bearer), not both")
	case cfg.Token != "":
		c.auth = "Bearer " + cfg.Token
	case cfg.Username != "" || cfg.Password != "":
		// Sekoia.io takes any username with the API key as password, so
		// an empty username is allowed; an empty password is not.
		if cfg.Password == "" {
			return nil, errors.New("taxii: a username needs a password")
		}
		r := &http.Request{Header: http.Header{}}
		r.SetBasicAuth(cfg.Username, cfg.Password)
		c.auth = r.Header.Get("Authorization")
	}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// APIRoot returns the API root URL, with its trailing slash.
func (c *Client) APIRoot() string { return c.root.String() }

// collectionURL is {root}collections/{id}/{rest}.
func (c *Client) collectionURL(id, rest string) string {
	u := *c.root
	u.Path = c.root.Path + "collections/" + id + "/" + rest
	u.RawPath = c.root.EscapedPath() + "collections/" + url.PathEscape(id) + "/" + rest
	return u.String()
}

// get performs a GET with retries and returns the 2xx response's header
// and body (at most limit bytes), read into buf (reused from page to page;
// the body is valid until buf's next use). check, when set, validates the
// body; a body it refuses is fetched again like a cut-off one.
func (c *Client) get(ctx context.Context, u string, q url.Values, buf *bytes.Buffer, check func([]byte) error) (http.Header, []byte, error) {
	full := u
	if len(q) > 0 {
		full += "?" + q.Encode()
	}
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return nil, nil, fmt.Errorf("taxii: GET %s: %w", u, err)
		}
		hdr, body, status, err := c.attempt(ctx, full, u, buf)
		var wait time.Duration
		switch {
		case err != nil && ctx.Err() != nil:
			return nil, nil, fmt.Errorf("taxii: GET %s: %w", u, ctx.Err())
		case err != nil:
			if attempt >= c.maxRetries {
				return nil, nil, fmt.Errorf("taxii: GET %s: giving up after %d attempts: %w", u, attempt+1, err)
			}
			wait = c.backoff(attempt)
			c.log.WarnContext(ctx, "TAXII request failed; retrying", "url", u, "attempt", attempt+1, "err", err, "wait", wait)
		case status >= 200 && status < 300:
			if check != nil {
				if cerr := check(body); cerr != nil {
					if attempt >= c.maxRetries {
						return nil, nil, &BadResponseError{Method: http.MethodGet, URL: u, Reason: cerr.Error()}
					}
					wait = c.backoff(attempt)
					c.log.WarnContext(ctx, "TAXII response unreadable; retrying", "url", u, "attempt", attempt+1, "err", cerr, "wait", wait)
					break
				}
			}
			return hdr, body, nil
		default:
			ra, _ := httpwait.RetryAfter(hdr.Get("Retry-After"), c.now())
			apiErr := newError(http.MethodGet, u, status, body, ra)
			if status != http.StatusTooManyRequests && status < 500 {
				return nil, nil, apiErr // 4xx: asking again changes nothing
			}
			wait = ra
			if wait == 0 {
				wait = c.backoff(attempt)
			}
			if attempt >= c.maxRetries || wait > c.maxWait {
				return nil, nil, apiErr
			}
			c.log.WarnContext(ctx, "TAXII server busy or failing; retrying", "url", u, "status", status, "attempt", attempt+1, "wait", wait)
		}
		if err := c.sleep(ctx, wait); err != nil {
			return nil, nil, fmt.Errorf("taxii: GET %s: waiting to retry: %w", u, err)
		}
	}
}

// attempt is one HTTP exchange. shown is the URL errors name.
func (c *Client) attempt(ctx context.Context, full, shown string, buf *bytes.Buffer) (http.Header, []byte, int, error) {
	actx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodGet, full, nil)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("building request: %w", err)
	}
	req.Header.Set("Accept", MediaType)
	req.Header.Set("User-Agent", "defenderbot")
	if c.auth != "" {
		req.Header.Set("Authorization", c.auth)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		// *url.Error repeats the URL with its query; say it once, plainly.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, nil, 0, err
	}
	defer resp.Body.Close() //nolint:errcheck // read-only
	limit := c.maxPage
	if resp.StatusCode >= 300 {
		limit = maxErrorBody
	}
	buf.Reset()
	_, err = buf.ReadFrom(io.LimitReader(resp.Body, limit+1))
	body := buf.Bytes()
	if err != nil {
		if resp.StatusCode >= 300 {
			// The status is what matters; a short error body is enough.
			return resp.Header, body, resp.StatusCode, nil
		}
		return nil, nil, 0, fmt.Errorf("reading the response (cut off?): %w", err)
	}
	if int64(len(body)) > limit {
		if resp.StatusCode >= 300 {
			return resp.Header, body[:limit], resp.StatusCode, nil
		}
		return nil, nil, 0, &BadResponseError{Method: http.MethodGet, URL: shown,
			Reason: fmt.Sprintf("page larger than %d bytes: ask for smaller pages (iocs.taxii.page_size)", limit)}
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if err := checkMediaType(resp.Header.Get("Content-Type")); err != nil {
			return nil, nil, 0, &BadResponseError{Method: http.MethodGet, URL: shown, Reason: err.Error()}
		}
	}
	return resp.Header, body, resp.StatusCode, nil
}

// checkMediaType accepts TAXII 2.1 (or unversioned TAXII, meaning the
// latest) and plain JSON, which some servers send; an HTML login page from
// a proxy, say, is refused by name.
func checkMediaType(ct string) error {
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return fmt.Errorf("Content-Type %q is not application/taxii+json", ct)
	}
	switch mt {
	case "application/taxii+json":
		if v, ok := params["version"]; ok && v != "2.1" {
			return fmt.Errorf("the server speaks TAXII %s, not 2.1", v)
		}
		return nil
	case "application/json":
		return nil
	}
	return fmt.Errorf("Content-Type %q is not application/taxii+json", ct)
}

// backoff is 1s, 2s, 4s... capped at 30s and at maxWait.
func (c *Client) backoff(attempt int) time.Duration {
	d := time.Second << min(attempt, 5)
	return min(d, 30*time.Second, c.maxWait)
}
