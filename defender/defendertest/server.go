// Package defendertest is an in-process emulator of the Microsoft Defender
// for Endpoint API and of the Azure AD (Entra ID) token endpoint that issues
// its tokens. It follows Microsoft's documented behaviour (paths, status
// codes, bodies, roles, rate limits) so that the defender client and every
// other package can be tested without Microsoft, and it doubles as the
// standalone `defenderbot emulator`.
//
// It owns nothing of the product; it must not import the defender package
// (it spells Microsoft's API independently, so that the client is tested
// against the documentation, not against itself) nor bot, approval or store.
package defendertest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/defenderbot/defenderbot/defender"
)

// Option configures a Server.
type Option func(*config)

type config struct {
	toInProgress   time.Duration
	toFinal        time.Duration
	roles          []string
	duplicate      DuplicateBehavior
	rateLimits     bool
	indicatorLimit int
	tokenLifetime  time.Duration
	pageSize       int
	packageURITTL  time.Duration
}

func defaultConfig() config {
	return config{
		toInProgress:   30 * time.Second,
		toFinal:        2 * time.Minute,
		roles:          DefaultRoles(),
		duplicate:      DuplicateReject,
		rateLimits:     true,
		indicatorLimit: 15000,
		tokenLifetime:  time.Hour,
		pageSize:       10000,
		packageURITTL:  10 * time.Minute,
	}
}

// WithActionTimings sets how long (emulated time) after creation a machine
// action turns InProgress and then final. Defaults: 30s and 2m.
func WithActionTimings(toInProgress, toFinal time.Duration) Option {
	return func(c *config) {
		c.toInProgress, c.toFinal = toInProgress, toFinal
		if c.toFinal < c.toInProgress {
			c.toFinal = c.toInProgress
		}
	}
}

// WithRoles sets the application roles carried by issued tokens. Default:
// DefaultRoles().
func WithRoles(roles ...string) Option {
	return func(c *config) { c.roles = append([]string(nil), roles...) }
}

// WithDuplicateBehavior chooses what a duplicate machine action request gets.
func WithDuplicateBehavior(b DuplicateBehavior) Option {
	return func(c *config) { c.duplicate = b }
}

// WithRateLimits turns Microsoft's per-API rate limits on (default) or off.
func WithRateLimits(on bool) Option {
	return func(c *config) { c.rateLimits = on }
}

// WithIndicatorLimit sets the tenant's cap on active indicators (default 15000).
func WithIndicatorLimit(n int) Option {
	return func(c *config) { c.indicatorLimit = n }
}

// WithTokenLifetime sets the lifetime of issued tokens (default 1h).
func WithTokenLifetime(d time.Duration) Option {
	return func(c *config) { c.tokenLifetime = d }
}

// WithPageSize sets the server-side page size of collections (default and
// maximum 10000); a smaller size makes paging with @odata.nextLink testable.
func WithPageSize(n int) Option {
	return func(c *config) {
		if n > 0 && n <= 10000 {
			c.pageSize = n
		}
	}
}

// Server is the emulator. All methods are safe for concurrent use.
type Server struct {
	// URL is the base URL, "https://127.0.0.1:PORT" without a trailing
	// slash: both the API base and the authority host. Set by Start.
	URL string

	handler http.Handler
	srv     *http.Server
	client  *http.Client
	caPEM   []byte

	mu    sync.Mutex
	cfg   config
	state state
}

// New returns an emulator that is not listening yet: serve s.Handler()
// yourself or call Start.
func New(opts ...Option) *Server {
	s := &Server{cfg: defaultConfig()}
	for _, o := range opts {
		o(&s.cfg)
	}
	s.state = newState()
	s.handler = http.HandlerFunc(s.serveHTTP)
	return s
}

// TB is the part of testing.TB that NewServer needs. It is declared here so
// that the emulator, which the production binary serves (`defenderbot
// emulator`, `defenderbot demo`), does not link the testing package.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Cleanup(func())
}

// NewServer starts an emulator on 127.0.0.1 with a fresh self-signed TLS
// certificate and closes it when the test ends.
func NewServer(tb TB, opts ...Option) *Server {
	tb.Helper()
	s := New(opts...)
	if err := s.Start(nil); err != nil {
		tb.Fatalf("defendertest: %v", err)
	}
	tb.Cleanup(s.Close)
	return s
}

// Handler returns the emulator's HTTP handler (token endpoints and API).
func (s *Server) Handler() http.Handler { return s.handler }

