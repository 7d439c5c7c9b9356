package e2e_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/defenderbot/defenderbot/approval"
	"github.com/defenderbot/defenderbot/bot"
	"github.com/defenderbot/defenderbot/internal/slackfake"
)

// lockedBuffer collects log output from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestCollectSendsPackageLinkOnlyByDM: when a collection succeeds, its
// download link goes by direct message to the requester and the approvers,
// and nowhere else: no channel, no thread, no reply, no log, no audit line
// (which records only that it was sent).
func TestCollectSendsPackageLinkOnlyByDM(t *testing.T) {
	for _, driver := range backends {
		t.Run(driver, func(t *testing.T) {
			w := newWorldOn(t, driver)
			logs := &lockedBuffer{}
			w.logs = logs
			p := w.start(t, func(c *bot.Config) { c.RequiredApprovals = 2 })

			code, body := p.command(alice, "collect "+machine1DN+" memory for the IR team")
			require.Equal(t, http.StatusOK, code, body)
			msg, id := w.approvalMessage(t, 1)
			w.responseTo(t, alice, 1)
			for _, u := range []string{bob, carol} {
				code, _ = p.click(u, "approve", id, msg.TS)
				require.Equal(t, http.StatusOK, code)
			}
			p.waitState(id, approval.StateRunning)
			w.advance(3 * time.Minute)
			p.waitState(id, approval.StateSucceeded)

			var linkEvent map[string]any
			require.Eventually(t, func() bool {
				evs, err := p.store.ListAudit(context.Background(), time.Time{})
				require.NoError(t, err)
				for _, e := range evs {
					if e.RequestID == id && e.Kind == "package_link" {
						linkEvent = e.Details
						return true
					}
				}
				return false
			}, 10*time.Second, 5*time.Millisecond, "the audit records that the link was sent")
			assert.Equal(t, true, linkEvent["sent"])
			assert.ElementsMatch(t, []any{alice, bob, carol}, linkEvent["sent_to"])

			// exactly one DM with the link to each of them, and the link nowhere else
			var withLink []slackfake.Call
			for _, c := range w.slack.Calls() {
				raw, _ := json.Marshal(c)
				if strings.Contains(string(raw), "safedownload") {
					withLink = append(withLink, c)
				}
			}
			var to []string
			for _, c := range withLink {
				assert.Equal(t, slackfake.MethodPostMessage, c.Method)
				assert.Empty(t, c.ThreadTS, "never in a thread")
				to = append(to, c.Channel)
			}
			assert.ElementsMatch(t, []string{alice, bob, carol}, to, "DMs to the requester and approvers only:\n%s", dumpCalls(w.slack.Calls()))
			require.NotEmpty(t, withLink)
			link := withLink[0].Text[strings.Index(withLink[0].Text, "https://"):]
			token := link[strings.Index(link, "token=")+len("token="):]
			require.NotEmpty(t, token)

			// the link works, and appears in no log and no audit line
			resp, err := w.emu.HTTPClient().Get(strings.ReplaceAll(link, "&amp;", "&"))
			require.NoError(t, err)
			resp.Body.Close()
			assert.Equal(t, http.StatusOK, resp.StatusCode)
			assert.NotContains(t, logs.String(), token)
			assert.NotContains(t, logs.String(), "safedownload")
			assert.Contains(t, logs.String(), "GetPackageUri", "sanity: the call itself is logged")
			evs, err := p.store.ListAudit(context.Background(), time.Time{})
			require.NoError(t, err)
			raw, _ := json.Marshal(evs)
			assert.NotContains(t, string(raw), token)
			assert.Equal(t, 1, w.emu.Calls(http.MethodGet, "/api/machineactions/"+mustMachineActionID(t, p, id)+"/GetPackageUri"))
		})
	}
}

func mustMachineActionID(t *testing.T, p *proc, id string) string {
	t.Helper()
	r, err := p.store.GetRequest(context.Background(), id)
	require.NoError(t, err)
	require.NotEmpty(t, r.MachineActionID)
	return r.MachineActionID
}

// TestQuarantineRefusesABadHash: the SHA-1 is checked before any request exists.
func TestQuarantineRefusesABadHash(t *testing.T) {
	w := newWorld(t)
	p := w.start(t)
	code, body := p.command(alice, "quarantine "+machine1DN+" not-a-hash dropper found")
	require.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, "SHA-1")
	assert.Empty(t, w.defenderWrites())
	for _, c := range w.slack.Calls() {
		assert.False(t, c.Method == slackfake.MethodPostMessage && c.Channel == channel, "no approval request: %s", c.Text)
	}
}
