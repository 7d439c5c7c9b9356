package stix

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// event is what a reader passed to visit, in a comparable form: broken sources compare by position
// only (the byte offsets in their messages are encoding/json's own arithmetic).
type event struct {
	Obj    *Object
	Index  int
	ID     string
	Msg    string
	Broken bool
}

func collect(t testing.TB, read func(visit func(*Object, *ObjectError) error) error) ([]event, error) {
	var evs []event
	err := read(func(o *Object, oe *ObjectError) error {
		if o != nil {
			evs = append(evs, event{Obj: o})
			return nil
		}
		ev := event{Index: oe.Index, ID: oe.ID, Broken: errors.Is(oe, ErrBrokenSource)}
		if !ev.Broken {
			ev.Msg = oe.Error()
		}
		evs = append(evs, ev)
		return nil
	})
	return evs, err
}

// readers are the ways the scanner can be driven: whole input, one byte per read, tiny blocks, and
// in parallel.
func readers(s string) map[string]func(visit func(*Object, *ObjectError) error) error {
	ctx := context.Background()
	return map[string]func(visit func(*Object, *ObjectError) error) error{
		"sequential": func(v func(*Object, *ObjectError) error) error {
			return ReadFeedFrom(ctx, strings.NewReader(s), "mem", maxObjectBytes, v)
		},
		"one byte at a time": func(v func(*Object, *ObjectError) error) error {
			return ReadFeedFrom(ctx, iotest.OneByteReader(strings.NewReader(s)), "mem", maxObjectBytes, v)
		},
		"parallel": func(v func(*Object, *ObjectError) error) error {
			return ProcessFrom(ctx, iotest.HalfReader(strings.NewReader(s)), "mem", ReadOptions{MaxObjectBytes: maxObjectBytes, Workers: 3}, pair, visitPair(v))
		},
	}
}

// withBlockSize runs f with tiny blocks, so that objects straddle blocks and blocks are handed over.
func withBlockSize(n int, f func()) {
	old := blockSize
	blockSize = n
	defer func() { blockSize = old }()
	f()
}

func checkAgainstReference(t *testing.T, s string) {
	t.Helper()
	if strings.Contains(s, `"objects"`) || strings.Contains(s, `objects`) && strings.Contains(s, `\u`) {
		// A second "objects" key is broken now, and was not before.
		if strings.Count(s, `objects`) > 1 || strings.Contains(s, `\u`) {
			return
		}
	}
	want, werr := collect(t, func(v func(*Object, *ObjectError) error) error {
		return refReadFeedFrom(context.Background(), strings.NewReader(s), "mem", v)
	})
	for name, read := range readers(s) {
		for _, bs := range []int{8, 64, 256 << 10} {
			withBlockSize(bs, func() {
				got, err := collect(t, read)
				require.Equal(t, werr, err, "%s, blocks of %d", name, bs)
				require.Equal(t, want, got, "%s, blocks of %d: %q", name, bs, s)
			})
		}
	}
}

