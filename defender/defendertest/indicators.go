package defendertest

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// maxBatch is Microsoft's limit for import and BatchDelete.
const maxBatch = 500

var indicatorFilterFields = []string{"application", "createdByDisplayName", "expirationTime", "generateAlert", "title",
	"indicatorValue", "indicatorType", "creationTimeDateTimeUtc", "createdBy", "action", "severity", "id", "sourceType",
	"lastUpdateTime"}

var (
	indicatorTypes   = []string{"FileSha1", "FileSha256", "FileMd5", "CertificateThumbprint", "IpAddress", "DomainName", "Url"}
	indicatorActions = []string{"Alert", "Warn", "Block", "Audit", "BlockAndRemediate", "AlertAndBlock", "Allowed"}
	severities       = []string{"Informational", "Low", "Medium", "High"}
	hexRE            = regexp.MustCompile(`^[0-9a-fA-F]+$`)
	labelRE          = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)
)

// indicatorInput is a submitted indicator; pointers tell "missing" apart.
type indicatorInput struct {
	IndicatorValue       *string         `json:"indicatorValue"`
	IndicatorType        *string         `json:"indicatorType"`
	Action               *string         `json:"action"`
	Application          *string         `json:"application"`
	Title                *string         `json:"title"`
	Description          *string         `json:"description"`
	ExpirationTime       *time.Time      `json:"expirationTime"`
	Severity             *string         `json:"severity"`
	RecommendedActions   *string         `json:"recommendedActions"`
	RBACGroupNames       json.RawMessage `json:"rbacGroupNames"`
	GenerateAlert        *bool           `json:"generateAlert"`
	ExternalID           *string         `json:"externalId"`
	CreatedByDisplayName *string         `json:"createdByDisplayName"`
	EducateURL           *string         `json:"educateUrl"`
}

// invalid is a validation failure: the code of a single submit's 400, and
// the text used as import's failureReason.
type invalid struct{ code, msg string }

func (e *invalid) Error() string { return e.msg }

func validValue(typ, v string) *invalid {
	bad := func(code, what string) *invalid {
		return &invalid{code, fmt.Sprintf("%s %s is invalid", what, v)}
	}
	hexLen := map[string]int{"FileSha1": 40, "FileSha256": 64, "FileMd5": 32, "CertificateThumbprint": 40}
	if n, ok := hexLen[typ]; ok {
		if len(v) != n || !hexRE.MatchString(v) {
			return bad("InvalidHashValue", "Hash value")
		}
		return nil
	}
	switch typ {
	case "IpAddress":
		if strings.Contains(v, "/") {
			return &invalid{"InvalidIpAddress", fmt.Sprintf("IP address %s is invalid: CIDR notation is not supported", v)}
		}
		if a, err := netip.ParseAddr(v); err != nil || a.Zone() != "" {
			return bad("InvalidIpAddress", "IP address")
		}
	case "DomainName":
		d := strings.TrimSuffix(v, ".")
		if d == "" || len(d) > 253 {
			return bad("InvalidDomainName", "Domain name")
		}
		for _, l := range strings.Split(d, ".") {
			if !labelRE.MatchString(l) {
				return bad("InvalidDomainName", "Domain name")
			}
		}
	case "Url":
		raw := v
		if !strings.Contains(raw, "://") {
			raw = "http://" + raw
		}
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" || strings.ContainsAny(v, " \t\r\n") {
			return bad("InvalidUrl", "URL")
		}
	}
	return nil
}

