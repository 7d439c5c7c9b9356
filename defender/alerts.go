package defender

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
)

// GetAlert returns one alert.
//
// API: GET /api/alerts/{id}
func (c *Client) GetAlert(ctx context.Context, alertID string) (*Alert, error) {
	if err := validateID("alert id", alertID); err != nil {
		return nil, err
	}
	return c.doAlert(ctx, &call{api: APIAlerts, method: "GET", path: "/api/alerts/" + url.PathEscape(alertID)})
}

// UpdateAlert changes an alert's status, owner, classification and
// determination and/or adds a comment. Values are validated and sent in
// Microsoft's spelling; a determination needs its classification, and the
// pair must match. u is not modified.
//
// API: PATCH /api/alerts/{id}
func (c *Client) UpdateAlert(ctx context.Context, alertID string, u AlertUpdate) (*Alert, error) {
	if err := validateID("alert id", alertID); err != nil {
		return nil, err
	}
	body, err := normalizeAlertUpdate(u)
	if err != nil {
		return nil, err
	}
	return c.patchAlert(ctx, alertID, body)
}

// CommentAlert appends a comment to an alert (Defender has no separate
// comments endpoint).
//
// API: PATCH /api/alerts/{id} {"comment": ...}
func (c *Client) CommentAlert(ctx context.Context, alertID, comment string) (*Alert, error) {
	if err := validateID("alert id", alertID); err != nil {
		return nil, err
	}
	if err := validateText("comment", comment, true); err != nil {
		return nil, err
	}
	return c.patchAlert(ctx, alertID, AlertUpdate{Comment: &comment})
}

func (c *Client) patchAlert(ctx context.Context, alertID string, body AlertUpdate) (*Alert, error) {
	return c.doAlert(ctx, &call{api: APIAlerts, method: "PATCH", path: "/api/alerts/" + url.PathEscape(alertID), body: body})
}

func (c *Client) doAlert(ctx context.Context, cl *call) (*Alert, error) {
	var a Alert
	raw, err := c.do(ctx, cl, &a)
	if err != nil {
		return nil, err
	}
	a.Raw = json.RawMessage(raw)
	return &a, nil
}

func normalizeAlertUpdate(u AlertUpdate) (AlertUpdate, error) {
	var out AlertUpdate
	if u.Status == nil && u.AssignedTo == nil && u.Classification == nil && u.Determination == nil && u.Comment == nil {
		return out, invalid("alert update", "nothing to change: set status, assignedTo, classification, determination or comment")
	}
	if u.Status != nil {
		s, err := ParseAlertStatus(*u.Status)
		if err != nil {
			return out, err
		}
		out.Status = ptr(string(s))
	}
	if u.AssignedTo != nil {
		a := strings.TrimSpace(*u.AssignedTo)
		if a == "" {
			return out, invalid("assignedTo", "must not be empty when set")
		}
		if err := validateText("assignedTo", a, true); err != nil {
			return out, err
		}
		out.AssignedTo = &a
	}
	if u.Classification != nil {
		cls, err := ParseClassification(*u.Classification)
		if err != nil {
			return out, err
		}
		out.Classification = &cls
	}
	if u.Determination != nil {
		if out.Classification == nil {
			return out, invalid("determination", "requires a classification in the same update (the pair is checked)")
		}
		d, err := ParseDetermination(*out.Classification, *u.Determination)
		if err != nil {
			return out, err
		}
		out.Determination = &d
	}
	if u.Comment != nil {
		if err := validateText("comment", *u.Comment, true); err != nil {
			return out, err
		}
		out.Comment = ptr(*u.Comment)
	}
	return out, nil
}

func ptr[T any](v T) *T { return &v }
