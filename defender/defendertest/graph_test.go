package defendertest_test

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/defenderbot/defenderbot/defender/defendertest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func graphToken(t *testing.T, s *defendertest.Server) string {
	t.Helper()
	res, tok := getToken(t, s, url.Values{"grant_type": {"client_credentials"}, "client_id": {defendertest.ClientID},
		"client_secret": {defendertest.ClientSecret}, "scope": {defendertest.GraphScope + " openid offline_access profile"}})
	require.Equal(t, http.StatusOK, res.status, string(res.raw))
	return tok
}

func requireGraphError(t *testing.T, r result, status int, code string) {
	t.Helper()
	require.Equal(t, status, r.status, string(r.raw))
	require.Equal(t, code, r.errCode(), string(r.raw))
	inner := r.json["error"].(map[string]any)["innerError"].(map[string]any)
	require.NotEmpty(t, inner["request-id"])
}

const alertsV2 = "/v1.0/security/alerts_v2"

func TestGraphAudiences(t *testing.T) {
	s := newServer(t)
	a := s.NewDeviceAlert(machineID, "x", "high")
	mde, gr := mustToken(t, s), graphToken(t, s)

	requireGraphError(t, call(t, s, mde, "GET", alertsV2, nil), http.StatusUnauthorized, "InvalidAuthenticationToken")
	requireGraphError(t, call(t, s, "", "GET", alertsV2, nil), http.StatusUnauthorized, "InvalidAuthenticationToken")
	requireError(t, call(t, s, gr, "GET", "/api/machines", nil), http.StatusUnauthorized, "Unauthorized")
	assert.Equal(t, http.StatusOK, call(t, s, gr, "GET", alertsV2+"/"+a.ID, nil).status)

	s.SetGraphRoles(defendertest.RoleSecurityAlertReadAll)
	ro := graphToken(t, s)
	assert.Equal(t, http.StatusOK, call(t, s, ro, "GET", alertsV2, nil).status)
	requireGraphError(t, call(t, s, ro, "PATCH", alertsV2+"/"+a.ID, map[string]any{"status": "resolved"}),
		http.StatusForbidden, "Forbidden")
	requireGraphError(t, call(t, s, ro, "POST", alertsV2+"/"+a.ID+"/comments", map[string]any{"comment": "x"}),
		http.StatusForbidden, "Forbidden")
}

func TestGraphDeviceEvidenceFromMachine(t *testing.T) {
	s := newServer(t)
	a := s.NewDeviceAlert(machineID, "Ransomware behavior", "high")
	require.Len(t, a.Evidence, 1)
	ev := a.Evidence[0]
	assert.Equal(t, defendertest.DeviceEvidenceType, ev.ODataType)
	assert.Equal(t, machineID, ev.MdeDeviceID)
	assert.Equal(t, "host1.contoso.com", ev.DeviceDNSName)
	assert.Equal(t, "active", ev.HealthStatus)
	assert.Equal(t, "none", ev.RiskScore)
	assert.Equal(t, "new", a.Status)
	assert.Equal(t, "microsoftDefenderForEndpoint", a.ServiceSource)
	assert.Contains(t, a.AlertWebURL, "https://security.microsoft.com/alerts/"+a.ID)
}

func TestGraphListFilterAndPaging(t *testing.T) {
	s := newServer(t, defendertest.WithPageSize(2))
	t0 := s.Now()
	old := s.AddGraphAlert(defendertest.GraphAlert{Title: "old", Severity: "low", CreatedDateTime: t0.Add(-2 * time.Hour)})
	for i := range 3 {
		s.AddGraphAlert(defendertest.GraphAlert{Title: "new", Severity: "high", CreatedDateTime: t0.Add(time.Duration(i) * time.Minute)})
	}
	s.AddGraphAlert(defendertest.GraphAlert{Title: "idn", Severity: "high", ServiceSource: "microsoftDefenderForIdentity"})
	tok := graphToken(t, s)

	q := url.Values{"$filter": {"createdDateTime ge " + t0.Add(-time.Hour).Format(time.RFC3339Nano) +
		" and serviceSource eq 'microsoftDefenderForEndpoint'"}}
	var titles []string
	next := alertsV2 + "?" + q.Encode()
	for pages := 0; next != ""; pages++ {
		require.Less(t, pages, 5)
		r := call(t, s, tok, "GET", next, nil)
		require.Equal(t, http.StatusOK, r.status, string(r.raw))
		assert.Contains(t, r.json["@odata.context"], "/v1.0/$metadata#security/alerts_v2")
		for _, v := range r.values() {
			titles = append(titles, v["title"].(string))
		}
		link, _ := r.json["@odata.nextLink"].(string)
		next = ""
		if link != "" {
			u, err := url.Parse(link)
			require.NoError(t, err)
			next = u.RequestURI()
		}
	}
	assert.Equal(t, []string{"new", "new", "new"}, titles)

	// Updated since: a PATCH moves lastUpdateDateTime.
	s.Advance(time.Hour)
	tok = graphToken(t, s)
	mark := s.Now()
	require.Equal(t, http.StatusOK, call(t, s, tok, "PATCH", alertsV2+"/"+old.ID, map[string]any{"assignedTo": "ana@contoso.com"}).status)
	r := call(t, s, tok, "GET", alertsV2+"?"+url.Values{"$filter": {"lastUpdateDateTime ge " + mark.Format(time.RFC3339Nano)}}.Encode(), nil)
	require.Equal(t, http.StatusOK, r.status)
	require.Len(t, r.values(), 1)
	assert.Equal(t, old.ID, r.values()[0]["id"])

	for _, f := range []string{"severity eq 'low'", "status eq 'new' and severity eq 'low'"} {
		r := call(t, s, tok, "GET", alertsV2+"?"+url.Values{"$filter": {f}}.Encode(), nil)
		require.Equal(t, http.StatusOK, r.status)
		assert.Len(t, r.values(), 1, f)
	}
	requireGraphError(t, call(t, s, tok, "GET", alertsV2+"?"+url.Values{"$filter": {"title eq 'x'"}}.Encode(), nil),
		http.StatusBadRequest, "BadRequest")
}

