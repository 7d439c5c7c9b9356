package stix

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// writeFeed writes an array feed of n Sekoia-shaped indicators and returns its path and size.
func writeFeed(b *testing.B, n int) (string, int64) {
	b.Helper()
	path := filepath.Join(b.TempDir(), "feed.json")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	fmt.Fprint(w, "[")
	for i := range n {
		if i > 0 {
			fmt.Fprint(w, ",\n")
		}
		fmt.Fprintf(w, `{"type":"indicator","spec_version":"2.1","id":"indicator--%08x-0000-4000-8000-%012x",`+
			`"created":"2024-01-01T00:00:00.000Z","modified":"2024-01-02T00:00:00.000Z","name":"ioc %d",`+
			`"pattern":"[ipv4-addr:value = '10.%d.%d.%d' OR file:hashes.'SHA-256' = '%064x']","pattern_type":"stix",`+
			`"valid_from":"2024-01-01T00:00:00Z","valid_until":"2030-01-01T00:00:00Z","revoked":false,"confidence":80,`+
			`"indicator_types":["malicious-activity"],"x_ic_observable_types":["ipv4-addr","file"],`+
			`"kill_chain_phases":[{"kill_chain_name":"mitre-attack","phase_name":"command-and-control"}],`+
			`"object_marking_refs":["marking-definition--f88d31f6-486f-44da-b317-01333bde0b82"]}`,
			i, i, i, i>>16&255, i>>8&255, i&255, i)
	}
	fmt.Fprint(w, "]")
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	return path, fi.Size()
}

// BenchmarkReadFeed reads a 100,000-indicator feed. Besides objects/s it reports the largest live
// heap seen while reading (sampled every 10,000 objects) next to the feed's size: streaming keeps
// the former flat whatever the latter.
func BenchmarkReadFeed(b *testing.B) {
	const n = 100_000
	path, size := writeFeed(b, n)
	ctx := context.Background()
	var peak uint64
	var ms runtime.MemStats
	runtime.GC()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		count := 0
		err := ReadFeed(ctx, path, maxObjectBytes, func(o *Object, oe *ObjectError) error {
			if oe != nil {
				return oe
			}
			count++
			if count%10_000 == 0 {
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapAlloc)
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		if count != n {
			b.Fatalf("read %d objects, want %d", count, n)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "objects/s")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
	b.ReportMetric(float64(size)/(1<<20), "feed-MB")
}

func BenchmarkParsePattern(b *testing.B) {
	patterns := []string{
		"[ipv4-addr:value = '77.91.78.118']",
		"[file:hashes.'SHA-256' = '0451b9c358b1404717f5060aea5711327cf169cd4c5648f5ac23f1a1fb740716' OR file:hashes.MD5 = 'ab03a48a29967e738583140e6eb84f0b' OR file:hashes.'SHA-1' = 'f4db6264e2f9aa0aa1f889dd8cfaa886857c3bd0']",
		"([file:name NOT LIKE '%.tmp'] AND [process:name = 'O\\'Neil.exe']) WITHIN 60 SECONDS",
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := ParsePattern(patterns[i%len(patterns)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
