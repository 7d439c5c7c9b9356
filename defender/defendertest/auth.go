package defendertest

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"
)

// mdeResources are the resource identifiers that carry WindowsDefenderATP
// roles; a token for anything else has no roles (and the API answers 403).
var mdeResources = []string{
	"https://api.securitycenter.microsoft.com",
	"https://securitycenter.onmicrosoft.com/windowsatpservice",
	"https://api.securitycenter.windows.com",
}

func isMDEResource(res string) bool {
	res = strings.TrimSuffix(strings.ToLower(res), "/")
	for _, r := range mdeResources {
		if res == r {
			return true
		}
	}
	return false
}

// rolesForLocked returns the roles and audience of a token for resource:
// WindowsDefenderATP roles for Defender, SecurityAlert roles for Graph, none
// for anything else.
func (s *Server) rolesForLocked(resource string) ([]string, string) {
	switch {
	case isMDEResource(resource):
		return append([]string(nil), s.cfg.roles...), audienceMDE
	case isGraphResource(resource):
		return s.graphRolesLocked(), audienceGraph
	}
	return nil, ""
}

// aadError builds an Entra ID (AADSTS) error body.
func aadError(status int, errName string, code int, desc string) response {
	now := time.Now().UTC()
	trace, corr := uuid.NewString(), uuid.NewString()
	return jsonResponse(status, map[string]any{
		"error": errName,
		"error_description": fmt.Sprintf("AADSTS%d: %s Trace ID: %s Correlation ID: %s Timestamp: %s",
			code, desc, trace, corr, now.Format("2006-01-02 15:04:05Z")),
		"error_codes":    []int{code},
		"timestamp":      now.Format("2006-01-02 15:04:05Z"),
		"trace_id":       trace,
		"correlation_id": corr,
		"error_uri":      fmt.Sprintf("https://login.microsoftonline.com/error?code=%d", code),
	})
}

func knownTenant(tenant string) bool { return strings.EqualFold(tenant, TenantID) }

