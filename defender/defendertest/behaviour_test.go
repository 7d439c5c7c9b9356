package defendertest_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/defenderbot/defenderbot/defender/defendertest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRateLimits(t *testing.T) {
	s := defendertest.NewServer(t) // rate limits on by default
	tok := mustToken(t, s)
	for i := 0; i < 100; i++ {
		require.Equal(t, http.StatusOK, call(t, s, tok, http.MethodGet, "/api/machines", nil).status, "call %d", i)
	}
	r := call(t, s, tok, http.MethodGet, "/api/machines", nil)
	requireError(t, r, http.StatusTooManyRequests, "TooManyRequests")
	assert.Regexp(t, `^[1-9][0-9]*$`, r.header.Get("Retry-After"))
	// other APIs have their own quota
	assert.Equal(t, http.StatusOK, call(t, s, tok, http.MethodGet, "/api/machineactions", nil).status)

	s.Advance(time.Minute)
	assert.Equal(t, http.StatusOK, call(t, s, tok, http.MethodGet, "/api/machines", nil).status)
}

func TestRateLimitImportAndHourly(t *testing.T) {
	s := defendertest.NewServer(t)
	tok := mustToken(t, s)
	body := importBody(ind("IpAddress", "192.0.2.1"))
	for i := 0; i < 30; i++ {
		require.Equal(t, http.StatusOK, call(t, s, tok, http.MethodPost, "/api/indicators/import", body).status)
	}
	r := call(t, s, tok, http.MethodPost, "/api/indicators/import", body)
	requireError(t, r, http.StatusTooManyRequests, "TooManyRequests")
	assert.Equal(t, "60", r.header.Get("Retry-After"))

	// 1500/hour: 15 minutes of 100 calls, then the hourly window is full
	for m := 0; m < 15; m++ {
		for i := 0; i < 100; i++ {
			require.Equal(t, http.StatusOK, call(t, s, tok, http.MethodGet, "/api/alerts", nil).status)
		}
		s.Advance(time.Minute)
	}
	r = call(t, s, tok, http.MethodGet, "/api/alerts", nil)
	requireError(t, r, http.StatusTooManyRequests, "TooManyRequests")
	// the emulated clock moves with real time too, so allow for the test's own duration
	retry, err := strconv.Atoi(r.header.Get("Retry-After"))
	require.NoError(t, err)
	assert.InDelta(t, 45*60-30, retry, 30)
}

func TestRateLimitsOff(t *testing.T) {
	s := newServer(t) // WithRateLimits(false)
	tok := mustToken(t, s)
	for i := 0; i < 150; i++ {
		require.Equal(t, http.StatusOK, call(t, s, tok, http.MethodGet, "/api/machines", nil).status)
	}
}

func TestInjectFault(t *testing.T) {
	s := newServer(t)
	tok := mustToken(t, s)
	s.InjectFault(defendertest.Fault{Path: defendertest.APIIndicatorImport, Status: 503, Count: 2})
	s.InjectFault(defendertest.Fault{Method: http.MethodGet, Path: "/machines/", Status: 429, RetryAfter: 1500 * time.Millisecond})
	body := importBody(ind("IpAddress", "192.0.2.1"))
	requireError(t, call(t, s, tok, http.MethodPost, "/api/indicators/import", body), 503, "ServiceUnavailable")
	requireError(t, call(t, s, tok, http.MethodPost, "/api/indicators/import", body), 503, "ServiceUnavailable")
	assert.Equal(t, http.StatusOK, call(t, s, tok, http.MethodPost, "/api/indicators/import", body).status)
	assert.Len(t, s.Indicators(), 1, "faulted requests change nothing")

	assert.Equal(t, http.StatusOK, call(t, s, tok, http.MethodGet, "/api/machines", nil).status, "path substring does not match")
	r := call(t, s, tok, http.MethodGet, "/api/machines/"+machineID, nil)
	requireError(t, r, 429, "TooManyRequests")
	assert.Equal(t, "2", r.header.Get("Retry-After"))
	assert.Equal(t, http.StatusOK, call(t, s, tok, http.MethodGet, "/api/machines/"+machineID, nil).status)

	s.InjectFault(defendertest.Fault{Status: 500, Body: `<html>oops</html>`, Count: -1})
	req, err := http.NewRequest(http.MethodGet, s.URL+"/api/machines", nil)
	require.NoError(t, err)
	resp, err := s.HTTPClient().Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 500, resp.StatusCode)
	resp, err = s.HTTPClient().Do(req.Clone(context.Background()))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 500, resp.StatusCode, "negative Count is permanent")
	s.ClearFaults()
	assert.Equal(t, http.StatusOK, call(t, s, tok, http.MethodGet, "/api/machines", nil).status)

	s.InjectFault(defendertest.Fault{Path: defendertest.APIToken, Status: 503})
	res, got := getToken(t, s, nil)
	assert.Equal(t, 503, res.status)
	assert.Empty(t, got)
	assert.Equal(t, "temporarily_unavailable", res.json["error"])
}

