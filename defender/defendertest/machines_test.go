package defendertest_test

import (
	"net/http"
	"net/url"
	"sort"
	"testing"
	"time"

	"github.com/defenderbot/defenderbot/defender/defendertest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestIsolateResponseShapeAndLifecycle(t *testing.T) {
	s := newServer(t)
	tok := mustToken(t, s)
	r := call(t, s, tok, http.MethodPost, "/api/machines/"+machineID+"/isolate",
		map[string]string{"Comment": "suspicious beacon", "IsolationType": "Selective"})
	require.Equal(t, http.StatusCreated, r.status, string(r.raw))
	assert.Equal(t, []string{"@odata.context", "cancellationComment", "cancellationDateTimeUtc", "cancellationRequestor",
		"commands", "computerDnsName", "creationDateTimeUtc", "errorHResult", "externalId", "id", "lastUpdateDateTimeUtc",
		"machineId", "relatedFileInfo", "requestSource", "requestor", "requestorComment", "scope", "status", "title",
		"troubleshootInfo", "type"}, keys(r.json))
	assert.Equal(t, s.URL+"/api/$metadata#MachineActions/$entity", r.json["@odata.context"])
	assert.Equal(t, "Isolate", r.json["type"])
	assert.Equal(t, "Pending", r.json["status"])
	assert.Nil(t, r.json["scope"])
	assert.Equal(t, defendertest.AppDisplayName, r.json["requestor"])
	assert.Equal(t, "suspicious beacon", r.json["requestorComment"])
	assert.Equal(t, "host1.contoso.com", r.json["computerDnsName"])
	assert.Equal(t, "PublicApi", r.json["requestSource"])
	assert.Equal(t, []any{}, r.json["commands"])
	assert.Equal(t, float64(0), r.json["errorHResult"])
	id := r.json["id"].(string)
	assert.Regexp(t, `^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-8[0-9a-f]{3}-[0-9a-f]{12}$`, id)
	created, err := time.Parse(time.RFC3339Nano, r.json["creationDateTimeUtc"].(string))
	require.NoError(t, err)

	get := func() result { return call(t, s, tok, http.MethodGet, "/api/machineactions/"+id, nil) }
	assert.Equal(t, "Pending", get().json["status"])
	s.Advance(30 * time.Second)
	g := get()
	assert.Equal(t, "InProgress", g.json["status"])
	assert.Equal(t, "Selective", g.json["scope"])
	assert.Equal(t, created.Add(30*time.Second).Format(time.RFC3339Nano), g.json["lastUpdateDateTimeUtc"])
	s.Advance(90 * time.Second)
	g = get()
	assert.Equal(t, "Succeeded", g.json["status"])
	assert.Equal(t, created.Add(2*time.Minute).Format(time.RFC3339Nano), g.json["lastUpdateDateTimeUtc"])

	a, ok := s.MachineAction(id)
	require.True(t, ok)
	assert.Equal(t, "Succeeded", a.Status)
	require.NotNil(t, a.Scope)
	assert.Equal(t, "Selective", *a.Scope)
}

func TestActionTimingsAndOutcome(t *testing.T) {
	s := newServer(t, defendertest.WithActionTimings(time.Second, 5*time.Second))
	s.SetActionOutcome(machineID, "Failed")
	tok := mustToken(t, s)
	r := call(t, s, tok, http.MethodPost, "/api/v1.0/machines/"+machineID+"/runAntiVirusScan",
		map[string]string{"Comment": "scan", "ScanType": "Quick"})
	require.Equal(t, http.StatusCreated, r.status, string(r.raw))
	s.Advance(5 * time.Second)
	a, ok := s.MachineAction(r.json["id"].(string))
	require.True(t, ok)
	assert.Equal(t, "Failed", a.Status)
	assert.NotZero(t, a.ErrorHResult)
	assert.Equal(t, "RunAntiVirusScan", a.Type)
}

