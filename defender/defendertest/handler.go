package defendertest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"
)

// maxBody caps request bodies; 500 indicators fit easily.
const maxBody = 8 << 20

// response is computed under the lock and written after it is released.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	body, readErr := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	segs, segErr := splitPath(r.URL.EscapedPath())
	api := apiName(r.Method, segs)

	s.mu.Lock()
	s.state.requests = append(s.state.requests, Request{
		Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery,
		Header: r.Header.Clone(), Body: append([]byte(nil), body...), API: api, At: s.nowLocked(),
	})
	fault := s.takeFaultLocked(r.Method, r.URL.Path, api)
	s.mu.Unlock()

	if fault != nil && fault.Delay > 0 {
		// Abort without a response if the client gives up: an empty 200
		// written now could still reach it.
		wait(r, fault.Delay, fault.Release)
	}

	var resp response
	switch {
	case fault != nil && fault.Status != 0:
		resp = faultResponse(fault, api)
	case readErr != nil:
		resp = errorResponse(http.StatusBadRequest, "InvalidRequestBody", "Request body could not be read")
	case len(body) > maxBody:
		resp = errorResponse(http.StatusRequestEntityTooLarge, "BadRequest", "Request body is too large")
	case segErr != nil:
		resp = errorResponse(http.StatusBadRequest, "BadRequest", "Invalid request path")
	default:
		s.mu.Lock()
		resp = s.route(r, segs, body)
		s.mu.Unlock()
	}
	if fault != nil && fault.Hold > 0 {
		wait(r, fault.Hold, fault.Release)
	}
	for k, v := range resp.header {
		w.Header()[k] = v
	}
	if resp.body != nil && w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
	}
	w.WriteHeader(resp.status)
	_, _ = w.Write(resp.body)
}

// wait returns after d or once release is closed; if the client gives up
// first, it aborts the handler without a response.
func wait(r *http.Request, d time.Duration, release <-chan struct{}) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-release: // a nil channel never fires
	case <-r.Context().Done():
		panic(http.ErrAbortHandler)
	}
}

// splitPath splits an escaped path into unescaped segments (so that an id
// holding an escaped "/" stays one segment), dropping the leading "".
func splitPath(escaped string) ([]string, error) {
	parts := strings.Split(strings.TrimPrefix(escaped, "/"), "/")
	if len(parts) > 1 && parts[len(parts)-1] == "" {
		parts = parts[:len(parts)-1] // tolerate one trailing slash
	}
	for i, p := range parts {
		u, err := url.PathUnescape(p)
		if err != nil {
			return nil, err
		}
		parts[i] = u
	}
	return parts, nil
}

// apiSegments returns the path after /api or /api/v1.0, or nil.
func apiSegments(segs []string) []string {
	if len(segs) == 0 || !strings.EqualFold(segs[0], "api") {
		return nil
	}
	rest := segs[1:]
	if len(rest) > 0 && strings.EqualFold(rest[0], "v1.0") {
		rest = rest[1:]
	}
	if rest == nil {
		rest = []string{}
	}
	return rest
}

// normalizePath maps /api/v1.0/x to /api/x.
func normalizePath(p string) string {
	lp := strings.ToLower(p)
	if strings.HasPrefix(lp, "/api/v1.0/") || lp == "/api/v1.0" {
		return "/api" + p[len("/api/v1.0"):]
	}
	return p
}

func isTokenPath(segs []string) bool {
	return len(segs) >= 3 && strings.EqualFold(segs[1], "oauth2") && strings.EqualFold(segs[len(segs)-1], "token")
}

