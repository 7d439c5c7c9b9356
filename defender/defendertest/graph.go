package defendertest

// This file emulates the Microsoft Graph security API's alerts_v2
// (https://graph.microsoft.com/v1.0/security/alerts_v2): list with OData
// options, get, PATCH and comments, under a token for Graph's audience. The
// shapes follow Microsoft's v1.0 reference (beyond_seed_apis.md §1).

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Microsoft Graph identity and roles.
const (
	// GraphScope is the scope a client requests for Graph tokens.
	GraphScope = "https://graph.microsoft.com/.default"
	// APIGraphAlerts names the alerts_v2 API for Fault.Path and rate limits.
	APIGraphAlerts = "graph_alerts"

	RoleSecurityAlertReadAll      = "SecurityAlert.Read.All"
	RoleSecurityAlertReadWriteAll = "SecurityAlert.ReadWrite.All"
)

// Token audiences.
const (
	audienceMDE   = "mde"
	audienceGraph = "graph"
)

// DefaultGraphRoles returns the Graph roles granted by default.
func DefaultGraphRoles() []string {
	return []string{RoleSecurityAlertReadAll, RoleSecurityAlertReadWriteAll}
}

func isGraphResource(res string) bool {
	switch strings.TrimSuffix(strings.ToLower(res), "/") {
	case "https://graph.microsoft.com", "00000003-0000-0000-c000-000000000000":
		return true
	}
	return false
}

// GraphAlert is the emulator's copy of Graph's security alert entity.
type GraphAlert struct {
	ODataType             string          `json:"@odata.type"`
	ID                    string          `json:"id"`
	ProviderAlertID       string          `json:"providerAlertId"`
	IncidentID            string          `json:"incidentId"`
	Status                string          `json:"status"`
	Severity              string          `json:"severity"`
	Classification        string          `json:"classification"`
	Determination         string          `json:"determination"`
	ServiceSource         string          `json:"serviceSource"`
	DetectionSource       string          `json:"detectionSource"`
	DetectorID            string          `json:"detectorId"`
	TenantID              string          `json:"tenantId"`
	Title                 string          `json:"title"`
	Description           string          `json:"description"`
	RecommendedActions    string          `json:"recommendedActions"`
	Category              string          `json:"category"`
	AssignedTo            *string         `json:"assignedTo"`
	AlertWebURL           string          `json:"alertWebUrl"`
	IncidentWebURL        string          `json:"incidentWebUrl"`
	ActorDisplayName      *string         `json:"actorDisplayName"`
	ThreatDisplayName     *string         `json:"threatDisplayName"`
	ThreatFamilyName      *string         `json:"threatFamilyName"`
	MitreTechniques       []string        `json:"mitreTechniques"`
	CreatedDateTime       time.Time       `json:"createdDateTime"`
	LastUpdateDateTime    time.Time       `json:"lastUpdateDateTime"`
	ResolvedDateTime      *time.Time      `json:"resolvedDateTime"`
	FirstActivityDateTime time.Time       `json:"firstActivityDateTime"`
	LastActivityDateTime  time.Time       `json:"lastActivityDateTime"`
	Comments              []GraphComment  `json:"comments"`
	Evidence              []GraphEvidence `json:"evidence"`
	SystemTags            []string        `json:"systemTags"`
}

// GraphComment is one alertComment.
type GraphComment struct {
	Comment              string    `json:"comment"`
	CreatedByDisplayName string    `json:"createdByDisplayName"`
	CreatedDateTime      time.Time `json:"createdDateTime"`
}

// GraphEvidence is one alertEvidence: the base properties plus those of
// deviceEvidence and userEvidence (the kinds the emulator produces).
type GraphEvidence struct {
	ODataType         string    `json:"@odata.type"`
	CreatedDateTime   time.Time `json:"createdDateTime"`
	Verdict           string    `json:"verdict"`
	RemediationStatus string    `json:"remediationStatus"`
	Roles             []string  `json:"roles"`
	Tags              []string  `json:"tags"`
	// deviceEvidence
	MdeDeviceID      string `json:"mdeDeviceId,omitempty"`
	AzureAdDeviceID  string `json:"azureAdDeviceId,omitempty"`
	DeviceDNSName    string `json:"deviceDnsName,omitempty"`
	OSPlatform       string `json:"osPlatform,omitempty"`
	HealthStatus     string `json:"healthStatus,omitempty"`
	RiskScore        string `json:"riskScore,omitempty"`
	OnboardingStatus string `json:"onboardingStatus,omitempty"`
	// userEvidence
	UserAccount *GraphUserAccount `json:"userAccount,omitempty"`
}

