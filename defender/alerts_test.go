package defender

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const alertJSON = `{"id":"da637472900382838869_1364969609","title":"Suspicious PowerShell","status":"Resolved","severity":"High",
"classification":"TruePositive","determination":"Malware","machineId":"m1","computerDnsName":"h1",
"alertCreationTime":"2021-01-26T20:33:57.7220239Z","comments":[{"comment":"c","createdBy":"bot","createdTime":"2021-01-26T01:00:37.8404534Z"}]}`

func TestGetAlert(t *testing.T) {
	h := setup(t)
	h.mux.HandleFunc("GET /api/alerts/da637472900382838869_1364969609", reply(200, alertJSON))
	a, err := h.client.GetAlert(t.Context(), "da637472900382838869_1364969609")
	require.NoError(t, err)
	assert.Equal(t, "Suspicious PowerShell", a.Title)
	require.NotNil(t, a.Classification)
	assert.Equal(t, "TruePositive", *a.Classification)
	require.Len(t, a.Comments, 1)
	assert.Equal(t, "bot", a.Comments[0].CreatedBy)
	assert.JSONEq(t, alertJSON, string(a.Raw))
}

func TestUpdateAlert(t *testing.T) {
	tests := []struct {
		name string
		u    AlertUpdate
		want string
	}{
		{"all fields, user spelling normalised",
			AlertUpdate{Status: ptr("resolved"), AssignedTo: ptr(" secop2@contoso.com "), Classification: ptr("falsepositive"),
				Determination: ptr("notmalicious"), Comment: ptr("Resolve my alert")},
			`{"status":"Resolved","assignedTo":"secop2@contoso.com","classification":"FalsePositive","determination":"NotMalicious","comment":"Resolve my alert"}`},
		{"status only", AlertUpdate{Status: ptr("In Progress")}, `{"status":"InProgress"}`},
		{"classification only", AlertUpdate{Classification: ptr("Informational, expected activity")}, `{"classification":"InformationalExpectedActivity"}`},
		{"other spelling kept", AlertUpdate{Classification: ptr("InformationalExpectedActivity"), Determination: ptr("ConfirmedUserActivity")},
			`{"classification":"InformationalExpectedActivity","determination":"ConfirmedUserActivity"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := setup(t)
			h.mux.HandleFunc("PATCH /api/alerts/a1", reply(200, `{"id":"a1","status":"Resolved"}`))
			orig := tt.u
			a, err := h.client.UpdateAlert(t.Context(), "a1", tt.u)
			require.NoError(t, err)
			assert.Equal(t, "a1", a.ID)
			reqs := h.Requests()
			require.Len(t, reqs, 1)
			assert.Equal(t, "PATCH", reqs[0].Method)
			assert.Equal(t, "application/json", reqs[0].Header.Get("Content-Type"))
			requireJSONBody(t, tt.want, reqs[0].Body)
			assert.Equal(t, orig, tt.u)
		})
	}
}

func TestUpdateAlert_validation(t *testing.T) {
	tests := []struct {
		name   string
		id     string
		u      AlertUpdate
		substr string
	}{
		{"empty id", "", AlertUpdate{Status: ptr("New")}, "alert id: is required"},
		{"bad id", "a/../b", AlertUpdate{Status: ptr("New")}, "alert id"},
		{"nothing", "a1", AlertUpdate{}, "nothing to change"},
		{"bad status", "a1", AlertUpdate{Status: ptr("Closed")}, `status: "Closed" is not allowed (allowed: New, InProgress, Resolved)`},
		{"bad classification", "a1", AlertUpdate{Classification: ptr("Maybe")}, "classification"},
		{"determination alone", "a1", AlertUpdate{Determination: ptr("Malware")}, "determination: requires a classification"},
		{"mismatched pair", "a1", AlertUpdate{Classification: ptr("FalsePositive"), Determination: ptr("Malware")},
			`determination: "Malware" is not allowed with classification FalsePositive (allowed: NotMalicious, Clean, InsufficientData, Other)`},
		{"empty assignee", "a1", AlertUpdate{AssignedTo: ptr(" ")}, "assignedTo"},
		{"empty comment", "a1", AlertUpdate{Comment: ptr("")}, "comment: is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := setup(t)
			_, err := h.client.UpdateAlert(t.Context(), tt.id, tt.u)
			require.ErrorIs(t, err, ErrInvalidArgument)
			assert.Contains(t, err.Error(), tt.substr)
			assert.Empty(t, h.Requests())
		})
	}
}

func TestCommentAlert(t *testing.T) {
	h := setup(t)
	h.mux.HandleFunc("PATCH /api/alerts/a1", reply(200, alertJSON))
	a, err := h.client.CommentAlert(t.Context(), "a1", "looked at it")
	require.NoError(t, err)
	assert.Len(t, a.Comments, 1)
	reqs := h.Requests()
	require.Len(t, reqs, 1)
	requireJSONBody(t, `{"comment":"looked at it"}`, reqs[0].Body)

	_, err = h.client.CommentAlert(t.Context(), "a1", "")
	require.ErrorIs(t, err, ErrInvalidArgument)
	assert.Len(t, h.Requests(), 1)
}

func TestGetAlert_notFound(t *testing.T) {
	h := setup(t)
	h.mux.HandleFunc("GET /api/alerts/nope", reply(http.StatusNotFound, `{"error":{"code":"NotFound","message":"Alert nope not found"}}`))
	_, err := h.client.GetAlert(t.Context(), "nope")
	assert.True(t, IsNotFound(err))
}
