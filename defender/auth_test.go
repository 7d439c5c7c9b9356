package defender

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	fakeTenant = "tenant1"
	fakeClient = "client-app"
	fakeSecret = "s3cr3t~Value"
)

// fakeAuthority serves the two endpoints MSAL calls when instance discovery
// is off, on the harness's TLS server, and records token requests.
type fakeAuthority struct {
	mu       sync.Mutex
	forms    []url.Values
	issued   atomic.Int32
	failWith string // when set, the token endpoint answers 401 with this body
}

func (f *fakeAuthority) register(t *testing.T, h *harness) {
	h.mux.HandleFunc("GET /"+fakeTenant+"/v2.0/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		base := "https://" + r.Host + "/" + fakeTenant
		reply(200, fmt.Sprintf(`{"authorization_endpoint":"%s/oauth2/v2.0/authorize","token_endpoint":"%s/oauth2/v2.0/token","issuer":"%s/v2.0"}`,
			base, base, base))(w, r)
	})
	h.mux.HandleFunc("POST /"+fakeTenant+"/oauth2/v2.0/token", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		form, err := url.ParseQuery(string(b))
		require.NoError(t, err)
		f.mu.Lock()
		f.forms = append(f.forms, form)
		f.mu.Unlock()
		if f.failWith != "" {
			reply(401, f.failWith)(w, r)
			return
		}
		n := f.issued.Add(1)
		reply(200, fmt.Sprintf(`{"token_type":"Bearer","expires_in":3599,"access_token":"msal-token-%d"}`, n))(w, r)
	})
}

func (f *fakeAuthority) Forms() []url.Values {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]url.Values(nil), f.forms...)
}

func newMSALClient(t *testing.T, h *harness) *Client {
	t.Helper()
	c, err := New(complete(Config{
		BaseURL: h.srv.URL, AuthorityHost: h.srv.URL,
		TenantID: fakeTenant, ClientID: fakeClient, ClientSecret: fakeSecret, Limits: noLimits(),
	}), WithHTTPClient(h.srv.Client()), WithObserver(h.obs))
	require.NoError(t, err)
	return c
}

func TestMSAL_fakeAuthority(t *testing.T) {
	// A forced region would send MSAL to {region}.login.microsoft.com.
	t.Setenv("MSAL_FORCE_REGION", "westeurope")
	h := setup(t)
	auth := &fakeAuthority{}
	auth.register(t, h)
	h.mux.HandleFunc("GET /api/machines/m1", reply(200, `{"id":"m1"}`))
	c := newMSALClient(t, h)

	require.NoError(t, c.CheckToken(t.Context()))
	for range 2 {
		_, err := c.GetMachine(t.Context(), "m1")
		require.NoError(t, err)
	}

	forms := auth.Forms()
	require.Len(t, forms, 1, "MSAL's cache serves later calls")
	h.obs.mu.Lock()
	assert.Contains(t, h.obs.calls, "token POST OK", "token calls are observed")
	h.obs.mu.Unlock()
	assert.Equal(t, "client_credentials", forms[0].Get("grant_type"))
	assert.Equal(t, fakeClient, forms[0].Get("client_id"))
	assert.Equal(t, fakeSecret, forms[0].Get("client_secret"))
	assert.Contains(t, strings.Fields(forms[0].Get("scope")), Scope)

	for _, r := range h.Requests() {
		assert.NotContains(t, r.Path, "discovery/instance", "no instance discovery for a non-Microsoft host")
		if r.Path == "/api/machines/m1" {
			assert.Equal(t, "Bearer msal-token-1", r.Header.Get("Authorization"))
		}
	}
}

func TestMSAL_401FetchesFreshToken(t *testing.T) {
	h := setup(t)
	auth := &fakeAuthority{}
	auth.register(t, h)
	h.mux.HandleFunc("GET /api/alerts/a1", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "Bearer msal-token-1" {
			reply(401, `{"error":{"code":"Unauthorized","message":"token revoked"}}`)(w, r)
			return
		}
		reply(200, `{"id":"a1"}`)(w, r)
	})
	c := newMSALClient(t, h)
	a, err := c.GetAlert(t.Context(), "a1")
	require.NoError(t, err)
	assert.Equal(t, "a1", a.ID)
	assert.Len(t, auth.Forms(), 2, "the cached, rejected token is replaced")
	reqs := h.Requests()
	var auths []string
	for _, r := range reqs {
		if r.Path == "/api/alerts/a1" {
			auths = append(auths, r.Header.Get("Authorization"))
		}
	}
	assert.Equal(t, []string{"Bearer msal-token-1", "Bearer msal-token-2"}, auths)

	// The fresh token is cached for the next call.
	_, err = c.GetAlert(t.Context(), "a1")
	require.NoError(t, err)
	assert.Len(t, auth.Forms(), 2)
}

func TestMSAL_tokenErrorHidesSecret(t *testing.T) {
	h := setup(t)
	auth := &fakeAuthority{failWith: `{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided: ` + fakeSecret + `"}`}
	auth.register(t, h)
	c := newMSALClient(t, h)
	err := c.CheckToken(t.Context())
	require.ErrorIs(t, err, ErrAuthentication)
	assert.Contains(t, err.Error(), "AADSTS7000215")
	assert.NotContains(t, err.Error(), fakeSecret)
	_, err = c.GetMachine(t.Context(), "m1")
	require.ErrorIs(t, err, ErrAuthentication)
	assert.Zero(t, h.countOf("GET", "/api/machines/m1"), "no API call without a token")
}

func TestMicrosoftAuthorityHost(t *testing.T) {
	for _, host := range []string{"login.microsoftonline.com", "LOGIN.MICROSOFTONLINE.US", "login.chinacloudapi.cn", "login.partner.microsoftonline.cn", "login.microsoft.com"} {
		assert.True(t, microsoftAuthorityHost(host), host)
	}
	for _, host := range []string{"127.0.0.1:8443", "localhost", "login.microsoftonline.com:8443", "login.microsoftonline.com.evil.example"} {
		assert.False(t, microsoftAuthorityHost(host), host)
	}
}
