package main

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

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
	require.NoError(t, err, "the go command builds the binary")
	bin := filepath.Join(t.TempDir(), "defenderbot")
	out, err := exec.Command(goBin, "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "go build: %s", out)

	out, err = exec.Command(goBin, "tool", "nm", bin).CombinedOutput()
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
