package handlers_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/slack-go/slack"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/defenderbot/defenderbot/internal/testutil"
)

// TestAppManifestMatchesRoutes checks that slack-app-manifest.yaml decodes
// into slack-go's Manifest without unknown keys, asks only for the scopes
// the bot needs, and points Slack at routes the handlers really serve.
func TestAppManifestMatchesRoutes(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(testutil.RepoRoot(t), "slack-app-manifest.yaml"))
	require.NoError(t, err)
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	var m slack.Manifest
	require.NoError(t, dec.Decode(&m))

	require.Len(t, m.Features.SlashCommands, 1)
	cmd := m.Features.SlashCommands[0]
	assert.Equal(t, "/defender", cmd.Command)
	assert.ElementsMatch(t, []string{"commands", "chat:write", "usergroups:read"}, m.OAuthConfig.Scopes.Bot)
	assert.Empty(t, m.OAuthConfig.Scopes.User, "no user token scopes")
	assert.False(t, m.Settings.SocketModeEnabled)
	assert.True(t, m.Features.AppHome.MessagesTabEnabled, "requesters get outcomes by DM")
	assert.True(t, m.Settings.Interactivity.IsEnabled)
	assert.True(t, m.Features.AppHome.HomeTabEnabled, "approvers decide from the Home tab too")
	require.NotNil(t, m.Settings.EventSubscriptions)
	assert.Equal(t, []string{"app_home_opened"}, m.Settings.EventSubscriptions.BotEvents)

	e := newEnv(t)
	for _, u := range []string{cmd.Url, m.Settings.Interactivity.RequestUrl, m.Settings.EventSubscriptions.RequestUrl} {
		parsed, err := url.Parse(u)
		require.NoError(t, err)
		assert.Equal(t, "https", parsed.Scheme)
		rec := httptest.NewRecorder()
		e.h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, parsed.Path, nil))
		assert.Equal(t, http.StatusUnauthorized, rec.Code, "%s must be a Slack route (unsigned -> 401, not 404)", parsed.Path)
	}
}
