package stix

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func intp(i int) *int { return &i }

func mustParse(t *testing.T, s string) *Pattern {
	t.Helper()
	p, err := ParsePattern(s)
	require.NoError(t, err, "pattern %q", s)
	return p
}

// TestParsePattern_Canonical checks that every construct parses and renders canonically, and that the
// rendering re-parses to the same rendering.
func TestParsePattern_Canonical(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"ipv4", "[ipv4-addr:value = '198.51.100.1']", ""},
		{"or inside", "[ipv4-addr:value = '203.0.113.7' OR ipv4-addr:value = '203.0.113.0/24']", ""},
		{"quoted hash key", "[file:hashes.'SHA-256' = 'aa' OR file:hashes.MD5 = 'bb']", ""},
		{"double equals", "[a:b == 'x']", "[a:b = 'x']"},
		{"diamond", "[a:b <> 'x']", "[a:b != 'x']"},
		{"ordering ops", "[a:b > 1 AND a:b < 2 AND a:b >= 3 AND a:b <= 4]", ""},
		{"IN", "[email-addr:value IN ('a@example.com', 'b@example.com')]", ""},
		{"NOT IN", "[a:b NOT IN (1, 2,3)]", "[a:b NOT IN (1, 2, 3)]"},
		{"LIKE", "[file:name NOT LIKE '%.tmp']", ""},
		{"MATCHES", "[file:name MATCHES '^a.*\\\\.exe$']", ""},
		{"ISSUBSET", "[ipv6-addr:value ISSUBSET '2001:db8::/32']", ""},
		{"ISSUPERSET", "[ipv4-addr:value ISSUPERSET '10.0.0.1']", ""},
		{"EXISTS", "[EXISTS windows-registry-key:values]", ""},
		{"NOT EXISTS", "[NOT EXISTS a:b]", ""},
		{"any index", "[email-message:to_refs[*].value = 'x@example.com']", ""},
		{"index", "[x-foo:bar[0].baz = 1]", ""},
		{"nested index", "[x:a[1][2].'b c' = 1]", ""},
		{"quoted first component", "[file:'name' = 'a']", "[file:name = 'a']"},
		{"quoted keyword key", "[x:'AND' = 1]", ""},
		{"quoted digit key", "[x:a.'5b' = 1]", ""},
		{"extension key", "[file:extensions.'raster-image-ext'.image_height > 100]", ""},
		{"bool", "[a:b = true OR a:c != false]", ""},
		{"float", "[a:b = 1.5 OR a:b = -0.25 OR a:b = .5 OR a:b = +2.0]", "[a:b = 1.5 OR a:b = -0.25 OR a:b = 0.5 OR a:b = 2.0]"},
		{"int", "[a:b = -12 OR a:b = +7 OR a:b = 0]", "[a:b = -12 OR a:b = 7 OR a:b = 0]"},
		{"hex", "[a:b = h'00FFab' OR a:b = h'']", "[a:b = h'00ffab' OR a:b = h'']"},
		{"binary", "[a:b = b'AAE=' OR a:b = b'aGVsbG8gd29ybGQ=']", ""},
		{"timestamp", "[a:b > t'2016-01-01T00:00:00.123Z']", ""},
		{"string escapes", `[process:name = 'O\'Neil \\ x']`, ""},
		{"unicode string", "[a:b = 'héllo\nwörld ☃']", ""},
		{"comparison parens", "[(a:b = 1 OR a:b = 2) AND a:c = 3]", ""},
		{"redundant parens", "[((a:b = 1))]", "[a:b = 1]"},
		{"and binds tighter inside", "[a:b = 1 OR a:c = 2 AND a:d = 3]", ""},
		{"right-nested or keeps parens", "[a:b = 1 OR (a:c = 2 OR a:d = 3)]", ""},
		{"obs AND", "[a:b = 1] AND [c:d = 2]", ""},
		{"obs OR", "[a:b = 1] OR [c:d = 2] OR [e:f = 3]", ""},
		{"FOLLOWEDBY", "[a:b = 1] FOLLOWEDBY [c:d = 2]", ""},
		{"obs parens", "([a:b = 1] OR [c:d = 2]) AND [e:f = 3]", ""},
		{"obs redundant parens", "(([a:b = 1]))", "[a:b = 1]"},
		{"WITHIN int", "([a:b = 1] AND [c:d = 2]) WITHIN 60 SECONDS", ""},
		{"WITHIN float", "[a:b = 1] WITHIN 1.5 SECONDS", ""},
		{"REPEATS", "[a:b = 1] REPEATS 5 TIMES", ""},
		{"START STOP", "[a:b = 1] START t'2024-01-01T00:00:00Z' STOP t'2024-02-01T00:00:00.5Z'", ""},
		{"chained qualifiers", "[a:b = 1] REPEATS 5 TIMES WITHIN 1800 SECONDS", ""},
		{"parenthesised qualifier chain", "([a:b = 1] REPEATS 5 TIMES) WITHIN 1800 SECONDS", "[a:b = 1] REPEATS 5 TIMES WITHIN 1800 SECONDS"},
		{"whitespace and comments", "\t[ a:b\n=\r\n'x' /* c */ ]\u00a0// tail", "[a:b = 'x']"},
		{"no spaces", "[a:b='x'OR a:c=1]", "[a:b = 'x' OR a:c = 1]"},
		{"leap second", "[a:b = t'2016-12-31T23:59:60Z']", "[a:b = t'2017-01-01T00:00:00Z']"},
		{"ANDROID is an identifier", "[ANDROID:x = 1]", ""},
		{"fixture hashes", "[file:hashes.'SHA-256' = '0451b9c358b1404717f5060aea5711327cf169cd4c5648f5ac23f1a1fb740716' OR file:hashes.MD5 = 'ab03a48a29967e738583140e6eb84f0b' OR file:hashes.'SHA-1' = 'f4db6264e2f9aa0aa1f889dd8cfaa886857c3bd0']", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := tt.want
			if want == "" {
				want = tt.in
			}
			p := mustParse(t, tt.in)
			assert.Equal(t, want, p.String())
			again := mustParse(t, p.String())
			assert.Equal(t, p, again, "re-parsed tree differs")
		})
	}
}