// validateIndicator checks a submitted indicator and builds the entity
// (without id and audit fields).
func validateIndicator(in indicatorInput) (*Indicator, *invalid) {
	req := func(name string, v *string) *invalid {
		if v == nil || strings.TrimSpace(*v) == "" {
			return &invalid{"MissingRequiredParameter", fmt.Sprintf("Parameter %s is missing", name)}
		}
		return nil
	}
	for _, c := range []struct {
		name string
		v    *string
	}{{"indicatorValue", in.IndicatorValue}, {"indicatorType", in.IndicatorType}, {"action", in.Action},
		{"title", in.Title}, {"description", in.Description}} {
		if e := req(c.name, c.v); e != nil {
			return nil, e
		}
	}
	typ := enumValue(*in.IndicatorType, indicatorTypes...)
	if typ == "" {
		return nil, &invalid{"InvalidInput", fmt.Sprintf("Invalid input indicatorType '%s'", *in.IndicatorType)}
	}
	act := enumValue(*in.Action, indicatorActions...)
	if act == "" {
		return nil, &invalid{"InvalidInput", fmt.Sprintf("Invalid input action '%s'", *in.Action)}
	}
	value := strings.TrimSpace(*in.IndicatorValue)
	if e := validValue(typ, value); e != nil {
		return nil, e
	}
	gen := in.GenerateAlert != nil && *in.GenerateAlert
	if act == "Audit" && !gen {
		return nil, &invalid{"InvalidInput", "Invalid input: generateAlert must be true when action is Audit"}
	}
	sev := "Informational"
	if in.Severity != nil && *in.Severity != "" {
		if sev = enumValue(*in.Severity, severities...); sev == "" {
			return nil, &invalid{"InvalidInput", fmt.Sprintf("Invalid input severity '%s'", *in.Severity)}
		}
	}
	groups, err := groupNames(in.RBACGroupNames)
	if err != nil {
		return nil, &invalid{"InvalidInput", "Invalid input rbacGroupNames: " + err.Error()}
	}
	ind := &Indicator{
		IndicatorValue: value, IndicatorType: typ, Action: act, Title: *in.Title, Description: *in.Description,
		Severity: sev, GenerateAlert: gen, RBACGroupNames: groups, RBACGroupIDs: []string{},
	}
	if in.ExpirationTime != nil {
		t := in.ExpirationTime.UTC()
		ind.ExpirationTime = &t
	}
	if in.Application != nil {
		ind.Application = *in.Application
	}
	if in.RecommendedActions != nil {
		ind.RecommendedActions = *in.RecommendedActions
	}
	if in.ExternalID != nil {
		ind.ExternalID = *in.ExternalID
	}
	if in.CreatedByDisplayName != nil {
		ind.CreatedByDisplayName = *in.CreatedByDisplayName
	}
	return ind, nil
}