func TestMachineActionValidation(t *testing.T) {
	tests := []struct {
		name   string
		path   string
		body   any
		status int
		code   string
	}{
		{"missing comment", "/isolate", map[string]string{"IsolationType": "Full"}, 400, "MissingRequiredParameter"},
		{"blank comment", "/unisolate", map[string]string{"Comment": "  "}, 400, "MissingRequiredParameter"},
		{"bad isolation type", "/isolate", map[string]string{"Comment": "x", "IsolationType": "Partial"}, 400, "InvalidRequestBody"},
		{"scan type missing", "/runAntiVirusScan", map[string]string{"Comment": "x"}, 400, "MissingRequiredParameter"},
		{"scan type bad", "/runAntiVirusScan", map[string]string{"Comment": "x", "ScanType": "Deep"}, 400, "InvalidRequestBody"},
		{"comment wrong type", "/isolate", `{"Comment": 5}`, 400, "InvalidRequestBody"},
		{"not json", "/isolate", `{"Comment": `, 400, "InvalidRequestBody"},
		{"array body", "/isolate", `[]`, 400, "InvalidRequestBody"},
		{"empty body", "/isolate", ``, 400, "InvalidRequestBody"},
		{"unknown verb", "/explode", map[string]string{"Comment": "x"}, 404, "NotFound"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t)
			tok := mustToken(t, s)
			requireError(t, call(t, s, tok, http.MethodPost, "/api/machines/"+machineID+tt.path, tt.body), tt.status, tt.code)
			assert.Empty(t, s.MachineActions())
		})
	}
}

func TestMachineActionKindsAndCaseInsensitiveBody(t *testing.T) {
	s := newServer(t)
	tok := mustToken(t, s)
	for verb, typ := range map[string]string{
		"isolate": "Isolate", "unisolate": "Unisolate", "restrictCodeExecution": "RestrictCodeExecution",
		"unrestrictCodeExecution": "UnrestrictCodeExecution",
	} {
		r := call(t, s, tok, http.MethodPost, "/api/machines/"+machineID+"/"+verb, map[string]string{"comment": "lower-case property"})
		require.Equal(t, http.StatusCreated, r.status, string(r.raw))
		assert.Equal(t, typ, r.json["type"])
		assert.Equal(t, "lower-case property", r.json["requestorComment"])
	}
}