func TestParsePattern_Precedence(t *testing.T) {
	a := &Observation{Expr: &Comparison{Path: ObjectPath{ObjectType: "a", Components: []PathComponent{{Key: "b"}}}, Op: "=", Value: Literal{Kind: KindInt, Int: 1}}}
	b := &Observation{Expr: &Comparison{Path: ObjectPath{ObjectType: "c", Components: []PathComponent{{Key: "d"}}}, Op: "=", Value: Literal{Kind: KindInt, Int: 2}}}
	c := &Observation{Expr: &Comparison{Path: ObjectPath{ObjectType: "e", Components: []PathComponent{{Key: "f"}}}, Op: "=", Value: Literal{Kind: KindInt, Int: 3}}}
	const A, B, C = "[a:b = 1]", "[c:d = 2]", "[e:f = 3]"
	tests := []struct {
		name string
		in   string
		want ObservationExpr
	}{
		{"AND over OR", A + " OR " + B + " AND " + C, &ObservationOp{Op: "OR", Left: a, Right: &ObservationOp{Op: "AND", Left: b, Right: c}}},
		{"OR over FOLLOWEDBY", A + " FOLLOWEDBY " + B + " OR " + C, &ObservationOp{Op: "FOLLOWEDBY", Left: a, Right: &ObservationOp{Op: "OR", Left: b, Right: c}}},
		{"left assoc", A + " AND " + B + " AND " + C, &ObservationOp{Op: "AND", Left: &ObservationOp{Op: "AND", Left: a, Right: b}, Right: c}},
		{"parens", "(" + A + " OR " + B + ") AND " + C, &ObservationOp{Op: "AND", Left: &ObservationOp{Op: "OR", Left: a, Right: b}, Right: c}},
		{"qualifier is not greedy", A + " FOLLOWEDBY " + B + " REPEATS 5 TIMES", &ObservationOp{Op: "FOLLOWEDBY", Left: a, Right: &Qualified{Expr: b, Qualifier: Repeats{Times: 5}}}},
		{"qualifier on parens", "(" + A + " FOLLOWEDBY " + B + ") WITHIN 300 SECONDS", &Qualified{Expr: &ObservationOp{Op: "FOLLOWEDBY", Left: a, Right: b}, Qualifier: Within{Seconds: 300}}},
		{"qualifier chain", A + " REPEATS 2 TIMES WITHIN 9 SECONDS", &Qualified{Expr: &Qualified{Expr: a, Qualifier: Repeats{Times: 2}}, Qualifier: Within{Seconds: 9}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, mustParse(t, tt.in).Expr)
		})
	}

	t.Run("AND over OR inside brackets", func(t *testing.T) {
		p := mustParse(t, "[a:b = 1 OR a:c = 2 AND a:d = 3]")
		or, ok := p.Expr.(*Observation).Expr.(*ComparisonOp)
		require.True(t, ok)
		assert.Equal(t, "OR", or.Op)
		and, ok := or.Right.(*ComparisonOp)
		require.True(t, ok)
		assert.Equal(t, "AND", and.Op)
	})
}

