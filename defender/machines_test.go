package defender

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const machineJSON = `{"id":"1e5bc9d7e413ddd7902c2932e418702b84d0cc07","computerDnsName":"johns-work-computer","firstSeen":"2026-01-20T20:02:18.5451725Z",
"lastSeen":"2026-01-20T20:07:42.6424861Z","osPlatform":"Windows11","version":"22H2","lastIpAddress":"192.168.51.128","lastExternalIpAddress":"209.133.96.106",
"healthStatus":"Active","onboardingStatus":"Onboarded","riskScore":"None","exposureLevel":"High","rbacGroupName":null,"machineTags":["vip"],
"aadDeviceId":null,"isPotentialDuplication":false,"mergedIntoMachineId":null,"osBuild":22621}`

func TestGetMachine(t *testing.T) {
	h := setup(t)
	h.mux.HandleFunc("GET /api/machines/1e5bc9d7e413ddd7902c2932e418702b84d0cc07", reply(200, machineJSON))
	m, err := h.client.GetMachine(t.Context(), "1e5bc9d7e413ddd7902c2932e418702b84d0cc07")
	require.NoError(t, err)
	assert.Equal(t, "johns-work-computer", m.ComputerDNSName)
	assert.Equal(t, "Windows11", m.OSPlatform)
	assert.Equal(t, "Active", m.HealthStatus)
	assert.Equal(t, []string{"vip"}, m.MachineTags)
	assert.Equal(t, 2026, m.LastSeen.Year())
}

func TestFindMachinesByName_exact(t *testing.T) {
	h := setup(t)
	h.mux.HandleFunc("GET /api/machines", func(w http.ResponseWriter, r *http.Request) {
		assert.Equal(t, "computerDnsName eq 'host.contoso.com'", r.URL.Query().Get("$filter"))
		assert.Contains(t, r.URL.RawQuery, "$filter=computerDnsName%20eq%20%27host.contoso.com%27")
		reply(200, `{"value":[`+machineJSON+`]}`)(w, r)
	})
	ms, err := h.client.FindMachinesByName(t.Context(), " Host.Contoso.COM ")
	require.NoError(t, err)
	require.Len(t, ms, 1)
	assert.Equal(t, "johns-work-computer", ms[0].ComputerDNSName)
}

func TestFindMachinesByName_fallsBackToPrefix(t *testing.T) {
	h := setup(t)
	var filters []string
	h.mux.HandleFunc("GET /api/machines", func(w http.ResponseWriter, r *http.Request) {
		f := r.URL.Query().Get("$filter")
		filters = append(filters, f)
		if f == "computerDnsName eq 'host'" {
			// Microsoft documents 404 when no machine matches.
			reply(404, `{"error":{"code":"NotFound","message":"no machines"}}`)(w, r)
			return
		}
		reply(200, `{"value":[{"id":"a","computerDnsName":"host.contoso.com"},{"id":"b","computerDnsName":"host.fabrikam.com"}]}`)(w, r)
	})
	ms, err := h.client.FindMachinesByName(t.Context(), "HOST")
	require.NoError(t, err)
	require.Len(t, ms, 2)
	assert.Equal(t, []string{"computerDnsName eq 'host'", "startswith(computerDnsName,'host.')"}, filters)
}

func TestFindMachinesByName_none(t *testing.T) {
	h := setup(t)
	h.mux.HandleFunc("GET /api/machines", reply(200, `{"value":[]}`))
	ms, err := h.client.FindMachinesByName(t.Context(), "ghost")
	require.NoError(t, err)
	assert.Empty(t, ms)
	assert.Equal(t, 2, h.countOf("GET", "/api/machines"))
}

func TestFindMachinesByName_validation(t *testing.T) {
	for _, name := range []string{"", "  ", "a b", "x' or 1 eq 1", "a/b", "a)", "a\x00"} {
		h := setup(t)
		_, err := h.client.FindMachinesByName(t.Context(), name)
		require.ErrorIs(t, err, ErrInvalidArgument, "%q", name)
		assert.Contains(t, err.Error(), "computer name")
		assert.Empty(t, h.Requests())
	}
}

func TestGetMachine_validation(t *testing.T) {
	h := setup(t)
	_, err := h.client.GetMachine(t.Context(), "../alerts")
	require.ErrorIs(t, err, ErrInvalidArgument)
	assert.Contains(t, err.Error(), "machine id")
	assert.Empty(t, h.Requests())
}
