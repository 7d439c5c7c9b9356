package store_test

import (
	"testing"

	"github.com/defenderbot/defenderbot/store"
	"github.com/defenderbot/defenderbot/store/storetest"
)

func TestSQLite(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store { return storetest.OpenSQLite(t) })
}

func TestSQLiteMemory(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store { return storetest.MustOpen(t, store.DriverSQLite, ":memory:") })
}

func TestSQLiteReplicas(t *testing.T) {
	t.Parallel()
	storetest.RunReplicas(t, func(t *testing.T) (string, string) { return store.DriverSQLite, storetest.SQLiteDSN(t) })
}

func TestPostgres(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store { return storetest.OpenPostgres(t) })
}

func TestPostgresReplicas(t *testing.T) {
	t.Parallel()
	storetest.RunReplicas(t, func(t *testing.T) (string, string) { return store.DriverPostgres, storetest.PostgresDSN(t) })
}

func BenchmarkAddApproval(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) { storetest.BenchmarkAddApproval(b, storetest.OpenSQLite(b)) })
	b.Run("postgres", func(b *testing.B) { storetest.BenchmarkAddApproval(b, storetest.OpenPostgres(b)) })
}

func BenchmarkMarkSeen(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) { storetest.BenchmarkMarkSeen(b, storetest.OpenSQLite(b)) })
	b.Run("postgres", func(b *testing.B) { storetest.BenchmarkMarkSeen(b, storetest.OpenPostgres(b)) })
}
