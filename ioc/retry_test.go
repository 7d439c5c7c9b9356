package ioc

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/defenderbot/defenderbot/defender"
	"github.com/defenderbot/defenderbot/defender/defendertest"
	"github.com/defenderbot/defenderbot/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// importedValues returns the indicator values of the emulator's import calls, per call.
func importedValues(t *testing.T, srv *defendertest.Server) [][]string {
	t.Helper()
	var out [][]string
	for _, r := range srv.Requests() {
		if r.Method != http.MethodPost || r.Path != "/api/indicators/import" {
			continue
		}
		var body struct {
			Indicators []defender.Indicator `json:"Indicators"`
		}
		require.NoError(t, json.Unmarshal(r.Body, &body))
		vals := make([]string, len(body.Indicators))
		for i, ind := range body.Indicators {
			vals[i] = ind.IndicatorValue
		}
		out = append(out, vals)
	}
	return out
}

// TestEmulatorIncrementalRetriesFailedWithoutFeed: an indicator Defender
// refused is retried on the next run from its stored payload, although the
// incremental feed no longer brings it, and only it.
func TestEmulatorIncrementalRetriesFailedWithoutFeed(t *testing.T) {
	ctx := context.Background()
	h := newEmuHarness(t, defendertest.WithIndicatorLimit(3))
	analyst := h.srv.AddIndicator(defendertest.Indicator{IndicatorValue: "analyst.example", IndicatorType: "DomainName",
		Action: "Allowed", Title: "analyst", Description: "by hand"})
	writeFeed(t, h.dir, domains(0, 3))
	// The planner believes in a larger tenant: Defender refuses the third item.
	big := func(o *Options) { o.TenantLimit = 100 }
	rep, err := h.run(t, big)
	require.NoError(t, err)
	assert.Equal(t, 2, rep.Imported)
	assert.Equal(t, map[string]int{"Tenant indicators limit of 3 has been reached": 1}, rep.Failed)
	key := Key(defender.IndicatorDomainName, "d2.example")
	rec := recordOf(t, h.st, key)
	require.Equal(t, StatusFailed, rec.Status)
	var payload defender.Indicator
	require.NoError(t, json.Unmarshal([]byte(rec.Payload), &payload), "the attempted payload is stored")
	assert.Equal(t, "d2.example", payload.IndicatorValue)
	assert.Equal(t, genID(2), payload.ExternalID)

	// Room again; the next incremental feed is empty.
	require.NoError(t, h.api.DeleteIndicators(ctx, []string{analyst}))
	writeFeed(t, h.dir, nil)
	h.srv.ResetRequests()
	rep, err = h.run(t, big)
	require.NoError(t, err)
	assert.Equal(t, [][]string{{"d2.example"}}, importedValues(t, h.srv), "exactly the failed item is re-sent")
	assert.Equal(t, 1, rep.Imported)
	assert.Equal(t, 1, rep.Retried)
	assert.Empty(t, rep.Failed)
	assert.Contains(t, rep.Text(), "1 earlier failures retried")
	rec = recordOf(t, h.st, key)
	assert.Equal(t, StatusImported, rec.Status)
	assert.NotEmpty(t, rec.DefenderID)
	assert.Empty(t, rec.Payload, "no payload kept once it succeeded")
	assert.Equal(t, Fingerprint(&payload), rec.Fingerprint)

	// Done: the next run sends nothing.
	h.srv.ResetRequests()
	rep, err = h.run(t, big)
	require.NoError(t, err)
	imports, deletes := h.writes()
	assert.Zero(t, imports+deletes)
	assert.Zero(t, rep.Retried)
	assert.Len(t, h.srv.Indicators(), 3)
}

func recordOf(t *testing.T, st StateStore, key string) store.IndicatorRecord {
	t.Helper()
	recs, err := st.ListIndicatorRecords(context.Background())
	require.NoError(t, err)
	for _, r := range recs {
		if r.Key == key {
			return r
		}
	}
	require.Failf(t, "no record", "key %s", key)
	return store.IndicatorRecord{}
}

// failFirstImportOf makes the fake refuse value in its first import call.
func failFirstImportOf(h *harness, value string) {
	reason := "InvalidDomainName"
	h.api.importHook = func(n int, inds []defender.Indicator) ([]defender.ImportResult, error) {
		if n > 1 {
			return nil, nil
		}
		res := make([]defender.ImportResult, len(inds))
		for i, in := range inds {
			res[i] = defender.ImportResult{Indicator: in.IndicatorValue}
			if in.IndicatorValue == value {
				res[i].IsFailed, res[i].FailureReason = true, &reason
			}
		}
		return res, nil
	}
}

