package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/defenderbot/defenderbot/store"
)

func testUndoClaims(t *testing.T, s store.Store) {
	ctx := context.Background()
	const ttl = 2 * time.Minute
	orig := create(t, s, newRequest("orig", 1))

	// Concurrent claims: one wins, the others are told who holds it.
	holders := make([]string, 8)
	errs := make([]error, 8)
	race(len(holders), func(i int) {
		holders[i], errs[i] = s.ClaimUndo(ctx, orig.ID, fmt.Sprintf("undo-%d", i), T0(), ttl)
	})
	winner := ""
	for i, h := range holders {
		require.NoError(t, errs[i])
		if h == fmt.Sprintf("undo-%d", i) {
			require.Empty(t, winner, "two claims won")
			winner = h
		}
	}
	require.NotEmpty(t, winner, "one claim won")
	for _, h := range holders {
		assert.Equal(t, winner, h, "everyone sees the winner")
	}

	// Its request not created yet: a late claim within ttl still loses.
	h, err := s.ClaimUndo(ctx, orig.ID, "late", T0().Add(ttl-time.Second), ttl)
	require.NoError(t, err)
	assert.Equal(t, winner, h)
	// Once created, the claim never lapses.
	create(t, s, newRequest(winner, 1))
	h, err = s.ClaimUndo(ctx, orig.ID, "much-later", T0().Add(24*time.Hour), ttl)
	require.NoError(t, err)
	assert.Equal(t, winner, h)
	got, err := s.UndoOf(ctx, winner)
	require.NoError(t, err)
	assert.Equal(t, orig.ID, got)
	got, err = s.UndoOf(ctx, orig.ID)
	require.NoError(t, err)
	assert.Empty(t, got, "the original undoes nothing")
	// Releasing takes only the holder's own claim away.
	require.NoError(t, s.ReleaseUndo(ctx, orig.ID, "late"))
	h, err = s.ClaimUndo(ctx, orig.ID, "again", T0(), ttl)
	require.NoError(t, err)
	assert.Equal(t, winner, h)

	// A claimer that died before creating its request: taken over after ttl.
	o2 := create(t, s, newRequest("orig2", 1))
	h, err = s.ClaimUndo(ctx, o2.ID, "ghost", T0(), ttl)
	require.NoError(t, err)
	require.Equal(t, "ghost", h)
	h, err = s.ClaimUndo(ctx, o2.ID, "live", T0().Add(ttl), ttl)
	require.NoError(t, err)
	assert.Equal(t, "live", h)
	got, err = s.UndoOf(ctx, "ghost")
	require.NoError(t, err)
	assert.Empty(t, got)
	// A request creation that failed releases its claim at once.
	require.NoError(t, s.ReleaseUndo(ctx, o2.ID, "live"))
	h, err = s.ClaimUndo(ctx, o2.ID, "next", T0().Add(ttl), ttl)
	require.NoError(t, err)
	assert.Equal(t, "next", h)

	_, err = s.ClaimUndo(ctx, "", "x", T0(), ttl)
	require.ErrorContains(t, err, "two different request IDs")
	_, err = s.ClaimUndo(ctx, "x", "x", T0(), ttl)
	require.ErrorContains(t, err, "two different request IDs")
	_, err = s.ClaimUndo(ctx, "x", "y", T0(), 0)
	require.ErrorContains(t, err, "ttl must be positive")
}

func testCardContexts(t *testing.T, s store.Store) {
	ctx := context.Background()
	got, err := s.CardContext(ctx, "r1")
	require.NoError(t, err)
	assert.Empty(t, got, "none yet")
	require.NoError(t, s.SaveCardContext(ctx, "r1", `{"machine":"loading"}`))
	require.NoError(t, s.SaveCardContext(ctx, "r1", `{"machine":"done"}`))
	got, err = s.CardContext(ctx, "r1")
	require.NoError(t, err)
	assert.Equal(t, `{"machine":"done"}`, got, "the last one saved")
	require.ErrorContains(t, s.SaveCardContext(ctx, "", "x"), "required")
	require.ErrorContains(t, s.SaveCardContext(ctx, "r2", ""), "required")
}
