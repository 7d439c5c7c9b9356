package defender_test

import (
	"cmp"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/defenderbot/defenderbot/defender"
	"github.com/defenderbot/defenderbot/defender/defendertest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const machineID = "1e5bc9d7e413ddd7902c2932e418702b84d0cc07"

// sleeps records the client's waits and returns at once.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.d = append(s.d, d)
	return ctx.Err()
}

func (s *sleeps) all() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.d...)
}

// newEmulated starts the emulator with one machine and returns a client that
// authenticates through MSAL against it.
func newEmulated(t *testing.T, cfg defender.Config, opts ...defendertest.Option) (*defendertest.Server, *defender.Client, *sleeps) {
	t.Helper()
	srv := defendertest.NewServer(t, opts...)
	srv.AddMachine(defendertest.Machine{ID: machineID, ComputerDNSName: "finance-laptop-01.contoso.com"})
	cfg.BaseURL = srv.URL
	cfg.AuthorityHost = srv.URL
	cfg.TenantID = defendertest.TenantID
	cfg.ClientID = defendertest.ClientID
	cfg.ClientSecret = defendertest.ClientSecret
	cfg.Scope = defender.Scope
	cfg.Timeout = cmp.Or(cfg.Timeout, 30*time.Second)
	cfg.MaxRetries, cfg.MaxBackoff = 5, time.Minute
	s := &sleeps{}
	c, err := defender.New(cfg, defender.WithHTTPClient(srv.HTTPClient()), defender.WithSleeper(s.sleep))
	require.NoError(t, err)
	return srv, c, s
}

func TestEmulator_machineActionLifecycle(t *testing.T) {
	srv, c, _ := newEmulated(t, defender.Config{})
	ctx := t.Context()
	require.NoError(t, c.CheckToken(ctx))

	ma, err := c.IsolateMachine(ctx, machineID, "INC-1 isolate", "")
	require.NoError(t, err)
	assert.Equal(t, "Isolate", ma.Type)
	assert.Equal(t, defender.StatusPending, ma.Status)
	assert.Equal(t, machineID, ma.MachineID)
	assert.Equal(t, "INC-1 isolate", ma.RequestorComment)
	assert.NotEmpty(t, ma.Raw)

	reqs := srv.Requests()
	last := reqs[len(reqs)-1]
	assert.Equal(t, "POST", last.Method)
	assert.Equal(t, "/api/machines/"+machineID+"/isolate", last.Path)
	assert.JSONEq(t, `{"Comment":"INC-1 isolate","IsolationType":"Full"}`, string(last.Body))

	_, err = c.IsolateMachine(ctx, machineID, "again", defender.IsolationFull)
	require.Error(t, err)
	assert.True(t, defender.IsActiveRequestAlreadyExists(err), "%v", err)

	srv.Advance(10 * time.Minute)
	got, err := c.GetMachineAction(ctx, ma.ID)
	require.NoError(t, err)
	assert.True(t, got.Status.Final(), "status %s", got.Status)

	list, err := c.ListMachineActions(ctx, defender.MachineActionListOptions{MachineID: machineID, Type: "isolate"})
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, ma.ID, list[0].ID)

	scan, err := c.RunAntivirusScan(ctx, machineID, "scan", defender.ScanFull)
	require.NoError(t, err)
	cancelled, err := c.CancelMachineAction(ctx, scan.ID, "not needed")
	require.NoError(t, err)
	assert.Equal(t, defender.StatusCancelled, cancelled.Status)

	_, err = c.UnisolateMachine(ctx, "0000000000000000000000000000000000000000", "x")
	assert.True(t, defender.IsNotFound(err), "%v", err)
}

func TestEmulator_restrictAndUnrestrict(t *testing.T) {
	_, c, _ := newEmulated(t, defender.Config{})
	ma, err := c.RestrictCodeExecution(t.Context(), machineID, "restrict")
	require.NoError(t, err)
	assert.Equal(t, defender.ActionRestrictCodeExecution, ma.Type)
	ma, err = c.UnrestrictCodeExecution(t.Context(), machineID, "unrestrict")
	require.NoError(t, err)
	assert.Equal(t, defender.ActionUnrestrictCodeExecution, ma.Type)
}

func TestEmulator_findMachines(t *testing.T) {
	_, c, _ := newEmulated(t, defender.Config{})
	ms, err := c.FindMachinesByName(t.Context(), "FINANCE-LAPTOP-01.contoso.com")
	require.NoError(t, err)
	require.Len(t, ms, 1)
	assert.Equal(t, machineID, ms[0].ID)

	ms, err = c.FindMachinesByName(t.Context(), "finance-laptop-01")
	require.NoError(t, err)
	require.Len(t, ms, 1, "short name finds the FQDN")

	ms, err = c.FindMachinesByName(t.Context(), "nobody")
	require.NoError(t, err)
	assert.Empty(t, ms)

	m, err := c.GetMachine(t.Context(), machineID)
	require.NoError(t, err)
	assert.Equal(t, "finance-laptop-01.contoso.com", m.ComputerDNSName)
}

