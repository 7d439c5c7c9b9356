// Package storetest is the behaviour suite every store.Store implementation
// must pass, plus helpers to get a fresh SQLite or PostgreSQL store in tests.
//
// It owns the store contract's tests; it must not import bot or handlers.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/defenderbot/defenderbot/actions"
	"github.com/defenderbot/defenderbot/approval"
	"github.com/defenderbot/defenderbot/store"
)

// PostgresDSNEnv names the variable holding the PostgreSQL DSN for tests.
const PostgresDSNEnv = "DEFENDERBOT_TEST_POSTGRES_DSN"

// OpenSQLite opens a store on a new SQLite file in tb.TempDir() and closes
// it at the end of the test.
func OpenSQLite(tb testing.TB, opts ...store.Option) store.Store {
	tb.Helper()
	return MustOpen(tb, store.DriverSQLite, SQLiteDSN(tb), opts...)
}

// SQLiteDSN returns the path of a new SQLite file in tb.TempDir().
func SQLiteDSN(tb testing.TB) string {
	tb.Helper()
	return filepath.Join(tb.TempDir(), "defenderbot.db")
}

// MustOpen opens a store and closes it at the end of the test.
func MustOpen(tb testing.TB, driver, dsn string, opts ...store.Option) store.Store {
	tb.Helper()
	s, err := store.Open(context.Background(), driver, dsn, opts...)
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

// PostgresDSN returns a DSN for a new, empty schema of the database named by
// DEFENDERBOT_TEST_POSTGRES_DSN, dropped at the end of the test, so tests
// are independent and can run in parallel. It skips the test when the
// variable is unset.
func PostgresDSN(tb testing.TB) string {
	tb.Helper()
	base := os.Getenv(PostgresDSNEnv)
	if base == "" {
		tb.Skip("PostgreSQL tests skipped: set " + PostgresDSNEnv + " (see .ci/postgres)")
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "test_" + hex.EncodeToString(b[:])

	admin, err := sql.Open("pgx", base)
	require.NoError(tb, err)
	defer func() { _ = admin.Close() }()
	ctx := context.Background()
	_, err = admin.ExecContext(ctx, "CREATE SCHEMA "+schema)
	require.NoError(tb, err, "create test schema (is PostgreSQL running? see .ci/postgres)")
	tb.Cleanup(func() {
		db, err := sql.Open("pgx", base)
		if err != nil {
			return
		}
		defer func() { _ = db.Close() }()
		_, _ = db.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
	})
	return withSearchPath(tb, base, schema)
}

// withSearchPath sets search_path in a URL or key=value DSN (pgx passes
// unknown parameters to the server as run-time parameters).
func withSearchPath(tb testing.TB, dsn, schema string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		require.NoError(tb, err)
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return dsn + " search_path=" + schema
}

// OpenPostgres opens a store on a fresh schema (see PostgresDSN).
func OpenPostgres(tb testing.TB, opts ...store.Option) store.Store {
	tb.Helper()
	return MustOpen(tb, store.DriverPostgres, PostgresDSN(tb), opts...)
}

// T0 is the suite's reference time; its nanoseconds check microsecond truncation.
func T0() time.Time { return time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.UTC) }

func us(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

func newRequest(id string, required int) *approval.Request {
	return &approval.Request{
		ID:                id,
		Action:            "isolate",
		Args:              actions.Args{MachineID: "m-" + id, Comment: "test", IsolationType: "Full"},
		MachineName:       "host-" + id + ".contoso.local",
		RequesterID:       "U_REQ",
		RequesterName:     "Req Uester",
		ChannelID:         "C_SOC",
		ResponseURL:       "https://hooks.slack.test/r/" + id,
		RequiredApprovals: required,
		CreatedAt:         T0(),
		ExpiresAt:         T0().Add(time.Hour),
	}
}

func create(t *testing.T, s store.Store, r *approval.Request) *approval.Request {
	t.Helper()
	require.NoError(t, s.CreateRequest(context.Background(), r))
	return r
}

func userID(i int) string { return fmt.Sprintf("U%03d", i) }
