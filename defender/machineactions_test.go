package defender

import (
	"context"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMachineActions_requests(t *testing.T) {
	const id = "1e5bc9d7e413ddd7902c2932e418702b84d0cc07"
	tests := []struct {
		name     string
		fixture  string
		call     func(ctx context.Context, c *Client) (*MachineAction, error)
		path     string
		wantBody string
		wantType string
	}{
		{
			name:    "isolate full",
			fixture: "sekoia/mock_machine_action_isolate_response.json",
			call: func(ctx context.Context, c *Client) (*MachineAction, error) {
				return c.IsolateMachine(ctx, id, "ticket 42", IsolationFull)
			},
			path: "/api/machines/" + id + "/isolate", wantBody: `{"Comment":"ticket 42","IsolationType":"Full"}`, wantType: "Isolate",
		},
		{
			name:    "isolate default type is sent as Full",
			fixture: "sekoia/mock_machine_action_isolate_response.json",
			call: func(ctx context.Context, c *Client) (*MachineAction, error) {
				return c.IsolateMachine(ctx, id, "ticket 42", "")
			},
			path: "/api/machines/" + id + "/isolate", wantBody: `{"Comment":"ticket 42","IsolationType":"Full"}`, wantType: "Isolate",
		},
		{
			name:    "isolate selective",
			fixture: "sekoia/mock_machine_action_isolate_response.json",
			call: func(ctx context.Context, c *Client) (*MachineAction, error) {
				return c.IsolateMachine(ctx, id, "c", IsolationSelective)
			},
			path: "/api/machines/" + id + "/isolate", wantBody: `{"Comment":"c","IsolationType":"Selective"}`, wantType: "Isolate",
		},
		{
			name:    "isolate type matched case-insensitively",
			fixture: "sekoia/mock_machine_action_isolate_response.json",
			call: func(ctx context.Context, c *Client) (*MachineAction, error) {
				return c.IsolateMachine(ctx, id, "c", "selective")
			},
			path: "/api/machines/" + id + "/isolate", wantBody: `{"Comment":"c","IsolationType":"Selective"}`, wantType: "Isolate",
		},
		{
			name:    "isolate unmanaged device",
			fixture: "sekoia/mock_machine_action_isolate_response.json",
			call: func(ctx context.Context, c *Client) (*MachineAction, error) {
				return c.IsolateMachine(ctx, id, "c", IsolationUnManagedDevice)
			},
			path: "/api/machines/" + id + "/isolate", wantBody: `{"Comment":"c","IsolationType":"UnManagedDevice"}`, wantType: "Isolate",
		},
		{
			name:    "unisolate",
			fixture: "sekoia/mock_machine_action_isolate_response.json",
			call: func(ctx context.Context, c *Client) (*MachineAction, error) {
				return c.UnisolateMachine(ctx, id, "release <b>&</b>")
			},
			path: "/api/machines/" + id + "/unisolate", wantBody: `{"Comment":"release <b>&</b>"}`, wantType: "Isolate",
		},
		{
			name:    "restrict",
			fixture: "sekoia/mock_machine_action_restrict_code_execution_response.json",
			call: func(ctx context.Context, c *Client) (*MachineAction, error) {
				return c.RestrictCodeExecution(ctx, id, "r")
			},
			path: "/api/machines/" + id + "/restrictCodeExecution", wantBody: `{"Comment":"r"}`, wantType: "RestrictCodeExecution",
		},
		{
			name:    "unrestrict",
			fixture: "sekoia/mock_machine_action_restrict_code_execution_response.json",
			call: func(ctx context.Context, c *Client) (*MachineAction, error) {
				return c.UnrestrictCodeExecution(ctx, id, "u")
			},
			path: "/api/machines/" + id + "/unrestrictCodeExecution", wantBody: `{"Comment":"u"}`, wantType: "RestrictCodeExecution",
		},
		{
			name:    "quick scan",
			fixture: "sekoia/mock_machine_action_scan_response.json",
			call: func(ctx context.Context, c *Client) (*MachineAction, error) {
				return c.RunAntivirusScan(ctx, id, "s", ScanQuick)
			},
			path: "/api/machines/" + id + "/runAntiVirusScan", wantBody: `{"Comment":"s","ScanType":"Quick"}`, wantType: "RunAntiVirusScan",
		},
		{
			name:    "full scan",
			fixture: "sekoia/mock_machine_action_scan_response.json",
			call: func(ctx context.Context, c *Client) (*MachineAction, error) {
				return c.RunAntivirusScan(ctx, id, "s", ScanFull)
			},
			path: "/api/machines/" + id + "/runAntiVirusScan", wantBody: `{"Comment":"s","ScanType":"Full"}`, wantType: "RunAntiVirusScan",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := setup(t)
			body := fixture(t, tt.fixture)
			h.mux.HandleFunc("POST "+tt.path, reply(http.StatusCreated, body))

			ma, err := tt.call(t.Context(), h.client)
			require.NoError(t, err)

			reqs := h.Requests()
			require.Len(t, reqs, 1)
			assert.Equal(t, "POST", reqs[0].Method)
			assert.Equal(t, tt.path, reqs[0].Path)
			assert.Empty(t, reqs[0].Query)
			assert.Equal(t, "Bearer "+testToken, reqs[0].Header.Get("Authorization"))
			assert.Equal(t, "application/json", reqs[0].Header.Get("Content-Type"))
			requireJSONBody(t, tt.wantBody, reqs[0].Body)

			assert.Equal(t, tt.wantType, ma.Type)
			assert.Equal(t, StatusPending, ma.Status)
			assert.Equal(t, "1234", ma.MachineID)
			assert.Equal(t, "windows11", ma.ComputerDNSName)
			assert.Equal(t, "Integration MSGraph Security API", ma.Requestor)
			assert.Equal(t, "New new comment", ma.RequestorComment)
			assert.Equal(t, "PublicApi", ma.RequestSource)
			assert.Nil(t, ma.Scope)
			assert.Nil(t, ma.CancellationDateTimeUTC)
			assert.Equal(t, 2024, ma.CreationDateTimeUTC.Year())
			assert.False(t, ma.LastUpdateDateTimeUTC.IsZero())
			assert.JSONEq(t, body, string(ma.Raw))
		})
	}
}

