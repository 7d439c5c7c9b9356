package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/defenderbot/defenderbot/approval"
	"github.com/defenderbot/defenderbot/store"
	"github.com/defenderbot/defenderbot/store/storetest"
)

// TestUpgradeFromFirstSchema opens a database created by the first release
// (only 0001 applied, one indicator record) and checks that the upgrade
// keeps the record and gives it an empty payload that can then be written.
func TestUpgradeFromFirstSchema(t *testing.T) {
	tests := []struct {
		name, driver, sqlDriver string
		dsn                     func(tb testing.TB) string
		insert                  string
	}{
		{"sqlite", store.DriverSQLite, "sqlite", storetest.SQLiteDSN,
			`INSERT INTO indicator_records (key, indicator_type, value, status, failure_reason, updated_at)
			 VALUES ('DomainName|old.test', 'DomainName', 'old.test', 'failed', 'boom', '2025-01-01T00:00:00.000000Z')`},
		{"postgres", store.DriverPostgres, "pgx", storetest.PostgresDSN,
			`INSERT INTO indicator_records (key, indicator_type, value, status, failure_reason, updated_at)
			 VALUES ('DomainName|old.test', 'DomainName', 'old.test', 'failed', 'boom', '2025-01-01T00:00:00Z')`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			dsn := tt.dsn(t)
			first, err := os.ReadFile(filepath.Join("migrations", tt.name, "0001_init.sql"))
			require.NoError(t, err)
			db, err := sql.Open(tt.sqlDriver, dsn)
			require.NoError(t, err)
			for _, q := range []string{
				`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`,
				string(first),
				`INSERT INTO schema_migrations (version, name, applied_at) VALUES (1, '0001_init.sql', '2025-01-01T00:00:00Z')`,
				tt.insert,
			} {
				_, err := db.ExecContext(ctx, q)
				require.NoError(t, err)
			}
			require.NoError(t, db.Close())

			s := storetest.MustOpen(t, tt.driver, dsn)
			recs, err := s.ListIndicatorRecords(ctx)
			require.NoError(t, err)
			require.Len(t, recs, 1)
			assert.Equal(t, "old.test", recs[0].Value)
			assert.Equal(t, "boom", recs[0].FailureReason)
			assert.Empty(t, recs[0].Payload)

			recs[0].Payload = `{"indicatorValue":"old.test"}`
			require.NoError(t, s.UpsertIndicatorRecords(ctx, recs))
			got, err := s.ListIndicatorRecords(ctx)
			require.NoError(t, err)
			require.Len(t, got, 1)
			assert.Equal(t, recs[0].Payload, got[0].Payload)
		})
	}
}

// TestUpgradeKeepsUndoLinks: undos requested before request_undos existed
// (recorded only in the audit trail) are found by UndoOf after the upgrade,
// and their originals cannot be undone a second time.
func TestUpgradeKeepsUndoLinks(t *testing.T) {
	tests := []struct {
		name, driver, sqlDriver, at string
		dsn                         func(tb testing.TB) string
	}{
		{"sqlite", store.DriverSQLite, "sqlite", "2026-12-01T00:00:00.000000Z", storetest.SQLiteDSN},
		{"postgres", store.DriverPostgres, "pgx", "2026-12-01T00:00:00Z", storetest.PostgresDSN},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			dsn := tt.dsn(t)
			db, err := sql.Open(tt.sqlDriver, dsn)
			require.NoError(t, err)
			_, err = db.ExecContext(ctx, `CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`)
			require.NoError(t, err)
			files, err := filepath.Glob(filepath.Join("migrations", tt.name, "000[1-6]_*.sql"))
			require.NoError(t, err)
			require.Len(t, files, 6)
			for i, f := range files {
				b, err := os.ReadFile(f)
				require.NoError(t, err)
				_, err = db.ExecContext(ctx, string(b))
				require.NoError(t, err, f)
				_, err = db.ExecContext(ctx, fmt.Sprintf(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (%d, '%s', '%s')`,
					i+1, filepath.Base(f), tt.at))
				require.NoError(t, err)
			}
			for _, ev := range []struct{ kind, request, details string }{
				{"request", "orig", `{"action":"isolate"}`},
				{"undo", "undo1", `{"undo_of":"orig","action":"deisolate"}`},
				{"undo_requested", "orig", `{"undo_request":"undo1","action":"deisolate"}`},
				{"undo", "undo2", `{"undo_of":"orig","action":"deisolate"}`}, // a duplicate: the first stays
				{"note", "x", `not json`},
			} {
				_, err = db.ExecContext(ctx, fmt.Sprintf(`INSERT INTO audit_events (at, actor, kind, request_id, details) VALUES ('%s', 'U1', '%s', '%s', '%s')`,
					tt.at, ev.kind, ev.request, ev.details))
				require.NoError(t, err)
			}
			require.NoError(t, db.Close())

			s := storetest.MustOpen(t, tt.driver, dsn)
			now := time.Now()
			require.NoError(t, s.CreateRequest(ctx, &approval.Request{ID: "undo1", Action: "deisolate", State: approval.StatePending,
				RequiredApprovals: 1, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}))
			got, err := s.UndoOf(ctx, "undo1")
			require.NoError(t, err)
			assert.Equal(t, "orig", got)
			got, err = s.UndoOf(ctx, "undo2")
			require.NoError(t, err)
			assert.Empty(t, got)
			holder, err := s.ClaimUndo(ctx, "orig", "undo3", now, time.Minute)
			require.NoError(t, err)
			assert.Equal(t, "undo1", holder)
		})
	}
}
