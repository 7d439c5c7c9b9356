package defender

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func validIndicator() Indicator {
	return Indicator{
		IndicatorValue: "220e7d15b011d7fac48f2bd61114db1022197f7f",
		IndicatorType:  IndicatorFileSha1,
		Action:         "Block",
		Title:          "t",
		Description:    "d",
	}
}

func TestImportIndicators(t *testing.T) {
	h := setup(t)
	h.mux.HandleFunc("POST /api/indicators/import", reply(200, fixture(t, "sekoia/mock_indicators_import_response.json")))
	exp := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	created := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	a := validIndicator()
	a.ExpirationTime = &exp
	a.Severity = "High"
	a.GenerateAlert = true
	a.RBACGroupNames = []string{"g1"}
	a.ExternalID = "indicator--1"
	// Response-only fields from an earlier list must not be sent.
	a.ID, a.CreatedBy, a.SourceType, a.CreationTimeDateTimeUTC = "99", "someone", "AadApp", &created
	b := Indicator{IndicatorValue: "2233223322332233223322332233223322332233223322332233223322332222", IndicatorType: IndicatorFileSha256,
		Action: "Audit", Title: "t2", Description: "d2", GenerateAlert: true, CreatedByDisplayName: "defenderbot"}

	res, err := h.client.ImportIndicators(t.Context(), []Indicator{a, b})
	require.NoError(t, err)
	require.Len(t, res, 2)
	assert.Equal(t, ImportResult{ID: "1", Indicator: "220e7d15b011d7fac48f2bd61114db1022197f7f"}, res[0])
	assert.Equal(t, "2", res[1].ID)

	reqs := h.Requests()
	require.Len(t, reqs, 1)
	requireJSONBody(t, `{"Indicators":[
		{"indicatorValue":"220e7d15b011d7fac48f2bd61114db1022197f7f","indicatorType":"FileSha1","action":"Block","title":"t","description":"d",
		 "expirationTime":"2026-06-01T00:00:00Z","severity":"High","rbacGroupNames":["g1"],"generateAlert":true,"externalId":"indicator--1"},
		{"indicatorValue":"2233223322332233223322332233223322332233223322332233223322332222","indicatorType":"FileSha256","action":"Audit",
		 "title":"t2","description":"d2","generateAlert":true,"createdByDisplayName":"defenderbot"}]}`, reqs[0].Body)
	assert.Equal(t, "99", a.ID, "the caller's slice is not modified")
}

func TestImportIndicators_failedItems(t *testing.T) {
	h := setup(t)
	h.mux.HandleFunc("POST /api/indicators/import", reply(200,
		`{"value":[{"id":null,"indicator":"bad","isFailed":true,"failureReason":"Invalid hash"}]}`))
	res, err := h.client.ImportIndicators(t.Context(), []Indicator{validIndicator()})
	require.NoError(t, err)
	require.Len(t, res, 1)
	assert.True(t, res[0].IsFailed)
	require.NotNil(t, res[0].FailureReason)
	assert.Equal(t, "Invalid hash", *res[0].FailureReason)
}

func TestImportIndicators_validation(t *testing.T) {
	many := make([]Indicator, 501)
	for i := range many {
		many[i] = validIndicator()
	}
	mod := func(f func(*Indicator)) []Indicator {
		in := validIndicator()
		f(&in)
		return []Indicator{validIndicator(), in}
	}
	tests := []struct {
		name  string
		inds  []Indicator
		field string
	}{
		{"none", nil, "indicators: got 0, want 1 to 500"},
		{"too many", many, "indicators: got 501, want 1 to 500"},
		{"no value", mod(func(i *Indicator) { i.IndicatorValue = " " }), "indicators[1].indicatorValue: is required"},
		{"bad type", mod(func(i *Indicator) { i.IndicatorType = "Hash" }), "indicators[1].indicatorType"},
		{"lower-case type", mod(func(i *Indicator) { i.IndicatorType = "filesha1" }), "indicators[1].indicatorType"},
		{"no type", mod(func(i *Indicator) { i.IndicatorType = "" }), "indicators[1].indicatorType: is required"},
		{"bad action", mod(func(i *Indicator) { i.Action = "Nuke" }), "indicators[1].action"},
		{"no title", mod(func(i *Indicator) { i.Title = "" }), "indicators[1].title: is required"},
		{"no description", mod(func(i *Indicator) { i.Description = "" }), "indicators[1].description: is required"},
		{"bad severity", mod(func(i *Indicator) { i.Severity = "Critical" }), "indicators[1].severity"},
		{"audit without alert", mod(func(i *Indicator) { i.Action = "Audit" }), "indicators[1].generateAlert: must be true when action is Audit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := setup(t)
			_, err := h.client.ImportIndicators(t.Context(), tt.inds)
			require.ErrorIs(t, err, ErrInvalidArgument)
			assert.Contains(t, err.Error(), tt.field)
			assert.Empty(t, h.Requests())
		})
	}
}