func TestIsolateMachine_mapping(t *testing.T) {
	h := setup(t)
	body := fixture(t, "sekoia/mock_machine_action_isolate_response.json")
	h.mux.HandleFunc("POST /api/machines/1234/isolate", reply(http.StatusCreated, body))
	ma, err := h.client.IsolateMachine(t.Context(), "1234", "c", IsolationFull)
	require.NoError(t, err)
	assert.Equal(t, "6b001073-5500-4205-8287-6f1184936f67", ma.ID)
	assert.Equal(t, time.Date(2024, 10, 21, 11, 25, 48, 330818700, time.UTC), ma.CreationDateTimeUTC)
	assert.Equal(t, 0, ma.ErrorHResult)
}

func TestMachineActions_validation(t *testing.T) {
	tests := []struct {
		name  string
		call  func(ctx context.Context, c *Client) error
		field string
	}{
		{"empty machine id", func(ctx context.Context, c *Client) error {
			_, err := c.IsolateMachine(ctx, "", "c", IsolationFull)
			return err
		}, "machine id"},
		{"slash in machine id", func(ctx context.Context, c *Client) error {
			_, err := c.UnisolateMachine(ctx, "a/b", "c")
			return err
		}, "machine id"},
		{"dotdot in machine id", func(ctx context.Context, c *Client) error {
			_, err := c.RestrictCodeExecution(ctx, "..", "c")
			return err
		}, "machine id"},
		{"query in machine id", func(ctx context.Context, c *Client) error {
			_, err := c.UnrestrictCodeExecution(ctx, "a?x=1", "c")
			return err
		}, "machine id"},
		{"fragment in machine id", func(ctx context.Context, c *Client) error {
			_, err := c.UnrestrictCodeExecution(ctx, "a#b", "c")
			return err
		}, "machine id"},
		{"percent in machine id", func(ctx context.Context, c *Client) error {
			_, err := c.UnrestrictCodeExecution(ctx, "a%2fb", "c")
			return err
		}, "machine id"},
		{"backslash in machine id", func(ctx context.Context, c *Client) error {
			_, err := c.UnrestrictCodeExecution(ctx, `a\b`, "c")
			return err
		}, "machine id"},
		{"space in machine id", func(ctx context.Context, c *Client) error {
			_, err := c.UnrestrictCodeExecution(ctx, "a b", "c")
			return err
		}, "machine id"},
		{"control char in machine id", func(ctx context.Context, c *Client) error {
			_, err := c.UnrestrictCodeExecution(ctx, "a\x00b", "c")
			return err
		}, "machine id"},
		{"too long machine id", func(ctx context.Context, c *Client) error {
			_, err := c.UnrestrictCodeExecution(ctx, strings.Repeat("a", 300), "c")
			return err
		}, "machine id"},
		{"empty comment", func(ctx context.Context, c *Client) error {
			_, err := c.IsolateMachine(ctx, "m1", "  ", IsolationFull)
			return err
		}, "comment"},
		{"control char in comment", func(ctx context.Context, c *Client) error {
			_, err := c.IsolateMachine(ctx, "m1", "a\x1bb", IsolationFull)
			return err
		}, "comment"},
		{"bad isolation type", func(ctx context.Context, c *Client) error {
			_, err := c.IsolateMachine(ctx, "m1", "c", "partial")
			return err
		}, "isolation type"},
		{"missing scan type", func(ctx context.Context, c *Client) error {
			_, err := c.RunAntivirusScan(ctx, "m1", "c", "")
			return err
		}, "scan type"},
		{"bad scan type", func(ctx context.Context, c *Client) error {
			_, err := c.RunAntivirusScan(ctx, "m1", "c", "Deep")
			return err
		}, "scan type"},
		{"empty action id", func(ctx context.Context, c *Client) error {
			_, err := c.GetMachineAction(ctx, "")
			return err
		}, "action id"},
		{"cancel bad action id", func(ctx context.Context, c *Client) error {
			_, err := c.CancelMachineAction(ctx, "../machines", "c")
			return err
		}, "action id"},
		{"cancel empty comment", func(ctx context.Context, c *Client) error {
			_, err := c.CancelMachineAction(ctx, "a1", "")
			return err
		}, "comment"},
		{"list bad type", func(ctx context.Context, c *Client) error {
			_, err := c.ListMachineActions(ctx, MachineActionListOptions{Type: "Explode"})
			return err
		}, "type"},
		{"list bad status", func(ctx context.Context, c *Client) error {
			_, err := c.ListMachineActions(ctx, MachineActionListOptions{Status: "Done"})
			return err
		}, "status"},
		{"list bad machine id", func(ctx context.Context, c *Client) error {
			_, err := c.ListMachineActions(ctx, MachineActionListOptions{MachineID: "x'y z"})
			return err
		}, "machine id"},
		{"list top too big", func(ctx context.Context, c *Client) error {
			_, err := c.ListMachineActions(ctx, MachineActionListOptions{Top: 10001})
			return err
		}, "Top"},
		{"list negative skip", func(ctx context.Context, c *Client) error {
			_, err := c.ListMachineActions(ctx, MachineActionListOptions{Skip: -1})
			return err
		}, "Skip"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := setup(t)
			err := tt.call(t.Context(), h.client)
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrInvalidArgument)
			assert.Contains(t, err.Error(), tt.field)
			assert.Empty(t, h.Requests(), "no request may be sent on invalid input")
		})
	}
}

