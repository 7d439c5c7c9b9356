package ioc

import (
	"context"
	"fmt"
	"runtime"
	"testing"
)

// BenchmarkConvertFeed reads and converts a generated 100,000-indicator feed
// (all seven indicator kinds) into a plan, against an empty state.
func BenchmarkConvertFeed(b *testing.B) {
	const n = 100_000
	h := newHarness(b)
	objs := make([]feedObj, n)
	for i := range objs {
		var p string
		switch i % 5 {
		case 0:
			p = fmt.Sprintf("[domain-name:value = 'd%d.example']", i)
		case 1:
			p = fmt.Sprintf("[ipv4-addr:value = '10.%d.%d.%d']", i>>16&255, i>>8&255, i&255)
		case 2:
			p = fmt.Sprintf("[url:value = 'https://u%d.example/path?q=%d']", i, i)
		case 3:
			p = fmt.Sprintf("[file:hashes.'SHA-256' = '%064x' OR file:hashes.MD5 = '%032x']", i, i)
		default:
			p = fmt.Sprintf("[x509-certificate:hashes.'SHA-1' = '%040x']", i)
		}
		objs[i] = feedObj{N: i, Pattern: p, Name: fmt.Sprintf("indicator %d", i)}
	}
	writeFeed(b, h.dir, objs)
	s := h.syncer(b, func(o *Options) { o.TenantLimit = 1 << 30 })
	b.ReportAllocs()
	b.ResetTimer()
	var peak uint64
	for b.Loop() {
		p, err := s.Plan(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		if len(p.Import) != n+n/5 {
			b.Fatalf("got %d indicators", len(p.Import))
		}
		// Live heap once the plan is built: with no tenant limit the plan
		// itself lists 120,000 indicators (GC'd garbage excluded); see
		// BenchmarkPlanMemory for the planner's own footprint.
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapAlloc)
		runtime.KeepAlive(p)
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "objects/s")
	b.ReportMetric(float64(peak)/(1<<20), "live-heap-MiB")
}

// BenchmarkSyncCalls reports the API calls of an initial sync, an unchanged
// re-sync and a 1% change of a 10,000-indicator feed (fake Defender).
func BenchmarkSyncCalls(b *testing.B) {
	const n = 10_000
	for b.Loop() {
		h := newHarness(b)
		writeFeed(b, h.dir, domains(0, n))
		initial := h.run(b, nil)
		same := h.run(b, nil)
		objs := domains(0, n+50)
		for i := 0; i < 50; i++ {
			objs[i].Name = "changed"
		}
		writeFeed(b, h.dir, objs)
		changed := h.run(b, nil)
		b.ReportMetric(float64(initial.APICalls), "calls-initial")
		b.ReportMetric(float64(same.APICalls), "calls-unchanged")
		b.ReportMetric(float64(changed.APICalls), "calls-1pct")
		b.ReportMetric(float64(initial.ImportCalls), "imports-initial")
		b.ReportMetric(float64(same.ImportCalls+same.DeleteCalls), "writes-unchanged")
		b.ReportMetric(float64(changed.ImportCalls+changed.DeleteCalls), "writes-1pct")
	}
}