// GraphUserAccount is userEvidence.userAccount.
type GraphUserAccount struct {
	AccountName       string `json:"accountName"`
	DomainName        string `json:"domainName"`
	UserSid           string `json:"userSid"`
	AzureAdUserID     string `json:"azureAdUserId"`
	UserPrincipalName string `json:"userPrincipalName"`
	DisplayName       string `json:"displayName"`
}

// Evidence @odata.type values.
const (
	DeviceEvidenceType = "#microsoft.graph.security.deviceEvidence"
	UserEvidenceType   = "#microsoft.graph.security.userEvidence"
)

// Graph enums (v1.0); both determination tables are accepted.
var (
	graphStatuses        = []string{"unknown", "new", "inProgress", "resolved"}
	graphClassifications = []string{"unknown", "falsePositive", "truePositive", "informationalExpectedActivity"}
	graphDeterminations  = []string{"unknown", "apt", "malware", "securityPersonnel", "securityTesting",
		"unwantedSoftware", "other", "multiStagedAttack", "compromisedUser", "phishing", "maliciousUserActivity",
		"clean", "insufficientData", "confirmedUserActivity", "lineOfBusinessApplication",
		"compromisedAccount", "notMalicious", "notEnoughDataToValidate", "confirmedActivity"}
)

// graphFilterFields are the documented filterable properties (plus id).
var graphFilterFields = []string{"id", "assignedTo", "classification", "determination", "createdDateTime",
	"lastUpdateDateTime", "severity", "serviceSource", "status"}

// graphState is the Graph side of the emulator.
type graphState struct {
	alerts   []*GraphAlert // creation order
	roles    []string      // nil: DefaultGraphRoles
	findings map[string]GraphAlert
	scanned  map[string]bool // machine action ids already turned into alerts
}

// SetGraphRoles changes the roles of Graph tokens issued from now on.
func (s *Server) SetGraphRoles(roles ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.state.graph.roles = append([]string{}, roles...)
}

func (s *Server) graphRolesLocked() []string {
	if s.state.graph.roles == nil {
		return DefaultGraphRoles()
	}
	return append([]string(nil), s.state.graph.roles...)
}

// AddGraphAlert adds (or replaces, by ID) an alert in alerts_v2 and returns
// it as stored. Empty fields get realistic defaults: an id in Microsoft's
// style, status new, severity medium, serviceSource
// microsoftDefenderForEndpoint, created and updated now, the portal link.
// Device evidence naming only an mdeDeviceId is completed from the
// emulator's machine.
func (s *Server) AddGraphAlert(a GraphAlert) GraphAlert {
	s.mu.Lock()
	defer s.mu.Unlock()
	return copyGraphAlert(s.putGraphAlertLocked(a))
}

// NewDeviceAlert creates a new alert with device evidence for machineID (an
// emulator machine) and returns it.
func (s *Server) NewDeviceAlert(machineID, title, severity string) GraphAlert {
	return s.AddGraphAlert(GraphAlert{Title: title, Severity: severity,
		Evidence: []GraphEvidence{{ODataType: DeviceEvidenceType, MdeDeviceID: machineID}}})
}

// SetScanFinding makes the next successful antivirus scan of machineID raise
// template as a new alert (with the machine's device evidence), created when
// the scan completes.
func (s *Server) SetScanFinding(machineID string, template GraphAlert) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state.graph.findings == nil {
		s.state.graph.findings = map[string]GraphAlert{}
	}
	s.state.graph.findings[strings.ToLower(machineID)] = template
}

// GraphAlert returns a copy of an alerts_v2 alert.
func (s *Server) GraphAlert(id string) (GraphAlert, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.raiseScanFindingsLocked()
	if a := s.graphAlertLocked(id); a != nil {
		return copyGraphAlert(a), true
	}
	return GraphAlert{}, false
}

