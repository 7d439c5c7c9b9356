// Package httpwait holds the two waiting rules every HTTP client of
// defenderbot shares (Defender, Graph, TAXII, Slack retries): how long a
// Retry-After header asks for, and a sleep that ends with its context.
// It must not import any defenderbot package: every client builds on it.
package httpwait

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxSecs caps delta-seconds so the Duration multiply cannot overflow.
const maxSecs = int64(365 * 24 * 3600)

// RetryAfter reads a Retry-After header: delta-seconds or an HTTP date
// (relative to now). ok is false for an absent or unreadable value; a date in
// the past is a zero wait.
func RetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		return time.Duration(min(secs, maxSecs)) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(0, t.Sub(now)), true
	}
	return 0, false
}

// Sleep waits for d or until ctx is done (then it returns ctx.Err()). A
// non-positive d returns at once with ctx.Err().
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
