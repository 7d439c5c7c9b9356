package graph

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

const (
	alertsPath = "/v1.0/security/alerts_v2"
	// maxTop caps $top: the legacy /security/alerts caps at 1000, and
	// alerts_v2's own maximum is undocumented.
	maxTop = 1000
	// maxPages stops a list whose server repeats its nextLink.
	maxPages = 1000
)

// ListAlertsOptions selects alerts. Zero fields are not filtered on.
type ListAlertsOptions struct {
	// CreatedSince keeps alerts with createdDateTime ge this time.
	CreatedSince time.Time
	// UpdatedSince keeps alerts with lastUpdateDateTime ge this time.
	UpdatedSince time.Time
	// Severity, Status and ServiceSource are matched with eq (any spelling).
	Severity      string
	Status        string
	ServiceSource string
	// Top is the page size asked for ($top, at most 1000). Zero: Graph's default.
	Top int
}

func (o ListAlertsOptions) query() (string, error) {
	var clauses []string
	if !o.CreatedSince.IsZero() {
		clauses = append(clauses, "createdDateTime ge "+odataTime(o.CreatedSince))
	}
	if !o.UpdatedSince.IsZero() {
		clauses = append(clauses, "lastUpdateDateTime ge "+odataTime(o.UpdatedSince))
	}
	for _, f := range []struct {
		name, val string
		parse     func(string) (string, error)
	}{
		{"severity", o.Severity, ParseSeverity},
		{"status", o.Status, ParseStatus},
		{"serviceSource", o.ServiceSource, ParseServiceSource},
	} {
		if f.val == "" {
			continue
		}
		v, err := f.parse(f.val)
		if err != nil {
			return "", err
		}
		clauses = append(clauses, f.name+" eq '"+v+"'")
	}
	if o.Top < 0 || o.Top > maxTop {
		return "", invalid("Top", "must be between 0 and %d", maxTop)
	}
	var parts []string
	if len(clauses) > 0 {
		parts = append(parts, "$filter="+escapeQuery(strings.Join(clauses, " and ")))
	}
	if o.Top > 0 {
		parts = append(parts, "$top="+strconv.Itoa(o.Top))
	}
	return strings.Join(parts, "&"), nil
}

// odataTime formats t as an unquoted OData DateTimeOffset in UTC.
func odataTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.0000000Z") }

// escapeQuery encodes a query value with %20 for spaces.
func escapeQuery(v string) string { return strings.ReplaceAll(url.QueryEscape(v), "+", "%20") }

type alertPage struct {
	Value    []json.RawMessage `json:"value"`
	NextLink string            `json:"@odata.nextLink"`
}

// ListAlerts returns every alert matching opts, newest first as Graph lists
// them, following @odata.nextLink (and, when a server pages by $top without
// one, $skip while pages come back full).
//
// Graph API docs: https://learn.microsoft.com/graph/api/security-list-alerts_v2
//
// API: GET /v1.0/security/alerts_v2
func (c *Client) ListAlerts(ctx context.Context, opts ListAlertsOptions) ([]*Alert, error) {
	q, err := opts.query()
	if err != nil {
		return nil, err
	}
	var out []*Alert
	cl := &call{method: "GET", path: alertsPath, query: q}
	skip := 0
	for pages := 0; ; pages++ {
		if pages >= maxPages {
			return nil, fmt.Errorf("graph: GET %s: more than %d pages, giving up", alertsPath, maxPages)
		}
		var page alertPage
		if err := c.do(ctx, cl, &page); err != nil {
			return nil, err
		}
		for _, raw := range page.Value {
			a, err := decodeAlert(raw)
			if err != nil {
				return nil, fmt.Errorf("graph: GET %s: %w", alertsPath, err)
			}
			out = append(out, a)
		}
		switch {
		case page.NextLink != "":
			cl = &call{method: "GET", next: page.NextLink}
		case opts.Top > 0 && len(page.Value) == opts.Top:
			skip += opts.Top
			cl = &call{method: "GET", path: alertsPath, query: q + "&$skip=" + strconv.Itoa(skip)}
		default:
			return out, nil
		}
	}
}

// GetAlert returns one alert.
//
// Graph API docs: https://learn.microsoft.com/graph/api/security-alert-get
//
// API: GET /v1.0/security/alerts_v2/{id}
func (c *Client) GetAlert(ctx context.Context, id string) (*Alert, error) {
	p, err := alertPath(id)
	if err != nil {
		return nil, err
	}
	var raw json.RawMessage
	if err := c.do(ctx, &call{method: "GET", path: p}, &raw); err != nil {
		return nil, err
	}
	return decodeAlert(raw)
}

// UpdateAlert changes an alert's status, classification, determination
// and/or assignedTo and returns the updated alert. Values are validated and
// sent in Graph's spelling; u is not modified.
//
// Graph API docs: https://learn.microsoft.com/graph/api/security-alert-update
//
// API: PATCH /v1.0/security/alerts_v2/{id}
func (c *Client) UpdateAlert(ctx context.Context, id string, u AlertUpdate) (*Alert, error) {
	p, err := alertPath(id)
	if err != nil {
		return nil, err
	}
	body, err := normalizeUpdate(u)
	if err != nil {
		return nil, err
	}
	var raw json.RawMessage
	if err := c.do(ctx, &call{method: "PATCH", path: p, body: body}, &raw); err != nil {
		return nil, err
	}
	return decodeAlert(raw)
}

func normalizeUpdate(u AlertUpdate) (AlertUpdate, error) {
	var out AlertUpdate
	if u.Status == nil && u.Classification == nil && u.Determination == nil && u.AssignedTo == nil {
		return out, invalid("alert update", "nothing to change: set status, classification, determination or assignedTo")
	}
	for _, f := range []struct {
		in    *string
		out   **string
		parse func(string) (string, error)
	}{
		{u.Status, &out.Status, ParseStatus},
		{u.Classification, &out.Classification, ParseClassification},
		{u.Determination, &out.Determination, ParseDetermination},
	} {
		if f.in == nil {
			continue
		}
		v, err := f.parse(*f.in)
		if err != nil {
			return out, err
		}
		*f.out = &v
	}
	if u.AssignedTo != nil {
		a := strings.TrimSpace(*u.AssignedTo)
		if a == "" || len(a) > 256 || strings.ContainsFunc(a, func(r rune) bool { return r < ' ' }) {
			return out, invalid("assignedTo", "must be a user name or e-mail address (1-256 printable characters)")
		}
		out.AssignedTo = &a
	}
	return out, nil
}

func alertPath(id string) (string, error) {
	id = strings.TrimSpace(id)
	if id == "" || len(id) > 256 || strings.ContainsFunc(id, func(r rune) bool { return r <= ' ' || r == '/' }) {
		return "", invalid("alert id", "must be an alert ID such as da637551227677560813_-961444813")
	}
	return alertsPath + "/" + url.PathEscape(id), nil
}

func decodeAlert(raw json.RawMessage) (*Alert, error) {
	var a Alert
	if err := json.Unmarshal(raw, &a); err != nil {
		return nil, fmt.Errorf("decoding alert: %w", err)
	}
	a.Raw = append(json.RawMessage(nil), raw...)
	return &a, nil
}