func apiName(method string, segs []string) string {
	if isTokenPath(segs) {
		return APIToken
	}
	if isGraphPath(segs) {
		return APIGraphAlerts
	}
	rest := apiSegments(segs)
	if len(rest) == 0 {
		return ""
	}
	switch strings.ToLower(rest[0]) {
	case "machines":
		if len(rest) == 3 && method == http.MethodGet && strings.EqualFold(rest[2], "alerts") {
			return APIAlerts
		}
		if len(rest) >= 3 && method == http.MethodPost {
			return APIMachineActions
		}
		return APIMachines
	case "machineactions":
		if len(rest) == 3 && strings.EqualFold(rest[2], "getpackageuri") {
			return APIPackageURI
		}
		return APIMachineActions
	case "alerts":
		return APIAlerts
	case "indicators":
		if len(rest) == 2 && strings.EqualFold(rest[1], "import") {
			return APIIndicatorImport
		}
		if len(rest) == 2 && strings.EqualFold(rest[1], "batchdelete") {
			return APIIndicatorDelete
		}
		return APIIndicators
	}
	return ""
}

func (s *Server) takeFaultLocked(method, path, api string) *Fault {
	for i, f := range s.state.faults {
		if f.Method != "" && !strings.EqualFold(f.Method, method) {
			continue
		}
		if f.Path != "" && !strings.EqualFold(f.Path, api) && !strings.Contains(strings.ToLower(path), strings.ToLower(f.Path)) {
			continue
		}
		c := *f
		if f.Count > 0 {
			f.Count--
			if f.Count == 0 {
				s.state.faults = append(s.state.faults[:i:i], s.state.faults[i+1:]...)
			}
		}
		return &c
	}
	return nil
}

func faultResponse(f *Fault, api string) response {
	var resp response
	switch {
	case f.Body != "":
		resp = response{status: f.Status, header: http.Header{"Content-Type": {"application/json; charset=utf-8"}}, body: []byte(f.Body)}
	case api == APIToken:
		resp = aadError(f.Status, "temporarily_unavailable", 50012, nonEmpty(f.Message, "The service is temporarily unavailable."))
	case api == APIGraphAlerts:
		resp = graphError(f.Status, nonEmpty(f.Code, graphCode(f.Status)), nonEmpty(f.Message, "Injected fault"))
	default:
		code := f.Code
		if code == "" {
			code = codeForStatus(f.Status)
		}
		resp = errorResponse(f.Status, code, nonEmpty(f.Message, "Injected fault"))
	}
	if f.RetryAfter > 0 {
		resp = withRetryAfter(resp, f.RetryAfter)
	}
	return resp
}

func withRetryAfter(resp response, d time.Duration) response {
	if resp.header == nil {
		resp.header = http.Header{}
	}
	resp.header.Set("Retry-After", fmt.Sprint(int(math.Ceil(d.Seconds()))))
	return resp
}

func codeForStatus(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "BadRequest"
	case http.StatusUnauthorized:
		return "Unauthorized"
	case http.StatusForbidden:
		return "Forbidden"
	case http.StatusNotFound:
		return "NotFound"
	case http.StatusTooManyRequests:
		return "TooManyRequests"
	case http.StatusInternalServerError:
		return "InternalServerError"
	}
	return strings.ReplaceAll(http.StatusText(status), " ", "")
}

func nonEmpty(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Target  string `json:"target"`
	} `json:"error"`
}

// errorResponse builds Microsoft's error envelope; target is a fresh GUID.
func errorResponse(status int, code, msg string) response {
	var e apiError
	e.Error.Code, e.Error.Message, e.Error.Target = code, msg, uuid.NewString()
	b, _ := json.Marshal(e)
	return response{status: status, header: http.Header{"Content-Type": {"application/json; charset=utf-8"}}, body: b}
}

func jsonResponse(status int, v any) response {
	b, err := json.Marshal(v)
	if err != nil {
		return errorResponse(http.StatusInternalServerError, "InternalServerError", "")
	}
	return response{status: status, body: b}
}