func (s *Server) openIDConfig(r *http.Request, tenant string) response {
	if !knownTenant(tenant) {
		return aadError(http.StatusBadRequest, "invalid_tenant", 90002,
			fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.", tenant))
	}
	base := baseURL(r) + "/" + TenantID
	return jsonResponse(http.StatusOK, map[string]any{
		"token_endpoint":                        base + "/oauth2/v2.0/token",
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		"jwks_uri":                              base + "/discovery/v2.0/keys",
		"response_modes_supported":              []string{"query", "fragment", "form_post"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
		"scopes_supported":                      []string{"openid", "profile", "email", "offline_access"},
		"issuer":                                base + "/v2.0",
		"request_uri_parameter_supported":       false,
		"authorization_endpoint":                base + "/oauth2/v2.0/authorize",
		"device_authorization_endpoint":         base + "/oauth2/v2.0/devicecode",
		"end_session_endpoint":                  base + "/oauth2/v2.0/logout",
		"tenant_region_scope":                   "EU",
		"cloud_instance_name":                   "microsoftonline.com",
	})
}

func (s *Server) instanceDiscovery(r *http.Request) response {
	if r.Method != http.MethodGet {
		return methodNotAllowed()
	}
	tenant := TenantID
	if ae, err := url.Parse(r.URL.Query().Get("authorization_endpoint")); err == nil {
		if first, _, _ := strings.Cut(strings.TrimPrefix(ae.Path, "/"), "/"); first != "" {
			tenant = first
		}
	}
	host := r.Host
	return jsonResponse(http.StatusOK, map[string]any{
		"tenant_discovery_endpoint": baseURL(r) + "/" + tenant + "/v2.0/.well-known/openid-configuration",
		"api-version":               "1.1",
		"metadata": []map[string]any{{
			"preferred_network": host, "preferred_cache": host, "aliases": []string{host},
		}},
	})
}

// token implements the client credentials grant (v2, or v1 with resource).
// The client secret is compared but never echoed.
func (s *Server) token(r *http.Request, tenant string, body []byte, v1 bool) response {
	if s.state.tokenDown {
		return aadError(http.StatusServiceUnavailable, "temporarily_unavailable", 50012,
			"The service is temporarily unavailable. Please try again later.")
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
		return aadError(http.StatusBadRequest, "invalid_request", 900144,
			"The request body must contain the following parameter: 'grant_type'.")
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return aadError(http.StatusBadRequest, "invalid_request", 900144, "The request body is not a valid form.")
	}
	if !knownTenant(tenant) {
		return aadError(http.StatusBadRequest, "invalid_request", 90002,
			fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.", tenant))
	}
	if gt := form.Get("grant_type"); gt != "client_credentials" {
		if gt == "" {
			return aadError(http.StatusBadRequest, "invalid_request", 900144,
				"The request body must contain the following parameter: 'grant_type'.")
		}
		return aadError(http.StatusBadRequest, "unsupported_grant_type", 70003,
			"The app requested an unsupported grant type.")
	}
	clientID := form.Get("client_id")
	if clientID == "" {
		return aadError(http.StatusBadRequest, "invalid_request", 900144,
			"The request body must contain the following parameter: 'client_id'.")
	}
	if !strings.EqualFold(clientID, ClientID) {
		return aadError(http.StatusBadRequest, "unauthorized_client", 700016,
			fmt.Sprintf("Application with identifier '%s' was not found in the directory '%s'.", clientID, TenantID))
	}
	if form.Get("client_assertion") != "" {
		return aadError(http.StatusUnauthorized, "invalid_client", 700027,
			"Client assertion failed signature validation (the emulator only accepts a client secret).")
	}
	if form.Get("client_secret") == "" {
		return aadError(http.StatusUnauthorized, "invalid_client", 7000216,
			"'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.")
	}
	if form.Get("client_secret") != ClientSecret {
		return aadError(http.StatusUnauthorized, "invalid_client", 7000215,
			fmt.Sprintf("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.", ClientID))
	}

	var roles []string
	var audience string
	if v1 {
		res := form.Get("resource")
		if res == "" {
			return aadError(http.StatusBadRequest, "invalid_request", 900144,
				"The request body must contain the following parameter: 'resource'.")
		}
		roles, audience = s.rolesForLocked(res)
	} else {
		scope := form.Get("scope")
		if strings.TrimSpace(scope) == "" {
			return aadError(http.StatusBadRequest, "invalid_request", 900144,
				"The request body must contain the following parameter: 'scope'.")
		}
		var defaults []string
		for _, sc := range strings.Fields(scope) {
			switch strings.ToLower(sc) {
			case "openid", "offline_access", "profile":
				continue // MSAL always appends these
			}
			if !strings.HasSuffix(sc, "/.default") {
				return aadError(http.StatusBadRequest, "invalid_scope", 1002012,
					fmt.Sprintf("The provided value for scope %s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", sc))
			}
			defaults = append(defaults, strings.TrimSuffix(sc, "/.default"))
		}
		if len(defaults) != 1 {
			return aadError(http.StatusBadRequest, "invalid_scope", 70011,
				"The provided request must include exactly one resource scope with /.default.")
		}
		roles, audience = s.rolesForLocked(defaults[0])
	}

	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return aadError(http.StatusInternalServerError, "server_error", 50000, "Token generation failed.")
	}
	tok := "emu." + base64.RawURLEncoding.EncodeToString(raw)
	now := s.nowLocked()
	lifetime := s.cfg.tokenLifetime
	s.state.tokens[tok] = &token{audience: audience, roles: roles, expires: now.Add(lifetime)}
	s.state.tokensIssued++
	expiresIn := int(lifetime/time.Second) - 1
	if expiresIn < 0 {
		expiresIn = 0
	}
	if v1 {
		return jsonResponse(http.StatusOK, map[string]any{
			"token_type": "Bearer", "expires_in": fmt.Sprint(expiresIn), "ext_expires_in": fmt.Sprint(expiresIn),
			"expires_on": fmt.Sprint(now.Add(lifetime).Unix()), "not_before": fmt.Sprint(now.Unix()),
			"resource": form.Get("resource"), "access_token": tok,
		})
	}
	return jsonResponse(http.StatusOK, map[string]any{
		"token_type": "Bearer", "expires_in": expiresIn, "ext_expires_in": expiresIn, "access_token": tok,
	})
}
