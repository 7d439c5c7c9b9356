package main

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/defenderbot/defenderbot/defender/defendertest"
	"github.com/defenderbot/defenderbot/ioc"
	"github.com/defenderbot/defenderbot/store"
	"github.com/defenderbot/defenderbot/taxii/taxiitest"
)

const pushFeed = `[
 {"type":"indicator","spec_version":"2.1","id":"indicator--00000000-0000-4000-8000-000000000001","created":"2025-01-01T00:00:00Z","modified":"2025-01-01T00:00:00Z","valid_from":"2025-01-01T00:00:00Z","pattern_type":"stix","pattern":"[domain-name:value = 'evil.example' OR ipv4-addr:value = '203.0.113.0/24']"},
 {"type":"indicator","spec_version":"2.1","id":"indicator--00000000-0000-4000-8000-000000000002","created":"2025-01-01T00:00:00Z","modified":"2025-01-01T00:00:00Z","valid_from":"2025-01-01T00:00:00Z","pattern_type":"stix","pattern":"[file:hashes.MD5 = 'ab03a48a29967e738583140e6eb84f0b']"}
]`

func pushEnv(t *testing.T, srv *defendertest.Server) (map[string]string, string) {
	dir := t.TempDir()
	feed := filepath.Join(dir, "feed.json")
	require.NoError(t, os.WriteFile(feed, []byte(pushFeed), 0o644))
	env := emulatorEnv(srv)
	env["DEFENDERBOT_STORE_DSN"] = filepath.Join(dir, "state.db")
	return env, feed
}

