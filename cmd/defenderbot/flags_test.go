package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/defenderbot/defenderbot/config"
	"github.com/defenderbot/defenderbot/defender"
	"github.com/defenderbot/defenderbot/defender/defendertest"
	"github.com/defenderbot/defenderbot/ioc"
	"github.com/defenderbot/defenderbot/store/storetest"
)

func TestLoadConfigPathAndEnv(t *testing.T) {
	dir := t.TempDir()
	fromEnv := filepath.Join(dir, "env.yaml")
	require.NoError(t, os.WriteFile(fromEnv, []byte("listen: :1111\n"), 0o600))
	fromFlag := filepath.Join(dir, "flag.yaml")
	require.NoError(t, os.WriteFile(fromFlag, []byte("listen: :2222\n"), 0o600))
	env := map[string]string{"DEFENDERBOT_CONFIG": fromEnv, "AZURE_TENANT_ID": "t1"}
	c := &cli{getenv: func(k string) string { return env[k] }}

	cfg, err := loadConfig(c, "")
	require.NoError(t, err)
	assert.Equal(t, ":1111", cfg.Listen, "DEFENDERBOT_CONFIG is used without --config")
	assert.Equal(t, "t1", cfg.Defender.TenantID, "environment overrides apply")

	cfg, err = loadConfig(c, fromFlag)
	require.NoError(t, err)
	assert.Equal(t, ":2222", cfg.Listen, "--config wins over DEFENDERBOT_CONFIG")

	cfg, err = loadConfig(&cli{}, "")
	require.NoError(t, err, "no file and no environment: defaults")
	assert.Equal(t, config.Default(), cfg)
}

func TestNewLogger(t *testing.T) {
	var buf bytes.Buffer
	c := &cli{stderr: &buf}
	newLogger(c, nil).Info("hello", "k", "v")
	var m map[string]any
	require.NoError(t, json.Unmarshal(buf.Bytes(), &m), "JSON by default: %q", buf.String())
	assert.Equal(t, "hello", m["msg"])

	buf.Reset()
	cfg := config.Default()
	cfg.LogLevel = "warn"
	newLogger(c, cfg).Info("hidden")
	assert.Empty(t, buf.String(), "level is honoured")

	cfg.LogLevel = "debug"
	cfg.LogFormat = "text"
	newLogger(c, cfg).Debug("shown")
	assert.True(t, strings.Contains(buf.String(), "msg=shown"), buf.String())
}

func TestNewDefenderClient(t *testing.T) {
	srv := defendertest.NewServer(t)
	cfg := config.Default()
	cfg.Defender.BaseURL = srv.URL
	cfg.Defender.AuthorityHost = srv.URL
	cfg.Defender.TenantID = defendertest.TenantID
	cfg.Defender.AppID = defendertest.ClientID
	cfg.Defender.AppSecret = defendertest.ClientSecret
	var logs bytes.Buffer
	c := &cli{stderr: &logs, httpClient: srv.HTTPClient()}
	client, err := newDefenderClient(c, cfg, newLogger(c, cfg))
	require.NoError(t, err)
	require.NoError(t, client.CheckToken(t.Context()), "the injected HTTP client trusts the emulator")
	assert.NotContains(t, logs.String(), defendertest.ClientSecret)

	cfg.Defender.TenantID = ""
	_, err = newDefenderClient(c, cfg, newLogger(c, cfg))
	assert.ErrorContains(t, err, "TenantID")
	assert.NotContains(t, err.Error(), defendertest.ClientSecret)
}

// TestIOCOptionsComeFromConfig: the sync takes every iocs.* value config
// owns (ioc has no defaults of its own), and its defaults make a valid
// syncer.
func TestIOCOptionsComeFromConfig(t *testing.T) {
	i := config.Default().IOCs
	i.STIXObjectsPath = "feed.json"
	o, err := iocOptions(i, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	assert.Equal(t, ioc.ModeIncremental, o.Mode)
	assert.Equal(t, ioc.PatternsAll, o.Patterns)
	assert.Equal(t, config.DefaultTenantLimit, o.TenantLimit)
	assert.Equal(t, config.DefaultMaxObjectBytes, o.MaxObjectBytes)
	assert.Zero(t, o.Workers, "one per CPU")
	_, err = ioc.NewSyncer(&defender.Client{}, storetest.OpenSQLite(t), o, nil)
	require.NoError(t, err)

	i.Mode, i.Patterns, i.TenantLimit, i.Workers = ioc.ModeSnapshot, ioc.PatternsSimple, 100, 3
	o, err = iocOptions(i, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	assert.Equal(t, []any{ioc.ModeSnapshot, ioc.PatternsSimple, 100, 3}, []any{o.Mode, o.Patterns, o.TenantLimit, o.Workers})
}