// Start serves the emulator over TLS on l (a new 127.0.0.1:0 listener when l
// is nil) in the background, with a self-signed certificate valid for
// 127.0.0.1, ::1, localhost and the listener's address. It sets s.URL.
func (s *Server) Start(l net.Listener) error {
	if s.srv != nil {
		return errors.New("emulator already started")
	}
	if l == nil {
		var err error
		l, err = net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("listen: %w", err)
		}
	}
	addr, ok := l.Addr().(*net.TCPAddr)
	if !ok {
		return fmt.Errorf("listener address %s is not TCP", l.Addr())
	}
	cert, caPEM, err := selfSignedCert(addr.IP)
	if err != nil {
		return fmt.Errorf("generate certificate: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	tlsCfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	s.srv = &http.Server{Handler: s.handler, TLSConfig: tlsCfg, ReadHeaderTimeout: 10 * time.Second}
	s.caPEM = caPEM
	s.client = &http.Client{Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 32, // tests hammer one host concurrently; avoid a TLS handshake per request
	}}
	host := addr.IP.String()
	if addr.IP.IsUnspecified() {
		host = "127.0.0.1"
	}
	s.URL = "https://" + net.JoinHostPort(host, fmt.Sprint(addr.Port))
	go func() { _ = s.srv.Serve(tls.NewListener(l, tlsCfg)) }()
	return nil
}

// Close stops the server, waiting briefly for in-flight requests.
func (s *Server) Close() {
	if s.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		_ = s.srv.Close()
	}
	s.client.CloseIdleConnections()
}

// HTTPClient returns a client that trusts the emulator's certificate.
func (s *Server) HTTPClient() *http.Client { return s.client }

// ClientConfig is a complete defender.Config for this emulator: its URL as
// API and authority, its app registration, and the timings config.Default
// gives (30 s per attempt, 5 retries, waits of at most a minute).
func (s *Server) ClientConfig() defender.Config {
	return defender.Config{BaseURL: s.URL, AuthorityHost: s.URL, TenantID: TenantID, ClientID: ClientID,
		ClientSecret: ClientSecret, Scope: defender.Scope, Timeout: 30 * time.Second, MaxRetries: 5, MaxBackoff: time.Minute}
}

// CACertPEM returns the PEM of the emulator's self-signed certificate, for
// clients that must trust it (SSL_CERT_FILE).
func (s *Server) CACertPEM() []byte { return append([]byte(nil), s.caPEM...) }

// BaseURL returns URL with a trailing slash.
func (s *Server) BaseURL() string { return s.URL + "/" }

// Authority returns the MSAL authority URL: URL + "/" + TenantID.
func (s *Server) Authority() string { return s.URL + "/" + TenantID }

// Now returns the emulated time: the real time plus every Advance.
func (s *Server) Now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nowLocked()
}

func (s *Server) nowLocked() time.Time {
	return time.Now().UTC().Add(s.state.offset).Truncate(100 * time.Nanosecond)
}

// Advance moves the emulated clock forward by d (machine actions progress,
// tokens and indicators expire, rate windows slide).
func (s *Server) Advance(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d > 0 {
		s.state.offset += d
	}
}

// SetRoles changes the roles of tokens issued from now on.
func (s *Server) SetRoles(roles ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cfg.roles = append([]string(nil), roles...)
}

// SetActionOutcome makes actions on machineID end with final ("Succeeded",
// "Failed" or "TimeOut") instead of Succeeded.
func (s *Server) SetActionOutcome(machineID, final string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.state.outcomes[strings.ToLower(machineID)] = final
}

// ExpireTokens makes every token issued so far invalid (401).
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.state.tokens {
		t.revoked = true
	}
}

// SetTokenEndpointDown makes the token endpoint answer 503 (or work again).
func (s *Server) SetTokenEndpointDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.state.tokenDown = down
}

// TokensIssued returns how many access tokens the emulator has issued.
func (s *Server) TokensIssued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state.tokensIssued
}

// InjectFault adds a fault; faults are checked in the order they were added.
func (s *Server) InjectFault(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.Count == 0 {
		f.Count = 1
	}
	s.state.faults = append(s.state.faults, &f)
}

// ClearFaults removes every injected fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.state.faults = nil
}

// Requests returns a copy of every request received, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.state.requests))
	for i, r := range s.state.requests {
		r.Header = r.Header.Clone()
		r.Body = append([]byte(nil), r.Body...)
		out[i] = r
	}
	return out
}

// ResetRequests forgets the recorded requests.
func (s *Server) ResetRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.state.requests = nil
}

// Calls counts recorded requests with this method ("" for any) whose path,
// after the optional /api/v1.0 prefix is normalised to /api, equals path
// case-insensitively.
func (s *Server) Calls(method, path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.state.requests {
		if (method == "" || strings.EqualFold(method, r.Method)) && strings.EqualFold(normalizePath(r.Path), normalizePath(path)) {
			n++
		}
	}
	return n
}
