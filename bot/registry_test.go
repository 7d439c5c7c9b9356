package bot

import (
	"os"
	"strings"
	"testing"

	"github.com/slack-go/slack"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/defenderbot/defenderbot/actions"
)

// actionTable renders the README's action table from the registry.
func actionTable() string {
	var b strings.Builder
	b.WriteString("| action (`defenderbot action …`) | Slack (`/defender …`) | what it does | approval | Defender permission | undone by |\n")
	b.WriteString("| --- | --- | --- | --- | --- | --- |\n")
	for _, s := range actions.All() {
		approval := "required"
		if !s.ChangesState {
			approval = "none (read-only)"
		}
		inverse := "-"
		if s.Inverse != "" {
			inverse = "`" + string(s.Inverse) + "`"
		}
		u, _ := usage(s.Verb)
		slackUsage := "`" + strings.ReplaceAll(u, "|", "\\|") + "`"
		if s.Verb == "" {
			slackUsage = "- (command line only)"
		}
		b.WriteString("| `" + string(s.Name) + "` | " + slackUsage + " | " + s.Help + " | " + approval +
			" | " + s.Permission + " | " + inverse + " |\n")
	}
	return b.String()
}

// The registry is the one list of actions: the README's table, the Slack
// help and the Slack forms all show exactly its actions (the CLI's usage is
// checked in cmd/defenderbot).
func TestRegistryIsTheOneListOfActions(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	if table := actionTable(); !strings.Contains(string(readme), table) {
		t.Errorf("README's action table must equal the registry; replace it with:\n%s", table)
	}

	help := ""
	for _, b := range renderHelp("/defender") {
		if sec, ok := b.(*slack.SectionBlock); ok && sec.Text != nil {
			help += sec.Text.Text + "\n"
		}
	}
	for _, s := range actions.All() {
		if s.Verb == "" {
			assert.NotContains(t, help, string(s.Name), "a command-line-only action is not in the Slack help")
			continue
		}
		assert.Contains(t, help, "`/defender "+s.Verb+" ", "Slack help lists %s", s.Name)
		_, err := parseCommand(s.Verb)
		var pe *ParseError
		require.ErrorAs(t, err, &pe, s.Verb)
		assert.True(t, pe.Missing, "%s without arguments asks for them", s.Verb)
		assert.Equal(t, s.Verb, pe.Verb)

		view, ok := commandModal(s.Verb, Command{}, invocation{})
		require.True(t, ok, "%s has a form", s.Name)
		var ids []string
		for _, b := range view.Blocks.BlockSet {
			ids = append(ids, b.(*slack.InputBlock).BlockID)
		}
		assert.Equal(t, s.Form, ids, "%s's form shows the registry's inputs", s.Name)
		for _, a := range append(append([]string{}, s.Required...), s.Optional...) {
			if a == actions.ArgMachineID {
				a = "machine"
			}
			assert.Contains(t, s.Form, a, "%s's form asks for %s", s.Name, a)
		}
	}
}