// entityResponse renders v with "@odata.context" as its first property.
func entityResponse(status int, context string, v any) response {
	b, err := json.Marshal(v)
	if err != nil || len(b) < 2 || b[0] != '{' {
		return errorResponse(http.StatusInternalServerError, "InternalServerError", "")
	}
	ctx, _ := json.Marshal(context)
	var buf bytes.Buffer
	buf.WriteString(`{"@odata.context":`)
	buf.Write(ctx)
	if len(b) > 2 {
		buf.WriteByte(',')
	}
	buf.Write(b[1:])
	return response{status: status, body: buf.Bytes()}
}

func baseURL(r *http.Request) string { return "https://" + r.Host }

func metadata(r *http.Request, set string) string {
	return baseURL(r) + "/api/$metadata#" + set
}

// route dispatches one request; called with s.mu held.
func (s *Server) route(r *http.Request, segs []string, body []byte) response {
	if len(segs) >= 1 && strings.EqualFold(segs[0], "common") && len(segs) == 3 &&
		strings.EqualFold(segs[1], "discovery") && strings.EqualFold(segs[2], "instance") {
		return s.instanceDiscovery(r)
	}
	if rest := apiSegments(segs); rest != nil {
		return s.routeAPI(r, rest, body)
	}
	if isGraphPath(segs) {
		return s.routeGraph(r, segs[2:], body)
	}
	if isPackageDownloadPath(segs) {
		return s.downloadPackage(r)
	}
	if len(segs) == 4 && strings.EqualFold(segs[1], "v2.0") && strings.EqualFold(segs[2], ".well-known") &&
		strings.EqualFold(segs[3], "openid-configuration") {
		if r.Method != http.MethodGet {
			return methodNotAllowed()
		}
		return s.openIDConfig(r, segs[0])
	}
	if isTokenPath(segs) {
		if r.Method != http.MethodPost {
			return methodNotAllowed()
		}
		switch {
		case len(segs) == 4 && strings.EqualFold(segs[2], "v2.0"):
			return s.token(r, segs[0], body, false)
		case len(segs) == 3:
			return s.token(r, segs[0], body, true)
		}
	}
	return errorResponse(http.StatusNotFound, "NotFound", "Resource not found")
}

func methodNotAllowed() response {
	return errorResponse(http.StatusMethodNotAllowed, "MethodNotAllowed", "The requested HTTP method is not supported by this resource")
}

// endpoint describes one API operation.
type endpoint struct {
	api     string
	roles   []string // any one of them is enough
	handler func(r *http.Request, params []string, body []byte) response
	params  []string
}

var (
	machineReadRoles = []string{RoleMachineReadAll, RoleMachineReadWriteAll}
	alertReadRoles   = []string{RoleAlertReadAll, RoleAlertReadWriteAll}
	tiRoles          = []string{RoleTiReadWrite, RoleTiReadWriteAll}
	// cancelRoles are the roles Microsoft names for cancel (issue #6062's spelling).
	cancelRoles = []string{RoleMachineIsolate, RoleMachineCollectForensics, RoleMachineScan, RoleMachineRestrictExecution,
		RoleMachineStopAndQuarantine, "Machine.Offboard", "Machine.LiveResponse"}
)

// machineActionKinds maps the lower-cased path verb to the action type and role.
var machineActionKinds = map[string]struct{ typ, role string }{
	"isolate":                     {"Isolate", RoleMachineIsolate},
	"unisolate":                   {"Unisolate", RoleMachineIsolate},
	"restrictcodeexecution":       {"RestrictCodeExecution", RoleMachineRestrictExecution},
	"unrestrictcodeexecution":     {"UnrestrictCodeExecution", RoleMachineRestrictExecution},
	"runantivirusscan":            {"RunAntiVirusScan", RoleMachineScan},
	"collectinvestigationpackage": {"CollectInvestigationPackage", RoleMachineCollectForensics},
	"stopandquarantinefile":       {"StopAndQuarantineFile", RoleMachineStopAndQuarantine},
}

