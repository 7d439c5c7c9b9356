package defender

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"
)

// TokenProvider supplies bearer tokens for the Defender API. The default
// provider uses MSAL's client-credentials flow with its in-memory cache.
type TokenProvider interface {
	Token(ctx context.Context) (string, error)
}

// RefreshingTokenProvider is a TokenProvider that can bypass its cache after
// an API rejected a token (401: expired or revoked). Clients use RefreshToken
// when a provider implements it.
type RefreshingTokenProvider interface {
	TokenProvider
	RefreshToken(ctx context.Context, stale string) (string, error)
}

// microsoftAuthorityHosts are the Microsoft Entra hosts MSAL knows; only for
// these is instance discovery left on. Any other host (the emulator, a proxy)
// would make MSAL ask login.microsoftonline.com about it.
func microsoftAuthorityHost(host string) bool {
	switch strings.ToLower(host) {
	case "login.microsoftonline.com", "login.microsoft.com", "login.windows.net", "sts.windows.net",
		"login.microsoftonline.us", "login-us.microsoftonline.com", "login.usgovcloudapi.net",
		"login.partner.microsoftonline.cn", "login.chinacloudapi.cn", "login.microsoftonline.de",
		"login.sovcloud-identity.fr", "login.sovcloud-identity.de", "login.sovcloud-identity.sg":
		return true
	}
	return false
}

// msalProvider gets app tokens with MSAL for Go (apps/confidential).
type msalProvider struct {
	newClient func() (confidential.Client, error)
	scopes    []string
	secret    string // only to scrub it from error text
	tenant    string

	mu     sync.Mutex
	client confidential.Client
}

// observedHTTP is the HTTP client given to MSAL: it reports token-endpoint
// calls to the Observer under APIToken (cache hits make no call).
type observedHTTP struct {
	hc  *http.Client
	obs Observer
	now func() time.Time
}

func (o observedHTTP) Do(r *http.Request) (*http.Response, error) {
	start := o.now()
	resp, err := o.hc.Do(r)
	status := 0
	if err == nil {
		status = resp.StatusCode
	}
	o.obs.ObserveCall(APIToken, r.Method, status, o.now().Sub(start))
	return resp, err
}

func (o observedHTTP) CloseIdleConnections() { o.hc.CloseIdleConnections() }

func newMSALProvider(cfg Config, hc *http.Client, obs Observer) (*msalProvider, error) {
	u, err := url.Parse(cfg.AuthorityHost)
	if err != nil {
		return nil, invalid("AuthorityHost", "is not a URL")
	}
	authority := strings.TrimSuffix(cfg.AuthorityHost, "/") + "/" + cfg.TenantID
	opts := []confidential.Option{
		confidential.WithHTTPClient(observedHTTP{hc: hc, obs: obs, now: time.Now}),
		// Ignore MSAL_FORCE_REGION: a regional STS is an explicit deployment
		// choice, and the variable must never redirect tests or the emulator.
		confidential.WithAzureRegion("DisableMsalForceRegion"),
	}
	if !microsoftAuthorityHost(u.Host) {
		opts = append(opts, confidential.WithInstanceDiscovery(false))
	}
	secret := cfg.ClientSecret
	clientID := cfg.ClientID
	p := &msalProvider{
		scopes: []string{cfg.Scope},
		secret: secret,
		tenant: cfg.TenantID,
		newClient: func() (confidential.Client, error) {
			cred, err := confidential.NewCredFromSecret(secret)
			if err != nil {
				return confidential.Client{}, err
			}
			return confidential.New(authority, clientID, cred, opts...)
		},
	}
	c, err := p.newClient()
	if err != nil {
		return nil, fmt.Errorf("defender: %w: MSAL client for tenant %s: %s", ErrInvalidArgument, cfg.TenantID, p.scrub(err))
	}
	p.client = c
	return p, nil
}

// NewTokenProvider returns the MSAL client-credentials provider that New
// uses, for cfg.Scope: another resource of the same app registration (for
// example Microsoft Graph, https://graph.microsoft.com/.default) gets its
// tokens from here rather than from a second copy of the MSAL set-up. Only
// AuthorityHost, TenantID, ClientID, ClientSecret and Scope are read, and
// all are required. Options WithHTTPClient and
// WithObserver apply (token calls are observed under APIToken).
func NewTokenProvider(cfg Config, opts ...Option) (RefreshingTokenProvider, error) {
	s, err := applyOptions(opts)
	if err != nil {
		return nil, err
	}
	if cfg.AuthorityHost == "" {
		return nil, invalid("AuthorityHost", "is required")
	}
	if cfg.Scope == "" {
		return nil, invalid("Scope", "is required")
	}
	if _, err := validateHTTPSURL("AuthorityHost", cfg.AuthorityHost, false); err != nil {
		return nil, err
	}
	if err := validateCredentials(cfg); err != nil {
		return nil, err
	}
	if s.hc == nil {
		s.hc = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	if s.obs == nil {
		s.obs = nopObserver{}
	}
	return newMSALProvider(cfg, s.hc, s.obs)
}

// Token returns a cached token or fetches a new one.
func (p *msalProvider) Token(ctx context.Context) (string, error) {
	p.mu.Lock()
	c := p.client
	p.mu.Unlock()
	return p.acquire(ctx, c)
}

// RefreshToken discards MSAL's cache (a new client has an empty one) unless
// another goroutine already replaced the stale token.
func (p *msalProvider) RefreshToken(ctx context.Context, stale string) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if tok, err := p.acquire(ctx, p.client); err == nil && tok != stale {
		return tok, nil
	}
	c, err := p.newClient()
	if err != nil {
		return "", fmt.Errorf("defender: %w: %s", ErrAuthentication, p.scrub(err))
	}
	p.client = c
	return p.acquire(ctx, c)
}

func (p *msalProvider) acquire(ctx context.Context, c confidential.Client) (string, error) {
	res, err := c.AcquireTokenByCredential(ctx, p.scopes)
	if err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("defender: %w: token for tenant %s: %w", ErrAuthentication, p.tenant, ctx.Err())
		}
		// MSAL's error is not wrapped: its type carries the token request,
		// whose body holds the client secret.
		return "", fmt.Errorf("defender: %w: token for tenant %s: %s", ErrAuthentication, p.tenant, p.scrub(err))
	}
	if res.AccessToken == "" {
		return "", fmt.Errorf("defender: %w: token for tenant %s: empty access token", ErrAuthentication, p.tenant)
	}
	return res.AccessToken, nil
}

// scrub renders err without the client secret, in case a server echoes it.
func (p *msalProvider) scrub(err error) string {
	s := err.Error()
	if p.secret != "" {
		s = strings.ReplaceAll(s, p.secret, "[REDACTED]")
		if q := url.QueryEscape(p.secret); q != p.secret {
			s = strings.ReplaceAll(s, q, "[REDACTED]")
		}
	}
	return s
}

// CheckToken obtains a token (from cache or the authority). It is the
// readiness probe for Defender credentials.
func (c *Client) CheckToken(ctx context.Context) error {
	_, err := c.token(ctx)
	return err
}

// token asks the provider for a token, bounded by the per-attempt timeout.
func (c *Client) token(ctx context.Context) (string, error) { return c.rest.Token(ctx) }
