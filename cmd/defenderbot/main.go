// Command defenderbot drives Microsoft Defender for Endpoint from Slack with
// two-person approval, keeps Defender's indicators in sync with a STIX feed,
// and runs every action of its registry from the command line.
//
// It owns the wiring: configuration to packages, one file per subcommand.
// No other package imports it.
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"sort"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// cli is what every subcommand gets: its streams and environment, so that
// tests can run subcommands in-process without touching the real ones.
type cli struct {
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
	// environ lists the environment (os.Environ form) to spot misspelled
	// DEFENDERBOT_* variables; nil in tests that do not care.
	environ func() []string
	// httpClient, when set, is used for Defender and Azure AD calls (tests
	// inject the emulator's TLS client here).
	httpClient *http.Client
	// setMemoryLimit is debug.SetMemoryLimit; nil (tests running in-process)
	// leaves the runtime's limit alone.
	setMemoryLimit func(int64) int64
	// setGCPercent is debug.SetGCPercent; nil leaves the runtime's alone.
	setGCPercent func(int) int
}

// subcommand runs with the arguments after its name and returns the exit code.
type subcommand struct {
	summary string
	run     func(ctx context.Context, c *cli, args []string) int
}

func subcommands() map[string]subcommand {
	return map[string]subcommand{
		"serve":           {"run the Slack bot and the IOC scheduler (production)", runServe},
		"demo":            {"run the whole approval flow on loopback, no credentials needed", runDemo},
		"action":          {"run one action against Defender and print its output as JSON", runAction},
		"push-iocs":       {"push IOCs from a STIX feed to Defender once", runPushIOCs},
		"validate-config": {"check a configuration file and list every problem", runValidateConfig},
		"emulator":        {"run the Defender API emulator standalone", runEmulator},
		"audit":           {"print the audit trail as JSON lines", runAudit},
		"healthcheck":     {"probe a running server's /healthz (container health check)", runHealthcheck},
		"version":         {"print the version", runVersion},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, &cli{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv, environ: os.Environ, setMemoryLimit: debug.SetMemoryLimit, setGCPercent: debug.SetGCPercent}, os.Args[1:])
	stop()
	os.Exit(code)
}

func run(ctx context.Context, c *cli, args []string) int {
	cmds := subcommands()
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(c.stderr, cmds)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	sc, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(c.stderr, "defenderbot: unknown command %q\n\n", args[0])
		usage(c.stderr, cmds)
		return 2
	}
	return sc.run(ctx, c, args[1:])
}

func usage(w io.Writer, cmds map[string]subcommand) {
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintln(w, "usage: defenderbot COMMAND [flags]")
	fmt.Fprintln(w, "\ncommands:")
	for _, n := range names {
		fmt.Fprintf(w, "  %-16s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w, "\nEvery command takes --config FILE (or DEFENDERBOT_CONFIG); run 'defenderbot COMMAND -h' for its flags.")
}
