package defendertest_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"
	"github.com/defenderbot/defenderbot/defender/defendertest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func newMSAL(t *testing.T, s *defendertest.Server, secret string) confidential.Client {
	t.Helper()
	t.Setenv("MSAL_FORCE_REGION", "")
	cred, err := confidential.NewCredFromSecret(secret)
	require.NoError(t, err)
	c, err := confidential.New(s.Authority(), defendertest.ClientID, cred,
		confidential.WithHTTPClient(s.HTTPClient()), confidential.WithInstanceDiscovery(false))
	require.NoError(t, err)
	return c
}

func TestMSALClientCredentials(t *testing.T) {
	s := newServer(t)
	c := newMSAL(t, s, defendertest.ClientSecret)
	ctx := context.Background()

	res, err := c.AcquireTokenByCredential(ctx, []string{defendertest.Scope})
	require.NoError(t, err)
	require.NotEmpty(t, res.AccessToken)
	assert.WithinDuration(t, time.Now().Add(time.Hour), res.ExpiresOn, 2*time.Minute)
	assert.Equal(t, 1, s.TokensIssued())

	// MSAL caches the token: no second token request.
	res2, err := c.AcquireTokenByCredential(ctx, []string{defendertest.Scope})
	require.NoError(t, err)
	assert.Equal(t, res.AccessToken, res2.AccessToken)
	assert.Equal(t, 1, s.TokensIssued())

	r := call(t, s, res.AccessToken, http.MethodGet, "/api/machines/"+machineID, nil)
	require.Equal(t, http.StatusOK, r.status, string(r.raw))
	assert.Equal(t, machineID, r.json["id"])

	// The token request MSAL sent carries the OIDC scopes it always adds.
	var tokenReq *defendertest.Request
	for _, rq := range s.Requests() {
		if rq.API == defendertest.APIToken {
			rq := rq
			tokenReq = &rq
		}
	}
	require.NotNil(t, tokenReq)
	form, err := url.ParseQuery(string(tokenReq.Body))
	require.NoError(t, err)
	assert.Contains(t, form.Get("scope"), "openid")
	assert.Equal(t, "client_credentials", form.Get("grant_type"))
}

func TestMSALWrongSecret(t *testing.T) {
	s := newServer(t)
	c := newMSAL(t, s, "not-the-secret")
	_, err := c.AcquireTokenByCredential(context.Background(), []string{defendertest.Scope})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "AADSTS7000215")
	assert.NotContains(t, err.Error(), "not-the-secret")
	assert.Equal(t, 0, s.TokensIssued())
}

func TestTokenEndpointErrors(t *testing.T) {
	good := func() url.Values {
		return url.Values{"grant_type": {"client_credentials"}, "client_id": {defendertest.ClientID},
			"client_secret": {defendertest.ClientSecret}, "scope": {defendertest.Scope}}
	}
	tests := []struct {
		name   string
		edit   func(url.Values)
		status int
		err    string
		code   float64
	}{
		{"wrong secret", func(v url.Values) { v.Set("client_secret", "nope") }, 401, "invalid_client", 7000215},
		{"missing secret", func(v url.Values) { v.Del("client_secret") }, 401, "invalid_client", 7000216},
		{"unknown client", func(v url.Values) { v.Set("client_id", "22222222-2222-2222-2222-222222222222") }, 400, "unauthorized_client", 700016},
		{"bad grant", func(v url.Values) { v.Set("grant_type", "password") }, 400, "unsupported_grant_type", 70003},
		{"missing scope", func(v url.Values) { v.Del("scope") }, 400, "invalid_request", 900144},
		{"scope without .default", func(v url.Values) { v.Set("scope", "Machine.Isolate") }, 400, "invalid_scope", 1002012},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t)
			form := good()
			tt.edit(form)
			res, tok := getToken(t, s, form)
			assert.Equal(t, tt.status, res.status, string(res.raw))
			assert.Empty(t, tok)
			assert.Equal(t, tt.err, res.json["error"])
			assert.Equal(t, []any{tt.code}, res.json["error_codes"])
			assert.NotContains(t, string(res.raw), defendertest.ClientSecret)
			assert.Equal(t, 0, s.TokensIssued())
		})
	}
}

func TestTokenUnknownTenant(t *testing.T) {
	s := newServer(t)
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet,
		s.URL+"/99999999-0000-0000-0000-000000000000/v2.0/.well-known/openid-configuration", nil)
	require.NoError(t, err)
	res := send(t, s, req)
	assert.Equal(t, http.StatusBadRequest, res.status)
	assert.Equal(t, "invalid_tenant", res.json["error"])
}

func TestOpenIDConfigurationAndDiscovery(t *testing.T) {
	s := newServer(t)
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet,
		s.URL+"/"+defendertest.TenantID+"/v2.0/.well-known/openid-configuration", nil)
	require.NoError(t, err)
	res := send(t, s, req)
	require.Equal(t, http.StatusOK, res.status)
	assert.Equal(t, s.Authority()+"/oauth2/v2.0/token", res.json["token_endpoint"])
	assert.Equal(t, s.Authority()+"/v2.0", res.json["issuer"])
	assert.Equal(t, s.Authority()+"/oauth2/v2.0/authorize", res.json["authorization_endpoint"])

	req, err = http.NewRequestWithContext(context.Background(), http.MethodGet, s.URL+"/common/discovery/instance?api-version=1.1&authorization_endpoint="+
		url.QueryEscape(s.Authority()+"/oauth2/v2.0/authorize"), nil)
	require.NoError(t, err)
	res = send(t, s, req)
	require.Equal(t, http.StatusOK, res.status)
	assert.Equal(t, s.Authority()+"/v2.0/.well-known/openid-configuration", res.json["tenant_discovery_endpoint"])
}