// findEndpoint maps method + API path to an endpoint, or an error response.
func (s *Server) findEndpoint(method string, rest []string) (endpoint, *response) {
	notFound := errorResponse(http.StatusNotFound, "NotFound", "Resource not found")
	nma := methodNotAllowed()
	want := func(m string) *response {
		if method != m {
			return &nma
		}
		return nil
	}
	if len(rest) == 0 {
		return endpoint{}, &notFound
	}
	n := len(rest)
	switch strings.ToLower(rest[0]) {
	case "machines":
		switch {
		case n == 1:
			return endpoint{api: APIMachines, roles: machineReadRoles, handler: s.listMachines}, want(http.MethodGet)
		case n == 2:
			return endpoint{api: APIMachines, roles: machineReadRoles, handler: s.getMachine, params: rest[1:]}, want(http.MethodGet)
		case n == 3 && method == http.MethodGet && strings.EqualFold(rest[2], "alerts"):
			return endpoint{api: APIAlerts, roles: alertReadRoles, handler: s.listMachineAlerts, params: rest[1:2]}, nil
		case n == 3:
			kind, ok := machineActionKinds[strings.ToLower(rest[2])]
			if !ok {
				return endpoint{}, &notFound
			}
			return endpoint{api: APIMachineActions, roles: []string{kind.role}, handler: s.createAction,
				params: []string{rest[1], kind.typ}}, want(http.MethodPost)
		}
	case "machineactions":
		switch {
		case n == 1:
			return endpoint{api: APIMachineActions, roles: machineReadRoles, handler: s.listActions}, want(http.MethodGet)
		case n == 2:
			return endpoint{api: APIMachineActions, roles: machineReadRoles, handler: s.getAction, params: rest[1:]}, want(http.MethodGet)
		case n == 3 && strings.EqualFold(rest[2], "getpackageuri"):
			return endpoint{api: APIPackageURI, roles: machineReadRoles, handler: s.getPackageURI, params: rest[1:2]}, want(http.MethodGet)
		case n == 3 && strings.EqualFold(rest[2], "cancel"):
			return endpoint{api: APIMachineActions, roles: cancelRoles, handler: s.cancelAction, params: rest[1:2]}, want(http.MethodPost)
		}
	case "alerts":
		switch {
		case n == 1:
			return endpoint{api: APIAlerts, roles: alertReadRoles, handler: s.listAlerts}, want(http.MethodGet)
		case n == 2 && method == http.MethodPatch:
			return endpoint{api: APIAlerts, roles: []string{RoleAlertReadWriteAll}, handler: s.patchAlert, params: rest[1:]}, nil
		case n == 2:
			return endpoint{api: APIAlerts, roles: alertReadRoles, handler: s.getAlert, params: rest[1:]}, want(http.MethodGet)
		}
	case "indicators":
		switch {
		case n == 1 && method == http.MethodPost:
			return endpoint{api: APIIndicators, roles: tiRoles, handler: s.submitIndicator}, nil
		case n == 1:
			return endpoint{api: APIIndicators, roles: tiRoles, handler: s.listIndicators}, want(http.MethodGet)
		case n == 2 && strings.EqualFold(rest[1], "import"):
			return endpoint{api: APIIndicatorImport, roles: tiRoles, handler: s.importIndicators}, want(http.MethodPost)
		case n == 2 && strings.EqualFold(rest[1], "batchdelete"):
			return endpoint{api: APIIndicatorDelete, roles: tiRoles, handler: s.batchDeleteIndicators}, want(http.MethodPost)
		case n == 2:
			return endpoint{api: APIIndicators, roles: tiRoles, handler: s.deleteIndicator, params: rest[1:]}, want(http.MethodDelete)
		}
	}
	return endpoint{}, &notFound
}