func TestMachineActionUnknownMachineAndContentType(t *testing.T) {
	s := newServer(t)
	tok := mustToken(t, s)
	r := call(t, s, tok, http.MethodPost, "/api/machines/123123123/isolate", map[string]string{"Comment": "x"})
	requireError(t, r, http.StatusNotFound, "ResourceNotFound")
	assert.Equal(t, "Machine 123123123 was not found", r.errMessage())

	req, err := http.NewRequest(http.MethodPost, s.URL+"/api/machines/"+machineID+"/isolate", stringsReader(`{"Comment":"x"}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "text/plain")
	requireError(t, send(t, s, req), http.StatusUnsupportedMediaType, "UnsupportedMediaType")
	assert.Empty(t, s.MachineActions())
}

func TestDuplicateActions(t *testing.T) {
	body := map[string]string{"Comment": "x", "IsolationType": "Full"}
	t.Run("reject", func(t *testing.T) {
		s := newServer(t)
		tok := mustToken(t, s)
		require.Equal(t, http.StatusCreated, call(t, s, tok, http.MethodPost, "/api/machines/"+machineID+"/isolate", body).status)
		r := call(t, s, tok, http.MethodPost, "/api/machines/"+machineID+"/isolate", body)
		requireError(t, r, http.StatusBadRequest, "ActiveRequestAlreadyExists")
		assert.Equal(t, "Action is already in progress", r.errMessage())
		// another machine or another type is fine
		assert.Equal(t, http.StatusCreated, call(t, s, tok, http.MethodPost, "/api/machines/"+otherID+"/isolate", body).status)
		assert.Equal(t, http.StatusCreated, call(t, s, tok, http.MethodPost, "/api/machines/"+machineID+"/restrictCodeExecution", body).status)
		// once final, a new one is accepted
		s.Advance(2 * time.Minute)
		assert.Equal(t, http.StatusCreated, call(t, s, tok, http.MethodPost, "/api/machines/"+machineID+"/isolate", body).status)
		assert.Len(t, s.MachineActions(), 4)
	})
	t.Run("return existing", func(t *testing.T) {
		s := newServer(t, defendertest.WithDuplicateBehavior(defendertest.DuplicateReturnExisting))
		tok := mustToken(t, s)
		first := call(t, s, tok, http.MethodPost, "/api/machines/"+machineID+"/isolate", body)
		second := call(t, s, tok, http.MethodPost, "/api/machines/"+machineID+"/isolate", body)
		require.Equal(t, http.StatusCreated, second.status)
		assert.Equal(t, first.json["id"], second.json["id"])
		assert.Len(t, s.MachineActions(), 1)
	})
}

func TestCancel(t *testing.T) {
	s := newServer(t)
	tok := mustToken(t, s)
	id := call(t, s, tok, http.MethodPost, "/api/machines/"+machineID+"/isolate", map[string]string{"Comment": "x"}).json["id"].(string)

	requireError(t, call(t, s, tok, http.MethodPost, "/api/machineactions/"+id+"/cancel", map[string]string{}), 400, "MissingRequiredParameter")
	requireError(t, call(t, s, tok, http.MethodPost, "/api/machineactions/nope/cancel", map[string]string{"Comment": "c"}), 404, "ResourceNotFound")

	r := call(t, s, tok, http.MethodPost, "/api/machineactions/"+id+"/cancel", map[string]string{"Comment": "false alarm"})
	require.Equal(t, http.StatusOK, r.status, string(r.raw))
	assert.Equal(t, "Cancelled", r.json["status"])
	assert.Equal(t, "false alarm", r.json["cancellationComment"])
	assert.Equal(t, defendertest.AppDisplayName, r.json["cancellationRequestor"])
	assert.NotNil(t, r.json["cancellationDateTimeUtc"])

	// cancelled stays cancelled; cancelling a final action is a 400
	s.Advance(10 * time.Minute)
	a, _ := s.MachineAction(id)
	assert.Equal(t, "Cancelled", a.Status)
	requireError(t, call(t, s, tok, http.MethodPost, "/api/machineactions/"+id+"/cancel", map[string]string{"Comment": "again"}), 400, "BadRequest")
	requireError(t, call(t, s, tok, http.MethodGet, "/api/machineactions/unknown", nil), 404, "ResourceNotFound")
}

func TestListMachineActions(t *testing.T) {
	s := newServer(t)
	tok := mustToken(t, s)
	post := func(id, verb string, body map[string]string) string {
		r := call(t, s, tok, http.MethodPost, "/api/machines/"+id+"/"+verb, body)
		require.Equal(t, http.StatusCreated, r.status, string(r.raw))
		return r.json["id"].(string)
	}
	a1 := post(machineID, "isolate", map[string]string{"Comment": "1"})
	s.Advance(3 * time.Minute)
	a2 := post(machineID, "unisolate", map[string]string{"Comment": "2"})
	a3 := post(otherID, "runAntiVirusScan", map[string]string{"Comment": "3", "ScanType": "Full"})

	ids := func(r result) []string {
		require.Equal(t, http.StatusOK, r.status, string(r.raw))
		var out []string
		for _, v := range r.values() {
			out = append(out, v["id"].(string))
		}
		return out
	}
	list := func(q string) result { return call(t, s, tok, http.MethodGet, "/api/machineactions?"+q, nil) }
	assert.Equal(t, []string{a1, a2, a3}, ids(list("")))
	assert.Equal(t, []string{a1, a2}, ids(list("$filter=machineId+eq+'"+machineID+"'")))
	assert.Equal(t, []string{a1, a2}, ids(list("$filter=machineId%20eq%20'"+machineID+"'%20and%20type%20in%20('Isolate','Unisolate')")))
	assert.Equal(t, []string{a1}, ids(list("$filter=status+eq+'Succeeded'")))
	assert.Equal(t, []string{a2, a3}, ids(list("$filter=status+in+('Pending','InProgress')")))
	assert.Equal(t, []string{a3}, ids(list("$filter="+url.QueryEscape("requestor eq '"+defendertest.AppDisplayName+"' and type eq 'RunAntiVirusScan'"))))
	assert.Equal(t, []string{a2}, ids(list("$top=1&$skip=1")))
	assert.Equal(t, []string{a3, a2, a1}, ids(list("$orderby=creationDateTimeUtc+desc,type")))
	assert.Equal(t, []string{a1}, ids(list("$filter=id+eq+'"+a1+"'")))
	r := list("$filter=machineId+eq+'" + machineID + "'&$count=true")
	assert.Equal(t, float64(2), r.json["@odata.count"])
	assert.Equal(t, s.URL+"/api/$metadata#MachineActions", r.json["@odata.context"])

	for _, bad := range []string{
		"$filter=machineId+eq+", "$filter=nosuchfield+eq+'x'", "$filter=machineId+eq+unquoted", "$filter=status+like+'x'",
		"$filter=(status+eq+'x'", "$filter='x'", "$top=10001", "$top=-1", "$skip=abc", "$orderby=nosuch", "$filter=status+eq+'unterminated",
	} {
		requireError(t, list(bad), http.StatusBadRequest, "ODataError")
	}
}

func TestMachines(t *testing.T) {
	s := newServer(t)
	tok := mustToken(t, s)
	r := call(t, s, tok, http.MethodGet, "/api/machines/"+machineID, nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, s.URL+"/api/$metadata#Machines/$entity", r.json["@odata.context"])
	assert.Equal(t, "host1.contoso.com", r.json["computerDnsName"])
	assert.Equal(t, "Active", r.json["healthStatus"])

	r = call(t, s, tok, http.MethodGet, "/api/machines/HOST2.contoso.com", nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, otherID, r.json["id"])
	r = call(t, s, tok, http.MethodGet, "/api/machines/nope", nil)
	requireError(t, r, http.StatusNotFound, "ResourceNotFound")
	assert.Equal(t, "Machine nope was not found", r.errMessage())

	names := func(q string) []string {
		r := call(t, s, tok, http.MethodGet, "/api/machines?"+q, nil)
		require.Equal(t, http.StatusOK, r.status, string(r.raw))
		out := []string{}
		for _, v := range r.values() {
			out = append(out, v["computerDnsName"].(string))
		}
		return out
	}
	assert.Equal(t, []string{"host1.contoso.com"}, names("$filter=computerDnsName+eq+'Host1.Contoso.com'"))
	assert.Equal(t, []string{"host1.contoso.com", "host2.contoso.com"}, names("$filter=startswith(computerDnsName,'host')"))
	assert.Equal(t, []string{}, names("$filter=computerDnsName+eq+'missing'"))
	assert.Equal(t, []string{"host2.contoso.com"}, names("$filter=not+startswith(computerDnsName,'host1')"))
	assert.Equal(t, []string{"host1.contoso.com", "host2.contoso.com"}, names("$filter=lastSeen+ge+2000-01-01T00:00:00Z"))
	assert.Equal(t, []string{"host2.contoso.com"}, names("$filter=computerDnsName+eq+'host2.contoso.com'+or+computerDnsName+eq+'none'"))

	m, ok := s.Machine(machineID)
	require.True(t, ok)
	assert.Equal(t, "Onboarded", m.OnboardingStatus)
}

func TestPaging(t *testing.T) {
	s := newServer(t, defendertest.WithPageSize(2))
	s.AddMachine(defendertest.Machine{ComputerDNSName: "host3"})
	s.AddMachine(defendertest.Machine{ComputerDNSName: "host4"})
	s.AddMachine(defendertest.Machine{ComputerDNSName: "host5"})
	tok := mustToken(t, s)
	var got []string
	next := s.URL + "/api/machines"
	pages := 0
	for next != "" {
		pages++
		require.LessOrEqual(t, pages, 5)
		r := call(t, s, tok, http.MethodGet, next[len(s.URL):], nil)
		require.Equal(t, http.StatusOK, r.status, string(r.raw))
		for _, v := range r.values() {
			got = append(got, v["computerDnsName"].(string))
		}
		next, _ = r.json["@odata.nextLink"].(string)
	}
	assert.Equal(t, 3, pages)
	assert.Equal(t, []string{"host1.contoso.com", "host2.contoso.com", "host3", "host4", "host5"}, got)

	// $top smaller than the page size: no nextLink
	r := call(t, s, tok, http.MethodGet, "/api/machines?$top=2", nil)
	assert.Len(t, r.values(), 2)
	assert.NotContains(t, r.json, "@odata.nextLink")
}