func TestPushIOCsDryRunJSONSendsNothing(t *testing.T) {
	srv := defendertest.NewServer(t)
	env, feed := pushEnv(t, srv)
	r := runCLI(t, srv, env, "push-iocs", "--stix-objects-path", feed, "--action", "Block", "--severity", "High", "--dry-run", "--output", "json")
	require.Equal(t, 0, r.code, r.stderr)
	var plan struct {
		Import []map[string]any `json:"import"`
		Delete []string         `json:"delete"`
		Skip   []map[string]any `json:"skipped"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &plan), r.stdout)
	assert.Len(t, plan.Import, 2)
	require.Len(t, plan.Skip, 1)
	assert.Contains(t, plan.Skip[0]["reason"], "CIDR ranges are not supported by Defender")
	assert.Zero(t, srv.Calls(http.MethodPost, "/api/indicators/import"))
	assert.Empty(t, srv.Indicators())
}

func TestPushIOCsRunsAndIsIncremental(t *testing.T) {
	srv := defendertest.NewServer(t)
	env, feed := pushEnv(t, srv)
	args := []string{"push-iocs", "--stix-objects-path", feed, "--action", "Audit", "--generate-alert", "--severity", "Low"}
	r := runCLI(t, srv, env, args...)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "2 imported")
	assert.Len(t, srv.Indicators(), 2)

	r = runCLI(t, srv, env, append(args, "--output", "json")...)
	require.Equal(t, 0, r.code, r.stderr)
	var rep map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &rep))
	assert.EqualValues(t, 2, rep["unchanged"])
	assert.EqualValues(t, 0, rep["import_calls"])
	assert.Equal(t, 1, srv.Calls(http.MethodPost, "/api/indicators/import"))
}

func TestPushIOCsErrors(t *testing.T) {
	srv := defendertest.NewServer(t)
	env, feed := pushEnv(t, srv)
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no path", []string{"push-iocs"}, 2, "--stix-objects-path"},
		{"bad output", []string{"push-iocs", "--stix-objects-path", feed, "--output", "xml"}, 2, "--output must be text or json"},
		{"extra arg", []string{"push-iocs", "--stix-objects-path", feed, "oops"}, 2, `unexpected argument "oops"`},
		{"audit without alert", []string{"push-iocs", "--stix-objects-path", feed, "--action", "Audit", "--generate-alert=false"}, 1, "Audit"},
		{"bad mode", []string{"push-iocs", "--stix-objects-path", feed, "--mode", "full"}, 1, "mode"},
		{"missing feed", []string{"push-iocs", "--stix-objects-path", feed + ".missing"}, 1, "read STIX feed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, srv, env, tt.args...)
			assert.Equal(t, tt.code, r.code, r.stderr)
			assert.Contains(t, r.stderr, tt.want)
			assert.False(t, strings.Contains(r.stderr, defendertest.ClientSecret), "secret never printed")
		})
	}
}

// TestPushIOCsWaitsForNoOtherSync: push-iocs takes the same lease as the
// server's scheduled and Slack runs, so it refuses to run beside one.
func TestPushIOCsWaitsForNoOtherSync(t *testing.T) {
	srv := defendertest.NewServer(t)
	env, feed := pushEnv(t, srv)
	st, err := store.Open(context.Background(), "sqlite", env["DEFENDERBOT_STORE_DSN"])
	require.NoError(t, err)
	now := time.Now().Truncate(time.Second)
	ok, err := st.AcquireLease(context.Background(), ioc.LeaseName, "serve-replica", now, time.Hour)
	require.NoError(t, err)
	require.True(t, ok)
	require.NoError(t, st.Close())

	r := runCLI(t, srv, env, "push-iocs", "--stix-objects-path", feed, "--action", "Block", "--severity", "High")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "defenderbot push-iocs: not run: an IOC sync holds the lease since "+now.UTC().Format("15:04")+
		" UTC (replica serve-replica); if that run is dead, the lease expires at "+now.Add(time.Hour).UTC().Format("15:04:05")+" UTC: "+
		"try again after that, or once the run has finished (a live run renews its lease)\n")
	assert.NotContains(t, r.stderr, "sync failed", "nothing failed: the run did not start")
	assert.Empty(t, srv.Indicators(), "nothing sent")
}

// taxiiPushServer serves pushFeed's objects in one collection, one per page.
func taxiiPushServer(t *testing.T) *taxiitest.Server {
	t.Helper()
	ts := taxiitest.NewServer(t, taxiitest.WithBasicAuth("soc", "taxii-cli-secret"), taxiitest.WithMaxPageSize(1))
	var objs []json.RawMessage
	require.NoError(t, json.Unmarshal([]byte(pushFeed), &objs))
	for _, o := range objs {
		_, err := ts.AddObjects(taxiitest.SampleCollectionID, o)
		require.NoError(t, err)
	}
	return ts
}

func TestPushIOCsFromTAXIIMatchesTheFile(t *testing.T) {
	srv := defendertest.NewServer(t)
	env, feed := pushEnv(t, srv)
	ts := taxiiPushServer(t)
	env["DEFENDERBOT_IOCS_TAXII_USERNAME"] = "soc"
	env["DEFENDERBOT_IOCS_TAXII_PASSWORD"] = "taxii-cli-secret"
	common := []string{"--action", "Block", "--severity", "High", "--dry-run", "--output", "json"}
	fromFile := runCLI(t, srv, env, append([]string{"push-iocs", "--stix-objects-path", feed}, common...)...)
	require.Equal(t, 0, fromFile.code, fromFile.stderr)
	fromTAXII := runCLI(t, srv, env, append([]string{"push-iocs", "--taxii-url", ts.APIRoot(), "--taxii-collection", taxiitest.SampleCollectionID}, common...)...)
	require.Equal(t, 0, fromTAXII.code, fromTAXII.stderr)
	assert.JSONEq(t, fromFile.stdout, fromTAXII.stdout)
	assert.Len(t, ts.ObjectRequests(), 2, "two pages, read once")
	assert.Empty(t, srv.Indicators())

	// A real run, then an incremental one that asks only for what was added since.
	args := []string{"push-iocs", "--taxii-url", ts.APIRoot(), "--taxii-collection", taxiitest.SampleCollectionID, "--action", "Block", "--severity", "High"}
	r := runCLI(t, srv, env, args...)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "2 imported")
	assert.Len(t, srv.Indicators(), 2)
	r = runCLI(t, srv, env, append(args, "--output", "json")...)
	require.Equal(t, 0, r.code, r.stderr)
	var rep map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &rep))
	assert.EqualValues(t, 0, rep["read"])
	reqs := ts.ObjectRequests()
	assert.Contains(t, reqs[len(reqs)-1].RawQuery, "added_after=")
}

func TestPushIOCsFromTAXIIErrors(t *testing.T) {
	srv := defendertest.NewServer(t)
	env, feed := pushEnv(t, srv)
	ts := taxiiPushServer(t)
	env["DEFENDERBOT_IOCS_TAXII_USERNAME"] = "soc"
	env["DEFENDERBOT_IOCS_TAXII_PASSWORD"] = "wrong-cli-secret"
	taxiiArgs := []string{"push-iocs", "--taxii-url", ts.APIRoot(), "--taxii-collection", taxiitest.SampleCollectionID}

	r := runCLI(t, srv, env, taxiiArgs...)
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "401 Unauthorized")
	assert.Contains(t, r.stderr, ts.APIRoot()+"collections/"+taxiitest.SampleCollectionID+"/objects/")
	assert.NotContains(t, r.stderr+r.stdout, "wrong-cli-secret")

	r = runCLI(t, srv, env, append(taxiiArgs, "--stix-objects-path", feed)...)
	assert.Equal(t, 2, r.code)
	assert.Contains(t, r.stderr, "not both")

	r = runCLI(t, srv, env, "push-iocs", "--taxii-url", ts.APIRoot())
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "iocs.taxii.collection is required")

	env["DEFENDERBOT_IOCS_TAXII_URL"] = ts.APIRoot()
	env["DEFENDERBOT_IOCS_STIX_OBJECTS_PATH"] = feed
	r = runCLI(t, srv, env, "push-iocs")
	assert.Equal(t, 2, r.code)
	assert.Contains(t, r.stderr, "both set")
}

// TestPushIOCsSetsTheMemoryLimit: memory_limit_mib becomes the runtime's soft
// limit (64 MiB by default), unless GOMEMLIMIT sets it or it is 0; and then
// the collector runs only near it (GC percent off) unless GOGC is set.
func TestPushIOCsSetsTheMemoryLimit(t *testing.T) {
	srv := defendertest.NewServer(t)
	for name, tt := range map[string]struct {
		env  map[string]string
		want []int64
		gc   []int // SetGCPercent calls: -1, the limit alone triggers the collector
	}{
		"default":    {nil, []int64{64 << 20}, []int{-1}},
		"configured": {map[string]string{"DEFENDERBOT_MEMORY_LIMIT_MIB": "200"}, []int64{200 << 20}, []int{-1}},
		"off":        {map[string]string{"DEFENDERBOT_MEMORY_LIMIT_MIB": "0"}, nil, nil},
		"GOMEMLIMIT": {map[string]string{"GOMEMLIMIT": "1GiB", "DEFENDERBOT_MEMORY_LIMIT_MIB": "200"}, nil, nil},
		"GOGC":       {map[string]string{"GOGC": "150"}, []int64{64 << 20}, nil},
	} {
		t.Run(name, func(t *testing.T) {
			env, feed := pushEnv(t, srv)
			maps.Copy(env, tt.env)
			var got []int64
			var gc []int
			var out, errb bytes.Buffer
			c := &cli{stdout: &out, stderr: &errb, getenv: func(k string) string { return env[k] }, httpClient: srv.HTTPClient(),
				setMemoryLimit: func(n int64) int64 { got = append(got, n); return 0 },
				setGCPercent:   func(n int) int { gc = append(gc, n); return 100 }}
			code := run(context.Background(), c, []string{"push-iocs", "--stix-objects-path", feed, "--dry-run", "--output", "json"})
			require.Equal(t, 0, code, errb.String())
			assert.Equal(t, tt.want, got)
			assert.Equal(t, tt.gc, gc)
		})
	}
}
