package graph

import (
	"context"
	"encoding/json"

	"github.com/defenderbot/defenderbot/defender"
)

// DefenderAlerts answers comment-alert and update-alert through Graph with
// the legacy API's types, so that the actions' outputs (and the CLI's JSON
// field names) are the same whichever API answered
// (defender.alerts_api: graph).
type DefenderAlerts struct{ c *Client }

// NewDefenderAlerts wraps c.
func NewDefenderAlerts(c *Client) *DefenderAlerts { return &DefenderAlerts{c: c} }

// UpdateAlert sets status, classification, determination and assignedTo
// with one PATCH, then adds the comment, if any (Graph keeps comments apart).
func (d *DefenderAlerts) UpdateAlert(ctx context.Context, alertID string, u defender.AlertUpdate) (*defender.Alert, error) {
	gu := AlertUpdate{Status: u.Status, Classification: u.Classification, Determination: u.Determination, AssignedTo: u.AssignedTo}
	var a *Alert
	var err error
	if gu.Status != nil || gu.Classification != nil || gu.Determination != nil || gu.AssignedTo != nil {
		if a, err = d.c.UpdateAlert(ctx, alertID, gu); err != nil {
			return nil, err
		}
	}
	if u.Comment != nil {
		return d.CommentAlert(ctx, alertID, *u.Comment)
	}
	if a == nil {
		return nil, invalid("alert update", "nothing to change: set status, classification, determination, assignedTo or comment")
	}
	return legacyAlert(a), nil
}

// CommentAlert adds a comment and returns the alert as it now is.
func (d *DefenderAlerts) CommentAlert(ctx context.Context, alertID, comment string) (*defender.Alert, error) {
	if _, err := d.c.CreateComment(ctx, alertID, comment); err != nil {
		return nil, err
	}
	a, err := d.c.GetAlert(ctx, alertID)
	if err != nil {
		return nil, err
	}
	return legacyAlert(a), nil
}

// legacyAlert maps a Graph alert onto the legacy entity; enum values keep
// Graph's spelling, "unknown" classification and determination are null as
// in the legacy API.
func legacyAlert(a *Alert) *defender.Alert {
	known := func(s string) *string {
		if s == "" || s == "unknown" {
			return nil
		}
		return &s
	}
	out := &defender.Alert{
		ID: a.ID, Title: a.Title, Description: a.Description, Status: a.Status, Severity: a.Severity,
		Classification: known(a.Classification), Determination: known(a.Determination), Category: a.Category,
		AssignedTo: known(a.AssignedTo), AlertCreationTime: a.CreatedDateTime, Raw: json.RawMessage(a.Raw),
	}
	if !a.LastUpdateDateTime.IsZero() {
		t := a.LastUpdateDateTime
		out.LastUpdateTime = &t
	}
	if d := a.Devices(); len(d) > 0 {
		out.MachineID, out.ComputerDNSName = d[0].MdeDeviceID, d[0].DeviceDNSName
	}
	for _, c := range a.Comments {
		out.Comments = append(out.Comments, defender.AlertComment{Comment: c.Comment, CreatedBy: c.CreatedByDisplayName,
			CreatedTime: c.CreatedDateTime})
	}
	return out
}
