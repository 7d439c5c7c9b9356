package store_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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
