package defendertest_test

import (
	"net/http"
	"testing"

	"github.com/defenderbot/defenderbot/defender/defendertest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const alertID = "da637472900382838869_1364969609"

func newAlertServer(t *testing.T) (*defendertest.Server, string) {
	s := newServer(t)
	s.AddAlert(defendertest.Alert{ID: alertID, Title: "Suspicious PowerShell", MachineID: machineID, Severity: "High"})
	return s, mustToken(t, s)
}

func TestGetAlert(t *testing.T) {
	s, tok := newAlertServer(t)
	r := call(t, s, tok, http.MethodGet, "/api/alerts/"+alertID, nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, s.URL+"/api/$metadata#Alerts/$entity", r.json["@odata.context"])
	assert.Equal(t, "New", r.json["status"])
	assert.Equal(t, "host1.contoso.com", r.json["computerDnsName"])
	assert.Equal(t, []any{}, r.json["comments"])
	requireError(t, call(t, s, tok, http.MethodGet, "/api/alerts/nope", nil), http.StatusNotFound, "ResourceNotFound")

	r = call(t, s, tok, http.MethodGet, "/api/alerts?$filter=severity+eq+'High'", nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.Len(t, r.values(), 1)
}

func TestPatchAlert(t *testing.T) {
	s, tok := newAlertServer(t)
	r := call(t, s, tok, http.MethodPatch, "/api/alerts/"+alertID, map[string]string{
		"status": "Resolved", "assignedTo": "secop2@contoso.com", "classification": "FalsePositive",
		"determination": "NotMalicious", "comment": "resolved by defenderbot",
	})
	require.Equal(t, http.StatusOK, r.status, string(r.raw))
	assert.Equal(t, "Resolved", r.json["status"])
	assert.Equal(t, "secop2@contoso.com", r.json["assignedTo"])
	assert.Equal(t, "FalsePositive", r.json["classification"])
	assert.Equal(t, "NotMalicious", r.json["determination"])
	comments := r.json["comments"].([]any)
	require.Len(t, comments, 1)
	c := comments[0].(map[string]any)
	assert.Equal(t, "resolved by defenderbot", c["comment"])
	assert.Equal(t, defendertest.AppDisplayName, c["createdBy"])
	assert.NotEmpty(t, c["createdTime"])

	// comment only, PascalCase property (SEKOIA's casing) appends
	r = call(t, s, tok, http.MethodPatch, "/api/alerts/"+alertID, map[string]string{"Comment": "second"})
	require.Equal(t, http.StatusOK, r.status, string(r.raw))
	a, ok := s.Alert(alertID)
	require.True(t, ok)
	require.Len(t, a.Comments, 2)
	assert.Equal(t, "second", a.Comments[1].Comment)
	assert.Equal(t, "Resolved", a.Status)
}

func TestPatchAlertValidation(t *testing.T) {
	tests := []struct {
		name   string
		id     string
		body   any
		status int
		code   string
	}{
		{"bad status", alertID, map[string]string{"status": "Closed"}, 400, "InvalidInput"},
		{"bad classification", alertID, map[string]string{"classification": "Maybe"}, 400, "InvalidInput"},
		{"bad determination", alertID, map[string]string{"determination": "Aliens"}, 400, "InvalidInput"},
		{"empty comment", alertID, map[string]string{"comment": ""}, 400, "InvalidInput"},
		{"nothing to update", alertID, map[string]string{}, 400, "InvalidRequestBody"},
		{"wrong type", alertID, `{"status": true}`, 400, "InvalidRequestBody"},
		{"unknown alert", "nope", map[string]string{"status": "Resolved"}, 404, "ResourceNotFound"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, tok := newAlertServer(t)
			requireError(t, call(t, s, tok, http.MethodPatch, "/api/alerts/"+tt.id, tt.body), tt.status, tt.code)
			a, _ := s.Alert(alertID)
			assert.Equal(t, "New", a.Status, "nothing changed")
			assert.Empty(t, a.Comments)
		})
	}
}

func TestPatchAlertNeedsReadWriteRole(t *testing.T) {
	s := newServer(t, defendertest.WithRoles(defendertest.RoleAlertReadAll))
	s.AddAlert(defendertest.Alert{ID: alertID})
	tok := mustToken(t, s)
	assert.Equal(t, http.StatusOK, call(t, s, tok, http.MethodGet, "/api/alerts/"+alertID, nil).status)
	requireError(t, call(t, s, tok, http.MethodPatch, "/api/alerts/"+alertID, map[string]string{"status": "Resolved"}),
		http.StatusForbidden, "Forbidden")
}
