package ioc

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/defenderbot/defenderbot/config"
	"github.com/defenderbot/defenderbot/defender"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestWritePlanJSONMatchesPlan: the streamed JSON plan is, byte for byte, the
// plan Plan returns encoded as push-iocs --dry-run --output json printed it,
// with the spools in memory and spilled to disk in many runs.
func TestWritePlanJSONMatchesPlan(t *testing.T) {
	old := spoolMem
	defer func() { spoolMem = old }()
	for seed := range uint64(20) {
		r := rand.New(rand.NewPCG(seed, 7))
		h := newHarness(t)
		h.api.addForeign(defender.IndicatorDomainName, "v1.example")
		randomFeed(t, r, h.path, true)
		h.run(t, nil)
		h.api.addForeign(defender.IndicatorIPAddress, "10.0.0.12")
		randomFeed(t, r, h.path, seed%3 != 0)
		for _, mode := range []string{ModeIncremental, ModeSnapshot} {
			for _, limit := range []int{config.DefaultTenantLimit, 3} {
				for _, mem := range []int{1 << 15, 3, 1} {
					name := fmt.Sprintf("seed=%d/%s/limit=%d/mem=%d", seed, mode, limit, mem)
					spoolMem = mem
					s := h.syncer(t, func(o *Options) { o.Mode, o.TenantLimit, o.MaxDeleteFraction = mode, limit, 0.1 })
					p, err := s.Plan(context.Background())
					require.NoError(t, err, name)
					var want bytes.Buffer
					enc := json.NewEncoder(&want)
					enc.SetIndent("", "  ")
					require.NoError(t, enc.Encode(p), name)
					var got bytes.Buffer
					require.NoError(t, s.WritePlanJSON(context.Background(), &got), name)
					require.Equal(t, want.String(), got.String(), name)
				}
			}
		}
	}
}

func TestSpoolSortsAcrossRuns(t *testing.T) {
	old := spoolMem
	defer func() { spoolMem = old }()
	spoolMem = 7
	sp := newSpool(byKeyedSkip, encKeyedSkip, decKeyedSkip)
	defer sp.close()
	r := rand.New(rand.NewPCG(1, 2))
	var want []string
	for i := range 1000 {
		k := fmt.Sprintf("k%06d", r.IntN(1_000_000)*1000+i)
		want = append(want, k)
		sp.add(keyedSkip{key: k, skip: Skip{StixID: "id" + k, Reason: "r"}})
	}
	var got []string
	require.NoError(t, sp.each(func(k keyedSkip) error {
		require.Equal(t, "id"+k.key, k.skip.StixID)
		got = append(got, k.key)
		return nil
	}))
	require.Len(t, got, 1000)
	require.IsIncreasing(t, got)
	require.Equal(t, 1000, sp.len())
	require.ElementsMatch(t, want, got)
}

// TestPlanWriterElements: the reflection-free writers give what the
// generic one does, escapes included.
func TestPlanWriterElements(t *testing.T) {
	odd := "a<b>&c \"q\" \\ \u2028 \xff tab\t"
	var want, got bytes.Buffer
	ww, gw := &jsonPlanWriter{w: bufio.NewWriter(&want)}, &jsonPlanWriter{w: bufio.NewWriter(&got)}
	for _, w := range []*jsonPlanWriter{ww, gw} {
		w.field("x", true)
	}
	for _, sk := range []Skip{skip(odd, ReasonInvalidValue, odd), skip("", ReasonNotIndicator)} {
		ww.item(sk)
		gw.skip(sk)
	}
	ww.item(odd)
	gw.str(odd)
	for _, w := range []*jsonPlanWriter{ww, gw} {
		w.end()
		require.NoError(t, w.err)
		require.NoError(t, w.w.Flush())
	}
	assert.Equal(t, want.String(), got.String())
}
