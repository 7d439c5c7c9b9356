package ioc

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/defenderbot/defenderbot/config"
)

// writeBenchFeed streams a JSON array of n generated indicator objects (all
// seven indicator kinds, every value distinct, one object in 50 revoked) to
// path, without holding the feed in memory.
func writeBenchFeed(b *testing.B, path string, n int) {
	b.Helper()
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	fmt.Fprint(w, "[")
	for i := range n {
		if i > 0 {
			fmt.Fprint(w, ",\n")
		}
		var p string
		switch i % 5 {
		case 0:
			p = fmt.Sprintf("[domain-name:value = 'd%d.example']", i)
		case 1:
			p = fmt.Sprintf("[ipv4-addr:value = '%d.%d.%d.%d']", 10+i>>24, i>>16&255, i>>8&255, i&255)
		case 2:
			p = fmt.Sprintf("[url:value = 'https://u%d.example/path?q=%d']", i, i)
		case 3:
			p = fmt.Sprintf("[file:hashes.'SHA-256' = '%064x' OR file:hashes.MD5 = '%032x']", i, i)
		default:
			p = fmt.Sprintf("[x509-certificate:hashes.'SHA-1' = '%040x']", i)
		}
		fmt.Fprintf(w, `{"type":"indicator","spec_version":"2.1","id":"%s","created":"2025-01-01T00:00:00.000Z",`+
			`"modified":"2025-01-0%dT00:00:00.000Z","valid_from":"2025-01-0%dT00:00:00Z","name":"indicator %d",`+
			`"pattern_type":"stix","pattern":%q,"revoked":%t}`,
			genID(i), 1+i%7, 1+i%5, i, p, i%50 == 49)
	}
	fmt.Fprint(w, "]")
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
}

// peakHeap samples HeapInuse every 2ms until stop is called, which returns
// the largest value seen.
func peakHeap() (stop func() uint64) {
	var (
		wg   sync.WaitGroup
		peak uint64
		done = make(chan struct{})
	)
	sample := func() {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapInuse)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				sample()
			}
		}
	}()
	return func() uint64 {
		close(done)
		wg.Wait()
		sample()
		return peak
	}
}

// BenchmarkPlanMemory plans (a dry run: read, list, plan, send nothing)
// generated feeds of 100,000 and 1,000,000 objects under the default tenant
// limit, and reports the peak heap in use during the run. Memory is bounded
// by the tenant limit and the managed records, not by the feed: both sizes
// must report about the same peak.
func BenchmarkPlanMemory(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		b.Run(fmt.Sprintf("objects=%d", n), func(b *testing.B) {
			h := newHarness(b)
			writeBenchFeed(b, h.path, n)
			fi, err := os.Stat(h.path)
			if err != nil {
				b.Fatal(err)
			}
			s := h.syncer(b, func(o *Options) { o.DryRun = true })
			var peak uint64
			b.ResetTimer()
			for b.Loop() {
				runtime.GC()
				stop := peakHeap()
				rep, err := s.Run(context.Background(), "bench")
				p := stop()
				if err != nil {
					b.Fatal(err)
				}
				if rep.Read != n || rep.PlannedImports != config.DefaultTenantLimit || rep.LeftOut == 0 {
					b.Fatalf("unexpected plan: %s", rep.Text())
				}
				peak = max(peak, p)
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "objects/s")
			b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
			b.ReportMetric(float64(fi.Size())/(1<<20), "feed-MiB")
		})
	}
}
