package stix

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/defenderbot/defenderbot/internal/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var fuzzSeeds = []string{
	// stix_patterns.md §13 (valid and invalid) and the Sekoia fixtures.
	"[ipv4-addr:value = '203.0.113.7' OR ipv4-addr:value = '203.0.113.0/24']",
	"[file:hashes.'SHA-256' = '0451b9c358b1404717f5060aea5711327cf169cd4c5648f5ac23f1a1fb740716' OR file:hashes.MD5 = 'ab03a48a29967e738583140e6eb84f0b' OR file:hashes.'SHA-1' = 'f4db6264e2f9aa0aa1f889dd8cfaa886857c3bd0']",
	"[ipv4-addr:value = '77.91.78.118']",
	"[domain-name:value = 'bad.example' OR url:value = 'https://bad.example/a?b=1']",
	"[email-addr:value IN ('a@example.com', 'b@example.com')]",
	"[ipv6-addr:value ISSUBSET '2001:db8::/32'] START t'2024-01-01T00:00:00Z' STOP t'2024-02-01T00:00:00.5Z'",
	"([file:name NOT LIKE '%.tmp'] AND [process:name = 'O\\'Neil.exe']) WITHIN 60 SECONDS",
	"[file:hashes.SHA-256 = 'x']",
	"[url:value = 'a' and url:value = 'b']",
	"[file:name = 'a' AND url:value = 'b']",
	"[x:y = 'a\\n']",
	// Every construct.
	"[a:b == 1 AND a:c <> -2.5 OR (a:d >= .5 AND a:e < +3)] FOLLOWEDBY [NOT EXISTS x:y] REPEATS 2 TIMES WITHIN 1.5 SECONDS",
	"[email-message:to_refs[*].value MATCHES '^a' AND x-foo:bar[0].'baz qux' ISSUPERSET '10.0.0.0/8']",
	"[a:b = h'00ff' OR a:b = b'AAE=' OR a:b = t'2016-12-31T23:59:60.123456789123Z' OR a:b = true]",
	"/* c */ [a:b = 'x'] // tail",
	"((([a:b = 1])))",
	"[a:b IN ()]",
	"[a:b = 007]",
	"[a:b = '\xff']",
}

func FuzzParsePattern(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	// Patterns from the shared fixtures, when the shared folder is present (not a skip: the seeds
	// above already cover them).
	if dir := filepath.Join(testutil.RepoRoot(f), "..", "shared", "fixtures", "sekoia"); dirExists(dir) {
		_ = ReadFeed(context.Background(), dir, maxObjectBytes, func(o *Object, _ *ObjectError) error {
			if o != nil && o.Pattern != "" {
				f.Add(o.Pattern)
			}
			return nil
		})
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePattern(s)
		if err != nil {
			se, ok := err.(*SyntaxError)
			if !ok {
				t.Fatalf("error is %T, not *SyntaxError: %v", err, err)
			}
			if se.Offset < 0 || se.Offset > len(s) {
				t.Fatalf("offset %d outside input of length %d", se.Offset, len(s))
			}
			return
		}
		out := p.String()
		p2, err := ParsePattern(out)
		if err != nil {
			t.Fatalf("canonical form %q of %q does not re-parse: %v", out, s, err)
		}
		if out2 := p2.String(); out2 != out {
			t.Fatalf("canonical form is unstable:\n in:  %q\n out: %q\n out2: %q", s, out, out2)
		}
		_ = p.Comparisons()
		_, _ = p.Disjuncts()
	})
}

func FuzzReadFeedFrom(f *testing.F) {
	f.Add("[" + ind(id1) + "," + ind(id2) + "]")
	f.Add(`{"type":"bundle","objects":[` + ind(id1) + `]}`)
	f.Add(ind(id1))
	f.Add(`[{"id":1}, "x", null, {"valid_until":"2020"}]`)
	f.Fuzz(func(t *testing.T, s string) {
		err := ReadFeedFrom(context.Background(), strings.NewReader(s), "fuzz", maxObjectBytes, func(o *Object, oe *ObjectError) error {
			if (o == nil) == (oe == nil) {
				t.Fatalf("visit got object %v and error %v", o, oe)
			}
			if o != nil {
				_ = o.Validate()
			}
			return nil
		})
		if err != nil {
			t.Fatalf("in-memory read returned %v", err)
		}
	})
}

func dirExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// simpleSeeds are patterns at the edge of what parseSimple takes.
var simpleSeeds = []string{
	"[ipv4-addr:value = '198.51.100.7']",
	"[file:hashes.'SHA-256' = 'ab' OR file:hashes.MD5 = 'cd']",
	"[domain-name:value='a.example']",
	"[ domain-name:value = 'a.example' ]",
	"[a:b = 'x' OR  c:d = 'y' OR e:f.g.'h i' = '']",
	"[a:b = 'x'OR c:d = 'y']",
	"[a:b = 'x' OR c:d = 'y'] ",
	"[a:b == 'x']",
	"[a:b = 'x\\'y']",
	"[a:b = 'é']",
	"[a:b = 'x\ty']",
	"[AND:b = 'x']",
	"[a:OR = 'x']",
	"[a:true = 'x']",
	"[a-b:c-d = 'x']",
	"[a:'c-d' = 'x']",
	"[a:b = 'x'] OR [c:d = 'y']",
	"[a:b = 'x' AND c:d = 'y']",
	"[a:b = 'x' or c:d = 'y']",
	"[_a:_b = 'x']",
	"[9a:b = 'x']",
	"[a:b. c = 'x']",
	"[a:b = 'x']]",
	"[a:b = 'x'",
	"[a:b[0] = 'x']",
	"[a:b = h'00']",
	"[a:b = 'x' OR]",
	"[]",
	"[a:b='']",
	"[t:t = 'x']",
}

// FuzzSimpleMatchesParser: whatever parseSimple takes, the full parser
// takes too and reads as the same tree.
func FuzzSimpleMatchesParser(f *testing.F) {
	for _, s := range append(simpleSeeds, fuzzSeeds...) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fast, ok := parseSimple(s)
		if !ok {
			return
		}
		full, err := parseFull(s)
		if err != nil {
			t.Fatalf("parseSimple took %q, the parser refuses it: %v", s, err)
		}
		if !reflect.DeepEqual(fast, full) {
			t.Fatalf("%q:\n simple: %s\n parser: %s", s, fast, full)
		}
	})
}

// TestSimpleTakesTheCommonShapes: the fast path is taken for the shapes
// feeds are made of (else it would be dead code the fuzz test cannot see).
func TestSimpleTakesTheCommonShapes(t *testing.T) {
	for _, s := range simpleSeeds[:5] {
		_, ok := parseSimple(s)
		assert.True(t, ok, s)
	}
	for _, s := range simpleSeeds[5:] {
		if fast, ok := parseSimple(s); ok {
			full, err := parseFull(s)
			require.NoError(t, err, s)
			assert.Equal(t, full, fast, s)
		}
	}
}
