package store

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// dialect is what differs between SQLite and PostgreSQL. Queries are written
// once with "?" placeholders and the portable INSERT ... ON CONFLICT and
// RETURNING syntax both engines accept.
type dialect struct {
	name      string
	driver    string // database/sql driver name
	forUpdate string // row-lock suffix for SELECTs inside write transactions
	// migrationLock is run first in the migration transaction so that
	// replicas starting together do not both migrate.
	migrationLock string
	// placeholders rewrites "?" to the engine's placeholder style.
	placeholders func(q string) string
	// timeArg turns a time into a query argument (NULL for the zero time).
	timeArg func(t time.Time) any
}

// timeLayout is SQLite's storage layout: fixed width, so string order is time order.
const timeLayout = "2006-01-02T15:04:05.000000Z"

var sqliteDialect = &dialect{
	name:   DriverSQLite,
	driver: "sqlite",
	// BEGIN IMMEDIATE (see sqliteDSN) already holds the database write lock.
	forUpdate:     "",
	migrationLock: "",
	placeholders:  func(q string) string { return q },
	timeArg: func(t time.Time) any {
		if t.IsZero() {
			return nil
		}
		return normTime(t).Format(timeLayout)
	},
}

var postgresDialect = &dialect{
	name:          DriverPostgres,
	driver:        "pgx",
	forUpdate:     " FOR UPDATE",
	migrationLock: "SELECT pg_advisory_xact_lock(hashtext('defenderbot.migrate.' || current_schema()))",
	placeholders:  dollarPlaceholders,
	timeArg: func(t time.Time) any {
		if t.IsZero() {
			return nil
		}
		return normTime(t)
	},
}

// dollarPlaceholders rewrites ?, ?, ? into $1, $2, $3. The store's SQL has no
// "?" inside string literals.
func dollarPlaceholders(q string) string {
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// normTime is the stored form of a time: UTC, microsecond precision.
func normTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Microsecond)
}

// dbTime scans a time column of either engine; NULL becomes the zero time.
type dbTime struct{ t *time.Time }

func (d dbTime) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*d.t = time.Time{}
	case time.Time:
		*d.t = normTime(v)
	case string:
		return d.parse(v)
	case []byte:
		return d.parse(string(v))
	default:
		return fmt.Errorf("scan time: unsupported type %T", src)
	}
	return nil
}

func (d dbTime) parse(s string) error {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("scan time %q: %w", s, err)
	}
	*d.t = normTime(t)
	return nil
}