func TestFaultDelayHonoursClientCancel(t *testing.T) {
	s := newServer(t)
	tok := mustToken(t, s)
	s.InjectFault(defendertest.Fault{Path: defendertest.APIMachines, Delay: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/api/machines", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+tok)
	_, err = s.HTTPClient().Do(req)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	// the fault was used up; the server still answers
	assert.Equal(t, http.StatusOK, call(t, s, tok, http.MethodGet, "/api/machines", nil).status)
}

func TestRequestsRecorded(t *testing.T) {
	s := newServer(t)
	tok := mustToken(t, s)
	s.ResetRequests()
	call(t, s, tok, http.MethodPost, "/api/v1.0/machines/"+machineID+"/isolate", map[string]string{"Comment": "c", "IsolationType": "Full"})
	call(t, s, tok, http.MethodGet, "/api/machineactions?$top=1", nil)
	reqs := s.Requests()
	require.Len(t, reqs, 2)
	assert.Equal(t, http.MethodPost, reqs[0].Method)
	assert.Equal(t, "/api/v1.0/machines/"+machineID+"/isolate", reqs[0].Path)
	assert.Equal(t, "Bearer "+tok, reqs[0].Header.Get("Authorization"))
	assert.JSONEq(t, `{"Comment":"c","IsolationType":"Full"}`, string(reqs[0].Body))
	assert.Equal(t, defendertest.APIMachineActions, reqs[0].API)
	assert.Equal(t, "$top=1", reqs[1].RawQuery)
	assert.False(t, reqs[1].At.IsZero())
	assert.Equal(t, 1, s.Calls(http.MethodPost, "/api/machines/"+machineID+"/isolate"))

	// a copy: mutating it does not change the record
	reqs[0].Body[0] = 'X'
	assert.Equal(t, byte('{'), s.Requests()[0].Body[0])
}

func TestClockAdvance(t *testing.T) {
	s := newServer(t)
	before := s.Now()
	s.Advance(time.Hour)
	assert.GreaterOrEqual(t, s.Now().Sub(before), time.Hour)
	s.Advance(-time.Hour) // ignored: the clock never goes back
	assert.GreaterOrEqual(t, s.Now().Sub(before), time.Hour)
}

func TestConcurrentUse(t *testing.T) {
	s := newServer(t)
	tok := mustToken(t, s)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				body := fmt.Sprintf(`{"Indicators":[{"indicatorValue":"10.1.%d.%d","indicatorType":"IpAddress","action":"Block","title":"t","description":"d"}]}`, g, i)
				req, _ := http.NewRequest(http.MethodPost, s.URL+"/api/indicators/import", strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+tok)
				req.Header.Set("Content-Type", "application/json")
				if resp, err := s.HTTPClient().Do(req); err == nil {
					resp.Body.Close()
				}
				_ = s.Indicators()
				_ = s.Requests()
				s.Advance(time.Millisecond)
			}
		}(g)
	}
	wg.Wait()
	assert.Len(t, s.Indicators(), 80)
}

func TestSampleData(t *testing.T) {
	s := defendertest.New()
	s.AddSampleData()
	m, ok := s.Machine(defendertest.SampleMachineID1)
	require.True(t, ok)
	assert.NotEmpty(t, m.ComputerDNSName)
	a, ok := s.Alert(defendertest.SampleAlertID1)
	require.True(t, ok)
	assert.Equal(t, defendertest.SampleMachineID1, a.MachineID)
	assert.Equal(t, m.ComputerDNSName, a.ComputerDNSName)
}

// TestGarbageNeverPanics throws malformed paths, methods and bodies at the
// handler: every answer is a well-formed error, never a 5xx.
func TestGarbageNeverPanics(t *testing.T) {
	s := defendertest.New(defendertest.WithRateLimits(false))
	s.AddSampleData()
	tok := tokenViaHandler(t, s)
	paths := []string{"/", "/api", "/api/", "/api/v1.0", "/api/machines/%zz", "/api/machines/" + defendertest.SampleMachineID1 + "/isolate/extra",
		"/api/machineactions//cancel", "/api/indicators/import", "/api/indicators/BatchDelete", "/api/alerts/" + defendertest.SampleAlertID1,
		"/api/machines?$filter=((((", "/api/machines?$filter=startswith(", "/api/machines?$filter=id+in+(", "/api/indicators?$top=99999999999999999999",
		"/api/machines?$filter=lastSeen+gt+2020-13-45T99:00:00Z", "/api/machines?$orderby=id+sideways", "/api/machines/" + defendertest.SampleMachineID1 + "/runAntiVirusScan",
		"/x/oauth2/v2.0/token", "/common/discovery/instance?authorization_endpoint=%%%", "/" + defendertest.TenantID + "/oauth2/v2.0/token"}
	bodies := []string{"", "null", "{", "[]", `{"Comment":null}`, `{"Indicators":[null,1,"x",{}]}`, `{"IndicatorIds":[null,{}]}`,
		`{"status":["x"]}`, strings.Repeat("[", 10000), "\x00\xff", `{"Comment":"x","IsolationType":7}`, "grant_type=client_credentials&client_id=%zz"}
	methods := []string{http.MethodGet, http.MethodPost, http.MethodPatch, http.MethodDelete, "BREW"}
	for _, p := range paths {
		for _, b := range bodies {
			for _, m := range methods {
				req := httptest.NewRequest(http.MethodGet, "https://example.test/", strings.NewReader(b))
				req.Method = m
				req.URL.RawPath, req.URL.RawQuery = "", ""
				if i := strings.IndexByte(p, '?'); i >= 0 {
					req.URL.Path, req.URL.RawQuery = p[:i], p[i+1:]
				} else {
					req.URL.Path = p
				}
				req.Header.Set("Authorization", "Bearer "+tok)
				req.Header.Set("Content-Type", "application/json")
				rec := httptest.NewRecorder()
				require.NotPanics(t, func() { s.Handler().ServeHTTP(rec, req) })
				assert.Less(t, rec.Code, 500, "%s %s %q: %s", m, p, b, rec.Body.String())
			}
		}
	}
}

