package defendertest_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/defenderbot/defenderbot/defender/defendertest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

func ind(typ, value string) map[string]any {
	return map[string]any{"indicatorValue": value, "indicatorType": typ, "action": "AlertAndBlock",
		"title": "t", "description": "d", "severity": "High", "generateAlert": true}
}

func importBody(items ...map[string]any) map[string]any { return map[string]any{"Indicators": items} }

func TestImportIndicators(t *testing.T) {
	s := newServer(t)
	tok := mustToken(t, s)
	r := call(t, s, tok, http.MethodPost, "/api/indicators/import", importBody(ind("FileSha256", sha256), ind("IpAddress", "203.0.113.7")))
	require.Equal(t, http.StatusOK, r.status, string(r.raw))
	vals := r.values()
	require.Len(t, vals, 2)
	assert.Equal(t, map[string]any{"id": "1", "indicator": sha256, "isFailed": false, "failureReason": nil}, vals[0])
	assert.Equal(t, "2", vals[1]["id"])

	// upsert: same type + value keeps the id
	upd := ind("IpAddress", "203.0.113.7")
	upd["title"] = "updated"
	r = call(t, s, tok, http.MethodPost, "/api/indicators/import", importBody(upd))
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, "2", r.values()[0]["id"])

	got := s.Indicators()
	require.Len(t, got, 2)
	assert.Equal(t, "updated", got[1].Title)
	assert.Equal(t, "AadApp", got[1].SourceType)
	assert.Equal(t, defendertest.ClientID, got[1].CreatedBy)

	list := call(t, s, tok, http.MethodGet, "/api/indicators?$filter=indicatorType+eq+'IpAddress'", nil)
	require.Equal(t, http.StatusOK, list.status)
	require.Len(t, list.values(), 1)
	assert.Equal(t, "203.0.113.7", list.values()[0]["indicatorValue"])
	assert.Equal(t, s.URL+"/api/$metadata#Indicators", list.json["@odata.context"])
}

func TestImportPerItemFailures(t *testing.T) {
	with := func(k string, v any) map[string]any {
		m := ind("DomainName", "evil.example.com")
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	tests := []struct {
		name   string
		item   any
		reason string
	}{
		{"bad sha256", ind("FileSha256", "abc"), "Hash value abc is invalid"},
		{"bad sha1", ind("FileSha1", strings.Repeat("z", 40)), "is invalid"},
		{"bad md5", ind("FileMd5", sha256), "is invalid"},
		{"cidr", ind("IpAddress", "10.0.0.0/8"), "CIDR"},
		{"bad ip", ind("IpAddress", "999.1.1.1"), "IP address 999.1.1.1 is invalid"},
		{"bad domain", ind("DomainName", "bad_domain!.com"), "Domain name bad_domain!.com is invalid"},
		{"bad url", ind("Url", "http://"), "URL http:// is invalid"},
		{"unknown type", ind("Registry", "x"), "indicatorType"},
		{"unknown action", with("action", "Destroy"), "action"},
		{"audit without alert", func() map[string]any { m := with("action", "Audit"); m["generateAlert"] = false; return m }(), "generateAlert"},
		{"missing title", with("title", nil), "Parameter title is missing"},
		{"missing description", with("description", ""), "Parameter description is missing"},
		{"missing value", with("indicatorValue", nil), "Parameter indicatorValue is missing"},
		{"bad severity", with("severity", "Critical"), "severity"},
		{"wrong type", with("generateAlert", "yes"), "generateAlert"},
		{"bad expiration", with("expirationTime", "tomorrow"), "expirationTime"},
		{"not an object", "just a string", "JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t)
			tok := mustToken(t, s)
			r := call(t, s, tok, http.MethodPost, "/api/indicators/import", map[string]any{"Indicators": []any{tt.item, ind("Url", "https://ok.example.com/x")}})
			require.Equal(t, http.StatusOK, r.status, string(r.raw))
			vals := r.values()
			require.Len(t, vals, 2)
			assert.Equal(t, true, vals[0]["isFailed"])
			assert.Nil(t, vals[0]["id"])
			assert.Contains(t, vals[0]["failureReason"], tt.reason)
			assert.Equal(t, false, vals[1]["isFailed"])
			require.Len(t, s.Indicators(), 1)
		})
	}
}

