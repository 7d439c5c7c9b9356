package ioc

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/defenderbot/defenderbot/internal/feedgen"
)

// BenchmarkEngine runs the IOC engine on the generated 200,000-object feed
// scripts/bench-iocs uses (internal/feedgen; set DEFENDERBOT_BENCH_OBJECTS
// for another size), against the fake Defender: the streamed dry-run plan
// (push-iocs --dry-run --output json) and the sync of an unchanged feed, next
// to the baseline, a plain encoding/json stream decode of the same file into
// a struct. Each reports objects/s and the peak heap in use.
//
//	go test -run '^$' -bench Engine -benchtime 3x ./ioc/
func BenchmarkEngine(b *testing.B) {
	n := 200_000
	if v := os.Getenv("DEFENDERBOT_BENCH_OBJECTS"); v != "" {
		if _, err := fmt.Sscan(v, &n); err != nil {
			b.Fatal(err)
		}
	}
	path := filepath.Join(b.TempDir(), "feed.json")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := feedgen.Write(f, n); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	report := func(b *testing.B, peak uint64) {
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "objects/s")
		b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
	}
	b.Run("baseline-decode", func(b *testing.B) {
		stop := peakHeap()
		for b.Loop() {
			f, err := os.Open(path)
			if err != nil {
				b.Fatal(err)
			}
			if got, err := feedgen.Decode(f); err != nil || got != n {
				b.Fatalf("decoded %d objects: %v", got, err)
			}
			_ = f.Close()
		}
		report(b, stop())
	})
	// The feed's dates are 2025: a clock in 2026 keeps its live objects live.
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	b.Run("dry-run", func(b *testing.B) {
		h := newHarness(b)
		h.path, h.clock = path, now
		s := h.syncer(b, nil)
		stop := peakHeap()
		for b.Loop() {
			if err := s.WritePlanJSON(context.Background(), io.Discard); err != nil {
				b.Fatal(err)
			}
		}
		report(b, stop())
	})
	b.Run("sync-unchanged", func(b *testing.B) {
		h := newHarness(b)
		h.path, h.clock = path, now
		s := h.syncer(b, nil)
		if _, err := s.Run(context.Background(), "bench"); err != nil {
			b.Fatal(err)
		}
		stop := peakHeap()
		for b.Loop() {
			rep, err := s.Run(context.Background(), "bench")
			if err != nil {
				b.Fatal(err)
			}
			if rep.APICalls != 1 {
				b.Fatalf("%d API calls, want 1 (the listing)", rep.APICalls)
			}
		}
		report(b, stop())
	})
}