func TestMachineActions_enumErrorsListAllowedValues(t *testing.T) {
	h := setup(t)
	_, err := h.client.RunAntivirusScan(t.Context(), "m1", "c", "Deep")
	require.ErrorIs(t, err, ErrInvalidArgument)
	assert.Contains(t, err.Error(), "Quick, Full")
	_, err = h.client.IsolateMachine(t.Context(), "m1", "c", "Partial")
	require.ErrorIs(t, err, ErrInvalidArgument)
	assert.Contains(t, err.Error(), "Full, Selective, UnManagedDevice")
}

func TestMachineAction_idIsPathEscaped(t *testing.T) {
	h := setup(t)
	// A computer name with characters that are legal in an id but special
	// in a path segment.
	h.mux.HandleFunc("GET /api/machineactions/{id}", func(w http.ResponseWriter, r *http.Request) {
		assert.Equal(t, "a:b@c;d", r.PathValue("id"))
		reply(200, `{"id":"a:b@c;d","status":"Succeeded"}`)(w, r)
	})
	ma, err := h.client.GetMachineAction(t.Context(), "a:b@c;d")
	require.NoError(t, err)
	assert.Equal(t, StatusSucceeded, ma.Status)
}

func TestGetMachineAction(t *testing.T) {
	h := setup(t)
	body := fixture(t, "sekoia/mock_machine_action_scan_response.json")
	h.mux.HandleFunc("GET /api/machineactions/0696c900-b8ce-42ce-96f6-1b68268b7bea", reply(200, body))
	ma, err := h.client.GetMachineAction(t.Context(), "0696c900-b8ce-42ce-96f6-1b68268b7bea")
	require.NoError(t, err)
	assert.Equal(t, "RunAntiVirusScan", ma.Type)
	assert.JSONEq(t, body, string(ma.Raw))
	reqs := h.Requests()
	require.Len(t, reqs, 1)
	assert.Empty(t, reqs[0].Body, "GET sends no body")
	assert.Empty(t, reqs[0].Header.Get("Content-Type"))
}

