package ioc

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/defenderbot/defenderbot/store"
	"github.com/defenderbot/defenderbot/store/storetest"
	"github.com/stretchr/testify/assert"
)

// testStore is the real SQLite store (a temporary file) with a few
// inspection helpers and injectable faults: ioc's tests run against the
// store production runs against, not a hand-written imitation of it.
type testStore struct {
	store.Store
	mu sync.Mutex
	// faults: the named method fails with the error while it is set.
	faults map[string]error
}

func newTestStore(tb testing.TB) *testStore {
	tb.Helper()
	return &testStore{Store: storetest.OpenSQLite(tb), faults: map[string]error{}}
}

func (s *testStore) fault(method string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults[method]
}

func (s *testStore) UpsertIndicatorRecords(ctx context.Context, recs []store.IndicatorRecord) error {
	if err := s.fault("UpsertIndicatorRecords"); err != nil {
		return err
	}
	return s.Store.UpsertIndicatorRecords(ctx, recs)
}

func (s *testStore) DeleteIndicatorRecords(ctx context.Context, keys []string) error {
	if err := s.fault("DeleteIndicatorRecords"); err != nil {
		return err
	}
	return s.Store.DeleteIndicatorRecords(ctx, keys)
}

func (s *testStore) AcquireLease(ctx context.Context, name, owner string, now time.Time, ttl time.Duration) (bool, error) {
	if err := s.fault("AcquireLease"); err != nil {
		return false, err
	}
	return s.Store.AcquireLease(ctx, name, owner, now, ttl)
}

func (s *testStore) records() map[string]store.IndicatorRecord {
	recs, err := s.ListIndicatorRecords(context.Background())
	if err != nil {
		panic(err) // a broken test database: nothing to test
	}
	out := make(map[string]store.IndicatorRecord, len(recs))
	for _, r := range recs {
		out[r.Key] = r
	}
	return out
}

func (s *testStore) record(key string) (store.IndicatorRecord, bool) {
	r, ok := s.records()[key]
	return r, ok
}

func (s *testStore) numRecords() int { return len(s.records()) }

// setRecord writes r as is (tests that corrupt what a run left).
func (s *testStore) setRecord(r store.IndicatorRecord) {
	if err := s.Store.UpsertIndicatorRecords(context.Background(), []store.IndicatorRecord{r}); err != nil {
		panic(err)
	}
}

// hasRuns reports whether any sync run was saved.
func (s *testStore) hasRuns() bool {
	_, err := s.LastSyncRun(context.Background())
	if notFound(err) {
		return false
	}
	if err != nil {
		panic(err)
	}
	return true
}

func (s *testStore) audit() []store.AuditEvent {
	evs, err := s.ListAudit(context.Background(), time.Time{})
	if err != nil {
		panic(err)
	}
	return evs
}

// The sync recognises the store's "none yet" by behaviour, wrapped or not,
// without naming store's error.
func TestNotFoundIsRecognisedByBehaviour(t *testing.T) {
	assert.True(t, notFound(store.ErrNotFound))
	assert.True(t, notFound(fmt.Errorf("feed cursor: %w", store.ErrNotFound)))
	assert.False(t, notFound(errors.New("not found")), "the text is not enough")
	assert.False(t, notFound(nil))
}