func TestImportBatchErrors(t *testing.T) {
	s := newServer(t)
	tok := mustToken(t, s)
	items := make([]map[string]any, 501)
	for i := range items {
		items[i] = ind("IpAddress", fmt.Sprintf("10.0.%d.%d", i/250, i%250+1))
	}
	r := call(t, s, tok, http.MethodPost, "/api/indicators/import", importBody(items...))
	requireError(t, r, http.StatusBadRequest, "MaximumBatchSizeExceeded")
	assert.Equal(t, "Maximum batch size exceeded. Received: 501, allowed: 500", r.errMessage())
	requireError(t, call(t, s, tok, http.MethodPost, "/api/indicators/import", map[string]any{}), 400, "MissingRequiredParameter")
	requireError(t, call(t, s, tok, http.MethodPost, "/api/indicators/import", map[string]any{"Indicators": []any{}}), 400, "InvalidInput")
	requireError(t, call(t, s, tok, http.MethodPost, "/api/indicators/import", `{"Indicators": {}}`), 400, "InvalidRequestBody")
	assert.Empty(t, s.Indicators())

	r = call(t, s, tok, http.MethodPost, "/api/indicators/import", importBody(items[:500]...))
	require.Equal(t, http.StatusOK, r.status)
	assert.Len(t, s.Indicators(), 500)
}

func TestIndicatorTenantLimit(t *testing.T) {
	s := newServer(t, defendertest.WithIndicatorLimit(2))
	tok := mustToken(t, s)
	s.AddIndicator(defendertest.Indicator{IndicatorType: "DomainName", IndicatorValue: "portal.example.com", Action: "Block", Title: "a", Description: "b"})
	r := call(t, s, tok, http.MethodPost, "/api/indicators/import",
		importBody(ind("IpAddress", "192.0.2.1"), ind("IpAddress", "192.0.2.2"), ind("IpAddress", "192.0.2.1")))
	vals := r.values()
	require.Len(t, vals, 3)
	assert.Equal(t, false, vals[0]["isFailed"])
	assert.Equal(t, true, vals[1]["isFailed"])
	assert.Contains(t, vals[1]["failureReason"], "limit of 2")
	assert.Equal(t, false, vals[2]["isFailed"], "an update does not count against the limit")
	assert.Len(t, s.Indicators(), 2)
}

func TestExpiredIndicatorsAreNotActive(t *testing.T) {
	s := newServer(t)
	tok := mustToken(t, s)
	item := ind("IpAddress", "192.0.2.9")
	item["expirationTime"] = s.Now().Add(time.Minute).Format(time.RFC3339)
	require.Equal(t, http.StatusOK, call(t, s, tok, http.MethodPost, "/api/indicators/import", importBody(item)).status)
	assert.Len(t, s.Indicators(), 1)
	s.Advance(2 * time.Minute)
	assert.Empty(t, s.Indicators())
	assert.Empty(t, call(t, s, tok, http.MethodGet, "/api/indicators", nil).values())
}

func TestSubmitIndicator(t *testing.T) {
	s := newServer(t)
	tok := mustToken(t, s)
	r := call(t, s, tok, http.MethodPost, "/api/indicators", ind("Url", "https://evil.example.com/a"))
	require.Equal(t, http.StatusOK, r.status, string(r.raw))
	assert.Equal(t, s.URL+"/api/$metadata#Indicators/$entity", r.json["@odata.context"])
	assert.Equal(t, "1", r.json["id"])
	assert.Equal(t, "AadApp", r.json["sourceType"])
	requireError(t, call(t, s, tok, http.MethodPost, "/api/indicators", ind("FileSha1", "nothex")), 400, "InvalidHashValue")
	requireError(t, call(t, s, tok, http.MethodPost, "/api/indicators", ind("IpAddress", "x")), 400, "InvalidIpAddress")
	requireError(t, call(t, s, tok, http.MethodPost, "/api/indicators", ind("DomainName", "-x-.com")), 400, "InvalidDomainName")
}