func TestParsePattern_Values(t *testing.T) {
	c := func(t *testing.T, s string) *Comparison {
		t.Helper()
		cs := mustParse(t, s).Comparisons()
		require.Len(t, cs, 1)
		return cs[0]
	}
	t.Run("path", func(t *testing.T) {
		got := c(t, "[email-message:to_refs[*].value = 'x']").Path
		assert.Equal(t, ObjectPath{ObjectType: "email-message", Components: []PathComponent{{Key: "to_refs"}, {AnyIndex: true}, {Key: "value"}}}, got)
		got = c(t, "[x-foo:bar[0].baz = 'x']").Path
		assert.Equal(t, ObjectPath{ObjectType: "x-foo", Components: []PathComponent{{Key: "bar"}, {Index: intp(0)}, {Key: "baz"}}}, got)
		got = c(t, "[file:hashes.'SHA-256' = 'x']").Path
		assert.Equal(t, ObjectPath{ObjectType: "file", Components: []PathComponent{{Key: "hashes"}, {Key: "SHA-256"}}}, got)
		keys, ok := got.Keys()
		assert.True(t, ok)
		assert.Equal(t, "hashes.SHA-256", keys)
		assert.Equal(t, "file:hashes.'SHA-256'", got.String())
	})
	t.Run("string escapes decoded", func(t *testing.T) {
		assert.Equal(t, `O'Neil \ x`, c(t, `[a:b = 'O\'Neil \\ x']`).Value.Str)
		assert.Equal(t, `C:\x`, c(t, `[file:name = 'C:\\x']`).Value.Str)
		assert.Equal(t, "", c(t, `[a:b = '']`).Value.Str)
	})
	t.Run("literals", func(t *testing.T) {
		assert.Equal(t, Literal{Kind: KindInt, Int: -42}, c(t, "[a:b = -42]").Value)
		assert.Equal(t, Literal{Kind: KindInt, Int: 9007199254740991}, c(t, "[a:b = 9007199254740991]").Value)
		assert.Equal(t, Literal{Kind: KindFloat, Float: 0.5}, c(t, "[a:b = .5]").Value)
		assert.Equal(t, Literal{Kind: KindFloat, Float: 7.25}, c(t, "[a:b = 007.25]").Value)
		assert.Equal(t, Literal{Kind: KindBool, Bool: true}, c(t, "[a:b = true]").Value)
		assert.Equal(t, Literal{Kind: KindHex, Bytes: []byte{0, 0xff}}, c(t, "[a:b = h'00ff']").Value)
		assert.Equal(t, Literal{Kind: KindHex, Bytes: []byte{}}, c(t, "[a:b = h'']").Value)
		assert.Equal(t, Literal{Kind: KindBinary, Bytes: []byte("hello")}, c(t, "[a:b = b'aGVsbG8=']").Value)
		assert.Equal(t, Literal{Kind: KindTimestamp, Time: time.Date(2024, 2, 29, 1, 2, 3, 456000000, time.UTC)}, c(t, "[a:b = t'2024-02-29T01:02:03.456Z']").Value)
		assert.Equal(t, Literal{Kind: KindSet, Set: []Literal{{Kind: KindString, Str: "a"}, {Kind: KindString, Str: "b"}}}, c(t, "[a:b IN ('a', 'b')]").Value)
	})
	t.Run("negation and exists", func(t *testing.T) {
		got := c(t, "[a:b NOT = 'x']")
		assert.True(t, got.Negated)
		assert.Equal(t, "=", got.Op)
		got = c(t, "[NOT EXISTS a:b]")
		assert.Equal(t, &Comparison{Path: ObjectPath{ObjectType: "a", Components: []PathComponent{{Key: "b"}}}, Op: "EXISTS", Negated: true}, got)
	})
	t.Run("qualifiers", func(t *testing.T) {
		q := mustParse(t, "[a:b = 1] START t'2024-01-01T00:00:00Z' STOP t'2024-01-02T00:00:00Z'").Expr.(*Qualified).Qualifier
		assert.Equal(t, StartStop{Start: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), Stop: time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC)}, q)
		q = mustParse(t, "[a:b = 1] WITHIN .5 SECONDS").Expr.(*Qualified).Qualifier
		assert.Equal(t, Within{Seconds: 0.5}, q)
	})
}

