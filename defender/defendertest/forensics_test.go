package defendertest_test

import (
	"archive/zip"
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/defenderbot/defenderbot/defender/defendertest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const sha1 = "87662bc3d60e4200ceaf7aae249d1c343f4b83c9"

func TestStopAndQuarantineFile(t *testing.T) {
	s := newServer(t)
	tok := mustToken(t, s)
	path := "/api/machines/" + machineID + "/StopAndQuarantineFile"

	r := call(t, s, tok, "POST", path, map[string]string{"Comment": "INC-7", "Sha1": strings.ToUpper(sha1)})
	require.Equal(t, http.StatusCreated, r.status, string(r.raw))
	assert.Equal(t, "StopAndQuarantineFile", r.json["type"])
	assert.Equal(t, "Pending", r.json["status"])
	assert.Equal(t, map[string]any{"fileIdentifier": sha1, "fileIdentifierType": "Sha1"}, r.json["relatedFileInfo"])
	assert.Contains(t, r.json["@odata.context"], "MachineActions/$entity")

	// the same file again while pending is a duplicate; another file is not
	requireError(t, call(t, s, tok, "POST", path, map[string]string{"Comment": "again", "Sha1": sha1}),
		http.StatusBadRequest, "ActiveRequestAlreadyExists")
	other := strings.Repeat("a", 40)
	assert.Equal(t, http.StatusCreated, call(t, s, tok, "POST", path, map[string]string{"Comment": "x", "Sha1": other}).status)

	// route case-insensitively, with and without /v1.0
	assert.Equal(t, http.StatusCreated, call(t, s, tok, "POST", "/api/v1.0/machines/"+otherID+"/stopandquarantinefile",
		map[string]string{"Comment": "x", "Sha1": sha1}).status)

	for name, tc := range map[string]struct {
		body       any
		code, text string
	}{
		"no Sha1":     {map[string]string{"Comment": "c"}, "MissingRequiredParameter", "Sha1"},
		"empty Sha1":  {map[string]string{"Comment": "c", "Sha1": " "}, "MissingRequiredParameter", "Sha1"},
		"no Comment":  {map[string]string{"Sha1": sha1}, "MissingRequiredParameter", "Comment"},
		"not a hash":  {map[string]string{"Comment": "c", "Sha1": "xyz"}, "InvalidHashValue", "xyz"},
		"SHA-256":     {map[string]string{"Comment": "c", "Sha1": strings.Repeat("b", 64)}, "InvalidHashValue", "invalid"},
		"number Sha1": {`{"Comment":"c","Sha1":5}`, "InvalidRequestBody", "Sha1"},
		"array body":  {`[]`, "InvalidRequestBody", "JSON object"},
	} {
		t.Run(name, func(t *testing.T) {
			r := call(t, s, tok, "POST", path, tc.body)
			requireError(t, r, http.StatusBadRequest, tc.code)
			assert.Contains(t, r.errMessage(), tc.text)
		})
	}

	linux := "0000000000000000000000000000000000000abc"
	s.AddMachine(defendertest.Machine{ID: linux, ComputerDNSName: "linux-1", OSPlatform: "Linux"})
	r = call(t, s, tok, "POST", "/api/machines/"+linux+"/StopAndQuarantineFile", map[string]string{"Comment": "c", "Sha1": sha1})
	requireError(t, r, http.StatusBadRequest, "OsPlatformNotSupported")
	assert.Contains(t, r.errMessage(), "Linux")

	requireError(t, call(t, s, tok, "POST", "/api/machines/"+strings.Repeat("9", 40)+"/StopAndQuarantineFile",
		map[string]string{"Comment": "c", "Sha1": sha1}), http.StatusNotFound, "ResourceNotFound")
}

func TestForensicActions_roles(t *testing.T) {
	s := newServer(t, defendertest.WithRoles(defendertest.RoleMachineReadAll, defendertest.RoleMachineIsolate))
	tok := mustToken(t, s)
	r := call(t, s, tok, "POST", "/api/machines/"+machineID+"/StopAndQuarantineFile", map[string]string{"Comment": "c", "Sha1": sha1})
	requireError(t, r, http.StatusForbidden, "Forbidden")
	assert.Contains(t, r.errMessage(), "Machine.StopAndQuarantine")
	r = call(t, s, tok, "POST", "/api/machines/"+machineID+"/collectInvestigationPackage", map[string]string{"Comment": "c"})
	requireError(t, r, http.StatusForbidden, "Forbidden")
	assert.Contains(t, r.errMessage(), "Machine.CollectForensics")
	assert.Contains(t, defendertest.DefaultRoles(), defendertest.RoleMachineCollectForensics)
	assert.Contains(t, defendertest.DefaultRoles(), defendertest.RoleMachineStopAndQuarantine)
}

func TestCollectInvestigationPackage_andPackageURI(t *testing.T) {
	// a duplicate collection is refused even where other duplicates return the pending action
	s := newServer(t, defendertest.WithDuplicateBehavior(defendertest.DuplicateReturnExisting),
		defendertest.WithPackageURILifetime(5*time.Minute))
	tok := mustToken(t, s)
	path := "/api/machines/" + machineID + "/collectInvestigationPackage"

	r := call(t, s, tok, "POST", path, map[string]string{"Comment": "INC-9 collect"})
	require.Equal(t, http.StatusCreated, r.status, string(r.raw))
	assert.Equal(t, "CollectInvestigationPackage", r.json["type"])
	assert.Nil(t, r.json["relatedFileInfo"])
	id := r.json["id"].(string)
	requireError(t, call(t, s, tok, "POST", path, map[string]string{"Comment": "again"}), http.StatusBadRequest, "ActiveRequestAlreadyExists")
	requireError(t, call(t, s, tok, "POST", path, map[string]string{}), http.StatusBadRequest, "MissingRequiredParameter")

	// 404 until the collection has succeeded
	requireError(t, call(t, s, tok, "GET", "/api/machineactions/"+id+"/GetPackageUri", nil), http.StatusNotFound, "ResourceNotFound")
	s.Advance(10 * time.Minute)

	r = call(t, s, tok, "GET", "/api/machineactions/"+id+"/getPackageUri", nil) // the docs' other spelling
	require.Equal(t, http.StatusOK, r.status, string(r.raw))
	assert.Contains(t, r.json["@odata.context"], "$metadata#Edm.String")
	value := r.json["value"].(string)
	require.True(t, strings.HasPrefix(value, `"`) && strings.HasSuffix(value, `"`), "wrapped in quotes like Microsoft's example: %s", value)
	link := strings.Trim(value, `"`)
	assert.True(t, strings.HasPrefix(link, s.URL+"/safedownload/WDATP_Investigation_Package.zip?token="), link)

	// the link needs no bearer token and serves a zip
	body, status := download(t, s, link)
	require.Equal(t, http.StatusOK, status)
	zr, err := zip.NewReader(bytes.NewReader(body), int64(len(body)))
	require.NoError(t, err)
	require.Len(t, zr.File, 1)

	// a second call gives a new link; the old one keeps working until it expires
	r2 := call(t, s, tok, "GET", "/api/v1.0/machineactions/"+id+"/GetPackageUri", nil)
	require.Equal(t, http.StatusOK, r2.status)
	assert.NotEqual(t, value, r2.json["value"])
	s.Advance(6 * time.Minute)
	_, status = download(t, s, link)
	assert.Equal(t, http.StatusForbidden, status, "expired")
	_, status = download(t, s, s.URL+"/safedownload/WDATP_Investigation_Package.zip?token=forged")
	assert.Equal(t, http.StatusForbidden, status)

	// only collections have packages; unknown actions are 404
	iso := call(t, s, tok, "POST", "/api/machines/"+otherID+"/isolate", map[string]string{"Comment": "c"})
	s.Advance(10 * time.Minute)
	requireError(t, call(t, s, tok, "GET", "/api/machineactions/"+iso.json["id"].(string)+"/GetPackageUri", nil),
		http.StatusNotFound, "ResourceNotFound")
	requireError(t, call(t, s, tok, "GET", "/api/machineactions/00000000-0000-0000-0000-000000000000/GetPackageUri", nil),
		http.StatusNotFound, "ResourceNotFound")
	assert.Equal(t, http.StatusMethodNotAllowed, call(t, s, tok, "POST", "/api/machineactions/"+id+"/GetPackageUri", "{}").status)

	// a failed collection has no package
	s.SetActionOutcome(otherID, "Failed")
	failed := call(t, s, tok, "POST", "/api/machines/"+otherID+"/collectInvestigationPackage", map[string]string{"Comment": "c"})
	s.Advance(10 * time.Minute)
	r = call(t, s, tok, "GET", "/api/machineactions/"+failed.json["id"].(string)+"/GetPackageUri", nil)
	requireError(t, r, http.StatusNotFound, "ResourceNotFound")
	assert.Contains(t, r.errMessage(), "Failed")
}

func TestPackageURI_rateLimit(t *testing.T) {
	s := defendertest.NewServer(t)
	s.AddMachine(defendertest.Machine{ID: machineID})
	tok := mustToken(t, s)
	r := call(t, s, tok, "POST", "/api/machines/"+machineID+"/collectInvestigationPackage", map[string]string{"Comment": "c"})
	id := r.json["id"].(string)
	s.Advance(10 * time.Minute)
	for range 2 {
		require.Equal(t, http.StatusOK, call(t, s, tok, "GET", "/api/machineactions/"+id+"/GetPackageUri", nil).status)
	}
	r = call(t, s, tok, "GET", "/api/machineactions/"+id+"/GetPackageUri", nil)
	requireError(t, r, http.StatusTooManyRequests, "TooManyRequests")
	assert.NotEmpty(t, r.header.Get("Retry-After"))
	// the other machine action APIs have their own budget
	assert.Equal(t, http.StatusOK, call(t, s, tok, "GET", "/api/machineactions/"+id, nil).status)
}

func TestMachineAlerts(t *testing.T) {
	s := newServer(t)
	tok := mustToken(t, s)
	s.AddAlert(defendertest.Alert{ID: "a1", Title: "one", MachineID: machineID, Severity: "High"})
	s.AddAlert(defendertest.Alert{ID: "a2", Title: "two", MachineID: machineID, Status: "Resolved"})
	s.AddAlert(defendertest.Alert{ID: "a3", Title: "three", MachineID: otherID})

	r := call(t, s, tok, "GET", "/api/machines/"+machineID+"/alerts", nil)
	require.Equal(t, http.StatusOK, r.status, string(r.raw))
	assert.Contains(t, r.json["@odata.context"], "$metadata#Alerts")
	var ids []any
	for _, v := range r.values() {
		ids = append(ids, v["id"])
	}
	assert.Equal(t, []any{"a1", "a2"}, ids)

	r = call(t, s, tok, "GET", "/api/machines/host1.contoso.com/alerts?$filter=status+ne+'Resolved'", nil)
	require.Equal(t, http.StatusOK, r.status, string(r.raw))
	require.Len(t, r.values(), 1)
	assert.Equal(t, "a1", r.values()[0]["id"])

	r = call(t, s, tok, "GET", "/api/machines/"+otherID+"/alerts", nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.Len(t, r.values(), 1)

	requireError(t, call(t, s, tok, "GET", "/api/machines/"+strings.Repeat("9", 40)+"/alerts", nil), http.StatusNotFound, "ResourceNotFound")
	requireError(t, call(t, s, tok, "GET", "/api/machines/"+machineID+"/alerts?$filter=bogus%20eq%201", nil), http.StatusBadRequest, "ODataError")

	noAlerts := newServer(t, defendertest.WithRoles(defendertest.RoleMachineReadAll))
	requireError(t, call(t, noAlerts, mustToken(t, noAlerts), "GET", "/api/machines/"+machineID+"/alerts", nil), http.StatusForbidden, "Forbidden")
}

func download(t *testing.T, s *defendertest.Server, link string) ([]byte, int) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, link, nil)
	require.NoError(t, err)
	resp, err := s.HTTPClient().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return b, resp.StatusCode
}
