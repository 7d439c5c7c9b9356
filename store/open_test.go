package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	// The driver creates the file before it refuses the query: keep it out of the source tree.
	db := filepath.Join(t.TempDir(), "x.db")
	for _, tc := range []struct {
		name, driver, dsn string
		want              string
	}{
		{"UnknownDriver", "mysql", "x", `unknown driver "mysql"`},
		{"EmptyDSN", DriverSQLite, " ", "empty DSN"},
		{"BadSQLiteQuery", DriverSQLite, db + "?_txlock=sometimes", `unknown _txlock "sometimes"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Open(ctx, tc.driver, tc.dsn)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestOpenPostgresNeverLeaksPassword(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, dsn := range []string{
		// Port 1 refuses connections: the error comes from the driver.
		"postgres://bot:s3cretPW@127.0.0.1:1/defenderbot?sslmode=disable&connect_timeout=2",
		"host=127.0.0.1 port=1 user=bot password=s3cretPW dbname=defenderbot sslmode=disable connect_timeout=2",
		"host=127.0.0.1 port=1 user=bot password='s3cretPW' dbname=defenderbot sslmode=disable connect_timeout=2",
		// Unparsable: pgconn's own message must not carry it either.
		"postgres://bot:s3cretPW@127.0.0.1:notaport/defenderbot",
		"host=127.0.0.1 password=s3cretPW port=notaport",
	} {
		_, err := Open(ctx, DriverPostgres, dsn)
		require.Error(t, err, dsn)
		assert.NotContains(t, err.Error(), "s3cretPW")
	}
}

func TestRedactDSN(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://bot:pw@db:5432/x?sslmode=disable":   "postgres://bot:xxxxx@db:5432/x?sslmode=disable",
		"postgres://bot@db/x":                           "postgres://bot@db/x",
		"postgresql://bot:p%40ss@db/x":                  "postgresql://bot:xxxxx@db/x",
		"host=db user=bot password=pw dbname=x":         "host=db user=bot password=xxxxx dbname=x",
		"host=db password = 'a b\\'c' dbname=x":         "host=db password = xxxxx dbname=x",
		"postgres://db/x?user=bot&password=pw&sslmode=": "postgres://db/x?user=bot&password=xxxxx&sslmode=",
		"/var/lib/defenderbot/state.db":                 "/var/lib/defenderbot/state.db",
	} {
		assert.Equal(t, want, redactDSN(in), in)
	}
}

func TestSQLiteDSN(t *testing.T) {
	for in, want := range map[string]string{
		"x.db":     "x.db?_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_txlock=immediate",
		":memory:": ":memory:?_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_txlock=immediate",
		"file:x.db?_pragma=busy_timeout(1)&_txlock=exclusive": "file:x.db?_pragma=busy_timeout(1)&_txlock=exclusive" +
			"&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)",
		"x.db?_pragma=journal_mode(DELETE)&_fk=0&_timeout=5": "x.db?_pragma=journal_mode(DELETE)&_fk=0&_timeout=5&_txlock=immediate",
	} {
		got, wal, err := sqliteDSN(in)
		require.NoError(t, err)
		assert.Equal(t, want, got, in)
		assert.Equal(t, in != ":memory:" && !strings.Contains(in, "journal_mode"), wal, in)
	}
	_, _, err := sqliteDSN("x.db?%zz")
	require.ErrorContains(t, err, "invalid DSN query")
}

// Replicas started together on a new SQLite file: the switch to WAL needs
// the file to itself, and SQLite answers SQLITE_BUSY at once (without its busy
// handler) to whoever loses that race. Open must wait its turn instead.
func TestOpenSQLiteConcurrentlyOnANewFile(t *testing.T) {
	ctx := context.Background()
	const rounds, replicas = 25, 4
	for round := range rounds {
		dsn := filepath.Join(t.TempDir(), "new.db")
		errs := make([]error, replicas)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range replicas {
			wg.Go(func() {
				<-start
				s, err := Open(ctx, DriverSQLite, dsn)
				if err == nil {
					var mode string
					err = s.(*sqlStore).db.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode)
					if err == nil && mode != "wal" {
						err = fmt.Errorf("journal mode %q, want wal", mode)
					}
					err = errors.Join(err, s.Close())
				}
				errs[i] = err
			})
		}
		close(start)
		wg.Wait()
		require.NoError(t, errors.Join(errs...), "round %d", round)
	}
}

func TestMigrationsRecordedOnce(t *testing.T) {
	ctx := context.Background()
	dsn := filepath.Join(t.TempDir(), "m.db")
	ms, err := sqliteDialect.migrations()
	require.NoError(t, err)
	require.NotEmpty(t, ms)
	for range 3 {
		s, err := Open(ctx, DriverSQLite, dsn)
		require.NoError(t, err)
		var n int
		require.NoError(t, s.(*sqlStore).db.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations`).Scan(&n))
		assert.Equal(t, len(ms), n)
		var mode string
		require.NoError(t, s.(*sqlStore).db.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode))
		assert.Equal(t, "wal", mode)
		var fk int
		require.NoError(t, s.(*sqlStore).db.QueryRowContext(ctx, `PRAGMA foreign_keys`).Scan(&fk))
		assert.Equal(t, 1, fk)
		require.NoError(t, s.Close())
	}
	pg, err := postgresDialect.migrations()
	require.NoError(t, err)
	assert.Len(t, pg, len(ms), "both dialects have the same migrations")
}

func TestDollarPlaceholders(t *testing.T) {
	assert.Equal(t, "a = $1 AND b IN ($2, $3)", dollarPlaceholders("a = ? AND b IN (?, ?)"))
}
