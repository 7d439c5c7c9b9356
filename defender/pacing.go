package defender

import (
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/defenderbot/defenderbot/internal/msrest"
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
				out[api] = append(out[api], msrest.NewLimiter(n, w))
			}
		}
		// Overrides for an API with no default window (import per hour).
		for api, v := range overrides {
			if _, ok := defaults[api]; !ok && v > 0 {
				out[api] = append(out[api], msrest.NewLimiter(v, w))
			}
		}
	}
	add(perMinute, l.PerMinute, time.Minute)
	add(perHour, l.PerHour, time.Hour)
	return out
}