var scanSeeds = []string{
	"[" + ind(id1) + "," + ind(id2) + "]",
	`{"type":"bundle","id":"bundle--x","objects":[` + ind(id1) + "," + ind(id2) + "]}",
	`{"objects":[` + ind(id1) + `],"id":"bundle--x","type":"bundle"}`,
	`{"type":"report","objects":[` + ind(id1) + `]}`,
	ind(id1) + "\n" + ind(id2) + "\n",
	`[{"id":1}, "x", null, {"valid_until":"2020"}, true, [1], 1.5, {"labels":[1,null,"a"]}, {"confidence":1e2}]`,
	`[{"ID":"x","Labels":[null,"a"],"ſpec_version":"2","\u0069d":"y","id":"z"}]`,
	`[{"a":"\ud800x\u00e9\"\\\/\b\f\n\r\t","description":"\ud83d\ude00 \ud800\ud800 é \xff"}]`,
	`[{"revoked":true,"revoked":null,"x_ic_observable_types":[],"labels":null,"confidence":-0,"valid_until":null}]`,
	`[{"confidence":"8"},{"revoked":{}},{"created":12},{"labels":"x"},{"confidence":99999999999999999999}]`,
	`[{"a":tru}]`, `[{"a" 1}]`, `{"type":"x" "b":1}`, `[1,]`, "[{\"x\":\"a\x01\"}]", `{"a":1}{`,
	`[ 1 `, `[{"a":]}]`, `[ ]  ,`, `[{"a":1,}]`, `[{"a":[1,]}]`, `[{"a":1.}]`, `[{"a":-}]`, `[{"a":"\x"}]`,
	`[{"a":"\u12g4"}]`, `[{"a":1]`, `[{"a":1} {"b":2}]`, `[{"a":{"b":1]}]`, `{"a" 1}`, `{1}`, `[{1}]`,
	`{"objects":5}`, `[{"a":1}]]`, `{"a":tru}`, "[\n{\"a\":\n\n]}]", `[{"a":01}]`, `[{"a":[{"b":[[]]}]}, {}]`,
	`"hello"`, `12`, `null`, `true`, `[`, `{`, `{"type"`, `  `, ``, `]`, `[{"id":"` + id3 + `","created":"2024-01-01T00:00:00"}]`,
	`[{"id":"` + id3 + `","revoked":"yes"}, {]`, `{"type":"indicator","id":"` + id1 + `","type":"x","ID":"y"}`,
	`[{"a":"\\"}, {"b":"\\\""}, {"c":"x\\\\"}]`, `[` + ind(id1) + `,` + ind(id2)[:40],
}

func TestScannerMatchesReference(t *testing.T) {
	for _, s := range scanSeeds {
		checkAgainstReference(t, s)
	}
}

// FuzzReaderMatchesReference holds the hand-written scanner and decoder to what encoding/json made of
// the same input.
func FuzzReaderMatchesReference(f *testing.F) {
	for _, s := range scanSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkAgainstReference(t, s)
	})
}

func TestReadFeedFrom_DuplicateObjectsKey(t *testing.T) {
	// Read as the first array only, silently, the rest of the feed was lost (and deleted in snapshot mode).
	in := `{"type":"bundle","objects":[` + ind(id1) + `],"objects":[` + ind(id2) + `]}`
	evs, _, errs := events(t, readString(in))
	assert.Equal(t, []string{"obj " + id1, `err 1 source unreadable from here on: the bundle has a second "objects" property: which one is the feed is ambiguous`}, evs)
	require.Len(t, errs, 1)
	assert.ErrorIs(t, errs[0], ErrBrokenSource)
}

// hugeReader streams an array whose second object has a description of n bytes, never held whole.
func hugeObjectFeed(n int64, idFirst bool) io.Reader {
	head := `{"type":"indicator","id":"` + id2 + `","description":"`
	tail := `","pattern":"[ipv4-addr:value = '1.2.3.4']"}`
	if !idFirst {
		head = `{"type":"indicator","description":"`
		tail = `","id":"` + id2 + `"}`
	}
	return io.MultiReader(strings.NewReader("["+ind(id1)+","+head),
		io.LimitReader(repeatReader('x'), n),
		strings.NewReader(tail+","+ind(id3)+"]"))
}

type repeatReader byte

func (r repeatReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}

func TestProcessFrom_ObjectTooLarge(t *testing.T) {
	for _, workers := range []int{1, 2} {
		for _, idFirst := range []bool{true, false} {
			t.Run(fmt.Sprintf("workers %d, id first %v", workers, idFirst), func(t *testing.T) {
				var evs []string
				var tooLarge *ObjectError
				err := ProcessFrom(context.Background(), hugeObjectFeed(64<<20, idFirst), "mem", ReadOptions{MaxObjectBytes: 1 << 20, Workers: workers}, pair,
					func(p objOrErr) error {
						if p.e != nil {
							tooLarge = p.e
							evs = append(evs, fmt.Sprintf("err %d %s", p.e.Index, p.e.ID))
							return nil
						}
						evs = append(evs, "obj "+p.o.ID)
						return nil
					})
				require.NoError(t, err)
				wantID := id2
				if !idFirst {
					wantID = "" // after the first MiB: not known
				}
				assert.Equal(t, []string{"obj " + id1, "err 1 " + wantID, "obj " + id3}, evs)
				require.NotNil(t, tooLarge)
				assert.ErrorIs(t, tooLarge, ErrObjectTooLarge)
				assert.NotErrorIs(t, tooLarge, ErrBrokenSource)
				assert.Contains(t, tooLarge.Error(), "more than 1048576 (iocs.max_object_bytes)")
			})
		}
	}
}

