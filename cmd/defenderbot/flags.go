package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/defenderbot/defenderbot/config"
	"github.com/defenderbot/defenderbot/defender"
	"github.com/defenderbot/defenderbot/internal/logctx"
)

// Shared helpers for subcommands: flag sets, configuration, logger and the
// Defender client.

// defenderScope is the resource every Defender API token is requested for,
// whatever regional base URL is configured.
const defenderScope = "https://api.securitycenter.microsoft.com/.default"

// env reads an environment variable through the cli (nil getenv: empty).
func (c *cli) env(name string) string {
	if c.getenv == nil {
		return ""
	}
	return c.getenv(name)
}

// newFlagSet returns a flag set that reports errors instead of exiting and
// writes usage to the cli's stderr.
func newFlagSet(c *cli, name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = func() {
		fmt.Fprintf(c.stderr, "usage: defenderbot %s\n\nflags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// configFlag registers --config on fs.
func configFlag(fs *flag.FlagSet) *string {
	return fs.String("config", "", "configuration file (default $DEFENDERBOT_CONFIG; none: defaults and environment only)")
}

// parseFlags parses args; ok is false when the command must stop, with the
// exit code to return (0 for -h, 2 for a bad flag).
func parseFlags(fs *flag.FlagSet, args []string) (code int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, false
		}
		return 2, false
	}
	return 0, true
}

// loadConfig loads the configuration from path, or from $DEFENDERBOT_CONFIG
// when path is empty, with the cli's environment. It does not validate.
func loadConfig(c *cli, path string) (*config.Config, error) {
	if path == "" {
		path = c.env("DEFENDERBOT_CONFIG")
	}
	return config.Load(path, c.env)
}

// newLogger returns a logger writing to the cli's stderr in the configured
// format (JSON by default) and level. A nil cfg gives JSON at info.
func newLogger(c *cli, cfg *config.Config) *slog.Logger {
	return newLoggerTo(c.stderr, cfg)
}

func newLoggerTo(w io.Writer, cfg *config.Config) *slog.Logger {
	opts := &slog.HandlerOptions{Level: slog.LevelInfo}
	format := "json"
	if cfg != nil {
		var lvl slog.Level
		if err := lvl.UnmarshalText([]byte(cfg.LogLevel)); err == nil {
			opts.Level = lvl
		}
		format = strings.ToLower(cfg.LogFormat)
	}
	// logctx adds the request ID carried by a context to each line, so a
	// Slack request can be followed to the Defender calls it caused.
	if format == "text" {
		return slog.New(logctx.NewHandler(slog.NewTextHandler(w, opts)))
	}
	return slog.New(logctx.NewHandler(slog.NewJSONHandler(w, opts)))
}

// newDefenderClient builds the Defender API client from cfg. Pass
// cliDefenderOptions(c) among opts so tests can inject an HTTP client.
func newDefenderClient(cfg *config.Config, logger *slog.Logger, opts ...defender.Option) (*defender.Client, error) {
	d := cfg.Defender
	all := append([]defender.Option{defender.WithLogger(logger)}, opts...)
	client, err := defender.New(defender.Config{
		BaseURL:       d.BaseURL,
		AuthorityHost: d.AuthorityHost,
		TenantID:      d.TenantID,
		ClientID:      d.AppID,
		ClientSecret:  d.AppSecret.Value(),
		Scope:         defenderScope,
		Timeout:       d.Timeout,
		MaxRetries:    d.MaxRetries,
	}, all...)
	if err != nil {
		return nil, fmt.Errorf("defender client: %w", err)
	}
	return client, nil
}

// cliDefenderOptions returns the client options the cli imposes (an
// injected HTTP client in tests).
func cliDefenderOptions(c *cli) []defender.Option {
	if c.httpClient == nil {
		return nil
	}
	return []defender.Option{defender.WithHTTPClient(c.httpClient)}
}

// unknownEnv names the DEFENDERBOT_* variables that match no configuration
// key, so a misspelling is reported instead of silently ignored.
func (c *cli) unknownEnv() []string {
	if c.environ == nil {
		return nil
	}
	return config.UnknownEnv(c.environ())
}
