package taxiitest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"

	"github.com/defenderbot/defenderbot/taxii/taxiitest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func get(t *testing.T, u, accept string) (*http.Response, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
	require.NoError(t, err)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m), string(b))
	return resp, m
}

const accept = "application/taxii+json;version=2.1"

func TestServerFollowsTheSpecification(t *testing.T) {
	s := taxiitest.NewServer(t, taxiitest.WithMaxPageSize(4))
	s.AddSampleData()
	objects := s.APIRoot() + "collections/" + taxiitest.SampleCollectionID + "/objects/"

	resp, m := get(t, s.URL+"/taxii2/", accept)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, accept, resp.Header.Get("Content-Type"))
	assert.Equal(t, []any{s.APIRoot()}, m["api_roots"])

	_, m = get(t, s.APIRoot()+"collections/", accept)
	require.Len(t, m["collections"], 1)

	resp, m = get(t, objects, "application/json")
	assert.Equal(t, http.StatusNotAcceptable, resp.StatusCode)
	assert.Equal(t, "406", m["http_status"])

	// limit above the server's maximum: capped, with more and next.
	resp, m = get(t, objects+"?limit=50", accept)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Len(t, m["objects"], 4)
	assert.Equal(t, true, m["more"])
	next, _ := m["next"].(string)
	require.NotEmpty(t, next)
	assert.Equal(t, "2026-01-01T00:00:00.000000Z", resp.Header.Get("X-TAXII-Date-Added-First"))
	assert.Equal(t, "2026-01-01T00:03:00.000000Z", resp.Header.Get("X-TAXII-Date-Added-Last"))

	resp, _ = get(t, objects+"?match[type]=indicator&next="+next, accept)
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "next with other filters")
	resp, m = get(t, objects+"?next="+next, accept)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Len(t, m["objects"], 2)
	assert.Nil(t, m["next"])
	assert.Equal(t, false, m["more"])

	for _, bad := range []string{"?limit=0", "?limit=x", "?added_after=yesterday", "?match[version]=sometimes", "?next=unknown"} {
		resp, _ = get(t, objects+bad, accept)
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode, bad)
	}

	resp, m = get(t, objects+"?added_after=2026-01-01T00:05:00.000000Z", accept)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Empty(t, m, "no objects: {}")
	assert.Empty(t, resp.Header.Get("X-TAXII-Date-Added-Last"))

	resp, m = get(t, s.APIRoot()+"collections/nope/objects/", accept)
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	assert.Equal(t, "Collection 'nope' not found", m["description"])
}

func TestServerAuthentication(t *testing.T) {
	s := taxiitest.NewServer(t, taxiitest.WithBasicAuth("u", "p"))
	resp, m := get(t, s.APIRoot(), accept)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Equal(t, `Basic realm="taxii"`, resp.Header.Get("WWW-Authenticate"))
	assert.Equal(t, "401", m["http_status"])

	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, s.APIRoot(), nil)
	req.Header.Set("Accept", accept)
	req.SetBasicAuth("u", "p")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "basic", s.Requests()[1].Auth)
}

// TestNoTestingPackage: `defenderbot emulator` links this package into the
// production binary, which must not carry the testing package.
func TestNoTestingPackage(t *testing.T) {
	out, err := exec.CommandContext(t.Context(), "go", "list", "-deps", ".").CombinedOutput()
	require.NoError(t, err, string(out))
	for dep := range strings.SplitSeq(string(out), "\n") {
		assert.NotEqual(t, "testing", dep)
	}
}
