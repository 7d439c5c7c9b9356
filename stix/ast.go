package stix

import (
	"encoding/base64"
	"encoding/hex"
	"math"
	"strconv"
	"strings"
	"time"
)

// Pattern is a parsed STIX 2.1 pattern.
type Pattern struct {
	Expr ObservationExpr
}

// ObservationExpr is one of *Observation, *ObservationOp or *Qualified.
type ObservationExpr interface{ isObservation() }

// Observation is a bracketed observation expression: [ ... ].
type Observation struct {
	Expr ComparisonExpr
}

// ObservationOp joins two observation expressions with "AND", "OR" or "FOLLOWEDBY".
type ObservationOp struct {
	Op          string
	Left, Right ObservationExpr
}

// Qualified applies one qualifier to an observation expression. Chained qualifiers
// ("[x] REPEATS 2 TIMES WITHIN 60 SECONDS") nest: the outermost Qualified holds the last one.
type Qualified struct {
	Expr      ObservationExpr
	Qualifier Qualifier
}

// Qualifier is one of Within, Repeats or StartStop (value types).
type Qualifier interface {
	isQualifier()
	String() string
}

// Within is "WITHIN n SECONDS"; Seconds is > 0.
type Within struct{ Seconds float64 }

// Repeats is "REPEATS n TIMES"; Times is > 0.
type Repeats struct{ Times int }

// StartStop is "START t'...' STOP t'...'"; Start is before Stop. A timestamp that the grammar accepts
// but that names no calendar day (t'2024-02-30T00:00:00Z') leaves its time zero and its text in
// StartText or StopText: the qualifier then matches nothing (see Valid), and the pattern still parses.
type StartStop struct {
	Start, Stop         time.Time
	StartText, StopText string
}

// Valid reports whether both timestamps name a calendar day.
func (q StartStop) Valid() bool { return q.StartText == "" && q.StopText == "" }

// ComparisonExpr is one of *Comparison or *ComparisonOp.
type ComparisonExpr interface{ isComparison() }

// Comparison is one comparison inside brackets. Op is one of "=", "!=", ">", "<", ">=", "<=", "IN",
// "LIKE", "MATCHES", "ISSUBSET", "ISSUPERSET", "EXISTS" ("==" is reported as "=" and "<>" as "!=").
// Negated is true for "path NOT op value" and "NOT EXISTS path". For EXISTS, Value is the zero Literal
// (Kind KindNone).
type Comparison struct {
	Path    ObjectPath
	Op      string
	Negated bool
	Value   Literal
}

// ComparisonOp joins two comparison expressions with "AND" or "OR".
type ComparisonOp struct {
	Op          string
	Left, Right ComparisonExpr
}

// ObjectPath is "object-type:component{.component|[index]}". Each PathComponent is one step: a
// property or dictionary key (Key set), a list index (Index set) or "[*]" (AnyIndex). Keys are
// unquoted and unescaped: file:hashes.'SHA-256' gives Components [{Key: "hashes"}, {Key: "SHA-256"}].
type ObjectPath struct {
	ObjectType string
	Components []PathComponent
}

// PathComponent is one step of an ObjectPath; exactly one of Key, Index, AnyIndex is set.
type PathComponent struct {
	Key      string
	Index    *int
	AnyIndex bool
}

// LiteralKind says which field of a Literal holds its value.
type LiteralKind int

// Literal kinds.
const (
	KindNone      LiteralKind = iota // no value (EXISTS)
	KindString                       // Str
	KindInt                          // Int
	KindFloat                        // Float
	KindBool                         // Bool
	KindHex                          // Bytes, from h'...'
	KindBinary                       // Bytes, from b'...' (base64)
	KindTimestamp                    // Time (UTC), from t'...'
	KindSet                          // Set, from (a, b, ...); members are never sets
)

