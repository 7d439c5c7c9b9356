package defender

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const actionGUID = "7327b54f-d718-525c-bca0-7dacde913b5a"

func TestGetPackageURI_responses(t *testing.T) {
	path := "/api/machineactions/" + actionGUID + "/GetPackageUri"
	const link = "https://userrequests-us.securitycenter.windows.com:443/safedownload/WDATP_Investigation_Package.zip?token=secret-abc"
	tests := []struct {
		name, body, want, wantErr string
	}{
		{"escaped quotes as in Microsoft's example", `{"@odata.context":"x","value":"\"` + link + `\""}`, link, ""},
		{"plain value", `{"value":"` + link + `"}`, link, ""},
		{"no value", `{"@odata.context":"x"}`, "", "has no value"},
		{"not https", `{"value":"http://example.com/p.zip?token=secret-abc"}`, "", "not an https:// link"},
		{"not a link", `{"value":"\"\""}`, "", "not an https:// link"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			h := setup(t, WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
			h.mux.HandleFunc("GET "+path, reply(200, tc.body))
			got, err := h.client.GetPackageURI(t.Context(), actionGUID)
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				assert.NotContains(t, err.Error(), "secret-abc", "the link is never echoed")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
			assert.NotContains(t, logs.String(), "secret-abc", "the link is never logged")
			assert.NotEmpty(t, logs.String(), "sanity: the client logged the call")
		})
	}
}

func TestGetPackageURI_notReadyAndValidation(t *testing.T) {
	h := setup(t)
	h.mux.HandleFunc("GET /api/machineactions/"+actionGUID+"/GetPackageUri",
		reply(404, `{"error":{"code":"ResourceNotFound","message":"not ready","target":"t"}}`))
	_, err := h.client.GetPackageURI(t.Context(), actionGUID)
	require.Error(t, err)
	assert.True(t, IsNotFound(err), "%v", err)
	assert.Equal(t, 1, h.countOf("GET", "/api/machineactions/"+actionGUID+"/GetPackageUri"), "a 404 is not retried")

	_, err = h.client.GetPackageURI(t.Context(), "../x")
	require.ErrorIs(t, err, ErrInvalidArgument)
}

func TestGetPackageURI_pacedAtTwoPerMinute(t *testing.T) {
	h := setup(t)
	// the documented limit, not the harness's "no pacing"
	c, err := New(complete(Config{BaseURL: h.srv.URL}), WithHTTPClient(h.srv.Client()), WithTokenProvider(staticTokens(testToken)),
		WithSleeper(func(ctx context.Context, d time.Duration) error {
			h.mu.Lock()
			h.sleeps = append(h.sleeps, d)
			h.mu.Unlock()
			return ctx.Err()
		}))
	require.NoError(t, err)
	h.mux.HandleFunc("GET /api/machineactions/"+actionGUID+"/GetPackageUri", reply(200, `{"value":"https://h/p"}`))
	for range 2 {
		_, err := c.GetPackageURI(t.Context(), actionGUID)
		require.NoError(t, err)
	}
	require.Len(t, h.Sleeps(), 1, "the second call within a minute waits")
	assert.Greater(t, h.Sleeps()[0], 20*time.Second)
	// other machine-action APIs are not slowed by it
	h.mux.HandleFunc("GET /api/machineactions/"+actionGUID, reply(200, `{"id":"`+actionGUID+`"}`))
	_, err = c.GetMachineAction(t.Context(), actionGUID)
	require.NoError(t, err)
	assert.Len(t, h.Sleeps(), 1)
}

func TestForensicActions_requests(t *testing.T) {
	const id = "1e5bc9d7e413ddd7902c2932e418702b84d0cc07"
	h := setup(t)
	h.mux.HandleFunc("POST /api/machines/"+id+"/StopAndQuarantineFile",
		reply(201, `{"id":"a1","type":"StopAndQuarantineFile","status":"Pending","relatedFileInfo":{"fileIdentifier":"x","fileIdentifierType":"Sha1"}}`))
	h.mux.HandleFunc("POST /api/machines/"+id+"/collectInvestigationPackage",
		reply(201, `{"id":"a2","type":"CollectInvestigationPackage","status":"Pending"}`))

	ma, err := h.client.StopAndQuarantineFile(t.Context(), id, " 87662BC3D60E4200CEAF7AAE249D1C343F4B83C9 ", "INC-7")
	require.NoError(t, err)
	assert.Equal(t, ActionStopAndQuarantineFile, ma.Type)
	reqs := h.Requests()
	requireJSONBody(t, `{"Comment":"INC-7","Sha1":"87662bc3d60e4200ceaf7aae249d1c343f4b83c9"}`, reqs[len(reqs)-1].Body)

	ma, err = h.client.CollectInvestigationPackage(t.Context(), id, "INC-9")
	require.NoError(t, err)
	assert.Equal(t, ActionCollectInvestigationPackage, ma.Type)
	reqs = h.Requests()
	requireJSONBody(t, `{"Comment":"INC-9"}`, reqs[len(reqs)-1].Body)

	n := len(h.Requests())
	for _, bad := range []func() error{
		func() error { _, err := h.client.StopAndQuarantineFile(t.Context(), id, "abc", "c"); return err },
		func() error { _, err := h.client.StopAndQuarantineFile(t.Context(), id, "", "c"); return err },
		func() error {
			_, err := h.client.StopAndQuarantineFile(t.Context(), id, "87662bc3d60e4200ceaf7aae249d1c343f4b83cg", "c")
			return err
		},
		func() error {
			_, err := h.client.StopAndQuarantineFile(t.Context(), id, "87662bc3d60e4200ceaf7aae249d1c343f4b83c9", " ")
			return err
		},
		func() error { _, err := h.client.CollectInvestigationPackage(t.Context(), "a/b", "c"); return err },
		func() error { _, err := h.client.CollectInvestigationPackage(t.Context(), id, ""); return err },
	} {
		assert.ErrorIs(t, bad(), ErrInvalidArgument)
	}
	assert.Len(t, h.Requests(), n, "invalid input sends nothing")
}

func TestCollectInvestigationPackage_unknownOutcomeIsLookedUp(t *testing.T) {
	const id = "1e5bc9d7e413ddd7902c2932e418702b84d0cc07"
	h := setup(t)
	h.mux.HandleFunc("POST /api/machines/"+id+"/collectInvestigationPackage", reply(502, `{}`))
	h.mux.HandleFunc("GET /api/machineactions", reply(200,
		`{"value":[{"id":"found","type":"CollectInvestigationPackage","status":"Pending","machineId":"`+id+`","requestorComment":"INC-9","creationDateTimeUtc":"`+
			time.Now().UTC().Format(time.RFC3339)+`"}]}`))
	ma, err := h.client.CollectInvestigationPackage(t.Context(), id, "INC-9")
	require.NoError(t, err)
	assert.Equal(t, "found", ma.ID)
	assert.Equal(t, 1, h.countOf("POST", "/api/machines/"+id+"/collectInvestigationPackage"), "never re-sent")
	var filter string
	for _, r := range h.Requests() {
		if r.Method == http.MethodGet {
			filter = r.Query.Get("$filter")
		}
	}
	assert.Contains(t, filter, "type eq 'CollectInvestigationPackage'")
}
