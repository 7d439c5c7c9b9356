package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// runAudit prints the audit trail since --since as JSON lines on stdout.
func runAudit(ctx context.Context, c *cli, args []string) int {
	fs := newFlagSet(c, "audit", "audit [--since 24h|RFC3339] [--config FILE]")
	cfgPath := configFlag(fs)
	sinceFlag := fs.String("since", "24h", "show events newer than this: a duration back from now (24h, 30m) or an RFC 3339 time")
	if code, ok := parseFlagsOnly(c, fs, args); !ok {
		return code
	}
	since, err := parseSince(*sinceFlag, time.Now())
	if err != nil {
		fmt.Fprintf(c.stderr, "defenderbot audit: %v\n", err)
		return 2
	}
	cfg, err := loadConfig(c, *cfgPath)
	if err != nil {
		fmt.Fprintf(c.stderr, "defenderbot audit: %v\n", err)
		return 1
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		fmt.Fprintf(c.stderr, "defenderbot audit: %v\n", err)
		return 1
	}
	defer st.Close()
	events, err := st.ListAudit(ctx, since)
	if err != nil {
		fmt.Fprintf(c.stderr, "defenderbot audit: %v\n", err)
		return 1
	}
	enc := json.NewEncoder(c.stdout)
	for _, e := range events {
		line := auditLine{At: e.At.UTC(), Actor: e.Actor, Kind: e.Kind, RequestID: e.RequestID, Details: e.Details}
		if err := enc.Encode(line); err != nil {
			fmt.Fprintf(c.stderr, "defenderbot audit: %v\n", err)
			return 1
		}
	}
	return 0
}

type auditLine struct {
	At        time.Time      `json:"at"`
	Actor     string         `json:"actor"`
	Kind      string         `json:"kind"`
	RequestID string         `json:"request_id,omitempty"`
	Details   map[string]any `json:"details,omitempty"`
}

// parseSince accepts a positive duration back from now or an RFC 3339 time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d <= 0 {
			return time.Time{}, fmt.Errorf("--since %q must be a positive duration", s)
		}
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("--since %q is neither a duration (24h, 90m) nor an RFC 3339 time (2026-11-27T10:00:00Z)", s)
}