// GraphAlerts returns copies of every alerts_v2 alert, oldest first.
func (s *Server) GraphAlerts() []GraphAlert {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.raiseScanFindingsLocked()
	out := make([]GraphAlert, 0, len(s.state.graph.alerts))
	for _, a := range s.state.graph.alerts {
		out = append(out, copyGraphAlert(a))
	}
	return out
}

func (s *Server) graphAlertLocked(id string) *GraphAlert {
	for _, a := range s.state.graph.alerts {
		if a.ID == id {
			return a
		}
	}
	return nil
}

func (s *Server) putGraphAlertLocked(a GraphAlert) *GraphAlert {
	now := s.nowLocked()
	s.state.seq++
	seq := s.state.seq
	a.ODataType = "#microsoft.graph.security.alert"
	if a.ID == "" {
		a.ID = fmt.Sprintf("da63755122767756%04d_%d", seq, 961444800+seq)
	}
	if a.ProviderAlertID == "" {
		a.ProviderAlertID = a.ID
	}
	if a.IncidentID == "" {
		a.IncidentID = fmt.Sprint(28000 + seq)
	}
	a.TenantID = TenantID
	a.Status = nonEmpty(a.Status, "new")
	a.Severity = nonEmpty(a.Severity, "medium")
	a.Classification = nonEmpty(a.Classification, "unknown")
	a.Determination = nonEmpty(a.Determination, "unknown")
	a.ServiceSource = nonEmpty(a.ServiceSource, "microsoftDefenderForEndpoint")
	a.DetectionSource = nonEmpty(a.DetectionSource, "microsoftDefenderForEndpoint")
	a.Category = nonEmpty(a.Category, "Execution")
	a.Title = nonEmpty(a.Title, "Suspicious activity")
	if a.DetectorID == "" {
		a.DetectorID = uuid.NewSHA1(uuid.NameSpaceOID, []byte(a.Title)).String()
	}
	if a.CreatedDateTime.IsZero() {
		a.CreatedDateTime = now
	}
	if a.LastUpdateDateTime.Before(a.CreatedDateTime) {
		a.LastUpdateDateTime = a.CreatedDateTime
	}
	if a.FirstActivityDateTime.IsZero() {
		a.FirstActivityDateTime = a.CreatedDateTime.Add(-2 * time.Minute)
	}
	if a.LastActivityDateTime.IsZero() {
		a.LastActivityDateTime = a.CreatedDateTime.Add(-time.Minute)
	}
	if a.AlertWebURL == "" {
		a.AlertWebURL = "https://security.microsoft.com/alerts/" + a.ID + "?tid=" + TenantID
	}
	if a.IncidentWebURL == "" {
		a.IncidentWebURL = "https://security.microsoft.com/incidents/" + a.IncidentID + "?tid=" + TenantID
	}
	a.MitreTechniques = append([]string{}, a.MitreTechniques...)
	a.SystemTags = append([]string{}, a.SystemTags...)
	a.Comments = append([]GraphComment{}, a.Comments...)
	ev := make([]GraphEvidence, 0, len(a.Evidence))
	for _, e := range a.Evidence {
		e.Roles = append([]string{}, e.Roles...)
		e.Tags = append([]string{}, e.Tags...)
		if e.CreatedDateTime.IsZero() {
			e.CreatedDateTime = a.CreatedDateTime
		}
		e.Verdict = nonEmpty(e.Verdict, "suspicious")
		e.RemediationStatus = nonEmpty(e.RemediationStatus, "none")
		if e.ODataType == DeviceEvidenceType {
			s.completeDeviceEvidenceLocked(&e)
		}
		ev = append(ev, e)
	}
	a.Evidence = ev
	for i, old := range s.state.graph.alerts {
		if old.ID == a.ID {
			s.state.graph.alerts[i] = &a
			return &a
		}
	}
	s.state.graph.alerts = append(s.state.graph.alerts, &a)
	return &a
}

