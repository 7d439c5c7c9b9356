package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"
)

// runHealthcheck probes the local server's /healthz. The distroless image has
// no shell or curl, so the container's HEALTHCHECK calls the binary itself.
func runHealthcheck(ctx context.Context, c *cli, args []string) int {
	fs := newFlagSet(c, "healthcheck", "healthcheck [--listen HOST:PORT] [--config FILE] [--timeout D]")
	listen := fs.String("listen", "", "address the server listens on (default: the configuration's listen, :8080)")
	cfgPath := configFlag(fs)
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for an answer")
	if code, ok := parseFlagsOnly(c, fs, args); !ok {
		return code
	}
	addr := *listen
	if addr == "" {
		// The same configuration serve reads (file, then DEFENDERBOT_LISTEN).
		cfg, err := loadConfig(c, *cfgPath)
		if err != nil {
			fmt.Fprintf(c.stderr, "defenderbot healthcheck: %v\n", err)
			return 2
		}
		addr = cfg.Listen
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		fmt.Fprintf(c.stderr, "defenderbot healthcheck: bad listen address %q: %v\n", addr, err)
		return 2
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	url := "http://" + net.JoinHostPort(strings.Trim(host, "[]"), port) + "/healthz"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		fmt.Fprintf(c.stderr, "defenderbot healthcheck: %v\n", err)
		return 1
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(c.stderr, "defenderbot healthcheck: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(c.stderr, "defenderbot healthcheck: %s answered %s\n", url, resp.Status)
		return 1
	}
	fmt.Fprintln(c.stdout, "ok")
	return 0
}

func runVersion(_ context.Context, c *cli, _ []string) int {
	fmt.Fprintln(c.stdout, "defenderbot", version)
	return 0
}
