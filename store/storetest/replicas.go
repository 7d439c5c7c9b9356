package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/defenderbot/defenderbot/approval"
	"github.com/defenderbot/defenderbot/store"
)

// RunReplicas checks behaviour across several Store instances on one
// database, as separate replicas or a restarted process would see it.
// newDB creates a fresh database and returns the driver and DSN to reach it;
// each replica is a separate store.Open on them.
func RunReplicas(t *testing.T, newDB func(t *testing.T) (driver, dsn string)) {
	opener := func(t *testing.T) func(t *testing.T) store.Store {
		driver, dsn := newDB(t)
		return func(t *testing.T) store.Store { return MustOpen(t, driver, dsn) }
	}
	t.Run("RacingReplicas", func(t *testing.T) {
		t.Parallel()
		open := opener(t)
		a, b := open(t), open(t)
		replicas := []store.Store{a, b}
		ctx := context.Background()

		for _, required := range []int{1, 2} {
			id := fmt.Sprintf("r-%d", required)
			create(t, a, newRequest(id, required))
			approvalRace(t, required, 50, func(i int) (approval.Decision, error) {
				_, dec, err := replicas[i%2].AddApproval(ctx, id, userID(i), T0())
				return dec, err
			})
		}

		var firsts, leases, fails atomic.Int32
		race(50, func(i int) {
			f, err := replicas[i%2].MarkSeen(ctx, "slack-retry", T0(), time.Minute)
			if err != nil {
				fails.Add(1)
			} else if f {
				firsts.Add(1)
			}
			ok, err := replicas[i%2].AcquireLease(ctx, "iocs-sync", fmt.Sprintf("replica-%d-%d", i%2, i), T0(), time.Minute)
			if err != nil {
				fails.Add(1)
			} else if ok {
				leases.Add(1)
			}
		})
		assert.Zero(t, fails.Load())
		assert.EqualValues(t, 1, firsts.Load(), "one replica handles a Slack request")
		assert.EqualValues(t, 1, leases.Load(), "one replica holds the lease")

		// What one replica wrote, the other reads.
		require.NoError(t, a.AppendAudit(ctx, approval.AuditEvent{At: T0(), Actor: "system", Kind: "iocs_sync"}))
		evs, err := b.ListAudit(ctx, time.Time{})
		require.NoError(t, err)
		require.Len(t, evs, 1)
	})

	t.Run("Restart", func(t *testing.T) {
		t.Parallel()
		open := opener(t)
		ctx := context.Background()
		s := open(t)
		r := create(t, s, newRequest("r1", 2))
		_, _, err := s.AddApproval(ctx, "r1", "U1", T0())
		require.NoError(t, err)
		require.NoError(t, s.AppendAudit(ctx, approval.AuditEvent{At: T0(), Actor: "U1", Kind: "approve", RequestID: "r1",
			Details: map[string]any{"user": "U1"}}))
		_, err = s.MarkSeen(ctx, "k", T0(), time.Hour)
		require.NoError(t, err)
		_, err = s.AcquireLease(ctx, "iocs", "old", T0(), time.Hour)
		require.NoError(t, err)
		require.NoError(t, s.UpsertIndicatorRecords(ctx, []store.IndicatorRecord{{Key: "Url|u", Value: "u", UpdatedAt: T0()}}))
		require.NoError(t, s.SaveSyncRun(ctx, store.SyncRun{ID: "s1", StartedAt: T0(), OK: true}))
		before, err := s.GetRequest(ctx, r.ID)
		require.NoError(t, err)
		require.NoError(t, s.Close())

		// Reopening runs the migrations again: they must be a no-op.
		for pass := range 2 {
			s2 := open(t)
			got, err := s2.GetRequest(ctx, r.ID)
			require.NoError(t, err)
			if pass == 0 {
				assert.Equal(t, before, got)
			} else {
				assert.Equal(t, approval.StateApproved, got.State, "the vote of the first reopen was kept")
			}
			evs, err := s2.ListAudit(ctx, time.Time{})
			require.NoError(t, err)
			require.Len(t, evs, 1)
			assert.Equal(t, map[string]any{"user": "U1"}, evs[0].Details)
			first, err := s2.MarkSeen(ctx, "k", T0().Add(time.Minute), time.Hour)
			require.NoError(t, err)
			assert.False(t, first, "seen keys survive a restart")
			ok, err := s2.AcquireLease(ctx, "iocs", "new", T0().Add(time.Minute), time.Hour)
			require.NoError(t, err)
			assert.False(t, ok, "leases survive a restart")
			recs, err := s2.ListIndicatorRecords(ctx)
			require.NoError(t, err)
			assert.Len(t, recs, 1)
			run, err := s2.LastSuccessfulSyncRun(ctx)
			require.NoError(t, err)
			assert.Equal(t, "s1", run.ID)
			if pass == 0 {
				_, dec, err := s2.AddApproval(ctx, "r1", "U2", T0().Add(time.Minute))
				require.NoError(t, err)
				assert.True(t, dec.Approved)
			}
			require.NoError(t, s2.Close())
		}
	})

	t.Run("ConcurrentOpen", func(t *testing.T) {
		t.Parallel()
		driver, dsn := newDB(t)
		// Replicas starting together must not both migrate.
		stores := make([]store.Store, 4)
		errs := make([]error, 4)
		race(4, func(i int) {
			stores[i], errs[i] = store.Open(context.Background(), driver, dsn)
		})
		for _, s := range stores {
			if s != nil {
				t.Cleanup(func() { _ = s.Close() })
			}
		}
		require.NoError(t, errors.Join(errs...))
		for _, s := range stores {
			require.NoError(t, s.Ping(context.Background()))
		}
		// All see the same schema.
		create(t, stores[0], newRequest("r1", 1))
		_, err := stores[3].GetRequest(context.Background(), "r1")
		require.NoError(t, err)
	})
}

// BenchmarkAddApproval measures one approving vote (required_approvals=1) on s.
func BenchmarkAddApproval(b *testing.B, s store.Store) {
	ctx := context.Background()
	ids := make([]string, b.N)
	for i := range ids {
		ids[i] = fmt.Sprintf("bench-%d-%d", time.Now().UnixNano(), i)
		r := newRequest(ids[i], 1)
		if err := s.CreateRequest(ctx, r); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, dec, err := s.AddApproval(ctx, ids[i], "U1", T0()); err != nil || !dec.Approved {
			b.Fatalf("approve %s: approved=%v err=%v", ids[i], dec.Approved, err)
		}
	}
}

// BenchmarkMarkSeen measures MarkSeen of new keys from parallel goroutines.
func BenchmarkMarkSeen(b *testing.B, s store.Store) {
	ctx := context.Background()
	prefix := fmt.Sprintf("bench-%d-", time.Now().UnixNano())
	var n atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			key := fmt.Sprintf("%s%d", prefix, n.Add(1))
			first, err := s.MarkSeen(ctx, key, T0(), time.Hour)
			if err != nil || !first {
				b.Errorf("mark seen %s: first=%v err=%v", key, first, err)
				return
			}
		}
	})
}
