package ioc

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/defenderbot/defenderbot/defender"
	"github.com/defenderbot/defenderbot/store"
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

func (f *fakeAPI) ListIndicators(_ context.Context, _ defender.IndicatorListOptions) ([]defender.Indicator, error) {
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

// memStore is an in-memory StateStore and Leaser.
type memStore struct {
	mu      sync.Mutex
	recs    map[string]store.IndicatorRecord
	runs    []store.SyncRun
	audit   []store.AuditEvent
	leases  map[string]lease
	upserts int
}

type lease struct {
	owner string
	until time.Time
}

func newMemStore() *memStore {
	return &memStore{recs: map[string]store.IndicatorRecord{}, leases: map[string]lease{}}
}

func (m *memStore) ListIndicatorRecords(context.Context) ([]store.IndicatorRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]store.IndicatorRecord, 0, len(m.recs))
	for _, r := range m.recs {
		out = append(out, r)
	}
	return out, nil
}

func (m *memStore) UpsertIndicatorRecords(_ context.Context, recs []store.IndicatorRecord) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.upserts++
	for _, r := range recs {
		m.recs[r.Key] = r
	}
	return nil
}

func (m *memStore) DeleteIndicatorRecords(_ context.Context, keys []string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, k := range keys {
		delete(m.recs, k)
	}
	return nil
}

func (m *memStore) SaveSyncRun(_ context.Context, r store.SyncRun) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.runs = append(m.runs, r)
	return nil
}

func (m *memStore) LastSyncRun(context.Context) (*store.SyncRun, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.runs) == 0 {
		return nil, store.ErrNotFound
	}
	r := m.runs[len(m.runs)-1]
	return &r, nil
}

func (m *memStore) LastSuccessfulSyncRun(context.Context) (*store.SyncRun, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := len(m.runs) - 1; i >= 0; i-- {
		if m.runs[i].OK {
			r := m.runs[i]
			return &r, nil
		}
	}
	return nil, store.ErrNotFound
}

func (m *memStore) AppendAudit(_ context.Context, e store.AuditEvent) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.audit = append(m.audit, e)
	return nil
}

func (m *memStore) AcquireLease(_ context.Context, name, owner string, now time.Time, ttl time.Duration) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if l, ok := m.leases[name]; ok && l.owner != owner && now.Before(l.until) {
		return false, nil
	}
	m.leases[name] = lease{owner, now.Add(ttl)}
	return true, nil
}

func (m *memStore) ReleaseLease(_ context.Context, name, owner string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if l, ok := m.leases[name]; ok && l.owner == owner {
		delete(m.leases, name)
	}
	return nil
}

func (m *memStore) record(key string) (store.IndicatorRecord, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.recs[key]
	return r, ok
}

func (m *memStore) numRecords() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.recs)
}
