package ioc

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/defenderbot/defenderbot/defender"
)

// fakeAPI is an in-memory Defender indicator API that upserts by type+value
// like Microsoft does.
type fakeAPI struct {
	mu      sync.Mutex
	byKey   map[string]*defender.Indicator
	nextID  int
	imports [][]defender.Indicator
	deletes [][]string
	lists   int
	// hooks, may be nil
	importHook func(n int, inds []defender.Indicator) ([]defender.ImportResult, error) // n: 1-based call number
	deleteHook func(ids []string) error
	listHook   func(ctx context.Context) error // before the listing, outside the lock
}

func newFakeAPI() *fakeAPI { return &fakeAPI{byKey: map[string]*defender.Indicator{}} }

func fkey(t defender.IndicatorType, v string) string { return string(t) + "|" + strings.ToLower(v) }

// addForeign adds an indicator as an analyst would (application not ours).
func (f *fakeAPI) addForeign(t defender.IndicatorType, v string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextID++
	id := strconv.Itoa(f.nextID)
	f.byKey[fkey(t, v)] = &defender.Indicator{ID: id, IndicatorType: t, IndicatorValue: v, Action: "Block", Title: "analyst", Description: "by hand", Application: "portal"}
	return id
}

func (f *fakeAPI) ImportIndicators(ctx context.Context, inds []defender.Indicator) ([]defender.ImportResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(inds) == 0 || len(inds) > 500 {
		return nil, fmt.Errorf("fake: batch of %d", len(inds))
	}
	f.imports = append(f.imports, slices.Clone(inds))
	if f.importHook != nil {
		res, err := f.importHook(len(f.imports), inds)
		if err != nil || res != nil {
			if err == nil {
				f.apply(inds, res)
			}
			return res, err
		}
	}
	return f.apply(inds, nil), nil
}

// apply stores the indicators whose result is not failed.
func (f *fakeAPI) apply(inds []defender.Indicator, res []defender.ImportResult) []defender.ImportResult {
	out := make([]defender.ImportResult, len(inds))
	for i, in := range inds {
		if res != nil && res[i].IsFailed {
			out[i] = res[i]
			continue
		}
		k := fkey(in.IndicatorType, in.IndicatorValue)
		cur, ok := f.byKey[k]
		if !ok {
			f.nextID++
			c := in
			c.ID = strconv.Itoa(f.nextID)
			cur = &c
			f.byKey[k] = cur
		} else {
			app := cur.Application // Microsoft keeps the first creator's application
			id := cur.ID
			*cur = in
			cur.ID, cur.Application = id, app
		}
		out[i] = defender.ImportResult{ID: cur.ID, Indicator: in.IndicatorValue}
	}
	return out
}

func (f *fakeAPI) ListIndicators(ctx context.Context, _ defender.IndicatorListOptions) ([]defender.Indicator, error) {
	if f.listHook != nil {
		if err := f.listHook(ctx); err != nil {
			return nil, err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists++
	out := make([]defender.Indicator, 0, len(f.byKey))
	for _, v := range f.byKey {
		out = append(out, *v)
	}
	return out, nil
}

func (f *fakeAPI) DeleteIndicators(_ context.Context, ids []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deletes = append(f.deletes, slices.Clone(ids))
	if f.deleteHook != nil {
		if err := f.deleteHook(ids); err != nil {
			return err
		}
	}
	byID := map[string]string{}
	for k, v := range f.byKey {
		byID[v.ID] = k
	}
	for _, id := range ids {
		if _, ok := byID[id]; !ok {
			return &defender.APIError{StatusCode: 404, Code: "ResourceNotFound", Message: "indicator " + id}
		}
	}
	for _, id := range ids {
		delete(f.byKey, byID[id])
	}
	return nil
}

func (f *fakeAPI) has(t defender.IndicatorType, v string) (*defender.Indicator, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	i, ok := f.byKey[fkey(t, v)]
	return i, ok
}

func (f *fakeAPI) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.byKey)
}

func (f *fakeAPI) calls() (imports, deletes int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.imports), len(f.deletes)
}

func (f *fakeAPI) resetCalls() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.imports, f.deletes, f.lists = nil, nil, 0
}