func TestCancelMachineAction(t *testing.T) {
	h := setup(t)
	h.mux.HandleFunc("POST /api/machineactions/a1/cancel", reply(200,
		`{"id":"a1","type":"Isolate","status":"Cancelled","cancellationComment":"oops","cancellationRequestor":"bot"}`))
	ma, err := h.client.CancelMachineAction(t.Context(), "a1", "oops")
	require.NoError(t, err)
	assert.Equal(t, StatusCancelled, ma.Status)
	require.NotNil(t, ma.CancellationComment)
	assert.Equal(t, "oops", *ma.CancellationComment)
	reqs := h.Requests()
	require.Len(t, reqs, 1)
	requireJSONBody(t, `{"Comment":"oops"}`, reqs[0].Body)
}

func TestListMachineActions_filter(t *testing.T) {
	h := setup(t)
	h.mux.HandleFunc("GET /api/machineactions", reply(200,
		`{"value":[{"id":"a1","type":"Isolate","status":"Pending","machineId":"m1"},{"id":"a2","type":"Isolate","status":"Pending","machineId":"m1"}]}`))
	since := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	got, err := h.client.ListMachineActions(t.Context(), MachineActionListOptions{
		MachineID: "m1", Type: "isolate", Status: "pending", Top: 5, Skip: 2, CreatedSince: since,
	})
	require.NoError(t, err)
	require.Len(t, got, 2)
	assert.Equal(t, "a2", got[1].ID)
	assert.JSONEq(t, `{"id":"a2","type":"Isolate","status":"Pending","machineId":"m1"}`, string(got[1].Raw))

	reqs := h.Requests()
	require.Len(t, reqs, 1)
	assert.Equal(t, "machineId eq 'm1' and type eq 'Isolate' and status eq 'Pending' and creationDateTimeUtc ge 2026-01-02T03:04:05Z",
		reqs[0].Query.Get("$filter"))
	assert.Equal(t, "5", reqs[0].Query.Get("$top"))
	assert.Equal(t, "2", reqs[0].Query.Get("$skip"))
}

func TestListMachineActions_noFilterFetchesAllPages(t *testing.T) {
	h := setup(t)
	h.mux.HandleFunc("GET /api/machineactions", func(w http.ResponseWriter, r *http.Request) {
		assert.Empty(t, r.URL.Query().Get("$filter"))
		if r.URL.Query().Get("page") == "2" {
			reply(200, `{"value":[{"id":"a3"}]}`)(w, r)
			return
		}
		reply(200, `{"value":[{"id":"a1"},{"id":"a2"}],"@odata.nextLink":"`+"https://"+r.Host+`/api/machineactions?page=2"}`)(w, r)
	})
	got, err := h.client.ListMachineActions(t.Context(), MachineActionListOptions{})
	require.NoError(t, err)
	require.Len(t, got, 3)
	assert.Equal(t, "a3", got[2].ID)
}

// hangUp is a handler that reads the request and drops the connection
// without answering: the client cannot know whether Defender acted.
func hangUp(t *testing.T) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		hj, ok := w.(http.Hijacker)
		require.True(t, ok)
		conn, _, err := hj.Hijack()
		require.NoError(t, err)
		_ = conn.Close()
	}
}