// completeDeviceEvidenceLocked fills device evidence from the machine it
// names, in Graph's enum spelling.
func (s *Server) completeDeviceEvidenceLocked(e *GraphEvidence) {
	if len(e.Roles) == 0 {
		e.Roles = []string{"compromised"}
	}
	m := s.machineLocked(e.MdeDeviceID)
	if m == nil {
		return
	}
	e.MdeDeviceID = m.ID
	e.DeviceDNSName = nonEmpty(e.DeviceDNSName, m.ComputerDNSName)
	e.OSPlatform = nonEmpty(e.OSPlatform, m.OSPlatform)
	e.HealthStatus = nonEmpty(e.HealthStatus, lowerFirst(m.HealthStatus))
	e.RiskScore = nonEmpty(e.RiskScore, lowerFirst(m.RiskScore))
	e.OnboardingStatus = nonEmpty(e.OnboardingStatus, lowerFirst(m.OnboardingStatus))
	if e.AzureAdDeviceID == "" && m.AADDeviceID != nil {
		e.AzureAdDeviceID = *m.AADDeviceID
	}
}

func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}

// raiseScanFindingsLocked turns each successful scan of a machine with a
// finding into an alert created when the scan completed.
func (s *Server) raiseScanFindingsLocked() {
	g := &s.state.graph
	if len(g.findings) == 0 {
		return
	}
	for _, a := range s.state.actions {
		if a.Type != "RunAntiVirusScan" || g.scanned[a.ID] {
			continue
		}
		s.refreshLocked(a)
		tpl, ok := g.findings[strings.ToLower(a.MachineID)]
		if !ok || a.Status != "Succeeded" {
			continue
		}
		if g.scanned == nil {
			g.scanned = map[string]bool{}
		}
		g.scanned[a.ID] = true
		delete(g.findings, strings.ToLower(a.MachineID))
		tpl.ID = ""
		tpl.DetectionSource = nonEmpty(tpl.DetectionSource, "antivirus")
		tpl.CreatedDateTime = a.LastUpdateDateTimeUTC
		tpl.LastUpdateDateTime = time.Time{}
		tpl.Evidence = append([]GraphEvidence{{ODataType: DeviceEvidenceType, MdeDeviceID: a.MachineID}}, tpl.Evidence...)
		s.putGraphAlertLocked(tpl)
	}
}

func copyGraphAlert(a *GraphAlert) GraphAlert {
	c := *a
	c.MitreTechniques = slices.Clone(a.MitreTechniques)
	c.SystemTags = slices.Clone(a.SystemTags)
	c.Comments = slices.Clone(a.Comments)
	c.Evidence = make([]GraphEvidence, len(a.Evidence))
	for i, e := range a.Evidence {
		e.Roles = slices.Clone(e.Roles)
		e.Tags = slices.Clone(e.Tags)
		if e.UserAccount != nil {
			u := *e.UserAccount
			e.UserAccount = &u
		}
		c.Evidence[i] = e
	}
	return c
}

// ---- HTTP ----

// isGraphPath reports /v1.0/security/... paths.
func isGraphPath(segs []string) bool {
	return len(segs) >= 2 && strings.EqualFold(segs[0], "v1.0") && strings.EqualFold(segs[1], "security")
}

// graphError builds Graph's error envelope.
func graphError(status int, code, msg string) response {
	body := map[string]any{"error": map[string]any{
		"code": code, "message": msg,
		"innerError": map[string]any{"request-id": uuid.NewString(), "date": time.Now().UTC().Format("2006-01-02T15:04:05")},
	}}
	b, _ := json.Marshal(body)
	return response{status: status, header: http.Header{"Content-Type": {"application/json; charset=utf-8"}}, body: b}
}

// graphCode is Graph's camelCase code for an HTTP status.
func graphCode(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "BadRequest"
	case http.StatusUnauthorized:
		return "InvalidAuthenticationToken"
	case http.StatusForbidden:
		return "Forbidden"
	case http.StatusNotFound:
		return "itemNotFound"
	case http.StatusTooManyRequests:
		return "TooManyRequests"
	case http.StatusServiceUnavailable:
		return "serviceNotAvailable"
	case http.StatusGatewayTimeout:
		return "gatewayTimeout"
	}
	return "generalException"
}

func (s *Server) graphMetadata(r *http.Request, set string) string {
	return baseURL(r) + "/v1.0/$metadata#" + set
}