func TestV1TokenEndpoint(t *testing.T) {
	s := newServer(t)
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {defendertest.ClientID},
		"client_secret": {defendertest.ClientSecret}, "resource": {"https://api.securitycenter.microsoft.com"}}
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, s.Authority()+"/oauth2/token",
		stringsReader(form.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res := send(t, s, req)
	require.Equal(t, http.StatusOK, res.status, string(res.raw))
	tok := res.json["access_token"].(string)
	assert.Equal(t, "3599", res.json["expires_in"])
	assert.Equal(t, http.StatusOK, call(t, s, tok, http.MethodGet, "/api/machines", nil).status)
}

func TestTokenResponseShape(t *testing.T) {
	s := newServer(t, defendertest.WithTokenLifetime(10*time.Minute))
	res, tok := getToken(t, s, nil)
	require.Equal(t, http.StatusOK, res.status)
	assert.NotEmpty(t, tok)
	assert.Equal(t, "Bearer", res.json["token_type"])
	assert.Equal(t, float64(599), res.json["expires_in"])
	assert.Equal(t, float64(599), res.json["ext_expires_in"])
	assert.NotContains(t, res.json, "scope", "MSAL rejects a scope list that lacks the OIDC scopes")
}

func TestWrongResourceTokenHasNoRoles(t *testing.T) {
	s := newServer(t)
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {defendertest.ClientID},
		"client_secret": {defendertest.ClientSecret}, "scope": {"https://api.security.microsoft.com/.default"}}
	res, tok := getToken(t, s, form)
	require.Equal(t, http.StatusOK, res.status)
	r := call(t, s, tok, http.MethodGet, "/api/machines", nil)
	requireError(t, r, http.StatusForbidden, "Forbidden")
	assert.Contains(t, r.errMessage(), "Missing application roles. API required roles: Machine.Read.All,Machine.ReadWrite.All, application roles: .")
}

func TestAPIAuthentication(t *testing.T) {
	s := newServer(t)
	tok := mustToken(t, s)
	requireError(t, call(t, s, "", http.MethodGet, "/api/machines", nil), http.StatusUnauthorized, "Unauthorized")
	requireError(t, call(t, s, "forged", http.MethodGet, "/api/machines", nil), http.StatusUnauthorized, "Unauthorized")
	require.Equal(t, http.StatusOK, call(t, s, tok, http.MethodGet, "/api/machines", nil).status)

	// Basic instead of Bearer
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, s.URL+"/api/machines", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Basic "+tok)
	requireError(t, send(t, s, req), http.StatusUnauthorized, "Unauthorized")

	s.Advance(time.Hour)
	requireError(t, call(t, s, tok, http.MethodGet, "/api/machines", nil), http.StatusUnauthorized, "Unauthorized")

	tok2 := mustToken(t, s)
	require.Equal(t, http.StatusOK, call(t, s, tok2, http.MethodGet, "/api/machines", nil).status)
	s.ExpireTokens()
	requireError(t, call(t, s, tok2, http.MethodGet, "/api/machines", nil), http.StatusUnauthorized, "Unauthorized")
	assert.Equal(t, http.StatusOK, call(t, s, mustToken(t, s), http.MethodGet, "/api/machines", nil).status)
	assert.Equal(t, 3, s.TokensIssued())
}

func TestTokenEndpointDown(t *testing.T) {
	s := newServer(t)
	s.SetTokenEndpointDown(true)
	res, tok := getToken(t, s, nil)
	assert.Equal(t, http.StatusServiceUnavailable, res.status)
	assert.Empty(t, tok)
	assert.Equal(t, "temporarily_unavailable", res.json["error"])
	s.SetTokenEndpointDown(false)
	mustToken(t, s)
}

func TestRoles(t *testing.T) {
	s := newServer(t, defendertest.WithRoles(defendertest.RoleMachineReadAll))
	tok := mustToken(t, s)
	assert.Equal(t, http.StatusOK, call(t, s, tok, http.MethodGet, "/api/machines", nil).status)
	r := call(t, s, tok, http.MethodPost, "/api/machines/"+machineID+"/isolate", map[string]string{"Comment": "x", "IsolationType": "Full"})
	requireError(t, r, http.StatusForbidden, "Forbidden")
	assert.Contains(t, r.errMessage(), "API required roles: Machine.Isolate, application roles: Machine.Read.All.")
	assert.Empty(t, s.MachineActions())

	// roles are fixed when a token is issued
	s.SetRoles(defendertest.RoleMachineIsolate)
	r = call(t, s, tok, http.MethodPost, "/api/machines/"+machineID+"/isolate", map[string]string{"Comment": "x"})
	requireError(t, r, http.StatusForbidden, "Forbidden")
	tok = mustToken(t, s)
	r = call(t, s, tok, http.MethodPost, "/api/machines/"+machineID+"/isolate", map[string]string{"Comment": "x"})
	assert.Equal(t, http.StatusCreated, r.status)
	requireError(t, call(t, s, tok, http.MethodGet, "/api/indicators", nil), http.StatusForbidden, "Forbidden")
}