// TestFailedNotRetriedWhenGoneSince: a failed indicator is not retried when
// the feed revoked its object since, when its payload expired, when someone
// else added the value since, in snapshot mode (the feed is the truth), or
// when no usable payload is stored.
func TestFailedNotRetriedWhenGoneSince(t *testing.T) {
	key := Key(defender.IndicatorDomainName, "d1.example")
	tests := []struct {
		name    string
		first   func(objs []feedObj)
		between func(h *harness)
		mode    string
		skipped SkipReason
		kept    bool // the failed record stays
	}{
		{name: "revoked since", between: func(h *harness) {
			o := domainObj(1)
			o.Revoked, o.Modified = true, time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC)
			writeFeed(t, h.dir, []feedObj{o})
		}},
		{name: "expired since", first: func(objs []feedObj) {
			until := testNow.Add(time.Hour)
			objs[1].ValidUntil = &until
		}, between: func(h *harness) { h.clock = h.clock.Add(2 * time.Hour) }},
		{name: "someone else added it since", between: func(h *harness) {
			h.api.addForeign(defender.IndicatorDomainName, "d1.example")
		}, skipped: ReasonForeign},
		// The snapshot still holds d0: an empty snapshot deletes nothing.
		{name: "snapshot mode", mode: ModeSnapshot, between: func(h *harness) {
			writeFeed(t, h.dir, domains(0, 1))
		}},
		{name: "no payload stored", between: func(h *harness) {
			r, _ := h.st.record(key)
			r.Payload = ""
			h.st.setRecord(r)
		}, skipped: ReasonNoRetryPayload, kept: true},
		{name: "payload of another value", between: func(h *harness) {
			r, _ := h.st.record(key)
			r.Payload = `{"indicatorValue":"other.example","indicatorType":"DomainName","application":"defenderbot"}`
			h.st.setRecord(r)
		}, skipped: ReasonBadRetryPayload, kept: true},
		{name: "corrupt payload", between: func(h *harness) {
			r, _ := h.st.record(key)
			r.Payload = `{"indicatorValue":`
			h.st.setRecord(r)
		}, skipped: ReasonBadRetryPayload, kept: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			objs := domains(0, 2)
			if tt.first != nil {
				tt.first(objs)
			}
			writeFeed(t, h.dir, objs)
			failFirstImportOf(h, "d1.example")
			rep := h.run(t, nil)
			require.Equal(t, 1, rep.Imported)
			writeFeed(t, h.dir, nil)
			if tt.between != nil {
				tt.between(h)
			}
			h.api.resetCalls()
			rep = h.run(t, func(o *Options) {
				if tt.mode != "" {
					o.Mode, o.Force = tt.mode, true
				}
			})
			imports, _ := h.api.calls()
			assert.Zero(t, imports, "nothing re-sent")
			assert.Zero(t, rep.Retried)
			if tt.skipped != "" {
				assert.Equal(t, 1, rep.Skipped[tt.skipped])
			}
			_, ok := h.st.record(key)
			assert.Equal(t, tt.kept, ok, "record kept")
			if f, ok := h.api.has(defender.IndicatorDomainName, "d1.example"); ok {
				assert.Equal(t, "analyst", f.Title, "someone else's value is left untouched")
			}
		})
	}
}

// TestFailedUpdateRetriedKeepsDefenderID: a failed update of an indicator
// already imported is retried from its payload and keeps its Defender id.
func TestFailedUpdateRetriedKeepsDefenderID(t *testing.T) {
	h := newHarness(t)
	writeFeed(t, h.dir, domains(0, 2))
	h.run(t, nil)
	key := Key(defender.IndicatorDomainName, "d1.example")
	before, _ := h.st.record(key)

	objs := domains(0, 2)
	objs[1].Name = "v2"
	writeFeed(t, h.dir, objs)
	failFirstImportOf(h, "d1.example")
	h.api.imports = nil // the hook counts calls from here
	rep := h.run(t, nil)
	require.Equal(t, 1, rep.failedTotal())
	rec, _ := h.st.record(key)
	assert.Equal(t, before.DefenderID, rec.DefenderID, "the Defender id is kept")
	assert.Equal(t, before.Fingerprint, rec.Fingerprint, "fingerprint of the last success")

	writeFeed(t, h.dir, nil)
	rep = h.run(t, nil)
	assert.Equal(t, 1, rep.Updated)
	assert.Equal(t, 1, rep.Retried)
	got, _ := h.api.has(defender.IndicatorDomainName, "d1.example")
	assert.Equal(t, "v2", got.Title)
	rec, _ = h.st.record(key)
	assert.Equal(t, StatusImported, rec.Status)
	assert.Equal(t, before.DefenderID, rec.DefenderID)
}
