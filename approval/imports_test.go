package approval_test

import (
	"go/build"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The core has no Slack, HTTP framework or persistence in it, directly or
// through the packages it imports.
func TestCoreImportsNoSlackGinOrStore(t *testing.T) {
	const module = "github.com/defenderbot/defenderbot/"
	seen := map[string]bool{}
	var walk func(dir, path string)
	walk = func(dir, path string) {
		if seen[path] {
			return
		}
		seen[path] = true
		pkg, err := build.ImportDir(dir, 0)
		require.NoError(t, err, path)
		for _, imp := range pkg.Imports {
			for _, banned := range []string{"slack-go", "gin-gonic", module + "bot", module + "handlers", module + "store"} {
				assert.False(t, strings.HasPrefix(imp, banned), "%s imports %s", path, imp)
			}
			if rel, ok := strings.CutPrefix(imp, module); ok {
				walk("../"+rel, imp)
			}
		}
	}
	walk(".", module+"approval")
}
