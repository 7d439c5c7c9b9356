// Package imports_test checks the packages' promises of what they do not
// import (their doc comments say why), through every package they import.
// The approval core has its own check (approval/imports_test.go).
package imports_test

import (
	"go/build"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const module = "github.com/defenderbot/defenderbot/"

// everywhere are never imported by the packages below: the Slack edge and
// the HTTP framework sit on top of them.
var everywhere = []string{"github.com/slack-go/", "github.com/gin-gonic/"}

// TestPackagesImportOnlyWhatTheyMay: each package, directly or through
// another, imports of defenderbot only the packages listed (and what those
// import in turn, which their own rows check).
func TestPackagesImportOnlyWhatTheyMay(t *testing.T) {
	allowed := map[string][]string{
		"internal/httpwait": nil,
		"internal/feedgen":  nil,
		"internal/msrest":   {"internal/httpwait"},
		"taxii":             {"internal/httpwait"},
		"defender":          {"internal/msrest", "internal/httpwait"},
		"graph":             {"defender", "internal/msrest", "internal/httpwait"},
		"machineinfo":       {"defender", "internal/msrest", "internal/httpwait"},
		"alerts":            {"graph", "store", "approval", "actions", "defender", "internal/msrest", "internal/httpwait", "internal/logctx"},
	}
	for pkg, may := range allowed {
		t.Run(pkg, func(t *testing.T) {
			for imp, via := range imports(t, pkg) {
				if rel, ok := strings.CutPrefix(imp, module); ok {
					assert.True(t, slices.Contains(may, rel), "%s imports %s (through %s)", pkg, rel, via)
				}
				for _, banned := range everywhere {
					assert.False(t, strings.HasPrefix(imp, banned), "%s imports %s (through %s)", pkg, imp, via)
				}
			}
		})
	}
}

// imports returns every package rel imports, directly or not, each with
// the package of the module that imports it.
func imports(t *testing.T, rel string) map[string]string {
	t.Helper()
	out := map[string]string{}
	var walk func(rel string)
	walk = func(rel string) {
		pkg, err := build.ImportDir("../../"+rel, 0)
		require.NoError(t, err, rel)
		for _, imp := range pkg.Imports {
			if _, seen := out[imp]; seen {
				continue
			}
			out[imp] = rel
			if r, ok := strings.CutPrefix(imp, module); ok {
				walk(r)
			}
		}
	}
	walk(rel)
	return out
}