func TestMachineAction_connectionDropLooksUpInsteadOfResending(t *testing.T) {
	h := setup(t)
	h.mux.HandleFunc("POST /api/machines/m1/isolate", hangUp(t))
	h.mux.HandleFunc("GET /api/machineactions", func(w http.ResponseWriter, r *http.Request) {
		f := r.URL.Query().Get("$filter")
		assert.Contains(t, f, "machineId eq 'm1' and type eq 'Isolate' and creationDateTimeUtc ge ")
		// One action with another comment, one with ours.
		reply(200, `{"value":[
			{"id":"other","type":"Isolate","machineId":"m1","requestorComment":"someone else","status":"Pending","creationDateTimeUtc":"2030-01-01T00:00:00Z"},
			{"id":"ours","type":"Isolate","machineId":"m1","requestorComment":"ticket 7","status":"Pending","creationDateTimeUtc":"2026-01-01T00:00:00Z"}]}`)(w, r)
	})
	ma, err := h.client.IsolateMachine(t.Context(), "m1", "ticket 7", IsolationFull)
	require.NoError(t, err)
	assert.Equal(t, "ours", ma.ID)
	assert.Equal(t, 1, h.countOf("POST", "/api/machines/m1/isolate"), "the action must not be sent twice")
	assert.Equal(t, 1, h.countOf("GET", "/api/machineactions"))
}

func TestMachineAction_connectionDropNotFoundIsOutcomeUnknown(t *testing.T) {
	h := setup(t)
	h.mux.HandleFunc("POST /api/machines/m1/runAntiVirusScan", hangUp(t))
	h.mux.HandleFunc("GET /api/machineactions", reply(200, `{"value":[]}`))
	_, err := h.client.RunAntivirusScan(t.Context(), "m1", "scan it", ScanQuick)
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrOutcomeUnknown)
	assert.Contains(t, err.Error(), "GET /api/machineactions?$filter=machineId eq 'm1' and type eq 'RunAntiVirusScan'")
	assert.Equal(t, 1, h.countOf("POST", "/api/machines/m1/runAntiVirusScan"))
}

func TestMachineAction_serverErrorLooksUp(t *testing.T) {
	for _, status := range []int{500, 502, 504} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			h := setup(t)
			h.mux.HandleFunc("POST /api/machines/m1/restrictCodeExecution", reply(status, `{"error":{"code":"InternalServerError","message":""}}`))
			h.mux.HandleFunc("GET /api/machineactions", reply(200,
				`{"value":[{"id":"r1","type":"RestrictCodeExecution","machineId":"m1","requestorComment":"c","status":"Pending"}]}`))
			ma, err := h.client.RestrictCodeExecution(t.Context(), "m1", "c")
			require.NoError(t, err)
			assert.Equal(t, "r1", ma.ID)
			assert.Equal(t, 1, h.countOf("POST", "/api/machines/m1/restrictCodeExecution"))
		})
	}
}

func TestMachineAction_timeoutLooksUp(t *testing.T) {
	release := make(chan struct{})
	h := setupConfig(t, func(c *Config) { c.Timeout = 50 * time.Millisecond })
	h.mux.HandleFunc("POST /api/machines/m1/unisolate", func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) })
	h.mux.HandleFunc("GET /api/machineactions", reply(200,
		`{"value":[{"id":"u1","type":"Unisolate","machineId":"m1","requestorComment":"c","status":"Pending"}]}`))
	ma, err := h.client.UnisolateMachine(t.Context(), "m1", "c")
	require.NoError(t, err)
	assert.Equal(t, "u1", ma.ID)
	assert.Equal(t, 1, h.countOf("POST", "/api/machines/m1/unisolate"))
}

func TestMachineAction_lookupFailureIsOutcomeUnknown(t *testing.T) {
	h := setup(t)
	h.mux.HandleFunc("POST /api/machines/m1/isolate", hangUp(t))
	h.mux.HandleFunc("GET /api/machineactions", reply(403, `{"error":{"code":"Forbidden","message":"no Machine.Read.All"}}`))
	_, err := h.client.IsolateMachine(t.Context(), "m1", "c", "")
	require.ErrorIs(t, err, ErrOutcomeUnknown)
	assert.Contains(t, err.Error(), "look-up failed")
	assert.Equal(t, 1, h.countOf("POST", "/api/machines/m1/isolate"))
}