func TestEmulator_alerts(t *testing.T) {
	srv, c, _ := newEmulated(t, defender.Config{})
	srv.AddAlert(defendertest.Alert{ID: "da637472900382838869_1364969609", Title: "PS", MachineID: machineID})
	ctx := t.Context()

	a, err := c.UpdateAlert(ctx, "da637472900382838869_1364969609", defender.AlertUpdate{
		Status: ptr("resolved"), Classification: ptr("truepositive"), Determination: ptr("malware"), Comment: ptr("done"),
	})
	require.NoError(t, err)
	assert.Equal(t, "Resolved", a.Status)
	require.NotNil(t, a.Determination)
	assert.Equal(t, "Malware", *a.Determination)

	a, err = c.CommentAlert(ctx, "da637472900382838869_1364969609", "second")
	require.NoError(t, err)
	require.Len(t, a.Comments, 2)
	assert.Equal(t, "second", a.Comments[1].Comment)

	got, err := c.GetAlert(ctx, "da637472900382838869_1364969609")
	require.NoError(t, err)
	assert.Equal(t, "PS", got.Title)

	_, err = c.GetAlert(ctx, "da000_1")
	assert.True(t, defender.IsNotFound(err), "%v", err)
}

func TestEmulator_indicators(t *testing.T) {
	srv, c, _ := newEmulated(t, defender.Config{}, defendertest.WithPageSize(2))
	ctx := t.Context()
	inds := []defender.Indicator{
		{IndicatorValue: "203.0.113.5", IndicatorType: defender.IndicatorIPAddress, Action: "Block", Title: "t", Description: "d", GenerateAlert: true},
		{IndicatorValue: "evil.example", IndicatorType: defender.IndicatorDomainName, Action: "Block", Title: "t", Description: "d"},
		{IndicatorValue: "220e7d15b011d7fac48f2bd61114db1022197f7f", IndicatorType: defender.IndicatorFileSha1, Action: "Audit", Title: "t", Description: "d", GenerateAlert: true},
	}
	res, err := c.ImportIndicators(ctx, inds)
	require.NoError(t, err)
	require.Len(t, res, 3)
	for _, r := range res {
		assert.False(t, r.IsFailed, "%+v", r)
	}

	all, err := c.ListIndicators(ctx, defender.IndicatorListOptions{})
	require.NoError(t, err)
	require.Len(t, all, 3, "pages of 2 are followed")
	assert.GreaterOrEqual(t, srv.Calls("GET", "/api/indicators"), 2)

	one, err := c.ListIndicators(ctx, defender.IndicatorListOptions{IndicatorType: "DomainName", IndicatorValue: "evil.example"})
	require.NoError(t, err)
	require.Len(t, one, 1)

	require.NoError(t, c.DeleteIndicators(ctx, []string{one[0].ID}))
	all, err = c.ListIndicators(ctx, defender.IndicatorListOptions{})
	require.NoError(t, err)
	assert.Len(t, all, 2)
}

func TestEmulator_expiredTokenIsRefreshed(t *testing.T) {
	srv, c, _ := newEmulated(t, defender.Config{})
	_, err := c.GetMachine(t.Context(), machineID)
	require.NoError(t, err)
	require.Equal(t, 1, srv.TokensIssued())

	srv.ExpireTokens()
	_, err = c.GetMachine(t.Context(), machineID)
	require.NoError(t, err)
	assert.Equal(t, 2, srv.TokensIssued())
}

func TestEmulator_throttledCallHonoursRetryAfter(t *testing.T) {
	srv, c, s := newEmulated(t, defender.Config{})
	srv.InjectFault(defendertest.Fault{Method: "POST", Path: defendertest.APIMachineActions, Status: 429, RetryAfter: 7 * time.Second, Count: 2})
	ma, err := c.IsolateMachine(t.Context(), machineID, "throttled", defender.IsolationSelective)
	require.NoError(t, err)
	assert.Equal(t, "throttled", ma.RequestorComment)
	assert.Equal(t, []time.Duration{7 * time.Second, 7 * time.Second}, s.all())
	assert.Equal(t, 3, srv.Calls("POST", "/api/machines/"+machineID+"/isolate"))
}

func TestEmulator_timeoutOnActionIsNotResent(t *testing.T) {
	srv, c, _ := newEmulated(t, defender.Config{Timeout: 200 * time.Millisecond})
	_, err := c.GetMachine(t.Context(), machineID) // warm up the token outside the short timeout
	require.NoError(t, err)
	srv.InjectFault(defendertest.Fault{Method: "POST", Path: "/isolate", Delay: time.Minute})
	_, err = c.IsolateMachine(t.Context(), machineID, "slow", defender.IsolationFull)
	require.ErrorIs(t, err, defender.ErrOutcomeUnknown)
	assert.Equal(t, 1, srv.Calls("POST", "/api/machines/"+machineID+"/isolate"))
	assert.Equal(t, 1, srv.Calls("GET", "/api/machineactions"), "looked up once")
}

func TestEmulator_serverErrorOnActionFindsExisting(t *testing.T) {
	srv, c, _ := newEmulated(t, defender.Config{}, defendertest.WithDuplicateBehavior(defendertest.DuplicateReturnExisting))
	first, err := c.RestrictCodeExecution(t.Context(), machineID, "INC-9")
	require.NoError(t, err)
	srv.InjectFault(defendertest.Fault{Method: "POST", Path: "/restrictCodeExecution", Status: 502})
	got, err := c.RestrictCodeExecution(t.Context(), machineID, "INC-9")
	require.NoError(t, err)
	assert.Equal(t, first.ID, got.ID)
	assert.Equal(t, 2, srv.Calls("POST", "/api/machines/"+machineID+"/restrictCodeExecution"))
}

func TestEmulator_forbidden(t *testing.T) {
	_, c, _ := newEmulated(t, defender.Config{}, defendertest.WithRoles(defendertest.RoleMachineReadAll))
	_, err := c.IsolateMachine(t.Context(), machineID, "c", defender.IsolationFull)
	assert.True(t, defender.IsForbidden(err), "%v", err)
}

func ptr[T any](v T) *T { return &v }