func TestGraphPatchAndComments(t *testing.T) {
	s := newServer(t)
	a := s.NewDeviceAlert(machineID, "x", "medium")
	tok := graphToken(t, s)
	path := alertsV2 + "/" + a.ID

	requireGraphError(t, call(t, s, tok, "PATCH", path, map[string]any{"status": "Resolved"}), http.StatusBadRequest, "BadRequest")
	requireGraphError(t, call(t, s, tok, "PATCH", path, map[string]any{"title": "y"}), http.StatusBadRequest, "BadRequest")
	requireGraphError(t, call(t, s, tok, "PATCH", alertsV2+"/nope", map[string]any{"status": "resolved"}), http.StatusNotFound, "itemNotFound")
	got, _ := s.GraphAlert(a.ID)
	assert.Equal(t, "new", got.Status, "a refused PATCH changes nothing")

	s.Advance(time.Minute)
	r := call(t, s, tok, "PATCH", path, map[string]any{"status": "resolved", "classification": "truePositive",
		"determination": "malware", "assignedTo": "ana@contoso.com"})
	require.Equal(t, http.StatusOK, r.status, string(r.raw))
	assert.Equal(t, "resolved", r.json["status"])
	assert.NotNil(t, r.json["resolvedDateTime"])
	got, _ = s.GraphAlert(a.ID)
	assert.Equal(t, "malware", got.Determination)
	assert.True(t, got.LastUpdateDateTime.After(a.LastUpdateDateTime))

	r = call(t, s, tok, "POST", path+"/comments", map[string]any{"@odata.type": "microsoft.graph.security.alertComment", "comment": "first"})
	require.Equal(t, http.StatusOK, r.status, string(r.raw))
	r = call(t, s, tok, "POST", path+"/comments", map[string]any{"comment": "second"})
	require.Equal(t, http.StatusOK, r.status)
	require.Len(t, r.values(), 2, "the answer is the whole comment list")
	assert.Equal(t, defendertest.AppDisplayName, r.values()[1]["createdByDisplayName"])
	requireGraphError(t, call(t, s, tok, "POST", path+"/comments", map[string]any{"comment": " "}), http.StatusBadRequest, "BadRequest")
}

func TestGraphScanFindingRaisesAlert(t *testing.T) {
	s := newServer(t, defendertest.WithActionTimings(time.Second, 2*time.Second))
	s.SetScanFinding(machineID, defendertest.GraphAlert{Title: "EICAR test file", Severity: "high"})
	assert.Empty(t, s.GraphAlerts())
	r := call(t, s, mustToken(t, s), "POST", "/api/machines/"+machineID+"/runAntiVirusScan",
		map[string]any{"Comment": "scan", "ScanType": "Quick"})
	require.Equal(t, http.StatusCreated, r.status, string(r.raw))
	assert.Empty(t, s.GraphAlerts(), "no finding before the scan completes")
	s.Advance(time.Minute)
	alerts := s.GraphAlerts()
	require.Len(t, alerts, 1)
	assert.Equal(t, "EICAR test file", alerts[0].Title)
	assert.Equal(t, "antivirus", alerts[0].DetectionSource)
	assert.Equal(t, machineID, alerts[0].Evidence[0].MdeDeviceID)
	s.Advance(time.Minute)
	assert.Len(t, s.GraphAlerts(), 1, "one finding, one alert")
}

func TestGraphRateLimitAndFaults(t *testing.T) {
	s := defendertest.NewServer(t)
	tok := graphToken(t, s)
	for i := range 150 {
		require.Equal(t, http.StatusOK, call(t, s, tok, "GET", alertsV2, nil).status, "call %d", i)
	}
	r := call(t, s, tok, "GET", alertsV2, nil)
	requireGraphError(t, r, http.StatusTooManyRequests, "TooManyRequests")
	assert.NotEmpty(t, r.header.Get("Retry-After"))

	s.Advance(time.Minute)
	s.InjectFault(defendertest.Fault{Path: defendertest.APIGraphAlerts, Status: http.StatusServiceUnavailable, RetryAfter: 2 * time.Second})
	r = call(t, s, tok, "GET", alertsV2, nil)
	requireGraphError(t, r, http.StatusServiceUnavailable, "serviceNotAvailable")
	assert.Equal(t, "2", r.header.Get("Retry-After"))
	assert.Equal(t, http.StatusOK, call(t, s, tok, "GET", alertsV2, nil).status)
}
