// Package jsonbench compares JSON decoders on the generated IOC feed (internal/feedgen), to
// justify the STIX reader's choice with numbers. It is a module of its own so that the libraries
// it measures never become dependencies of defenderbot:
//
//	cd internal/jsonbench && go test -run '^$' -bench . -benchtime 3x
//
// (DEFENDERBOT_BENCH_OBJECTS=N for another size than 200,000 objects). Every decoder runs on one
// core and reads the same file into the same struct, the properties the converter needs; each
// reports objects/s and the peak heap in use. sonic, segmentio/encoding and fastjson have no
// reader for a stream of array elements: they (and, for comparison, encoding/json and
// goccy/go-json too, "-lines") get each object from a line splitter that only works on
// feedgen's one-object-per-line output.
package jsonbench

import (
	"bufio"
	"bytes"
	"context"
	stdjson "encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/bytedance/sonic"
	"github.com/defenderbot/defenderbot/internal/feedgen"
	"github.com/defenderbot/defenderbot/stix"
	goccy "github.com/goccy/go-json"
	segjson "github.com/segmentio/encoding/json"
	"github.com/valyala/fastjson"
)

// object holds what the converter reads of an indicator, as the baseline decodes it.
type object struct {
	Type               string     `json:"type"`
	ID                 string     `json:"id"`
	SpecVersion        string     `json:"spec_version"`
	Name               string     `json:"name"`
	Description        string     `json:"description"`
	Pattern            string     `json:"pattern"`
	PatternType        string     `json:"pattern_type"`
	PatternVersion     string     `json:"pattern_version"`
	Created            time.Time  `json:"created"`
	Modified           time.Time  `json:"modified"`
	ValidFrom          time.Time  `json:"valid_from"`
	ValidUntil         *time.Time `json:"valid_until"`
	Revoked            bool       `json:"revoked"`
	Labels             []string   `json:"labels"`
	IndicatorTypes     []string   `json:"indicator_types"`
	Confidence         *int       `json:"confidence"`
	XICObservableTypes []string   `json:"x_ic_observable_types"`
}

// decodeStream is the baseline: one encoding/json Decoder over the array.
func decodeStream(r io.Reader) (int, error) {
	dec := stdjson.NewDecoder(r)
	if _, err := dec.Token(); err != nil {
		return 0, err
	}
	n := 0
	for dec.More() {
		var o object
		if err := dec.Decode(&o); err != nil {
			return n, fmt.Errorf("object %d: %w", n, err)
		}
		n++
	}
	return n, nil
}

// goccyStream is goccy/go-json's own stream Decoder, used as encoding/json's is.
func goccyStream(r io.Reader) (int, error) {
	dec := goccy.NewDecoder(r)
	if _, err := dec.Token(); err != nil {
		return 0, err
	}
	n := 0
	for dec.More() {
		var o object
		if err := dec.Decode(&o); err != nil {
			return n, fmt.Errorf("object %d: %w", n, err)
		}
		n++
	}
	return n, nil
}

// eachLine hands on the objects of a feedgen feed, which writes one per line: a splitter that
// costs next to nothing, so that the libraries without a stream reader (sonic, segmentio,
// fastjson) are measured on their decoding alone.
func eachLine(r io.Reader, fn func([]byte) error) (int, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<22)
	n := 0
	for sc.Scan() {
		line := bytes.TrimSuffix(bytes.TrimPrefix(sc.Bytes(), []byte("[")), []byte(","))
		line = bytes.TrimSuffix(line, []byte("]"))
		if len(line) == 0 {
			continue
		}
		if err := fn(line); err != nil {
			return n, fmt.Errorf("object %d: %w", n, err)
		}
		n++
	}
	return n, sc.Err()
}

func unmarshalEach(unmarshal func([]byte, any) error) func(io.Reader) (int, error) {
	return func(r io.Reader) (int, error) {
		return eachLine(r, func(b []byte) error {
			var o object
			return unmarshal(b, &o)
		})
	}
}

