package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/defenderbot/defenderbot/actions"
	"github.com/defenderbot/defenderbot/config"
	"github.com/defenderbot/defenderbot/defender"
	"github.com/defenderbot/defenderbot/graph"
	"github.com/defenderbot/defenderbot/internal/logctx"
	"github.com/defenderbot/defenderbot/ioc"
	"github.com/defenderbot/defenderbot/store"
	"github.com/defenderbot/defenderbot/taxii"
)

// Shared helpers for subcommands: flag sets, configuration, logger, store
// and the Defender client.

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

// parseFlagsOnly is parseFlags for a command that takes no positional
// argument: one left over is a usage error (exit 2).
func parseFlagsOnly(c *cli, fs *flag.FlagSet, args []string) (code int, ok bool) {
	if code, ok := parseFlags(fs, args); !ok {
		return code, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(c.stderr, "defenderbot %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		fs.Usage()
		return 2, false
	}
	return 0, true
}

// configPath is path, or $DEFENDERBOT_CONFIG when path is empty.
func configPath(c *cli, path string) string {
	if path == "" {
		return c.env("DEFENDERBOT_CONFIG")
	}
	return path
}

// loadConfig loads the configuration from configPath with the cli's
// environment. It does not validate.
func loadConfig(c *cli, path string) (*config.Config, error) {
	return config.Load(configPath(c, path), c.env)
}

// applyMemoryLimit sets the runtime's soft memory limit to memory_limit_mib,
// unless it is 0 or GOMEMLIMIT sets the limit (the runtime read it already).
// It reports whether it set the limit.
func applyMemoryLimit(c *cli, cfg *config.Config) bool {
	if c.setMemoryLimit == nil || cfg.MemoryLimitMiB <= 0 || c.env("GOMEMLIMIT") != "" {
		return false
	}
	c.setMemoryLimit(int64(cfg.MemoryLimitMiB) << 20)
	return true
}

// collectAtTheLimit makes memory_limit_mib the collector's only trigger, for
// a command that runs one job and exits (push-iocs): a sync's heap is
// bounded by design, so collecting each time it doubles (GOGC's 100) only
// costs CPU below the limit (~15 % of a 200,000-object dry run). Not when
// the limit is not memory_limit_mib's or GOGC is set: the operator chose.
func collectAtTheLimit(c *cli, cfg *config.Config) {
	if applyMemoryLimit(c, cfg) && c.setGCPercent != nil && c.env("GOGC") == "" {
		c.setGCPercent(-1)
	}
}

// loadConfigFor loads the configuration and validates it for purpose. On
// failure it prints every problem and ok is false (the command exits 1).
func loadConfigFor(c *cli, path string, purpose config.Purpose) (cfg *config.Config, ok bool) {
	cfg, err := loadConfig(c, path)
	if err == nil {
		err = cfg.Validate(purpose)
	}
	if err != nil {
		printConfigError(c.stderr, err)
		return nil, false
	}
	return cfg, true
}

// printConfigError prints each configuration problem on its own line.
func printConfigError(w io.Writer, err error) {
	var verr *config.ValidationError
	if errors.As(err, &verr) {
		for _, p := range verr.Problems {
			fmt.Fprintf(w, "defenderbot: configuration: %s\n", p)
		}
		return
	}
	fmt.Fprintf(w, "defenderbot: %v\n", err)
}

// openStore opens the configured store. store.Open keeps the DSN's password
// out of its errors, so they can be printed as they are.
func openStore(ctx context.Context, cfg *config.Config, opts ...store.Option) (store.Store, error) {
	st, err := store.Open(ctx, cfg.Store.Driver, cfg.Store.DSN.Value(), opts...)
	if err != nil {
		return nil, fmt.Errorf("open store (%s): %w", cfg.Store.Driver, err)
	}
	return st, nil
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

// iocOptions maps the iocs.* keys to the IOC syncer's options (serve and
// push-iocs then add their own: metrics, --force, --dry-run). With
// iocs.taxii.url set the feed is that TAXII collection.
func iocOptions(i config.IOCs, logger *slog.Logger) (ioc.Options, error) {
	o := ioc.Options{
		StixObjectsPath:   i.STIXObjectsPath,
		Action:            i.Action,
		Severity:          i.Severity,
		SekoiaBaseURL:     i.SekoiaBaseURL,
		Mode:              i.Mode,
		Patterns:          i.Patterns,
		GenerateAlert:     i.GenerateAlert,
		MaxDeleteFraction: i.MaxDeleteFraction,
		MaxObjectBytes:    i.MaxObjectBytes,
		TenantLimit:       i.TenantLimit,
		Workers:           i.Workers,
	}
	if i.TAXII.URL == "" {
		return o, nil
	}
	t := i.TAXII
	client, err := taxii.New(t.Client(),
		taxii.WithLogger(logger))
	if err != nil {
		return o, err
	}
	o.StixObjectsPath, o.Feed = "", &ioc.TAXIIFeed{Client: client, Collection: t.Collection, PageSize: t.PageSize}
	return o, nil
}

// newDefenderClient builds the Defender API client from cfg, with the
// HTTP client the cli may impose (tests inject the emulator's) and opts.
func newDefenderClient(c *cli, cfg *config.Config, logger *slog.Logger, opts ...defender.Option) (*defender.Client, error) {
	all := []defender.Option{defender.WithLogger(logger)}
	if c.httpClient != nil {
		all = append(all, defender.WithHTTPClient(c.httpClient))
	}
	all = append(all, opts...)
	client, err := defender.New(cfg.Defender.Client(), all...)
	if err != nil {
		return nil, fmt.Errorf("defender client: %w", err)
	}
	return client, nil
}

// newGraphClient builds the Microsoft Graph alerts client. Its tokens come
// from the same app registration as Defender's, for Graph's scope.
func newGraphClient(c *cli, cfg *config.Config, logger *slog.Logger, obs defender.Observer) (*graph.Client, error) {
	d := cfg.Defender
	var topts []defender.Option
	gopts := []graph.Option{graph.WithLogger(logger)}
	if obs != nil {
		topts = append(topts, defender.WithObserver(obs))
		gopts = append(gopts, graph.WithObserver(obs))
	}
	if c.httpClient != nil {
		topts = append(topts, defender.WithHTTPClient(c.httpClient))
		gopts = append(gopts, graph.WithHTTPClient(c.httpClient))
	}
	tokens, err := defender.NewTokenProvider(defender.Config{
		AuthorityHost: d.AuthorityHost,
		TenantID:      d.TenantID,
		ClientID:      d.AppID,
		ClientSecret:  d.AppSecret.Value(),
		Scope:         graph.Scope(d.GraphBaseURL),
	}, topts...)
	if err != nil {
		return nil, fmt.Errorf("graph client: %w", err)
	}
	client, err := graph.New(d.GraphClient(), tokens, gopts...)
	if err != nil {
		return nil, fmt.Errorf("graph client: %w", err)
	}
	return client, nil
}

// newRunner returns the actions runner on client, with comment-alert and
// update-alert through Graph (gc) when defender.alerts_api is graph; gc may
// be nil, and is then built when needed.
func newRunner(c *cli, cfg *config.Config, logger *slog.Logger, client *defender.Client, gc *graph.Client) (*actions.Runner, error) {
	if cfg.Defender.AlertsAPI != config.AlertsAPIGraph {
		return actions.NewRunner(client), nil
	}
	if gc == nil {
		var err error
		if gc, err = newGraphClient(c, cfg, logger, nil); err != nil {
			return nil, err
		}
	}
	return actions.NewRunner(client, graph.NewDefenderAlerts(gc)), nil
}

// unknownEnv names the DEFENDERBOT_* variables that match no configuration
// key, so a misspelling is reported instead of silently ignored.
func (c *cli) unknownEnv() []string {
	if c.environ == nil {
		return nil
	}
	return config.UnknownEnv(c.environ())
}