// groupNames accepts a JSON array of names or a comma-separated string
// (the docs say the latter, every example sends the former).
func groupNames(raw json.RawMessage) ([]string, error) {
	out := []string{}
	if len(raw) == 0 || string(raw) == "null" {
		return out, nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err == nil {
		return append(out, list...), nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, errors.New("expected an array of strings")
	}
	for _, g := range strings.Split(s, ",") {
		if g = strings.TrimSpace(g); g != "" {
			out = append(out, g)
		}
	}
	return out, nil
}

// storeIndicatorLocked upserts a validated API-submitted indicator,
// enforcing the tenant limit on new ones.
func (s *Server) storeIndicatorLocked(ind *Indicator) (string, *invalid) {
	now := s.nowLocked()
	old := s.indicatorByKeyLocked(ind.IndicatorType, ind.IndicatorValue)
	if old == nil && len(s.activeIndicatorsLocked()) >= s.cfg.indicatorLimit {
		return "", &invalid{"BadRequest", fmt.Sprintf("Tenant indicators limit of %d has been reached", s.cfg.indicatorLimit)}
	}
	ind.SourceType = "AadApp"
	ind.CreatedBy = ClientID
	ind.CreatedBySource = "PublicApi"
	ind.LastUpdatedBy = ClientID
	if ind.CreatedByDisplayName == "" {
		ind.CreatedByDisplayName = AppDisplayName
	}
	ind.Source = AppDisplayName
	ind.CreationTimeDateTimeUTC = now
	ind.LastUpdateTime = now
	if old != nil {
		ind.CreationTimeDateTimeUTC = old.CreationTimeDateTimeUTC
		ind.CreatedBy, ind.SourceType, ind.CreatedBySource = old.CreatedBy, old.SourceType, old.CreatedBySource
		ind.Application = old.Application // application applies only to new indicators
	}
	return s.putIndicatorLocked(ind), nil
}

func decodeIndicator(raw json.RawMessage) (indicatorInput, *invalid) {
	var in indicatorInput
	t := strings.TrimSpace(string(raw))
	if t == "" || t[0] != '{' {
		return in, &invalid{"InvalidRequestBody", "Indicator must be a JSON object"}
	}
	if err := json.Unmarshal(raw, &in); err != nil {
		var te *json.UnmarshalTypeError
		var pe *time.ParseError
		switch {
		case errors.As(err, &te) && te.Field != "":
			return in, &invalid{"InvalidInput", fmt.Sprintf("Invalid value for property %s", te.Field)}
		case errors.As(err, &pe):
			return in, &invalid{"InvalidInput", "Invalid value for property expirationTime: an ISO 8601 date-time is required"}
		}
		return in, &invalid{"InvalidRequestBody", "Indicator is not valid JSON"}
	}
	return in, nil
}

func (s *Server) submitIndicator(r *http.Request, _ []string, body []byte) response {
	in, bad := decodeIndicator(body)
	if bad != nil {
		return errorResponse(http.StatusBadRequest, bad.code, bad.msg)
	}
	ind, bad := validateIndicator(in)
	if bad != nil {
		return errorResponse(http.StatusBadRequest, bad.code, bad.msg)
	}
	id, bad := s.storeIndicatorLocked(ind)
	if bad != nil {
		return errorResponse(http.StatusBadRequest, bad.code, bad.msg)
	}
	return entityResponse(http.StatusOK, metadata(r, "Indicators/$entity"), copyIndicator(s.indicatorLocked(id)))
}

type importResult struct {
	ID            *string `json:"id"`
	Indicator     string  `json:"indicator"`
	IsFailed      bool    `json:"isFailed"`
	FailureReason *string `json:"failureReason"`
}

func (s *Server) importIndicators(_ *http.Request, _ []string, body []byte) response {
	var b struct {
		Indicators []json.RawMessage `json:"Indicators"`
	}
	if e := decodeObject(body, &b); e != nil {
		return *e
	}
	if b.Indicators == nil {
		return missing("Indicators")
	}
	if len(b.Indicators) == 0 {
		return errorResponse(http.StatusBadRequest, "InvalidInput", "Invalid input Indicators: the list is empty")
	}
	if len(b.Indicators) > maxBatch {
		return errorResponse(http.StatusBadRequest, "MaximumBatchSizeExceeded",
			fmt.Sprintf("Maximum batch size exceeded. Received: %d, allowed: %d", len(b.Indicators), maxBatch))
	}
	results := make([]importResult, 0, len(b.Indicators))
	for _, raw := range b.Indicators {
		in, bad := decodeIndicator(raw)
		var value string
		if in.IndicatorValue != nil {
			value = *in.IndicatorValue
		}
		var ind *Indicator
		if bad == nil {
			ind, bad = validateIndicator(in)
		}
		var id string
		if bad == nil {
			id, bad = s.storeIndicatorLocked(ind)
		}
		if bad != nil {
			reason := bad.msg
			results = append(results, importResult{Indicator: value, IsFailed: true, FailureReason: &reason})
			continue
		}
		results = append(results, importResult{ID: &id, Indicator: ind.IndicatorValue})
	}
	return jsonResponse(http.StatusOK, map[string]any{"value": results})
}

func (s *Server) listIndicators(r *http.Request, _ []string, _ []byte) response {
	act := s.activeIndicatorsLocked()
	items := make([]any, 0, len(act))
	for _, i := range act {
		items = append(items, copyIndicator(i))
	}
	return s.listResponse(r, "Indicators", indicatorFilterFields, items)
}

func validIndicatorID(id string) bool {
	n, err := strconv.ParseInt(id, 10, 64)
	return err == nil && n > 0
}

func (s *Server) deleteIndicator(_ *http.Request, p []string, _ []byte) response {
	if !validIndicatorID(p[0]) || s.indicatorLocked(p[0]) == nil {
		return errorResponse(http.StatusNotFound, "ResourceNotFound", fmt.Sprintf("Indicator %s was not found", p[0]))
	}
	s.deleteIndicatorsLocked([]string{p[0]})
	return response{status: http.StatusNoContent}
}

// batchDeleteIndicators deletes all the ids or, if any is unknown, none.
func (s *Server) batchDeleteIndicators(_ *http.Request, _ []string, body []byte) response {
	var b struct {
		IndicatorIDs []json.RawMessage `json:"IndicatorIds"`
	}
	if e := decodeObject(body, &b); e != nil {
		return *e
	}
	if b.IndicatorIDs == nil {
		return missing("IndicatorIds")
	}
	if len(b.IndicatorIDs) == 0 {
		return errorResponse(http.StatusBadRequest, "InvalidInput", "Invalid input IndicatorIds: the list is empty")
	}
	if len(b.IndicatorIDs) > maxBatch {
		return errorResponse(http.StatusBadRequest, "MaximumBatchSizeExceeded",
			fmt.Sprintf("Maximum batch size exceeded. Received: %d, allowed: %d", len(b.IndicatorIDs), maxBatch))
	}
	ids := make([]string, 0, len(b.IndicatorIDs))
	for _, raw := range b.IndicatorIDs {
		var id string
		if err := json.Unmarshal(raw, &id); err != nil {
			var n json.Number
			if err := json.Unmarshal(raw, &n); err != nil {
				return errorResponse(http.StatusBadRequest, "InvalidInput", fmt.Sprintf("Invalid input indicator id %s", raw))
			}
			id = n.String()
		}
		if !validIndicatorID(id) {
			return errorResponse(http.StatusBadRequest, "InvalidInput", fmt.Sprintf("Invalid input indicator id '%s'", id))
		}
		ids = append(ids, id)
	}
	var unknown []string
	for _, id := range ids {
		if s.indicatorLocked(id) == nil {
			unknown = append(unknown, id)
		}
	}
	if len(unknown) > 0 {
		return errorResponse(http.StatusNotFound, "ResourceNotFound",
			fmt.Sprintf("Indicators were not found: %s", strings.Join(unknown, ", ")))
	}
	s.deleteIndicatorsLocked(ids)
	return response{status: http.StatusNoContent}
}
