package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/defenderbot/defenderbot/store"
)

// alertTests is the AlertStore part of the suite.
var alertTests = []struct {
	name string
	fn   func(t *testing.T, s store.Store)
}{
	{"AlertPosts", testAlertPosts},
	{"AlertClaimRace", testAlertClaimRace},
	{"RequestAlerts", testRequestAlerts},
}

func testAlertPosts(t *testing.T, s store.Store) {
	ctx := context.Background()
	ttl := 2 * time.Minute
	claim := func(id, owner string, at time.Time) bool {
		t.Helper()
		ok, err := s.ClaimAlertPost(ctx, id, owner, at, ttl)
		require.NoError(t, err)
		return ok
	}
	_, err := s.GetAlertPost(ctx, "a1")
	require.ErrorIs(t, err, store.ErrNotFound)

	assert.True(t, claim("a1", "r1", T0()))
	assert.False(t, claim("a1", "r2", T0().Add(time.Minute)), "claimed by r1")
	assert.False(t, claim("a1", "r1", T0().Add(time.Minute)), "a claim is not renewed by its owner either")
	assert.True(t, claim("a1", "r2", T0().Add(3*time.Minute)), "r1 died before posting: its claim lapses")

	p, err := s.GetAlertPost(ctx, "a1")
	require.NoError(t, err)
	assert.Equal(t, store.AlertPost{AlertID: "a1", ClaimedBy: "r2", ClaimedAt: us(T0().Add(3 * time.Minute))}, *p)

	lastUpdate := T0().Add(-time.Hour)
	require.NoError(t, s.SetAlertPosted(ctx, "a1", "C_ALERTS", "1700000000.000200", lastUpdate, T0().Add(4*time.Minute)))
	p, err = s.GetAlertPost(ctx, "a1")
	require.NoError(t, err)
	assert.Equal(t, "C_ALERTS", p.Channel)
	assert.Equal(t, "1700000000.000200", p.TS)
	assert.Equal(t, us(lastUpdate), p.LastUpdate)
	assert.Equal(t, us(T0().Add(4*time.Minute)), p.PostedAt)
	assert.False(t, claim("a1", "r3", T0().Add(time.Hour)), "a posted alert is never claimed again")

	require.NoError(t, s.SetAlertLastUpdate(ctx, "a1", lastUpdate.Add(time.Minute)))
	require.NoError(t, s.SetAlertLastUpdate(ctx, "a1", lastUpdate), "never moves back")
	p, err = s.GetAlertPost(ctx, "a1")
	require.NoError(t, err)
	assert.Equal(t, us(lastUpdate.Add(time.Minute)), p.LastUpdate)

	// Release: a failed post lets the next poll try again at once.
	assert.True(t, claim("a2", "r1", T0()))
	require.NoError(t, s.ReleaseAlertClaim(ctx, "a2", "r2"), "not r2's claim: no-op")
	assert.False(t, claim("a2", "r2", T0()))
	require.NoError(t, s.ReleaseAlertClaim(ctx, "a2", "r1"))
	assert.True(t, claim("a2", "r2", T0()))
	require.NoError(t, s.ReleaseAlertClaim(ctx, "a1", "r2"), "a posted alert is not released")
	_, err = s.GetAlertPost(ctx, "a1")
	require.NoError(t, err)

	require.ErrorIs(t, s.SetAlertPosted(ctx, "nope", "C1", "1.2", T0(), T0()), store.ErrNotFound)
	require.ErrorIs(t, s.SetAlertLastUpdate(ctx, "nope", T0()), store.ErrNotFound)
	require.Error(t, s.SetAlertPosted(ctx, "a2", "", "", T0(), T0()))
	_, err = s.ClaimAlertPost(ctx, "", "r1", T0(), ttl)
	require.Error(t, err)
	_, err = s.ClaimAlertPost(ctx, "a3", "r1", T0(), 0)
	require.Error(t, err)
}

func testAlertClaimRace(t *testing.T, s store.Store) {
	ctx := context.Background()
	oneWins(t, 30, func(i int) (bool, error) {
		return s.ClaimAlertPost(ctx, "contended", userID(i), T0(), time.Minute)
	})
}

func testRequestAlerts(t *testing.T, s store.Store) {
	ctx := context.Background()
	none, err := s.RequestAlert(ctx, "r1")
	require.NoError(t, err)
	assert.Empty(t, none, "not started from an alert")
	require.NoError(t, s.LinkRequestAlert(ctx, "r1", "da1_2"))
	require.NoError(t, s.LinkRequestAlert(ctx, "r2", "da3_4"))
	got, err := s.RequestAlert(ctx, "r1")
	require.NoError(t, err)
	assert.Equal(t, "da1_2", got)
	require.Error(t, s.LinkRequestAlert(ctx, "", "da1_2"))
}