// fastjsonDecode parses each object (one reused parser) and copies its properties into the struct.
func fastjsonDecode(r io.Reader) (int, error) {
	var p fastjson.Parser
	strs := func(v *fastjson.Value, key string) []string {
		var out []string
		for _, e := range v.GetArray(key) {
			out = append(out, string(e.GetStringBytes()))
		}
		return out
	}
	tm := func(v *fastjson.Value, key string) (time.Time, error) {
		return time.Parse(time.RFC3339Nano, string(v.GetStringBytes(key)))
	}
	return eachLine(r, func(b []byte) error {
		e, err := p.ParseBytes(b)
		if err != nil {
			return err
		}
		o := object{Type: string(e.GetStringBytes("type")), ID: string(e.GetStringBytes("id")),
			SpecVersion: string(e.GetStringBytes("spec_version")), Name: string(e.GetStringBytes("name")),
			Description: string(e.GetStringBytes("description")), Pattern: string(e.GetStringBytes("pattern")),
			PatternType: string(e.GetStringBytes("pattern_type")), PatternVersion: string(e.GetStringBytes("pattern_version")),
			Revoked: e.GetBool("revoked"), Labels: strs(e, "labels"), IndicatorTypes: strs(e, "indicator_types"),
			XICObservableTypes: strs(e, "x_ic_observable_types")}
		for _, f := range []struct {
			key string
			t   *time.Time
		}{{"created", &o.Created}, {"modified", &o.Modified}, {"valid_from", &o.ValidFrom}} {
			if e.Exists(f.key) {
				if *f.t, err = tm(e, f.key); err != nil {
					return err
				}
			}
		}
		if e.Exists("valid_until") {
			u, err := tm(e, "valid_until")
			if err != nil {
				return err
			}
			o.ValidUntil = &u
		}
		if e.Exists("confidence") {
			c := e.GetInt("confidence")
			o.Confidence = &c
		}
		_ = o
		return nil
	})
}

// maxObjectBytes is iocs.max_object_bytes' default (config.DefaultMaxObjectBytes; this module does
// not depend on package config).
const maxObjectBytes = 1 << 20

// stixDecode is defenderbot's reader: the hand-written scanner and one-pass decoder into
// stix.Object, on one core (ReadFeedFrom; push-iocs runs it on every core).
func stixDecode(r io.Reader) (int, error) {
	n := 0
	err := stix.ReadFeedFrom(context.Background(), r, "feed", maxObjectBytes, func(_ *stix.Object, oerr *stix.ObjectError) error {
		if oerr != nil {
			return oerr
		}
		n++
		return nil
	})
	return n, err
}

func BenchmarkDecodeFeed(b *testing.B) {
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
	decoders := []struct {
		name   string
		decode func(io.Reader) (int, error)
	}{
		{"stix-scanner", stixDecode},
		{"encoding-json-stream", decodeStream},
		{"goccy-go-json-stream", goccyStream},
		{"encoding-json-lines", unmarshalEach(stdjson.Unmarshal)},
		{"goccy-go-json-lines", unmarshalEach(goccy.Unmarshal)},
		{"segmentio-encoding-lines", unmarshalEach(segjson.Unmarshal)},
		{"sonic-lines", unmarshalEach(sonic.Unmarshal)},
		{"fastjson-lines", fastjsonDecode},
	}
	prev := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(prev)
	for _, d := range decoders {
		b.Run(d.name, func(b *testing.B) {
			stop := peakHeap()
			for b.Loop() {
				f, err := os.Open(path)
				if err != nil {
					b.Fatal(err)
				}
				got, err := d.decode(bufio.NewReaderSize(f, 1<<20))
				_ = f.Close()
				if err != nil || got != n {
					b.Fatalf("decoded %d of %d objects: %v", got, n, err)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "objects/s")
			b.ReportMetric(float64(stop())/(1<<20), "peak-heap-MiB")
		})
	}
}

// peakHeap samples the heap in use every 10 ms until stop is called, which returns the largest
// value seen.
func peakHeap() (stop func() uint64) {
	var (
		wg   sync.WaitGroup
		peak uint64
		done = make(chan struct{})
	)
	wg.Go(func() {
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
			select {
			case <-done:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	})
	return func() uint64 { close(done); wg.Wait(); return peak }
}
