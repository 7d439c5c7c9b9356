package bot

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/defenderbot/defenderbot/approval"
	"github.com/defenderbot/defenderbot/config"
	"github.com/defenderbot/defenderbot/defender"
)

// stuckInfo is a Defender whose open-alerts look-up hangs until released:
// the replica that started it never gets its answer.
type stuckInfo struct {
	*fakeDefender
	release chan struct{}
	once    sync.Once
}

func (d *stuckInfo) ListMachineAlerts(ctx context.Context, _ string, _ bool) ([]defender.Alert, error) {
	select {
	case <-d.release:
		return nil, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (d *stuckInfo) LatestMachineActions(context.Context, string, int) ([]defender.MachineAction, error) {
	return nil, nil
}

func (d *stuckInfo) unstick() { d.once.Do(func() { close(d.release) }) }

// A card whose creating replica dies while a look-up is still running
// would read "loading…" forever. Once the look-ups' own deadline has
// passed (ContextWait + LookupTimeout), another replica's sweep marks what
// is still loading as unavailable and updates the card; before that it
// leaves the card to its creator; and it does so once.
func TestCardSweepFinishesAContextItsReplicaLeftLoading(t *testing.T) {
	t.Run("one machine", func(t *testing.T) {
		testCardSweep(t, "isolate ws-001.contoso.com full beaconing", "Open alerts: loading…", "Open alerts: unavailable (the replica looking it up stopped)")
	})
	t.Run("bulk", func(t *testing.T) {
		testCardSweep(t, "isolate ws-001.contoso.com,ws-010.contoso.com outbreak", "alerts loading…", "alerts unavailable")
	})
}

func testCardSweep(t *testing.T, command, loading, unavailable string) {
	eachBackend(t, func(t *testing.T, db testDB) {
		clock := &fakeClock{t: t0}
		info := &stuckInfo{fakeDefender: newFakeDefender(), release: make(chan struct{})}
		info.machines = append(info.machines, bulkMachines(2)...)
		a := newReplica(t, "a", db.open(t, clock), info.fakeDefender, clock, replicaOpts{})
		a.svc.deps.MachineInfo = info
		// The card's 2 s wait is over at once; the look-ups' timeout never comes
		// (the replica dies before it would).
		a.svc.after = func(d time.Duration) <-chan time.Time {
			if d == config.ContextWait {
				ch := make(chan time.Time, 1)
				ch <- clock.Now()
				return ch
			}
			return nil
		}
		t.Cleanup(info.unstick) // runs before the replicas' own cleanup
		b := newReplica(t, "b", db.open(t, clock), info.fakeDefender, clock, replicaOpts{})

		a.svc.HandleCommand(context.Background(), slashCommand(analyst, command))
		var card slackCall
		require.Eventually(t, func() bool {
			posts := a.slack.find("chat.postMessage")
			if len(posts) == 0 {
				return false
			}
			card = posts[0]
			return true
		}, 10*time.Second, time.Millisecond)
		assert.Contains(t, card.Blocks, loading)
		r := onlyRequestEventually(t, b.svc.deps.Store)

		ctx := context.Background()
		b.svc.sweepCards(ctx)
		assert.Empty(t, b.slack.find("chat.update"), "within the look-ups' deadline the card is its creator's")

		clock.Advance(config.ContextWait + config.LookupTimeout + time.Second)
		b.svc.sweepCards(ctx)
		ups := b.slack.find("chat.update")
		require.Len(t, ups, 1, "the card is updated by another replica")
		assert.Equal(t, r.ApprovalTS, ups[0].TS)
		assert.NotContains(t, ups[0].Blocks, "loading…")
		assert.Contains(t, ups[0].Blocks, unavailable)
		assert.Contains(t, ups[0].Blocks, "ws-001.contoso.com", "what was looked up is kept")
		assert.True(t, strings.Contains(ups[0].Blocks, `"action_id":"approve"`), "still pending: the buttons stay")

		b.svc.sweepCards(ctx)
		assert.Len(t, b.slack.find("chat.update"), 1, "once")
	})
}

// onlyRequestEventually waits for the one request to have its approval message.
func onlyRequestEventually(t *testing.T, st Store) *approval.Request {
	t.Helper()
	var r *approval.Request
	require.Eventually(t, func() bool {
		rs, err := st.ListRequests(context.Background(), approval.RequestFilter{})
		if err != nil || len(rs) != 1 {
			return false
		}
		r = rs[0]
		return r.ApprovalTS != ""
	}, 10*time.Second, time.Millisecond)
	return r
}
