package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/defenderbot/defenderbot/approval"
	"github.com/defenderbot/defenderbot/store"
)

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	got, err := parseSince("24h", now)
	require.NoError(t, err)
	assert.Equal(t, now.Add(-24*time.Hour), got)
	got, err = parseSince("2026-11-27T10:00:00Z", now)
	require.NoError(t, err)
	assert.Equal(t, time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC), got)
	for _, bad := range []string{"", "yesterday", "-1h", "0s"} {
		_, err := parseSince(bad, now)
		assert.Error(t, err, bad)
	}
}

func TestAuditCommand(t *testing.T) {
	ctx := context.Background()
	dsn := filepath.Join(t.TempDir(), "audit.db")
	st, err := store.Open(ctx, "sqlite", dsn)
	require.NoError(t, err)
	now := time.Now().UTC()
	require.NoError(t, st.AppendAudit(ctx, approval.AuditEvent{At: now.Add(-48 * time.Hour), Actor: "U1", Kind: "request", RequestID: "old"}))
	require.NoError(t, st.AppendAudit(ctx, approval.AuditEvent{At: now.Add(-time.Hour), Actor: "U2", Kind: "approve", RequestID: "r1", Details: map[string]any{"approvals": 1}}))
	require.NoError(t, st.Close())

	env := map[string]string{"DEFENDERBOT_STORE_DSN": dsn}
	var out, errb bytes.Buffer
	c := &cli{stdout: &out, stderr: &errb, getenv: func(k string) string { return env[k] }}
	code := run(ctx, c, []string{"audit", "--since", "24h"})
	require.Equal(t, 0, code, errb.String())
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 1)
	var got map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &got))
	assert.Equal(t, "approve", got["kind"])
	assert.Equal(t, "U2", got["actor"])
	assert.Equal(t, "r1", got["request_id"])

	out.Reset()
	assert.Equal(t, 2, run(ctx, c, []string{"audit", "--since", "whenever"}))
	assert.Empty(t, out.String())
}

// TestAuditStoreErrorLeaksNoPassword: audit relies on store.Open keeping
// the DSN's password out of its errors.
func TestAuditStoreErrorLeaksNoPassword(t *testing.T) {
	dsn := "postgres://defenderbot:" + leakDBPassword + "@" + serveFreeAddr(t) + "/defenderbot?sslmode=disable&connect_timeout=2"
	env := map[string]string{"DEFENDERBOT_STORE_DRIVER": "postgres", "DEFENDERBOT_STORE_DSN": dsn}
	var out, errb bytes.Buffer
	c := &cli{stdout: &out, stderr: &errb, getenv: func(k string) string { return env[k] }}
	assert.Equal(t, 1, run(context.Background(), c, []string{"audit"}))
	assert.Contains(t, errb.String(), "open store (postgres)")
	assert.NotContains(t, errb.String(), leakDBPassword)
	assert.Empty(t, out.String())
}
