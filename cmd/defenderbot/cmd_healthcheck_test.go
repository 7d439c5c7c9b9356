package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestHealthcheck(t *testing.T) {
	healthy := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" || !healthy {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")

	var out, errb bytes.Buffer
	c := &cli{stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
	assert.Equal(t, 0, run(context.Background(), c, []string{"healthcheck", "--listen", addr}))
	assert.Equal(t, "ok\n", out.String())

	healthy = false
	errb.Reset()
	assert.Equal(t, 1, run(context.Background(), c, []string{"healthcheck", "--listen", addr}))
	assert.Contains(t, errb.String(), "503")

	env := func(k string) string {
		if k == "DEFENDERBOT_LISTEN" {
			return "127.0.0.1:1"
		}
		return ""
	}
	errb.Reset()
	c = &cli{stdout: &out, stderr: &errb, getenv: env}
	assert.Equal(t, 1, run(context.Background(), c, []string{"healthcheck"}))
	assert.Contains(t, errb.String(), "127.0.0.1:1")

	cfgFile := filepath.Join(t.TempDir(), "c.yaml")
	require.NoError(t, os.WriteFile(cfgFile, []byte("listen: "+addr+"\n"), 0o600))
	healthy = true
	out.Reset()
	c = &cli{stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
	assert.Equal(t, 0, run(context.Background(), c, []string{"healthcheck", "--config", cfgFile}))
	assert.Equal(t, "ok\n", out.String())
}

func TestHealthcheckUsage(t *testing.T) {
	var out, errb bytes.Buffer
	c := &cli{stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
	assert.Equal(t, 2, run(context.Background(), c, []string{"healthcheck", "--nope"}))
	assert.Equal(t, 2, run(context.Background(), c, []string{"healthcheck", "extra"}))
	assert.Contains(t, errb.String(), `unexpected argument "extra"`)
	errb.Reset()
	assert.Equal(t, 0, run(context.Background(), c, []string{"healthcheck", "-h"}))
	assert.Contains(t, errb.String(), "usage: defenderbot healthcheck")
	assert.Empty(t, out.String(), "nothing probed")
}

func TestUnknownCommandAndUsage(t *testing.T) {
	var out, errb bytes.Buffer
	c := &cli{stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
	assert.Equal(t, 2, run(context.Background(), c, []string{"frobnicate"}))
	assert.Contains(t, errb.String(), `unknown command "frobnicate"`)
	assert.Contains(t, errb.String(), "push-iocs")
	assert.Equal(t, 2, run(context.Background(), c, nil))
	assert.Equal(t, 0, run(context.Background(), c, []string{"version"}))
	assert.Contains(t, out.String(), "defenderbot dev")
}
