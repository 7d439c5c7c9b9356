package config_test

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/defenderbot/defenderbot/config"
	"github.com/defenderbot/defenderbot/internal/testutil"
)

// builtIns are the values of config's "Built-in values" constants.
var builtIns = map[string]any{
	"MaxBackoff":             config.MaxBackoff,
	"GraphPerMinute":         config.GraphPerMinute,
	"ContextWait":            config.ContextWait,
	"StaleAfter":             config.StaleAfter,
	"LookupTimeout":          config.LookupTimeout,
	"LatestActions":          config.LatestActions,
	"CardAlerts":             config.CardAlerts,
	"BulkPace":               config.BulkPace,
	"ExecuteTimeout":         config.ExecuteTimeout,
	"BulkCallTimeout":        config.BulkCallTimeout,
	"ProgressEvery":          config.ProgressEvery,
	"AlertsOverlap":          config.AlertsOverlap,
	"TAXIITimeout":           config.TAXIITimeout,
	"TAXIIMaxRetries":        config.TAXIIMaxRetries,
	"TAXIIMaxWait":           config.TAXIIMaxWait,
	"TAXIIMaxPageBytes":      config.TAXIIMaxPageBytes,
	"IOCLeaseTTL":            config.IOCLeaseTTL,
	"IOCLeaseRenewEvery":     config.IOCLeaseRenewEvery,
	"SweepEvery":             config.SweepEvery,
	"GroupCacheTTL":          config.GroupCacheTTL,
	"ResponseURLTimeout":     config.ResponseURLTimeout,
	"SlackTaskTimeout":       config.SlackTaskTimeout,
	"UndoClaimTTL":           config.UndoClaimTTL,
	"SlackAttempts":          config.SlackAttempts,
	"SlackMaxWait":           config.SlackMaxWait,
	"SlackMaxBodyBytes":      config.SlackMaxBodyBytes,
	"SlackMaxEventBodyBytes": config.SlackMaxEventBodyBytes,
	"SlackReplayTTL":         config.SlackReplayTTL,
	"SlackAckTimeout":        config.SlackAckTimeout,
	"ReadyTimeout":           config.ReadyTimeout,
}

// TestBuiltInValuesAreDocumented: the values with no configuration key are
// defined once (config's "Built-in values" block, which this test reads),
// and the README's table and config.example.yaml give each one's value.
func TestBuiltInValuesAreDocumented(t *testing.T) {
	fs := token.NewFileSet()
	f, err := parser.ParseFile(fs, "config.go", nil, parser.ParseComments)
	require.NoError(t, err)
	var declared []string
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST || g.Doc == nil || !strings.HasPrefix(g.Doc.Text(), "Built-in values") {
			continue
		}
		for _, spec := range g.Specs {
			for _, n := range spec.(*ast.ValueSpec).Names {
				declared = append(declared, n.Name)
			}
		}
	}
	var known []string
	for n := range builtIns {
		known = append(known, n)
	}
	slices.Sort(declared)
	slices.Sort(known)
	require.Equal(t, declared, known, "builtIns must list config's built-in values")

	root := testutil.RepoRoot(t)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	require.NoError(t, err)
	rows := regexp.MustCompile("(?m)^\\| `config\\.(\\w+)` \\| `([^`]+)` \\|").FindAllStringSubmatch(string(readme), -1)
	inReadme := map[string]string{}
	for _, r := range rows {
		inReadme[r[1]] = r[2]
	}
	example, err := os.ReadFile(filepath.Join(root, "config.example.yaml"))
	require.NoError(t, err)
	exampleText := strings.Join(strings.Fields(string(example)), " ")
	for name, v := range builtIns {
		doc, ok := inReadme[name]
		if !assert.True(t, ok, "README's built-in table lacks config.%s", name) {
			continue
		}
		switch v := v.(type) {
		case time.Duration:
			d, err := time.ParseDuration(doc)
			require.NoError(t, err, name)
			assert.Equal(t, v, d, "README's value of config.%s", name)
		default:
			assert.Equal(t, fmt.Sprint(v), doc, "README's value of config.%s", name)
		}
		assert.Contains(t, exampleText, "config."+name+" "+doc, "config.example.yaml's value of config.%s", name)
		delete(inReadme, name)
	}
	assert.Empty(t, inReadme, "README lists built-in values config does not have")
}