func TestDeleteIndicators(t *testing.T) {
	s := newServer(t)
	tok := mustToken(t, s)
	var ids []string
	for i := 1; i <= 4; i++ {
		ids = append(ids, s.AddIndicator(defendertest.Indicator{IndicatorType: "IpAddress", IndicatorValue: fmt.Sprintf("192.0.2.%d", i),
			Action: "Block", Title: "t", Description: "d"}))
	}
	assert.Equal(t, []string{"1", "2", "3", "4"}, ids)
	assert.Equal(t, "User", s.Indicators()[0].SourceType)

	r := call(t, s, tok, http.MethodPost, "/api/indicators/BatchDelete", map[string]any{"IndicatorIds": []string{"1", "99"}})
	requireError(t, r, http.StatusNotFound, "ResourceNotFound")
	assert.Contains(t, r.errMessage(), "99")
	assert.Len(t, s.Indicators(), 4, "nothing deleted")

	requireError(t, call(t, s, tok, http.MethodPost, "/api/indicators/BatchDelete", map[string]any{"IndicatorIds": []string{}}), 400, "InvalidInput")
	requireError(t, call(t, s, tok, http.MethodPost, "/api/indicators/BatchDelete", map[string]any{}), 400, "MissingRequiredParameter")
	requireError(t, call(t, s, tok, http.MethodPost, "/api/indicators/BatchDelete", map[string]any{"IndicatorIds": []string{"abc"}}), 400, "InvalidInput")
	requireError(t, call(t, s, tok, http.MethodPost, "/api/indicators/BatchDelete", map[string]any{"IndicatorIds": []any{true}}), 400, "InvalidInput")
	many := make([]string, 501)
	for i := range many {
		many[i] = fmt.Sprint(i + 1)
	}
	requireError(t, call(t, s, tok, http.MethodPost, "/api/indicators/BatchDelete", map[string]any{"IndicatorIds": many}), 400, "MaximumBatchSizeExceeded")

	r = call(t, s, tok, http.MethodPost, "/api/indicators/batchDelete", map[string]any{"IndicatorIds": []any{"1", 2}})
	assert.Equal(t, http.StatusNoContent, r.status, string(r.raw))
	assert.Empty(t, r.raw)
	assert.Len(t, s.Indicators(), 2)

	assert.Equal(t, http.StatusNoContent, call(t, s, tok, http.MethodDelete, "/api/indicators/3", nil).status)
	requireError(t, call(t, s, tok, http.MethodDelete, "/api/indicators/3", nil), http.StatusNotFound, "ResourceNotFound")
	assert.Equal(t, "4", s.Indicators()[0].ID)
}

func TestIndicatorListPaging(t *testing.T) {
	s := newServer(t, defendertest.WithPageSize(2))
	tok := mustToken(t, s)
	for i := 1; i <= 5; i++ {
		s.AddIndicator(defendertest.Indicator{IndicatorType: "IpAddress", IndicatorValue: fmt.Sprintf("192.0.2.%d", i), Action: "Block"})
	}
	r := call(t, s, tok, http.MethodGet, "/api/indicators?$filter=createdBy+eq+'analyst@contoso.com'", nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.Len(t, r.values(), 2)
	next := r.json["@odata.nextLink"].(string)
	assert.True(t, strings.HasPrefix(next, s.URL+"/api/indicators?"))
	r = call(t, s, tok, http.MethodGet, next[len(s.URL):], nil)
	assert.Equal(t, "192.0.2.3", r.values()[0]["indicatorValue"])
}
