package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"modernc.org/sqlite"               // the "sqlite" database/sql driver, and its error codes
	sqlite3 "modernc.org/sqlite/lib"
)

// Drivers accepted by Open.
const (
	DriverSQLite   = "sqlite"
	DriverPostgres = "postgres"
)

// Option configures Open.
type Option func(*options)

type options struct {
	logger *slog.Logger
	now    func() time.Time
}

// WithLogger sets the logger; the default discards everything.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.logger = l
		}
	}
}

// WithClock sets the clock used for timestamps the caller left zero
// (Request.CreatedAt, AuditEvent.At, IndicatorRecord.UpdatedAt, ...);
// the default is time.Now.
func WithClock(now func() time.Time) Option {
	return func(o *options) {
		if now != nil {
			o.now = now
		}
	}
}

// Open connects to the database, applies pending schema migrations and
// returns a Store.
//
// driver is "sqlite" (dsn: a file path, "file:..." URI or ":memory:") or
// "postgres" (dsn: a libpq URL or key=value string). For SQLite, Open adds
// busy_timeout, WAL, foreign keys and immediate transactions unless the DSN
// sets them, so that writers from several processes (replicas started
// together on a new file included) wait for each other instead of failing.
//
// Times are stored in UTC, truncated to the microsecond: a value read back
// equals the one written after t.UTC().Truncate(time.Microsecond).
//
// Errors never contain the DSN's password.
func Open(ctx context.Context, driver, dsn string, opts ...Option) (Store, error) {
	o := options{logger: slog.New(slog.NewTextHandler(io.Discard, nil)), now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	if strings.TrimSpace(dsn) == "" {
		return nil, fmt.Errorf("open %s store: empty DSN", driver)
	}
	var (
		d      *dialect
		sqlDSN string
		secret string
	)
	wantWAL := false
	switch driver {
	case DriverSQLite:
		d = sqliteDialect
		var err error
		if sqlDSN, wantWAL, err = sqliteDSN(dsn); err != nil {
			return nil, fmt.Errorf("open sqlite store: %w", err)
		}
	case DriverPostgres:
		d = postgresDialect
		sqlDSN = dsn
		cfg, err := pgconn.ParseConfig(dsn)
		if err != nil {
			return nil, fmt.Errorf("open postgres store: invalid DSN: %w",
				redactErr(err, passwordOf(dsn)))
		}
		secret = cfg.Password
	default:
		return nil, fmt.Errorf("open store: unknown driver %q (want %q or %q)", driver, DriverSQLite, DriverPostgres)
	}

	db, err := sql.Open(d.driver, sqlDSN)
	if err != nil {
		return nil, fmt.Errorf("open %s store: %w", driver, redactErr(err, secret))
	}
	if d == sqliteDialect {
		// One connection per Store: in-process writers queue in database/sql
		// rather than spinning in SQLite's busy handler, and ":memory:" stays
		// one database. Other processes are serialised by BEGIN IMMEDIATE.
		db.SetMaxOpenConns(1)
		db.SetMaxIdleConns(1)
		db.SetConnMaxLifetime(0)
		db.SetConnMaxIdleTime(0)
	}
	if d == postgresDialect {
		// Bounded so that bursts (e.g. many Slack clicks) queue here rather
		// than exhaust the server's max_connections across replicas.
		db.SetMaxOpenConns(16)
		db.SetMaxIdleConns(4)
		db.SetConnMaxIdleTime(5 * time.Minute)
	}
	s := &sqlStore{db: db, d: d, log: o.logger, now: o.now}
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open %s store %s: %w", driver, redactDSN(dsn), redactErr(err, secret))
	}
	if wantWAL {
		if err := enableWAL(ctx, db, sqliteBusyTimeout); err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("open %s store %s: %w", driver, redactDSN(dsn), err)
		}
	}
	applied, err := s.migrate(ctx)
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open %s store %s: %w", driver, redactDSN(dsn), redactErr(err, secret))
	}
	o.logger.LogAttrs(ctx, slog.LevelInfo, "store opened",
		slog.String("driver", driver), slog.String("dsn", redactDSN(dsn)), slog.Int("migrations_applied", applied))
	return s, nil
}

// sqliteBusyTimeout is how long an SQLite statement waits for another
// connection's lock (busy_timeout) and how long Open waits to switch a new
// file to WAL.
const sqliteBusyTimeout = 10 * time.Second