func tokenViaHandler(t *testing.T, s *defendertest.Server) string {
	t.Helper()
	form := "grant_type=client_credentials&client_id=" + defendertest.ClientID + "&client_secret=" + defendertest.ClientSecret +
		"&scope=" + defendertest.Scope
	req := httptest.NewRequest(http.MethodPost, "https://example.test/"+defendertest.TenantID+"/oauth2/v2.0/token", strings.NewReader(form))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	var out struct {
		AccessToken string `json:"access_token"`
	}
	require.NoError(t, jsonUnmarshal(rec.Body.Bytes(), &out))
	return out.AccessToken
}

func FuzzHandler(f *testing.F) {
	f.Add("POST", "/api/indicators/import", `{"Indicators":[{"indicatorValue":"1.2.3.4","indicatorType":"IpAddress","action":"Block","title":"t","description":"d"}]}`)
	f.Add("GET", "/api/machines?$filter=startswith(computerDnsName,'fin')", "")
	f.Add("POST", "/api/machines/"+defendertest.SampleMachineID1+"/isolate", `{"Comment":"c"}`)
	f.Add("PATCH", "/api/alerts/"+defendertest.SampleAlertID1, `{"comment":"c"}`)
	f.Fuzz(func(t *testing.T, method, target, body string) {
		s := defendertest.New(defendertest.WithRateLimits(false))
		s.AddSampleData()
		tok := tokenViaHandler(t, s)
		req, err := http.NewRequest(method, "https://example.test"+target, strings.NewReader(body))
		if err != nil || !strings.HasPrefix(target, "/") {
			t.Skip()
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %s: %d %s", method, target, rec.Code, rec.Body.String())
		}
	})
}

// Hold: Defender accepts the call (the action exists) but the caller never
// hears back (it gave up, or died).
func TestFaultHoldServesThenWithholdsTheAnswer(t *testing.T) {
	s := newServer(t)
	tok := mustToken(t, s)
	s.InjectFault(defendertest.Fault{Method: http.MethodPost, Path: "/isolate", Hold: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/api/machines/"+machineID+"/isolate",
		strings.NewReader(`{"Comment":"c","IsolationType":"Full"}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	_, err = s.HTTPClient().Do(req)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Len(t, s.MachineActions(), 1, "the action was created")
	assert.Equal(t, "c", s.MachineActions()[0].RequestorComment)
}

// Release ends a Hold at the instant the test chooses: the answer is
// withheld until then, then sent whole.
func TestFaultReleaseEndsTheHold(t *testing.T) {
	s := newServer(t)
	tok := mustToken(t, s)
	release := make(chan struct{})
	s.InjectFault(defendertest.Fault{Method: http.MethodPost, Path: defendertest.APIIndicatorImport, Hold: time.Hour, Release: release})
	req, err := http.NewRequest(http.MethodPost, s.URL+"/api/indicators/import",
		strings.NewReader(`{"Indicators":[{"indicatorValue":"held.example","indicatorType":"DomainName","action":"Block","title":"t","description":"d"}]}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	type answer struct {
		code int
		body string
		err  error
	}
	got := make(chan answer, 1)
	go func() {
		resp, err := s.HTTPClient().Do(req)
		if err != nil {
			got <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		got <- answer{resp.StatusCode, string(b), err}
	}()
	require.Eventually(t, func() bool { return len(s.Indicators()) == 1 }, 10*time.Second, time.Millisecond, "the import was served")
	select {
	case a := <-got:
		t.Fatalf("answered before the release: %+v", a)
	default:
	}
	close(release)
	var a answer
	select {
	case a = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("no answer after the release")
	}
	require.NoError(t, a.err)
	assert.Equal(t, http.StatusOK, a.code)
	assert.Contains(t, a.body, `"indicator":"held.example"`)
}