func TestProcessFrom_ObjectTooLargeSmallCap(t *testing.T) {
	small := `{"type":"indicator","id":"` + id2 + `"}`
	in := "[" + ind(id1) + "," + small + "]"
	var got []string
	err := ProcessFrom(context.Background(), strings.NewReader(in), "mem", ReadOptions{MaxObjectBytes: 120, Workers: 1}, pair,
		func(p objOrErr) error {
			if p.e != nil {
				got = append(got, "err "+p.e.ID+" "+p.e.Err.Error())
			} else {
				got = append(got, "obj "+p.o.ID)
			}
			return nil
		})
	require.NoError(t, err)
	assert.Equal(t, []string{fmt.Sprintf("err %s object too large: %d bytes, more than %d (iocs.max_object_bytes), skipped", id1, len(ind(id1)), 120), "obj " + id2}, got)
}

func TestProcessFrom_OversizeTruncated(t *testing.T) {
	in := io.MultiReader(strings.NewReader(`[{"description":"`), io.LimitReader(repeatReader('y'), 3<<20))
	evs, err := collect(t, func(v func(*Object, *ObjectError) error) error {
		return ProcessFrom(context.Background(), in, "mem", ReadOptions{MaxObjectBytes: maxObjectBytes, Workers: 1}, pair, visitPair(v))
	})
	require.NoError(t, err)
	require.Len(t, evs, 1)
	assert.True(t, evs[0].Broken, "an oversized object that never ends is a truncated source")
}

func TestProcessFrom_ParallelStopsOnVisitError(t *testing.T) {
	var b bytes.Buffer
	b.WriteString("[")
	for i := range 5000 {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(ind(id1))
	}
	b.WriteString("]")
	stop := errors.New("stop")
	withBlockSize(1024, func() {
		n := 0
		err := ProcessFrom(context.Background(), bytes.NewReader(b.Bytes()), "mem", ReadOptions{MaxObjectBytes: maxObjectBytes, Workers: 4}, pair, func(objOrErr) error {
			n++
			if n == 100 {
				return stop
			}
			return nil
		})
		require.ErrorIs(t, err, stop)
		assert.Equal(t, 100, n)
	})
}

// The cap on one object is the caller's (config owns its default): reading without one is refused.
func TestReadingNeedsAnObjectCap(t *testing.T) {
	noop := func(*Object, *ObjectError) error { return nil }
	err := ProcessFrom(context.Background(), strings.NewReader("["+ind(id1)+"]"), "mem", ReadOptions{Workers: 1}, pair, visitPair(noop))
	require.EqualError(t, err, "stix: ReadOptions.MaxObjectBytes must be positive")
	err = ReadFeed(context.Background(), t.TempDir(), 0, noop)
	require.EqualError(t, err, "stix: ReadOptions.MaxObjectBytes must be positive")
}

// TestPlainRunStopsAtEveryByteAStringScanMustSee: the eight-bytes-at-a-time
// skip stops exactly where a byte-at-a-time scan would, for each kind of
// byte at each offset of the word and past it.
func TestPlainRunStopsAtEveryByteAStringScanMustSee(t *testing.T) {
	naive := func(b []byte, p int) int {
		for ; p < len(b); p++ {
			if c := b[p]; c == '"' || c == '\\' || c < ' ' || c >= 0x80 {
				return p
			}
		}
		return p
	}
	for _, special := range []byte{'"', '\\', 0, '\n', 0x1f, 0x80, 0xc3, 0xff} {
		for n := 0; n <= 20; n++ {
			for at := 0; at <= n; at++ {
				b := make([]byte, n)
				for i := range b {
					b[i] = " !#[]az~\x7f{"[i%10] // plain bytes around the special ones
				}
				if at < n {
					b[at] = special
				}
				for from := 0; from <= n; from++ {
					require.Equal(t, naive(b, from), plainRun(b, from), "special %#x at %d of %d, from %d", special, at, n, from)
				}
			}
		}
	}
}