func TestListIndicators_filterAndSkipPaging(t *testing.T) {
	h := setup(t)
	var skips []string
	h.mux.HandleFunc("GET /api/indicators", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		assert.Equal(t, "indicatorType eq 'Url' and indicatorValue eq 'http://x/it''s' and createdBy eq 'app-1'", q.Get("$filter"))
		assert.Equal(t, "10000", q.Get("$top"))
		skips = append(skips, q.Get("$skip"))
		skip, _ := strconv.Atoi(q.Get("$skip"))
		n := 10000
		if skip > 0 {
			n = 3
		}
		reply(200, page(skip, n))(w, r)
	})
	got, err := h.client.ListIndicators(t.Context(), IndicatorListOptions{IndicatorType: "url", IndicatorValue: "http://x/it's", CreatedBy: "app-1"})
	require.NoError(t, err)
	assert.Len(t, got, 10003)
	assert.Equal(t, "10002", got[10002].ID)
	assert.Equal(t, []string{"", "10000"}, skips)
}

func page(from, n int) string {
	var b strings.Builder
	b.WriteString(`{"value":[`)
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"id":"%d","indicatorValue":"v%d","indicatorType":"Url","action":"Block","title":"t","description":"d","generateAlert":false}`, from+i, from+i)
	}
	b.WriteString(`]}`)
	return b.String()
}

func TestListIndicators_topReturnsOnePage(t *testing.T) {
	h := setup(t)
	h.mux.HandleFunc("GET /api/indicators", func(w http.ResponseWriter, r *http.Request) {
		assert.Equal(t, "2", r.URL.Query().Get("$top"))
		assert.Equal(t, "4", r.URL.Query().Get("$skip"))
		assert.False(t, r.URL.Query().Has("$filter"))
		reply(200, page(4, 2))(w, r)
	})
	got, err := h.client.ListIndicators(t.Context(), IndicatorListOptions{Top: 2, Skip: 4})
	require.NoError(t, err)
	require.Len(t, got, 2)
	assert.Equal(t, "4", got[0].ID)
	assert.Equal(t, IndicatorURL, got[0].IndicatorType)
	assert.Equal(t, 1, h.countOf("GET", "/api/indicators"))
}

func TestListIndicators_validation(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts IndicatorListOptions
	}{
		{"bad type", IndicatorListOptions{IndicatorType: "Hash"}},
		{"control char value", IndicatorListOptions{IndicatorValue: "a\x00"}},
		{"negative top", IndicatorListOptions{Top: -1}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := setup(t)
			_, err := h.client.ListIndicators(t.Context(), tt.opts)
			require.ErrorIs(t, err, ErrInvalidArgument)
			assert.Empty(t, h.Requests())
		})
	}
}

func TestDeleteIndicators(t *testing.T) {
	h := setup(t)
	h.mux.HandleFunc("POST /api/indicators/BatchDelete", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	require.NoError(t, h.client.DeleteIndicators(t.Context(), []string{"1", "2", "5"}))
	reqs := h.Requests()
	require.Len(t, reqs, 1)
	requireJSONBody(t, `{"IndicatorIds":["1","2","5"]}`, reqs[0].Body)
}

func TestDeleteIndicators_notFound(t *testing.T) {
	h := setup(t)
	h.mux.HandleFunc("POST /api/indicators/BatchDelete", reply(404, `{"error":{"code":"ResourceNotFound","message":"Indicator 7 not found"}}`))
	err := h.client.DeleteIndicators(t.Context(), []string{"7"})
	assert.True(t, IsNotFound(err))
}

func TestDeleteIndicators_validation(t *testing.T) {
	many := make([]string, 501)
	for i := range many {
		many[i] = strconv.Itoa(i)
	}
	for _, tt := range []struct {
		name  string
		ids   []string
		field string
	}{
		{"none", nil, "got 0, want 1 to 500"},
		{"too many", many, "got 501, want 1 to 500"},
		{"empty id", []string{"1", ""}, "indicator ids[1]: is required"},
		{"bad id", []string{"1/2"}, "indicator ids[0]"},
		{"duplicate", []string{"1", "1"}, "listed twice"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := setup(t)
			err := h.client.DeleteIndicators(context.Background(), tt.ids)
			require.ErrorIs(t, err, ErrInvalidArgument)
			assert.Contains(t, err.Error(), tt.field)
			assert.Empty(t, h.Requests())
		})
	}
}