// TestParsePattern_Errors pins the exact message and offset for malformed input.
func TestParsePattern_Errors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "empty pattern at offset 0"},
		{"   /* only a comment */ ", "empty pattern at offset 24"},
		{"[a:b = 'abc", "unterminated string literal at offset 7"},
		{"[a:b = 'abc\\", "unterminated string literal at offset 7"},
		{`[x:y = 'a\n']`, `bad escape sequence \n in string literal: only \' and \\ are allowed at offset 9`},
		{`[x:'a\"' = 1]`, `bad escape sequence \" in string literal: only \' and \\ are allowed at offset 5`},
		{"[a:b = 1] /* open", "unterminated comment at offset 10"},
		{"[file:hashes.SHA-256 = 'x']", `property name "SHA-256" contains '-': quote it as 'SHA-256' at offset 13`},
		{"[url:value = 'a' and url:value = 'b']", `expected ']' to close the observation expression opened at offset 0, found identifier "and" (keywords are case-sensitive: write AND) at offset 17`},
		{"[a:b = 'x'", "expected ']' to close the observation expression opened at offset 0, found end of pattern at offset 10"},
		{"[a:b = 'x']]", "unbalanced ']' at offset 11"},
		{"([a:b = 'x']", "expected ')' to close the parenthesis opened at offset 0, found end of pattern at offset 12"},
		{"[(a:b = 'x']", "expected ')' to close the parenthesis opened at offset 1, found ']' at offset 11"},
		{"[]", "empty observation expression: expected a comparison at offset 1"},
		{"a:b = 'x'", `comparison outside brackets: expected '[' to start an observation expression, found identifier "a" at offset 0`},
		{"'x'", "expected '[' or '(' to start an observation expression, found string 'x' at offset 0"},
		{"[a:b = 1] AND", "expected '[' or '(' to start an observation expression, found end of pattern at offset 13"},
		{"[a:b = 1] [c:d = 2]", "expected AND, OR, FOLLOWEDBY, a qualifier or the end of the pattern, found '[' at offset 10"},
		{"NOT [a:b = 1]", "NOT cannot negate an observation expression: it goes between an object path and its operator, or before EXISTS at offset 0"},
		{"[NOT a:b = 1]", "NOT must follow an object path (path NOT = 'x') or precede EXISTS at offset 1"},
		{"[a:b EXISTS]", "EXISTS goes before the object path: EXISTS a:b at offset 5"},
		{"[a:b 'x']", "expected a comparison operator after a:b, found string 'x' at offset 5"},
		{"[a:b = ]", "expected a value after =, found ']' at offset 7"},
		{"[a = 1]", `expected ':' after object type "a", found '=' at offset 3`},
		{"[a: = 1]", "expected a property name, found '=' at offset 4"},
		{"[x:a.5b = 1]", "bad number literal \".5b\" at offset 4"},
		{"[x:5 = 1]", "property name 5 starts with a digit: quote it at offset 3"},
		{"[x:a[-1] = 1]", "list index must be a non-negative integer or '*', found integer -1 at offset 5"},
		{"[x:a[+1] = 1]", "list index must be a non-negative integer or '*', found integer +1 at offset 5"},
		{"[x:a[1 = 1]", "expected ']' to close the list index opened at offset 4, found '=' at offset 7"},
		{"[a:b = 007]", "bad integer literal 007: leading zeros are not allowed at offset 7"},
		{"[a:b = 1e5]", `bad number literal "1e5" at offset 7`},
		{"[a:b = 9007199254740992]", "integer literal 9007199254740992 out of range (limit ±9007199254740991) at offset 7"},
		{"[a:b = -99999999999999999999]", "integer literal -99999999999999999999 out of range (limit ±9007199254740991) at offset 7"},
		{"[a:b = h'abc']", "bad hex literal h'abc': want pairs of hex digits at offset 7"},
		{"[a:b = h'zz']", "bad hex literal h'zz': want pairs of hex digits at offset 7"},
		{"[a:b = h'00", "unterminated hex literal at offset 7"},
		{"[a:b = b'AAE']", "bad binary literal b'AAE': want base64 in groups of 4 characters at offset 7"},
		{"[a:b = b'']", "bad binary literal b'': want base64 in groups of 4 characters at offset 7"},
		{"[a:b = b'A=AA']", "bad binary literal b'A=AA': want base64 in groups of 4 characters at offset 7"},
		{"[a:b = t'2016-01-01T00:00:00']", "bad timestamp literal t'2016-01-01T00:00:00': want YYYY-MM-DDTHH:MM:SS[.fraction]Z in UTC at offset 7"},
		{"[a:b = t'2016-01-01T00:00:00+01:00']", "bad timestamp literal t'2016-01-01T00:00:00+01:00': want YYYY-MM-DDTHH:MM:SS[.fraction]Z in UTC at offset 7"},
		{"[a:b = t'2016-01-01T00:00:00.Z']", "bad timestamp literal t'2016-01-01T00:00:00.Z': want YYYY-MM-DDTHH:MM:SS[.fraction]Z in UTC at offset 7"},
		{"[a:b = t'2016-13-01T00:00:00Z']", "bad timestamp literal t'2016-13-01T00:00:00Z': month out of range at offset 7"},
		{"[a:b = t'2016-01-32T00:00:00Z']", "bad timestamp literal t'2016-01-32T00:00:00Z': day out of range at offset 7"},
		{"[a:b = t'2016-02-00T00:00:00Z']", "bad timestamp literal t'2016-02-00T00:00:00Z': day out of range at offset 7"},
		{"[a:b = t'2016-02-30T24:00:00Z']", "bad timestamp literal t'2016-02-30T24:00:00Z': hour out of range at offset 7"},
		{"[a:b = t'2016-01-01T24:00:00Z']", "bad timestamp literal t'2016-01-01T24:00:00Z': hour out of range at offset 7"},
		{"[a:b = t'2016-01-01T00:60:00Z']", "bad timestamp literal t'2016-01-01T00:60:00Z': minute out of range at offset 7"},
		{"[a:b = t'2016-01-01T00:00:61Z']", "bad timestamp literal t'2016-01-01T00:00:61Z': second out of range at offset 7"},
		{"[a:b = t'2016-01-01t00:00:00z']", "bad timestamp literal t'2016-01-01t00:00:00z': want YYYY-MM-DDTHH:MM:SS[.fraction]Z in UTC at offset 7"},
		{"[a:b = t'9999-12-31T23:59:60Z']", "bad timestamp literal t'9999-12-31T23:59:60Z': second out of range at offset 7"},
		{"[a:b = 1.5e3]", `bad number literal "1.5e3" at offset 7`},
		{"[a:b LIKE 5]", "LIKE takes a string, found integer 5 at offset 10"},
		{"[a:b MATCHES h'00']", "MATCHES takes a string, found hex h'00' at offset 13"},
		{"[a:b ISSUBSET ('a')]", "ISSUBSET takes a string, found '(' at offset 14"},
		{"[a:b > true]", "> cannot compare a boolean at offset 7"},
		{"[a:b = ('a', 'b')]", "= takes a single value, not a set: use IN at offset 7"},
		{"[a:b IN 'a']", "expected '(' to start the IN set, found string 'a' at offset 8"},
		{"[a:b IN ()]", "IN needs at least one value at offset 9"},
		{"[a:b IN ('a', 1)]", "IN set mixes string and integer values at offset 14"},
		{"[a:b IN ('a' 'b')]", "expected ',' or ')' in the IN set opened at offset 8, found string 'b' at offset 13"},
		{"[a:b IN ('a',)]", "expected a value in the IN set, found ')' at offset 13"},
		{"[a:b = 1] WITHIN SECONDS", "expected a number of seconds after WITHIN, found keyword SECONDS at offset 17"},
		{"[a:b = 1] WITHIN 0 SECONDS", "WITHIN needs a positive number of seconds, found 0 at offset 17"},
		{"[a:b = 1] WITHIN -5 SECONDS", "WITHIN needs a positive number of seconds, found -5 at offset 17"},
		{"[a:b = 1] WITHIN 5", "expected SECONDS after WITHIN 5.0, found end of pattern at offset 18"},
		{"[a:b = 1] REPEATS 0 TIMES", "REPEATS needs a positive integer, found 0 at offset 18"},
		{"[a:b = 1] REPEATS 1.5 TIMES", "expected an integer after REPEATS, found float 1.5 at offset 18"},
		{"[a:b = 1] REPEATS 2", "expected TIMES after REPEATS 2, found end of pattern at offset 19"},
		{"[a:b = 1] START '2016-01-01T00:00:00Z' STOP '2016-01-02T00:00:00Z'", "START needs a t'...' timestamp, found a plain string (STIX 2.0 syntax) at offset 16"},
		{"[a:b = 1] START t'2016-01-01T00:00:00Z'", "expected STOP after the START timestamp, found end of pattern at offset 39"},
		{"[a:b = 1] START t'2016-01-02T00:00:00Z' STOP t'2016-01-01T00:00:00Z'", "STOP timestamp must be after START timestamp at offset 45"},
		{"[a:b = 1] LAST 5 SECONDS", "expected AND, OR, FOLLOWEDBY, a qualifier or the end of the pattern, found keyword LAST at offset 10"},
		{"[a:b = 1 && a:c = 2]", "unexpected character '&' at offset 9"},
		{"[a:b ! 1]", "unexpected character '!' at offset 5"},
		{"[a:b = 1] ^", "unexpected character '^' at offset 10"},
		{"[a:b = '\xff']", "invalid UTF-8 in string literal at offset 8"},
		{"[a:b = 1] \xff", "invalid UTF-8 at offset 10"},
		{"[a:b = 1] and [c:d = 2]", `expected AND, OR, FOLLOWEDBY, a qualifier or the end of the pattern, found identifier "and" (keywords are case-sensitive: write AND) at offset 10`},
		{"[a:b = 'x'] WITHIN 5 SECONDS FOLLOWEDBY", "expected '[' or '(' to start an observation expression, found end of pattern at offset 39"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			p, err := ParsePattern(tt.in)
			require.Error(t, err, "parsed as %v", p)
			assert.Nil(t, p)
			var se *SyntaxError
			require.ErrorAs(t, err, &se)
			assert.Equal(t, tt.want, err.Error())
		})
	}
}

