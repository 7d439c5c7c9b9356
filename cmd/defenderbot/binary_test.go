package main

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMain owns the directory the package's tests build the binary into, so
// that it outlives every test (parallel subtests included) and is removed
// once, after the last one.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "defenderbot-cmd-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "cmd/defenderbot tests: temporary directory:", err)
		os.Exit(1)
	}
	testBinary.dir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// testBinary is the binary built from this package, once per test process.
var testBinary struct {
	mu  sync.Mutex
	dir string
	bin string
}

// defenderbotBinary returns the path of the binary built from this package.
// The first caller builds it; later callers share it. If the file has gone
// (a /tmp cleaner), it is built again rather than failing with "fork/exec: no
// such file".
func defenderbotBinary(t testing.TB) string {
	t.Helper()
	testBinary.mu.Lock()
	defer testBinary.mu.Unlock()
	if testBinary.bin != "" {
		_, err := os.Stat(testBinary.bin)
		if err == nil {
			return testBinary.bin
		}
		require.ErrorIs(t, err, fs.ErrNotExist, "the test binary")
		t.Logf("the test binary %s disappeared: building it again", testBinary.bin)
	}
	require.NotEmpty(t, testBinary.dir, "TestMain sets the build directory")
	require.NoError(t, os.MkdirAll(testBinary.dir, 0o700))
	goBin, err := exec.LookPath("go")
	require.NoError(t, err, "the go command builds the binary")
	// Built under a temporary name and renamed: a binary is never seen half written.
	tmp, err := os.CreateTemp(testBinary.dir, "build-*")
	require.NoError(t, err)
	require.NoError(t, tmp.Close())
	out, err := exec.Command(goBin, "build", "-o", tmp.Name(), ".").CombinedOutput()
	if err != nil {
		_ = os.Remove(tmp.Name())
		require.NoError(t, err, "go build: %s", out)
	}
	bin := filepath.Join(testBinary.dir, "defenderbot")
	require.NoError(t, os.Rename(tmp.Name(), bin))
	testBinary.bin = bin
	return bin
}

func TestDefenderbotBinaryIsBuiltOnceAndRebuiltIfRemoved(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := defenderbotBinary(t)
	st, err := os.Stat(bin)
	require.NoError(t, err)
	assert.Equal(t, bin, defenderbotBinary(t), "one binary per test process")
	again, err := os.Stat(bin)
	require.NoError(t, err)
	assert.True(t, os.SameFile(st, again), "not rebuilt while it exists")

	require.NoError(t, os.Remove(bin))
	assert.Equal(t, bin, defenderbotBinary(t))
	out, err := exec.Command(bin, "help").CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), "emulator")
}

// testingSymbol matches a symbol of the testing package or one of its
// sub-packages (testing.tRunner, testing/iotest.X), but not names that merely
// contain the word (crypto/tls.testingOnlyForceDowngradeCanary).
var testingSymbol = regexp.MustCompile(`(^|[^A-Za-z0-9_/.])testing[./]`)

// The emulator and the Slack stand-in are served by the production binary
// (`emulator`, `demo`), so whatever they import ships; test helpers must not.
func TestBinaryLinksNoTestingPackage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	goBin, err := exec.LookPath("go")
	require.NoError(t, err, "the go command runs nm")
	bin := defenderbotBinary(t)
	out, err := exec.Command(goBin, "tool", "nm", bin).CombinedOutput()
	require.NoError(t, err, "go tool nm: %s", out)
	var found []string
	for line := range strings.Lines(string(out)) {
		fields := strings.Fields(line)
		if len(fields) > 0 && testingSymbol.MatchString(fields[len(fields)-1]) {
			found = append(found, fields[len(fields)-1])
		}
	}
	assert.Empty(t, found, "the binary links test code")
	assert.Contains(t, string(out), "main.main", "sanity: nm listed the binary's own symbols")
}

func TestTestingSymbolPattern(t *testing.T) {
	for sym, want := range map[string]bool{
		"testing.tRunner":                            true,
		"testing..inittask":                          true,
		"testing/iotest.ErrTimeout":                  true,
		"crypto/tls.testingOnlyForceDowngradeCanary": false,
		"github.com/defenderbot/defenderbot/internal/testutil.RepoRoot": false,
		"main.main": false,
	} {
		assert.Equal(t, want, testingSymbol.MatchString(sym), sym)
	}
}