// sqliteDSN adds the pragmas the store relies on unless the DSN already sets
// them. WAL is not among them: wantWAL says that Open must switch to it (see
// enableWAL).
func sqliteDSN(dsn string) (_ string, wantWAL bool, _ error) {
	base, rawQuery, _ := strings.Cut(dsn, "?")
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return "", false, fmt.Errorf("invalid DSN query %q: %w", rawQuery, err)
	}
	has := func(pragma string) bool {
		for _, p := range q["_pragma"] {
			if strings.HasPrefix(strings.ToLower(strings.TrimSpace(p)), pragma) {
				return true
			}
		}
		return false
	}
	var add []string
	if !has("busy_timeout") && q.Get("_busy_timeout") == "" && q.Get("_timeout") == "" {
		add = append(add, fmt.Sprintf("_pragma=busy_timeout(%d)", sqliteBusyTimeout.Milliseconds()))
	}
	if !has("foreign_keys") && q.Get("_foreign_keys") == "" && q.Get("_fk") == "" {
		add = append(add, "_pragma=foreign_keys(1)")
	}
	memory := base == ":memory:" || strings.Contains(rawQuery, "mode=memory") || strings.Contains(rawQuery, "vfs=memdb")
	if !memory && !has("journal_mode") && q.Get("_journal_mode") == "" && q.Get("_journal") == "" {
		wantWAL = true
		// WAL + NORMAL: no fsync per commit, never corrupt; a power cut may
		// lose the last commits, not a process crash.
		if !has("synchronous") && q.Get("_synchronous") == "" && q.Get("_sync") == "" {
			add = append(add, "_pragma=synchronous(NORMAL)")
		}
	}
	if q.Get("_txlock") == "" {
		add = append(add, "_txlock=immediate")
	}
	if len(add) == 0 {
		return dsn, wantWAL, nil
	}
	sep := "?"
	if rawQuery != "" {
		sep = "&"
	} else if strings.HasSuffix(dsn, "?") {
		sep = ""
	}
	return dsn + sep + strings.Join(add, "&"), wantWAL, nil
}

// enableWAL switches the database to WAL, which then stays on in the file.
//
// Switching a new file needs it to itself, and SQLite answers SQLITE_BUSY at
// once, without calling the busy handler, to a connection that loses that
// race (replicas started together on one new file). So the switch waits its
// turn here, up to timeout, as busy_timeout does for every other statement.
// A file already in WAL never takes this path twice.
func enableWAL(ctx context.Context, db *sql.DB, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	pause := 5 * time.Millisecond
	for {
		var mode string
		err := db.QueryRowContext(ctx, `PRAGMA journal_mode = WAL`).Scan(&mode)
		if err == nil {
			if !strings.EqualFold(mode, "wal") {
				return fmt.Errorf("switch to WAL: the journal mode stayed %q", mode)
			}
			return nil
		}
		if !isSQLiteBusy(err) || time.Now().Add(pause).After(deadline) {
			return fmt.Errorf("switch to WAL: %w", err)
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("switch to WAL: %w", context.Cause(ctx))
		case <-t.C:
		}
		pause = min(2*pause, 100*time.Millisecond)
	}
}

// isSQLiteBusy reports whether err is SQLITE_BUSY (any extended code).
func isSQLiteBusy(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_BUSY
}

var (
	kvPassword  = regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&]*)`)
	urlUserinfo = regexp.MustCompile(`(://[^:/@?#\s]*):[^@/?#\s]*@`)
)

// redactDSN hides the password of a DSN (user:pass@ and password=...) so the
// result can be logged.
func redactDSN(dsn string) string {
	out := urlUserinfo.ReplaceAllString(dsn, "${1}:xxxxx@")
	return kvPassword.ReplaceAllString(out, "${1}xxxxx")
}

// passwordOf extracts the password from a DSN pgconn could not parse, best effort.
func passwordOf(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		if p, ok := u.User.Password(); ok {
			return p
		}
	}
	if m := kvPassword.FindStringSubmatch(dsn); m != nil {
		return strings.Trim(m[2], "'")
	}
	return ""
}

// redactErr hides secret in err's text while keeping errors.Is/As working.
func redactErr(err error, secret string) error {
	if err == nil || secret == "" || !strings.Contains(err.Error(), secret) {
		return err
	}
	return &redactedError{err: err, secret: secret}
}

type redactedError struct {
	err    error
	secret string
}

func (e *redactedError) Error() string { return strings.ReplaceAll(e.err.Error(), e.secret, "xxxxx") }
func (e *redactedError) Unwrap() error { return e.err }