// dialFailOnce is a transport whose first request fails before anything is
// sent (as a refused connection does); later ones go through.
type dialFailOnce struct {
	next   http.RoundTripper
	failed bool
}

func (d *dialFailOnce) RoundTrip(r *http.Request) (*http.Response, error) {
	if !d.failed {
		d.failed = true
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	}
	return d.next.RoundTrip(r)
}

func TestMachineAction_neverSentIsResent(t *testing.T) {
	h := setup(t)
	hc := *h.srv.Client()
	hc.Transport = &dialFailOnce{next: h.srv.Client().Transport}
	c, err := New(complete(Config{BaseURL: h.srv.URL, Limits: noLimits()}),
		WithHTTPClient(&hc), WithTokenProvider(staticTokens(testToken)), WithObserver(h.obs),
		WithSleeper(func(context.Context, time.Duration) error { return nil }))
	require.NoError(t, err)
	h.mux.HandleFunc("POST /api/machines/m1/isolate", reply(201, `{"id":"i1","type":"Isolate"}`))
	ma, err := c.IsolateMachine(t.Context(), "m1", "c", IsolationFull)
	require.NoError(t, err)
	assert.Equal(t, "i1", ma.ID)
	assert.Equal(t, 1, h.countOf("POST", "/api/machines/m1/isolate"))
	assert.Equal(t, 0, h.countOf("GET", "/api/machineactions"), "nothing to look up when the request never left")
	assert.Equal(t, []string{"machineactions conn"}, h.obs.Retries())
}

func TestCancelMachineAction_unknownOutcome(t *testing.T) {
	t.Run("found cancelled", func(t *testing.T) {
		h := setup(t)
		h.mux.HandleFunc("POST /api/machineactions/a1/cancel", hangUp(t))
		h.mux.HandleFunc("GET /api/machineactions/a1", reply(200, `{"id":"a1","status":"Cancelled","cancellationComment":"stop"}`))
		ma, err := h.client.CancelMachineAction(t.Context(), "a1", "stop")
		require.NoError(t, err)
		assert.Equal(t, StatusCancelled, ma.Status)
		assert.Equal(t, 1, h.countOf("POST", "/api/machineactions/a1/cancel"))
	})
	t.Run("not cancelled", func(t *testing.T) {
		h := setup(t)
		h.mux.HandleFunc("POST /api/machineactions/a1/cancel", hangUp(t))
		h.mux.HandleFunc("GET /api/machineactions/a1", reply(200, `{"id":"a1","status":"Pending"}`))
		_, err := h.client.CancelMachineAction(t.Context(), "a1", "stop")
		require.ErrorIs(t, err, ErrOutcomeUnknown)
		assert.Contains(t, err.Error(), "Pending")
		assert.Equal(t, 1, h.countOf("POST", "/api/machineactions/a1/cancel"))
	})
}

func TestMachineAction_canceledContextDuringUnknownOutcome(t *testing.T) {
	h := setup(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	ctx, cancel := context.WithCancel(t.Context())
	h.mux.HandleFunc("POST /api/machines/m1/isolate", func(http.ResponseWriter, *http.Request) {
		cancel()
		<-release
	})
	_, err := h.client.IsolateMachine(ctx, "m1", "c", IsolationFull)
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrOutcomeUnknown)
	assert.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, 0, h.countOf("GET", "/api/machineactions"), "no look-up with a dead context")
	assert.Contains(t, err.Error(), "check with GET /api/machineactions")
}

func TestMachineAction_undecodableSuccessLooksUp(t *testing.T) {
	h := setup(t)
	h.mux.HandleFunc("POST /api/machines/m1/isolate", reply(201, `<html>created</html>`))
	h.mux.HandleFunc("GET /api/machineactions", reply(200,
		`{"value":[{"id":"i9","type":"Isolate","machineId":"m1","requestorComment":"c","status":"Pending"}]}`))
	ma, err := h.client.IsolateMachine(t.Context(), "m1", "c", IsolationFull)
	require.NoError(t, err)
	assert.Equal(t, "i9", ma.ID)
	assert.Equal(t, 1, h.countOf("POST", "/api/machines/m1/isolate"))
}
