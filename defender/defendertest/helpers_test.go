package defendertest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/defenderbot/defenderbot/defender/defendertest"
	"github.com/stretchr/testify/require"
)

const (
	machineID = "1e5bc9d7e413ddd7902c2932e418702b84d0cc07"
	otherID   = "f46b9bb259ed4a7fb9981b73510e3cc7aa81ec1f"
)

// result is a decoded response.
type result struct {
	status int
	header http.Header
	raw    []byte
	json   map[string]any
}

func (r result) errCode() string {
	e, _ := r.json["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func (r result) errMessage() string {
	e, _ := r.json["error"].(map[string]any)
	c, _ := e["message"].(string)
	return c
}

func (r result) values() []map[string]any {
	vs, _ := r.json["value"].([]any)
	out := make([]map[string]any, 0, len(vs))
	for _, v := range vs {
		m, _ := v.(map[string]any)
		out = append(out, m)
	}
	return out
}

// newServer starts an emulator with one machine and rate limits off.
func newServer(t *testing.T, opts ...defendertest.Option) *defendertest.Server {
	t.Helper()
	s := defendertest.NewServer(t, append([]defendertest.Option{defendertest.WithRateLimits(false)}, opts...)...)
	s.AddMachine(defendertest.Machine{ID: machineID, ComputerDNSName: "host1.contoso.com"})
	s.AddMachine(defendertest.Machine{ID: otherID, ComputerDNSName: "host2.contoso.com"})
	return s
}

// getToken runs the client credentials grant with plain HTTP.
func getToken(t *testing.T, s *defendertest.Server, form url.Values) (result, string) {
	t.Helper()
	if form == nil {
		form = url.Values{"grant_type": {"client_credentials"}, "client_id": {defendertest.ClientID},
			"client_secret": {defendertest.ClientSecret}, "scope": {defendertest.Scope + " openid offline_access profile"}}
	}
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost,
		s.URL+"/"+defendertest.TenantID+"/oauth2/v2.0/token", strings.NewReader(form.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	res := send(t, s, req)
	tok, _ := res.json["access_token"].(string)
	return res, tok
}

func mustToken(t *testing.T, s *defendertest.Server) string {
	t.Helper()
	res, tok := getToken(t, s, nil)
	require.Equal(t, http.StatusOK, res.status, string(res.raw))
	require.NotEmpty(t, tok)
	return tok
}

func send(t *testing.T, s *defendertest.Server, req *http.Request) result {
	t.Helper()
	resp, err := s.HTTPClient().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	r := result{status: resp.StatusCode, header: resp.Header, raw: raw}
	if len(bytes.TrimSpace(raw)) > 0 {
		require.NoError(t, json.Unmarshal(raw, &r.json), "body: %s", raw)
	}
	return r
}

// call sends an API request with a bearer token; body is marshalled unless
// it is a string (sent as is).
func call(t *testing.T, s *defendertest.Server, tok, method, path string, body any) result {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		require.NoError(t, err)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, s.URL+path, rd)
	require.NoError(t, err)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return send(t, s, req)
}

func requireError(t *testing.T, r result, status int, code string) {
	t.Helper()
	require.Equal(t, status, r.status, string(r.raw))
	require.Equal(t, code, r.errCode(), string(r.raw))
	e := r.json["error"].(map[string]any)
	require.NotEmpty(t, e["message"])
	require.Regexp(t, `^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`, e["target"])
}

func stringsReader(s string) io.Reader { return strings.NewReader(s) }

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
