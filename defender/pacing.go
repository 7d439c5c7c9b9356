package defender

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"golang.org/x/time/rate"
)

// Limits sets the client-side pacing per API (keys are the API* constants).
// A missing or zero entry means Microsoft's documented limit; a negative entry
// turns pacing off for that API and window.
type Limits struct {
	PerMinute map[string]int
	PerHour   map[string]int
}

// defaultLimits returns Microsoft's documented per-API limits
// (defender_api.md §6.4). The import API has no documented hourly limit.
func defaultLimits() (perMinute, perHour map[string]int) {
	perMinute = map[string]int{
		APIMachineActions:  100,
		APIMachines:        100,
		APIAlerts:          100,
		APIIndicators:      100,
		APIIndicatorImport: 30,
		APIIndicatorDelete: 30,
		APIPackageURI:      2,
	}
	perHour = map[string]int{
		APIMachineActions:  1500,
		APIMachines:        1500,
		APIAlerts:          1500,
		APIIndicators:      1500,
		APIIndicatorDelete: 1500,
		APIPackageURI:      120,
	}
	return perMinute, perHour
}

func validateLimits(l Limits) error {
	known, _ := defaultLimits()
	for name, m := range map[string]map[string]int{"Limits.PerMinute": l.PerMinute, "Limits.PerHour": l.PerHour} {
		for api := range m {
			if _, ok := known[api]; !ok {
				return invalid(name, "unknown API %q (known: %s)", api, strings.Join(slices.Sorted(maps.Keys(known)), ", "))
			}
		}
	}
	return nil
}

// newLimiter returns a token bucket that never lets more than n calls through
// in any window w: a burst of b plus a refill of n-b per w.
func newLimiter(n int, w time.Duration) *rate.Limiter {
	b := max(1, n/10)
	if n <= b {
		return rate.NewLimiter(rate.Every(w/time.Duration(n)), n)
	}
	return rate.NewLimiter(rate.Every(w/time.Duration(n-b)), b)
}

// buildLimiters returns, per API, the limiters every call must pass.
func buildLimiters(l Limits) map[string][]*rate.Limiter {
	perMinute, perHour := defaultLimits()
	out := make(map[string][]*rate.Limiter)
	add := func(defaults, overrides map[string]int, w time.Duration) {
		for api, n := range defaults {
			if v, ok := overrides[api]; ok && v != 0 {
				n = v
			}
			if n > 0 {
				out[api] = append(out[api], newLimiter(n, w))
			}
		}
		// Overrides for an API with no default window (import per hour).
		for api, v := range overrides {
			if _, ok := defaults[api]; !ok && v > 0 {
				out[api] = append(out[api], newLimiter(v, w))
			}
		}
	}
	add(perMinute, l.PerMinute, time.Minute)
	add(perHour, l.PerHour, time.Hour)
	return out
}

// pace waits until every limiter of api admits one more call.
func (c *Client) pace(ctx context.Context, api string) error {
	lims := c.limiters[api]
	if len(lims) == 0 {
		return nil
	}
	now := c.now()
	var wait time.Duration
	res := make([]*rate.Reservation, 0, len(lims))
	for _, l := range lims {
		r := l.ReserveN(now, 1)
		if !r.OK() {
			for _, p := range res {
				p.CancelAt(now)
			}
			return fmt.Errorf("defender: %s: pacing: burst exceeded", api)
		}
		res = append(res, r)
		wait = max(wait, r.DelayFrom(now))
	}
	if wait <= 0 {
		return nil
	}
	c.log.DebugContext(ctx, "defender pacing", "api", api, "wait", wait)
	if err := c.sleep(ctx, wait); err != nil {
		for _, r := range res {
			r.CancelAt(now)
		}
		return fmt.Errorf("defender: %s: waiting for client-side rate limit: %w", api, err)
	}
	return nil
}

// backoff returns the wait before retry number attempt (0-based): exponential
// from baseBackoff, capped at MaxBackoff, with "equal jitter" so concurrent
// clients spread out but never retry immediately.
func (c *Client) backoff(attempt int) time.Duration {
	d := c.baseBackoff
	for i := 0; i < attempt && d < c.maxBackoff; i++ {
		d *= 2
	}
	d = min(d, c.maxBackoff)
	half := d / 2
	if half <= 0 {
		return d
	}
	return half + rand.N(half+1)
}
