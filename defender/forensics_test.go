package defender_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/defenderbot/defenderbot/defender"
	"github.com/defenderbot/defenderbot/defender/defendertest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestEmulator_collectInvestigationPackage(t *testing.T) {
	srv, c, _ := newEmulated(t, defender.Config{})
	ctx := t.Context()

	ma, err := c.CollectInvestigationPackage(ctx, machineID, "INC-9 collect")
	require.NoError(t, err)
	assert.Equal(t, defender.ActionCollectInvestigationPackage, ma.Type)
	assert.Equal(t, defender.StatusPending, ma.Status)

	_, err = c.CollectInvestigationPackage(ctx, machineID, "again")
	assert.True(t, defender.IsActiveRequestAlreadyExists(err), "%v", err)

	_, err = c.GetPackageURI(ctx, ma.ID)
	assert.True(t, defender.IsNotFound(err), "not collected yet: %v", err)

	srv.Advance(10 * time.Minute)
	link, err := c.GetPackageURI(ctx, ma.ID)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(link, srv.URL+"/safedownload/"), link)
	assert.NotContains(t, link, `"`)
	resp, err := srv.HTTPClient().Get(link)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "application/zip", resp.Header.Get("Content-Type"))
}

func TestEmulator_stopAndQuarantineFile(t *testing.T) {
	srv, c, _ := newEmulated(t, defender.Config{})
	ctx := t.Context()
	const sha1 = "87662bc3d60e4200ceaf7aae249d1c343f4b83c9"
	ma, err := c.StopAndQuarantineFile(ctx, machineID, strings.ToUpper(sha1), "INC-7")
	require.NoError(t, err)
	assert.Equal(t, defender.ActionStopAndQuarantineFile, ma.Type)
	assert.Contains(t, string(ma.Raw), `"relatedFileInfo":{"fileIdentifier":"`+sha1+`","fileIdentifierType":"Sha1"}`)

	srv.AddMachine(defendertest.Machine{ID: defendertest.SampleMachineID3, OSPlatform: "Linux"})
	_, err = c.StopAndQuarantineFile(ctx, defendertest.SampleMachineID3, sha1, "INC-7")
	var ae *defender.APIError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, "OsPlatformNotSupported", ae.Code)

	srv.SetRoles(defendertest.RoleMachineReadAll)
	c2, err := defender.New(srv.ClientConfig(), defender.WithHTTPClient(srv.HTTPClient()))
	require.NoError(t, err)
	_, err = c2.StopAndQuarantineFile(ctx, machineID, sha1, "x")
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, http.StatusForbidden, ae.StatusCode)
	assert.Contains(t, ae.Message, "Machine.StopAndQuarantine")
}

func TestEmulator_machineContext(t *testing.T) {
	srv, c, _ := newEmulated(t, defender.Config{})
	ctx := t.Context()
	srv.AddSampleData()

	m, err := c.GetMachine(ctx, defendertest.SampleMachineID1)
	require.NoError(t, err)
	assert.Equal(t, "finance-laptop-01.contoso.com", m.ComputerDNSName)
	assert.Equal(t, "Windows11", m.OSPlatform)
	assert.Equal(t, "23H2", m.Version)
	assert.Equal(t, "Active", m.HealthStatus)
	assert.Equal(t, "High", m.RiskScore)
	assert.Equal(t, "Medium", m.ExposureLevel)
	assert.Equal(t, "10.0.1.15", m.LastIPAddress)
	require.NotNil(t, m.RBACGroupName)
	assert.Equal(t, "Finance", *m.RBACGroupName)
	require.NotNil(t, m.RBACGroupID)
	require.NotNil(t, m.OSBuild)
	assert.Equal(t, []string{"finance"}, m.MachineTags)
	assert.WithinDuration(t, srv.Now().Add(-time.Hour), m.LastSeen, time.Minute)

	srv.AddAlert(defendertest.Alert{ID: "resolved-1", Title: "old", MachineID: defendertest.SampleMachineID1, Status: "Resolved"})
	open, err := c.ListMachineAlerts(ctx, defendertest.SampleMachineID1, true)
	require.NoError(t, err)
	require.Len(t, open, 1)
	assert.Equal(t, defendertest.SampleAlertID1, open[0].ID)
	assert.Equal(t, "High", open[0].Severity)
	all, err := c.ListMachineAlerts(ctx, defendertest.SampleMachineID1, false)
	require.NoError(t, err)
	assert.Len(t, all, 2)
	_, err = c.ListMachineAlerts(ctx, strings.Repeat("9", 40), true)
	assert.True(t, defender.IsNotFound(err), "%v", err)

	first, err := c.IsolateMachine(ctx, defendertest.SampleMachineID1, "one", "")
	require.NoError(t, err)
	srv.Advance(time.Minute)
	_, err = c.RunAntivirusScan(ctx, defendertest.SampleMachineID2, "scan", defender.ScanQuick)
	require.NoError(t, err)
	second, err := c.RestrictCodeExecution(ctx, defendertest.SampleMachineID1, "two")
	require.NoError(t, err)
	latest, err := c.LatestMachineActions(ctx, defendertest.SampleMachineID1, 0)
	require.NoError(t, err)
	require.Len(t, latest, 2, "only this machine's")
	assert.Equal(t, []string{second.ID, first.ID}, []string{latest[0].ID, latest[1].ID}, "newest first")
	latest, err = c.LatestMachineActions(ctx, defendertest.SampleMachineID1, 1)
	require.NoError(t, err)
	require.Len(t, latest, 1)
	assert.Equal(t, second.ID, latest[0].ID)
}