func (s *Server) routeAPI(r *http.Request, rest []string, body []byte) response {
	tok, errResp := s.authenticateLocked(r)
	if errResp != nil {
		return *errResp
	}
	ep, errResp := s.findEndpoint(r.Method, rest)
	if errResp != nil {
		return *errResp
	}
	if !hasAnyRole(tok.roles, ep.roles) {
		return errorResponse(http.StatusForbidden, "Forbidden", fmt.Sprintf(
			"Missing application roles. API required roles: %s, application roles: %s.",
			strings.Join(ep.roles, ","), strings.Join(tok.roles, ",")))
	}
	if retry, limited := s.rateLimitLocked(ep.api); limited {
		return withRetryAfter(errorResponse(http.StatusTooManyRequests, "TooManyRequests",
			fmt.Sprintf("API calls quota exceeded! Maximum admitted for this API: retry in %d seconds.", int(math.Ceil(retry.Seconds())))), retry)
	}
	if r.Method == http.MethodPost || r.Method == http.MethodPatch {
		mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if err != nil || mt != "application/json" {
			return errorResponse(http.StatusUnsupportedMediaType, "UnsupportedMediaType",
				"Content-Type must be application/json")
		}
	}
	return ep.handler(r, ep.params, body)
}

func hasAnyRole(have, want []string) bool {
	for _, w := range want {
		for _, h := range have {
			if strings.EqualFold(h, w) {
				return true
			}
		}
	}
	return false
}

func (s *Server) authenticateLocked(r *http.Request) (*token, *response) {
	unauthorized := func(msg string) *response {
		resp := errorResponse(http.StatusUnauthorized, "Unauthorized", msg)
		resp.header.Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		return &resp
	}
	h := r.Header.Get("Authorization")
	scheme, raw, ok := strings.Cut(h, " ")
	if h == "" {
		return nil, unauthorized("Authorization header is missing.")
	}
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(raw) == "" {
		return nil, unauthorized("Invalid Authorization payload.")
	}
	tok := s.state.tokens[strings.TrimSpace(raw)]
	if tok == nil {
		return nil, unauthorized("Invalid Authorization payload.")
	}
	if tok.revoked || !s.nowLocked().Before(tok.expires) {
		return nil, unauthorized("The access token has expired.")
	}
	if tok.audience == audienceGraph {
		return nil, unauthorized("The access token was issued for another audience.")
	}
	return tok, nil
}

// rate limits per API: Microsoft's documented quotas.
type quota struct {
	perMinute, perHour int
}

var quotas = map[string]quota{
	APIMachineActions:  {100, 1500},
	APIMachines:        {100, 1500},
	APIAlerts:          {100, 1500},
	APIIndicators:      {100, 1500},
	APIIndicatorImport: {30, 0},
	APIIndicatorDelete: {30, 1500},
	APIGraphAlerts:     {150, 0}, // per app per tenant, any operation on alerts
	APIPackageURI:      {2, 120},
}

// rateLimitLocked records a call unless the API's sliding windows are full,
// in which case it returns how long until a slot frees.
func (s *Server) rateLimitLocked(api string) (time.Duration, bool) {
	if !s.cfg.rateLimits {
		return 0, false
	}
	q, ok := quotas[api]
	if !ok {
		return 0, false
	}
	now := s.nowLocked()
	calls := s.state.calls[api]
	// keep the last hour only
	i := 0
	for i < len(calls) && !calls[i].After(now.Add(-time.Hour)) {
		i++
	}
	calls = calls[i:]
	check := func(limit int, window time.Duration) (time.Duration, bool) {
		if limit <= 0 {
			return 0, false
		}
		start := now.Add(-window)
		var in []time.Time
		for _, c := range calls {
			if c.After(start) {
				in = append(in, c)
			}
		}
		if len(in) < limit {
			return 0, false
		}
		wait := in[len(in)-limit].Add(window).Sub(now)
		if wait < time.Second {
			wait = time.Second
		}
		return wait, true
	}
	if wait, limited := check(q.perMinute, time.Minute); limited {
		s.state.calls[api] = calls
		return wait, true
	}
	if wait, limited := check(q.perHour, time.Hour); limited {
		s.state.calls[api] = calls
		return wait, true
	}
	s.state.calls[api] = append(calls, now)
	return 0, false
}