func TestParsePattern_DepthLimit(t *testing.T) {
	ok := strings.Repeat("(", MaxDepth-1) + "[a:b = 1]" + strings.Repeat(")", MaxDepth-1)
	mustParse(t, ok)

	deep := strings.Repeat("(", 100000) + "[a:b = 1]" + strings.Repeat(")", 100000)
	_, err := ParsePattern(deep)
	require.EqualError(t, err, "pattern nests deeper than 200 levels at offset 200")

	deepCmp := "[" + strings.Repeat("(", 5000) + "a:b = 1" + strings.Repeat(")", 5000) + "]"
	_, err = ParsePattern(deepCmp)
	require.EqualError(t, err, "pattern nests deeper than 200 levels at offset 200")
}

// A long flat chain is not nesting: it must parse and render without deep recursion.
func TestParsePattern_LongChain(t *testing.T) {
	parts := make([]string, 20000)
	for i := range parts {
		parts[i] = "[a:b = 1]"
	}
	in := strings.Join(parts, " OR ")
	p := mustParse(t, in)
	assert.Equal(t, in, p.String())
	d, err := p.Disjuncts()
	require.NoError(t, err)
	assert.Len(t, d, 20000)
}

// What the grammar (and the OASIS validator) accepts parses, even where the spec frowns on it.
func TestParsePattern_GrammarAccepts(t *testing.T) {
	t.Run("repeated qualifiers", func(t *testing.T) {
		for _, in := range []string{
			"[a:b = 1] WITHIN 5 SECONDS WITHIN 6 SECONDS",
			"([a:b = 1] REPEATS 2 TIMES) REPEATS 2 TIMES",
			"[a:b = 1] START t'2024-01-01T00:00:00Z' STOP t'2024-01-02T00:00:00Z' START t'2024-01-03T00:00:00Z' STOP t'2024-01-04T00:00:00Z'",
		} {
			p := mustParse(t, in)
			q, ok := p.Expr.(*Qualified)
			require.True(t, ok, in)
			_, ok = q.Expr.(*Qualified)
			assert.True(t, ok, "%s: the qualifiers nest", in)
			assert.Equal(t, p, mustParse(t, p.String()), "round trip of %s", in)
		}
	})
	t.Run("a timestamp naming no calendar day", func(t *testing.T) {
		for _, day := range []string{"2024-02-30T12:00:00Z", "2023-02-29T00:00:00Z", "2024-04-31T00:00:00.5Z"} {
			in := "[file:created = t'" + day + "' OR file:hashes.MD5 = 'x']"
			p := mustParse(t, in)
			cs := p.Comparisons()
			require.Len(t, cs, 2)
			lit := cs[0].Value
			assert.Equal(t, KindTimestamp, lit.Kind)
			assert.Equal(t, day, lit.Str)
			assert.Equal(t, "no such day in that month", lit.Invalid)
			assert.True(t, lit.Time.IsZero())
			assert.Empty(t, cs[1].Value.Invalid)
			assert.Equal(t, in, p.String())
			assert.Equal(t, p, mustParse(t, p.String()))
		}
	})
	t.Run("in a START/STOP qualifier", func(t *testing.T) {
		in := "[a:b = 1] START t'2024-02-30T00:00:00Z' STOP t'2024-01-02T00:00:00Z'"
		p := mustParse(t, in)
		q := p.Expr.(*Qualified).Qualifier.(StartStop)
		assert.False(t, q.Valid())
		assert.Equal(t, "2024-02-30T00:00:00Z", q.StartText)
		assert.Equal(t, time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC), q.Stop)
		assert.Equal(t, in, p.String())
		assert.Equal(t, p, mustParse(t, p.String()))
	})
}