// routeGraph serves /v1.0/security/...; rest is what follows "security".
func (s *Server) routeGraph(r *http.Request, rest []string, body []byte) response {
	h := r.Header.Get("Authorization")
	scheme, raw, _ := strings.Cut(h, " ")
	tok := s.state.tokens[strings.TrimSpace(raw)]
	switch {
	case h == "" || !strings.EqualFold(scheme, "Bearer"):
		return graphError(http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token is empty.")
	case tok == nil || tok.audience != audienceGraph:
		return graphError(http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience.")
	case tok.revoked || !s.nowLocked().Before(tok.expires):
		return graphError(http.StatusUnauthorized, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired.")
	}
	if len(rest) == 0 || !strings.EqualFold(rest[0], "alerts_v2") || len(rest) > 3 {
		return graphError(http.StatusBadRequest, "BadRequest", "Resource not found for the segment '"+strings.Join(rest, "/")+"'.")
	}
	write := r.Method == http.MethodPatch || r.Method == http.MethodPost
	need := []string{RoleSecurityAlertReadAll, RoleSecurityAlertReadWriteAll}
	if write {
		need = []string{RoleSecurityAlertReadWriteAll}
	}
	if !hasAnyRole(tok.roles, need) {
		return graphError(http.StatusForbidden, "Forbidden", "Missing role permissions on the request. API requires one of '"+
			strings.Join(need, ", ")+"'. Roles on the request '"+strings.Join(tok.roles, ", ")+"'.")
	}
	if retry, limited := s.rateLimitLocked(APIGraphAlerts); limited {
		return withRetryAfter(graphError(http.StatusTooManyRequests, "TooManyRequests",
			"Too many requests. Please try again later."), retry)
	}
	if write {
		if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(strings.ToLower(ct), "application/json") {
			return graphError(http.StatusUnsupportedMediaType, "BadRequest", "Content-Type must be application/json")
		}
	}
	s.raiseScanFindingsLocked()
	switch {
	case len(rest) == 1 && r.Method == http.MethodGet:
		return s.listGraphAlerts(r)
	case len(rest) == 2 && r.Method == http.MethodGet:
		return s.getGraphAlert(r, rest[1])
	case len(rest) == 2 && r.Method == http.MethodPatch:
		return s.patchGraphAlert(r, rest[1], body)
	case len(rest) == 3 && strings.EqualFold(rest[2], "comments") && r.Method == http.MethodPost:
		return s.commentGraphAlert(r, rest[1], body)
	case len(rest) == 3 && strings.EqualFold(rest[2], "comments"):
		return graphError(http.StatusMethodNotAllowed, "BadRequest", "The HTTP method is not allowed for this resource.")
	case len(rest) == 3:
		return graphError(http.StatusBadRequest, "BadRequest", "Resource not found for the segment '"+rest[2]+"'.")
	}
	return graphError(http.StatusMethodNotAllowed, "BadRequest", "The HTTP method is not allowed for this resource.")
}

// listGraphAlerts lists newest first with $filter, $top, $skip, $count and
// @odata.nextLink (the shared OData implementation), answering errors in
// Graph's envelope.
func (s *Server) listGraphAlerts(r *http.Request) response {
	items := make([]any, 0, len(s.state.graph.alerts))
	for i := len(s.state.graph.alerts) - 1; i >= 0; i-- {
		items = append(items, copyGraphAlert(s.state.graph.alerts[i]))
	}
	slices.SortStableFunc(items, func(a, b any) int {
		return b.(GraphAlert).CreatedDateTime.Compare(a.(GraphAlert).CreatedDateTime)
	})
	resp := s.listResponse(r, "security/alerts_v2", graphFilterFields, items)
	if resp.status != http.StatusOK {
		var e apiError
		_ = json.Unmarshal(resp.body, &e)
		return graphError(resp.status, "BadRequest", e.Error.Message)
	}
	var c collection
	if err := json.Unmarshal(resp.body, &c); err == nil {
		c.Context = s.graphMetadata(r, "security/alerts_v2")
		return jsonResponse(http.StatusOK, c)
	}
	return resp
}

func graphNotFound(id string) response {
	return graphError(http.StatusNotFound, "itemNotFound", "The alert '"+id+"' was not found.")
}

func (s *Server) getGraphAlert(r *http.Request, id string) response {
	a := s.graphAlertLocked(id)
	if a == nil {
		return graphNotFound(id)
	}
	return entityResponse(http.StatusOK, s.graphMetadata(r, "security/alerts_v2/$entity"), copyGraphAlert(a))
}

// patchGraphAlert validates every property before changing anything; only
// the documented writable properties are accepted.
func (s *Server) patchGraphAlert(r *http.Request, id string, body []byte) response {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil || raw == nil {
		return graphError(http.StatusBadRequest, "BadRequest", "The request body is not a JSON object.")
	}
	a := s.graphAlertLocked(id)
	if a == nil {
		return graphNotFound(id)
	}
	set := map[string]string{}
	var assigned *string
	for k, v := range raw {
		switch k {
		case "@odata.type":
			continue
		case "status", "classification", "determination":
			var str string
			if err := json.Unmarshal(v, &str); err != nil {
				return graphError(http.StatusBadRequest, "BadRequest", fmt.Sprintf("Invalid value for property '%s'.", k))
			}
			allowed := map[string][]string{"status": graphStatuses, "classification": graphClassifications,
				"determination": graphDeterminations}[k]
			if !slices.Contains(allowed, str) {
				return graphError(http.StatusBadRequest, "BadRequest", fmt.Sprintf(
					"Requested value '%s' was not found for property '%s'. Allowed: %s.", str, k, strings.Join(allowed, ", ")))
			}
			set[k] = str
		case "assignedTo":
			var str *string
			if err := json.Unmarshal(v, &str); err != nil {
				return graphError(http.StatusBadRequest, "BadRequest", "Invalid value for property 'assignedTo'.")
			}
			if str == nil {
				str = new(string)
			}
			assigned = str
		default:
			return graphError(http.StatusBadRequest, "BadRequest", fmt.Sprintf(
				"The property '%s' does not exist on type 'microsoft.graph.security.alert' or is not writable.", k))
		}
	}
	now := s.nowLocked()
	if v, ok := set["status"]; ok {
		a.Status = v
		if v == "resolved" {
			a.ResolvedDateTime = &now
		} else {
			a.ResolvedDateTime = nil
		}
	}
	if v, ok := set["classification"]; ok {
		a.Classification = v
	}
	if v, ok := set["determination"]; ok {
		a.Determination = v
	}
	if assigned != nil {
		a.AssignedTo = assigned
		if *assigned == "" {
			a.AssignedTo = nil
		}
	}
	a.LastUpdateDateTime = now
	return entityResponse(http.StatusOK, s.graphMetadata(r, "security/alerts_v2/$entity"), copyGraphAlert(a))
}

// commentGraphAlert appends a comment and answers 200 with every comment.
func (s *Server) commentGraphAlert(r *http.Request, id string, body []byte) response {
	var b struct {
		ODataType string  `json:"@odata.type"`
		Comment   *string `json:"comment"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		return graphError(http.StatusBadRequest, "BadRequest", "The request body is not a valid alertComment.")
	}
	if b.Comment == nil || strings.TrimSpace(*b.Comment) == "" {
		return graphError(http.StatusBadRequest, "BadRequest", "The property 'comment' is required.")
	}
	if b.ODataType != "" && !strings.EqualFold(strings.TrimPrefix(b.ODataType, "#"), "microsoft.graph.security.alertComment") {
		return graphError(http.StatusBadRequest, "BadRequest", "Invalid @odata.type '"+b.ODataType+"'.")
	}
	a := s.graphAlertLocked(id)
	if a == nil {
		return graphNotFound(id)
	}
	now := s.nowLocked()
	a.Comments = append(a.Comments, GraphComment{Comment: *b.Comment, CreatedByDisplayName: AppDisplayName, CreatedDateTime: now})
	a.LastUpdateDateTime = now
	return jsonResponse(http.StatusOK, map[string]any{
		"@odata.context": s.graphMetadata(r, "Collection(microsoft.graph.security.alertComment)"),
		"value":          slices.Clone(a.Comments),
	})
}
