// Package testutil holds small helpers shared by tests.
//
// It must not import any other defenderbot package.
package testutil

import (
	"os"
	"path/filepath"
	"testing"
)

// RepoRoot returns the directory holding go.mod, searching up from the
// current working directory (a test runs in its package directory).
func RepoRoot(tb testing.TB) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatalf("getwd: %v", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatalf("go.mod not found above the test's directory")
		}
		dir = parent
	}
}

// SharedDir returns the project's shared/ folder (seed, reference, fixtures),
// which sits beside the repository checkout. Tests that need it skip with a
// clear message when it is absent.
func SharedDir(tb testing.TB) string {
	tb.Helper()
	dir := filepath.Join(RepoRoot(tb), "..", "shared")
	if _, err := os.Stat(dir); err != nil {
		tb.Skipf("shared/ not found beside the checkout (%s): skipping fixture test", dir)
	}
	return dir
}

// Fixture returns the path of a file under shared/fixtures.
func Fixture(tb testing.TB, rel string) string {
	tb.Helper()
	return filepath.Join(SharedDir(tb), "fixtures", rel)
}
