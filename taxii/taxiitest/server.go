// Package taxiitest is an in-process TAXII 2.1 server (OASIS TAXII 2.1,
// with medallion's choices where the specification leaves room): discovery,
// an API root, collections and their objects with paging (more/next),
// added_after, match[type|id|version], the X-TAXII-Date-Added-First/Last
// headers, HTTP Basic and Bearer authentication, and fault injection (429
// with Retry-After, 5xx, slow and cut-off answers). It serves the tests and
// `defenderbot emulator`, so it does not import the testing package.
package taxiitest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// APIRootPath is the path of the server's one API root.
const APIRootPath = "/api1/"

// TB is the part of testing.TB NewServer uses (kept small so that this
// package does not link the testing package into the binary).
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Cleanup(func())
}

// Option configures a Server.
type Option func(*Server)

// WithBasicAuth requires HTTP Basic with this username and password
// (either kind of credentials configured is accepted).
func WithBasicAuth(username, password string) Option {
	return func(s *Server) { s.user, s.pass, s.basic = username, password, true }
}

// WithBearerToken requires "Authorization: Bearer token".
func WithBearerToken(token string) Option {
	return func(s *Server) { s.token = token }
}

// WithMaxPageSize caps the objects per page (default 1000); a larger
// limit gets this many, with more:true.
func WithMaxPageSize(n int) Option {
	return func(s *Server) {
		if n > 0 {
			s.maxPage = n
		}
	}
}

// WithClock sets the clock stamping date_added (default time.Now).
func WithClock(now func() time.Time) Option {
	return func(s *Server) { s.now = now }
}

// WithoutNext makes the server answer more:true without a next token, so
// clients must carry on with added_after = X-TAXII-Date-Added-Last.
func WithoutNext() Option {
	return func(s *Server) { s.noNext = true }
}

// Server is the TAXII server. Its methods are safe for concurrent use.
type Server struct {
	// URL is "http://127.0.0.1:PORT" (no trailing slash), set by Start.
	URL string

	srv     *http.Server
	handler http.Handler

	mu          sync.Mutex
	user, pass  string
	basic       bool
	token       string
	maxPage     int
	noNext      bool
	now         func() time.Time
	lastAdded   time.Time
	collections map[string]*collection
	order       []string
	cursors     map[string]*cursor
	cursorOrder []string
	nextID      int
	faults      []Fault
	requests    []Request
}

// New returns a server that is not listening yet: serve s.Handler()
// yourself or call Start.
func New(opts ...Option) *Server {
	s := &Server{maxPage: 1000, now: time.Now, collections: map[string]*collection{}, cursors: map[string]*cursor{}}
	for _, o := range opts {
		o(s)
	}
	s.handler = http.HandlerFunc(s.serveHTTP)
	return s
}

// NewServer starts a server on 127.0.0.1 and closes it when the test ends.
func NewServer(tb TB, opts ...Option) *Server {
	tb.Helper()
	s := New(opts...)
	if err := s.Start(nil); err != nil {
		tb.Fatalf("taxiitest: %v", err)
	}
	tb.Cleanup(s.Close)
	return s
}

// Handler returns the server's HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Start serves plain HTTP on l (a new 127.0.0.1:0 listener when l is nil)
// in the background and sets URL.
func (s *Server) Start(l net.Listener) error {
	if l == nil {
		var err error
		if l, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return fmt.Errorf("listen: %w", err)
		}
	}
	s.srv = &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second}
	s.URL = "http://" + l.Addr().String()
	go func() { _ = s.srv.Serve(l) }()
	return nil
}

// Close stops the server and drops open connections.
func (s *Server) Close() {
	if s.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := s.srv.Shutdown(ctx); err != nil {
			_ = s.srv.Close()
		}
	}
}

// APIRoot returns the API root URL, with its trailing slash.
func (s *Server) APIRoot() string { return s.URL + APIRootPath }

// Fault is one injected failure, applied to one objects request.
type Fault struct {
	// Status, when set, is answered instead of the page, with a TAXII
	// error body (e.g. 429, 500, 503).
	Status int
	// RetryAfter, when set, is sent as the Retry-After header ("2", or an
	// HTTP date).
	RetryAfter string
	// Delay holds the answer back this long (or until the client gives up).
	Delay time.Duration
	// CutOff sends the page's headers and half its body, then drops the
	// connection.
	CutOff bool
}

// Inject queues faults; each objects request takes the next one.
func (s *Server) Inject(faults ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, faults...)
}

// Request is one request the server received.
type Request struct {
	Method string
	Path   string
	// RawQuery is the query as sent.
	RawQuery string
	Accept   string
	// Auth is "basic", "bearer", "" (none) or "other": never the credentials.
	Auth   string
	Status int
}

// Requests returns a copy of the requests received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// ObjectRequests returns the requests to objects endpoints.
func (s *Server) ObjectRequests() []Request {
	var out []Request
	for _, r := range s.Requests() {
		if len(r.Path) > len("/objects/") && r.Path[len(r.Path)-len("/objects/"):] == "/objects/" {
			out = append(out, r)
		}
	}
	return out
}
