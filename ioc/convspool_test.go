package ioc

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/defenderbot/defenderbot/defender"
	"github.com/defenderbot/defenderbot/stix"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestConvSpoolRoundTrip: what the planner reads back from the spool is
// what the read converted, field for field (times with their offset too).
func TestConvSpoolRoundTrip(t *testing.T) {
	exp := time.Date(2026, 3, 1, 12, 0, 0, 5, time.FixedZone("", 2*3600))
	utc := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	in := []read{
		{c: Conversion{StixID: "indicator--1", State: StateLive, validFrom: utc, modified: utc.Add(time.Hour), evaluated: true, Compound: true,
			Indicators: []defender.Indicator{
				{IndicatorValue: "a.example", IndicatorType: defender.IndicatorDomainName, Action: "Block", Application: Application,
					Title: "t", Description: "a long description that is not interned, longer than thirty-two bytes", ExpirationTime: &exp,
					Severity: "High", RecommendedActions: "r", RBACGroupNames: []string{"g1", "g2"}, GenerateAlert: true, ExternalID: "indicator--1"},
				{IndicatorValue: "b.example", IndicatorType: defender.IndicatorDomainName, RBACGroupNames: []string{}},
			},
			Skipped: []Skip{skip("indicator--1", ReasonPath, "[file:name = 'x']"), skip("indicator--1", ReasonNegated)},
			keys:    []string{"DomainName|a.example", "DomainName|b.example"}, fps: []string{"f1", "f2"}}},
		{err: &stix.ObjectError{Source: "feed.json", Index: 7, ID: "indicator--2", Err: errors.New("bad timestamp")}},
		{err: &stix.ObjectError{Source: "feed.json", Index: 8}},
		{c: Conversion{StixID: "indicator--3", State: StateRevoked}},
		// Larger than the buffers each and at read through: read whole all the same.
		{c: Conversion{StixID: "indicator--4", State: StateLive, Indicators: []defender.Indicator{
			{IndicatorValue: "c.example", IndicatorType: defender.IndicatorDomainName, Description: strings.Repeat("d", 300<<10)}},
			keys: []string{"DomainName|c.example"}, fps: []string{"f4"}}},
		{c: Conversion{StixID: "indicator--5", State: StateIgnored}},
	}
	sp, err := newConvSpool()
	require.NoError(t, err)
	defer sp.close()
	for i := range in {
		require.NoError(t, sp.add(&in[i]))
	}
	var out, whole []read
	var offs []int64
	require.NoError(t, sp.each(3, func(off int64, r *read) error { out, offs = append(out, *r), append(offs, off); return nil }))
	require.Len(t, out, len(in))
	var seq []read
	require.NoError(t, sp.each(1, func(off int64, r *read) error { seq = append(seq, *r); return nil }))
	assert.Equal(t, out, seq, "the workers decode what one goroutine does, in order")
	stop := errors.New("stop")
	calls := 0
	assert.Same(t, stop, sp.each(2, func(int64, *read) error { calls++; return stop }), "fn's error is returned as is")
	assert.Equal(t, 1, calls)
	for i := range in {
		r, err := sp.at(offs[i])
		require.NoError(t, err)
		whole = append(whole, *r)
	}
	// each skims: what ranks and keys the indicators, not their text.
	skimmed := out[0].c.Indicators[0]
	assert.Empty(t, skimmed.Title)
	assert.Empty(t, skimmed.Description)
	assert.Equal(t, "a.example", skimmed.IndicatorValue)
	assert.Equal(t, "High", skimmed.Severity)
	assert.Equal(t, "indicator--1", skimmed.ExternalID)
	assert.Equal(t, *in[0].c.Indicators[0].ExpirationTime, *skimmed.ExpirationTime)
	out[0].c.Indicators = whole[0].c.Indicators
	assert.Empty(t, out[4].c.Indicators[0].Description)
	out[4].c.Indicators = whole[4].c.Indicators
	assert.Equal(t, whole, out, "at reads what each read, whole")

	assert.Equal(t, in[0].c.Indicators, whole[0].c.Indicators)
	assert.Equal(t, in[0].c.Skipped, whole[0].c.Skipped)
	assert.Equal(t, in[0].c.keys, whole[0].c.keys)
	assert.Equal(t, in[0].c.fps, whole[0].c.fps)
	assert.True(t, in[0].c.modified.Equal(whole[0].c.modified))
	assert.Equal(t, *in[0].c.Indicators[0].ExpirationTime, *whole[0].c.Indicators[0].ExpirationTime)
	for _, i := range []int{1, 2} {
		assert.Equal(t, in[i].err.Error(), whole[i].err.Error())
		assert.Equal(t, in[i].err.ID, whole[i].err.ID)
	}
	assert.Equal(t, in[3].c, whole[3].c)
	b0, _ := in[0].c.Indicators[0].ExpirationTime.MarshalJSON()
	b1, _ := whole[0].c.Indicators[0].ExpirationTime.MarshalJSON()
	assert.Equal(t, string(b0), string(b1))
	assert.Equal(t, in[4].c.Indicators, whole[4].c.Indicators)
	assert.Equal(t, in[5].c, whole[5].c)

	// forward reads the same records in one pass, the same offset twice too.
	fw, err := sp.forward(false)
	require.NoError(t, err)
	for _, i := range []int{0, 0, 2, 4, 5} {
		r, err := fw.at(offs[i])
		require.NoError(t, err)
		assert.Equal(t, whole[i], *r, "record %d", i)
	}
	_, err = fw.at(offs[1])
	assert.Error(t, err, "backwards")
}
