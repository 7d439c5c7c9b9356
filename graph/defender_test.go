package graph_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/defenderbot/defenderbot/defender"
	"github.com/defenderbot/defenderbot/graph"
)

func TestDefenderAlerts(t *testing.T) {
	s, c, _ := setup(t, graph.Config{})
	a := s.NewDeviceAlert(machineID, "x", "high")
	d := graph.NewDefenderAlerts(c)

	got, err := d.UpdateAlert(t.Context(), a.ID, defender.AlertUpdate{Comment: ptr("only a comment")})
	require.NoError(t, err)
	assert.Equal(t, a.ID, got.ID)
	assert.Nil(t, got.Classification, "unknown is null, as in the legacy API")
	assert.Equal(t, machineID, got.MachineID)
	assert.Equal(t, "host1.contoso.com", got.ComputerDNSName)
	require.Len(t, got.Comments, 1)
	assert.Zero(t, s.Calls("PATCH", "/v1.0/security/alerts_v2/"+a.ID), "no PATCH for a comment alone")

	got, err = d.UpdateAlert(t.Context(), a.ID, defender.AlertUpdate{Status: ptr("Resolved"), Classification: ptr("FalsePositive")})
	require.NoError(t, err)
	assert.Equal(t, "resolved", got.Status)
	assert.Equal(t, "falsePositive", *got.Classification)
	assert.NotEmpty(t, got.Raw)

	_, err = d.UpdateAlert(t.Context(), a.ID, defender.AlertUpdate{})
	assert.ErrorIs(t, err, graph.ErrInvalidArgument)
}