// String names the kind as used in error messages.
func (k LiteralKind) String() string {
	switch k {
	case KindNone:
		return "none"
	case KindString:
		return "string"
	case KindInt:
		return "integer"
	case KindFloat:
		return "float"
	case KindBool:
		return "boolean"
	case KindHex:
		return "hex"
	case KindBinary:
		return "binary"
	case KindTimestamp:
		return "timestamp"
	case KindSet:
		return "set"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Literal is a constant on the right of a comparison.
//
// Invalid is set (to the reason) for a timestamp the grammar accepts but that names no calendar day
// (t'2024-02-30T12:00:00Z'): Str then holds its text and Time is zero. Such a comparison can match
// nothing; the rest of the pattern stands.
type Literal struct {
	Invalid string
	Kind    LiteralKind
	Str     string
	Int     int64
	Float   float64
	Bool    bool
	Bytes   []byte
	Time    time.Time
	Set     []Literal
}

func (*Observation) isObservation()   {}
func (*ObservationOp) isObservation() {}
func (*Qualified) isObservation()     {}
func (*Comparison) isComparison()     {}
func (*ComparisonOp) isComparison()   {}
func (Within) isQualifier()           {}
func (Repeats) isQualifier()          {}
func (StartStop) isQualifier()        {}

// String renders the qualifier in pattern syntax.
func (q Within) String() string {
	secs := formatFloat(q.Seconds)
	if q.Seconds == math.Trunc(q.Seconds) && q.Seconds < maxInt {
		secs = strconv.FormatFloat(q.Seconds, 'f', 0, 64) // "WITHIN 60 SECONDS", as people write it
	}
	return "WITHIN " + secs + " SECONDS"
}

// String renders the qualifier in pattern syntax.
func (q Repeats) String() string { return "REPEATS " + strconv.Itoa(q.Times) + " TIMES" }

// String renders the qualifier in pattern syntax.
func (q StartStop) String() string {
	start, stop := "t'"+q.StartText+"'", "t'"+q.StopText+"'"
	if q.StartText == "" {
		start = formatTimestamp(q.Start)
	}
	if q.StopText == "" {
		stop = formatTimestamp(q.Stop)
	}
	return "START " + start + " STOP " + stop
}

// String renders the pattern canonically: single spaces, keywords upper-case, "==" as "=", "<>" as
// "!=", parentheses only where the tree needs them. ParsePattern(p.String()) gives an equal tree.
func (p *Pattern) String() string {
	if p == nil || p.Expr == nil {
		return ""
	}
	var b strings.Builder
	writeObs(&b, p.Expr)
	return b.String()
}

// String renders the comparison in pattern syntax.
func (c *Comparison) String() string {
	var b strings.Builder
	writeComparison(&b, c)
	return b.String()
}

// String renders the path in pattern syntax, quoting components that are not plain identifiers:
// "file:hashes.'SHA-256'".
func (p ObjectPath) String() string {
	var b strings.Builder
	b.WriteString(p.ObjectType)
	b.WriteByte(':')
	for i, c := range p.Components {
		switch {
		case c.AnyIndex:
			b.WriteString("[*]")
		case c.Index != nil:
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(*c.Index))
			b.WriteByte(']')
		default:
			if i > 0 {
				b.WriteByte('.')
			}
			if isPlainKey(c.Key) {
				b.WriteString(c.Key)
			} else {
				writeQuoted(&b, c.Key)
			}
		}
	}
	return b.String()
}

// Keys returns the path's keys joined by "." ("hashes.SHA-256") and true when the path has no list
// index; otherwise "" and false.
func (p ObjectPath) Keys() (string, bool) {
	keys := make([]string, 0, len(p.Components))
	for _, c := range p.Components {
		if c.AnyIndex || c.Index != nil {
			return "", false
		}
		keys = append(keys, c.Key)
	}
	return strings.Join(keys, "."), true
}

// HashAlgorithm returns the normalized algorithm (see NormalizeHashKey) and true when the path is
// exactly "<type>:hashes.<algorithm>", as in file:hashes.'SHA-256' or x509-certificate:hashes.'SHA-1'.
func (p ObjectPath) HashAlgorithm() (string, bool) {
	if len(p.Components) != 2 {
		return "", false
	}
	h, alg := p.Components[0], p.Components[1]
	if h.Key != "hashes" || h.Index != nil || h.AnyIndex || alg.Index != nil || alg.AnyIndex || alg.Key == "" {
		return "", false
	}
	return NormalizeHashKey(alg.Key), true
}

// String renders the literal in pattern syntax: 'it\'s', 42, 1.5, true, h'00ff', b'AAE=',
// t'2024-01-01T00:00:00Z', ('a', 'b').
func (l Literal) String() string {
	var b strings.Builder
	writeLiteral(&b, l)
	return b.String()
}

// Observation-level precedence: the higher binds tighter.
func obsPrec(e ObservationExpr) int {
	switch n := e.(type) {
	case *ObservationOp:
		switch n.Op {
		case "FOLLOWEDBY":
			return 1
		case "OR":
			return 2
		default:
			return 3
		}
	case *Qualified:
		return 4
	}
	return 5
}

func cmpPrec(e ComparisonExpr) int {
	if n, ok := e.(*ComparisonOp); ok {
		if n.Op == "OR" {
			return 1
		}
		return 2
	}
	return 3
}

// writeObs walks left spines iteratively: a feed may hold a pattern with thousands of ORed
// observations, and only parenthesised nesting (bounded by the parser) recurses.
func writeObs(b *strings.Builder, e ObservationExpr) {
	switch n := e.(type) {
	case *Observation:
		b.WriteByte('[')
		writeCmp(b, n.Expr)
		b.WriteByte(']')
	case *ObservationOp:
		var rights []ObservationExpr
		cur := ObservationExpr(n)
		for {
			op, ok := cur.(*ObservationOp)
			if !ok || op.Op != n.Op {
				break
			}
			rights = append(rights, op.Right)
			cur = op.Left
		}
		prec := obsPrec(n)
		writeObsChild(b, cur, obsPrec(cur) < prec)
		for i := len(rights) - 1; i >= 0; i-- {
			b.WriteByte(' ')
			b.WriteString(n.Op)
			b.WriteByte(' ')
			writeObsChild(b, rights[i], obsPrec(rights[i]) <= prec)
		}
	case *Qualified:
		writeObsChild(b, n.Expr, obsPrec(n.Expr) < 4)
		b.WriteByte(' ')
		if n.Qualifier != nil {
			b.WriteString(n.Qualifier.String())
		}
	}
}

func writeObsChild(b *strings.Builder, e ObservationExpr, paren bool) {
	if paren {
		b.WriteByte('(')
	}
	writeObs(b, e)
	if paren {
		b.WriteByte(')')
	}
}

func writeCmp(b *strings.Builder, e ComparisonExpr) {
	switch n := e.(type) {
	case *Comparison:
		writeComparison(b, n)
	case *ComparisonOp:
		var rights []ComparisonExpr
		cur := ComparisonExpr(n)
		for {
			op, ok := cur.(*ComparisonOp)
			if !ok || op.Op != n.Op {
				break
			}
			rights = append(rights, op.Right)
			cur = op.Left
		}
		prec := cmpPrec(n)
		writeCmpChild(b, cur, cmpPrec(cur) < prec)
		for i := len(rights) - 1; i >= 0; i-- {
			b.WriteByte(' ')
			b.WriteString(n.Op)
			b.WriteByte(' ')
			writeCmpChild(b, rights[i], cmpPrec(rights[i]) <= prec)
		}
	}
}

func writeCmpChild(b *strings.Builder, e ComparisonExpr, paren bool) {
	if paren {
		b.WriteByte('(')
	}
	writeCmp(b, e)
	if paren {
		b.WriteByte(')')
	}
}

func writeComparison(b *strings.Builder, c *Comparison) {
	if c == nil {
		return
	}
	if c.Op == "EXISTS" {
		if c.Negated {
			b.WriteString("NOT ")
		}
		b.WriteString("EXISTS ")
		b.WriteString(c.Path.String())
		return
	}
	b.WriteString(c.Path.String())
	b.WriteByte(' ')
	if c.Negated {
		b.WriteString("NOT ")
	}
	b.WriteString(c.Op)
	b.WriteByte(' ')
	writeLiteral(b, c.Value)
}

func writeLiteral(b *strings.Builder, l Literal) {
	switch l.Kind {
	case KindString:
		writeQuoted(b, l.Str)
	case KindInt:
		b.WriteString(strconv.FormatInt(l.Int, 10))
	case KindFloat:
		b.WriteString(formatFloat(l.Float))
	case KindBool:
		b.WriteString(strconv.FormatBool(l.Bool))
	case KindHex:
		b.WriteString("h'")
		b.WriteString(hex.EncodeToString(l.Bytes))
		b.WriteByte('\'')
	case KindBinary:
		b.WriteString("b'")
		b.WriteString(base64.StdEncoding.EncodeToString(l.Bytes))
		b.WriteByte('\'')
	case KindTimestamp:
		if l.Invalid != "" {
			b.WriteString("t'" + l.Str + "'")
			break
		}
		b.WriteString(formatTimestamp(l.Time))
	case KindSet:
		b.WriteByte('(')
		for i, m := range l.Set {
			if i > 0 {
				b.WriteString(", ")
			}
			writeLiteral(b, m)
		}
		b.WriteByte(')')
	}
}

func writeQuoted(b *strings.Builder, s string) {
	b.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		if s[i] == '\'' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('\'')
}

// formatFloat always writes a '.', never an exponent: the pattern grammar has no other float form.
func formatFloat(f float64) string {
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.Contains(s, ".") {
		s += ".0"
	}
	return s
}

func formatTimestamp(t time.Time) string {
	return "t'" + t.UTC().Format("2006-01-02T15:04:05.999999999Z") + "'"
}

// isPlainKey reports whether a path key can be written without quotes (an IDENT that is no keyword).
func isPlainKey(s string) bool {
	if s == "" || !isIdentStart(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isIdentPart(s[i]) {
			return false
		}
	}
	_, kw := keywords[s]
	return !kw && s != "true" && s != "false"
}

func isIdentStart(c byte) bool {
	return c == '_' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')
}

func isIdentPart(c byte) bool { return isIdentStart(c) || ('0' <= c && c <= '9') }
