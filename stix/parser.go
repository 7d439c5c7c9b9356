package stix

import (
	"fmt"
	"strconv"
	"strings"
)

// MaxDepth bounds the nesting of brackets and parentheses in a pattern, so that a hostile feed
// cannot exhaust the stack.
const MaxDepth = 200

// SyntaxError is a pattern that does not lex or parse, or breaks a rule of the spec the grammar
// cannot express (a literal of the wrong type for its operator, STOP before START...). Offset is
// a byte offset into the pattern.
type SyntaxError struct {
	Offset int
	Msg    string
}

func (e *SyntaxError) Error() string {
	return e.Msg + " at offset " + strconv.Itoa(e.Offset)
}

// ParsePattern parses a STIX 2.1 pattern. Errors are *SyntaxError with a specific message.
//
// Beyond the grammar it rejects: literals of the wrong type for the operator (LIKE 5, > true), an
// empty or mixed-type IN set, integers beyond ±(2^53-1), negative list indexes, WITHIN or REPEATS
// not above zero, and STOP not after START. It accepts what the grammar (and the OASIS pattern
// validator) accepts although the spec frowns on it: repeated qualifiers of one type on an
// expression, and a timestamp whose day its month lacks, which marks that literal Invalid.
func ParsePattern(s string) (*Pattern, error) {
	if pat, ok := parseSimple(s); ok {
		return pat, nil
	}
	return parseFull(s)
}

// parseFull is the parser for the whole grammar.
func parseFull(s string) (*Pattern, error) {
	p := &parser{lex: lexer{src: s}}
	pat, err := p.parse()
	if err != nil {
		return nil, err
	}
	return pat, nil
}

type parser struct {
	lex   lexer
	tok   token
	depth int
}

// bail carries a *SyntaxError up through the recursive descent; parse recovers only this type.
type bail struct{ err *SyntaxError }

func (p *parser) fail(pos int, format string, args ...any) {
	panic(bail{&SyntaxError{Offset: pos, Msg: fmt.Sprintf(format, args...)}})
}

func (p *parser) parse() (pat *Pattern, err error) {
	defer func() {
		if r := recover(); r != nil {
			b, ok := r.(bail)
			if !ok {
				// A parser bug must not take the service down on a hostile feed; the fuzz test hunts these.
				b.err = &SyntaxError{Offset: p.tok.pos, Msg: fmt.Sprintf("internal parser error: %v", r)}
			}
			pat, err = nil, b.err
		}
	}()
	p.advance()
	if p.tok.kind == tokEOF {
		p.fail(p.tok.pos, "empty pattern")
	}
	expr := p.obsFollowedBy()
	if p.tok.kind != tokEOF {
		if p.tok.kind == tokPunct && (p.tok.text == ")" || p.tok.text == "]") {
			p.fail(p.tok.pos, "unbalanced '%s'", p.tok.text)
		}
		p.fail(p.tok.pos, "expected AND, OR, FOLLOWEDBY, a qualifier or the end of the pattern, found %s", p.describe())
	}
	return &Pattern{Expr: expr}, nil
}

func (p *parser) advance() {
	t, err := p.lex.next()
	if err != nil {
		panic(bail{err})
	}
	p.tok = t
}

func (p *parser) isKeyword(k string) bool { return p.tok.kind == tokKeyword && p.tok.text == k }
func (p *parser) isPunct(s string) bool   { return p.tok.kind == tokPunct && p.tok.text == s }

// describe names the current token for an error message.
func (p *parser) describe() string {
	t := p.tok
	switch t.kind {
	case tokEOF:
		return "end of pattern"
	case tokKeyword:
		return "keyword " + t.text
	case tokPunct:
		return "'" + t.text + "'"
	case tokIdent:
		if _, ok := keywords[strings.ToUpper(t.text)]; ok {
			return fmt.Sprintf("identifier %q (keywords are case-sensitive: write %s)", t.text, strings.ToUpper(t.text))
		}
		return fmt.Sprintf("identifier %q", t.text)
	}
	text := t.text
	if len(text) > 40 {
		text = text[:37] + "..."
	}
	return t.lit.Kind.String() + " " + text
}

func (p *parser) enter(pos int) {
	p.depth++
	if p.depth > MaxDepth {
		p.fail(pos, "pattern nests deeper than %d levels", MaxDepth)
	}
}

func (p *parser) obsFollowedBy() ObservationExpr {
	left := p.obsOr()
	for p.isKeyword("FOLLOWEDBY") {
		p.advance()
		left = &ObservationOp{Op: "FOLLOWEDBY", Left: left, Right: p.obsOr()}
	}
	return left
}

func (p *parser) obsOr() ObservationExpr {
	left := p.obsAnd()
	for p.isKeyword("OR") {
		p.advance()
		left = &ObservationOp{Op: "OR", Left: left, Right: p.obsAnd()}
	}
	return left
}

func (p *parser) obsAnd() ObservationExpr {
	left := p.obsQualified()
	for p.isKeyword("AND") {
		p.advance()
		left = &ObservationOp{Op: "AND", Left: left, Right: p.obsQualified()}
	}
	return left
}

func (p *parser) obsQualified() ObservationExpr {
	expr := p.obsPrimary()
	for {
		var q Qualifier
		switch {
		case p.isKeyword("WITHIN"):
			q = p.within()
		case p.isKeyword("REPEATS"):
			q = p.repeats()
		case p.isKeyword("START"):
			q = p.startStop()
		default:
			return expr
		}
		// The spec says an expression MUST NOT carry two qualifiers of one
		// type, but the grammar and the OASIS validator accept them, and
		// feeds publish them: they parse, and nest.
		expr = &Qualified{Expr: expr, Qualifier: q}
	}
}

func (p *parser) obsPrimary() ObservationExpr {
	open := p.tok.pos
	switch {
	case p.isPunct("["):
		p.enter(open)
		p.advance()
		cmp := p.cmpOr()
		if !p.isPunct("]") {
			p.fail(p.tok.pos, "expected ']' to close the observation expression opened at offset %d, found %s", open, p.describe())
		}
		p.advance()
		p.depth--
		return &Observation{Expr: cmp}
	case p.isPunct("("):
		p.enter(open)
		p.advance()
		e := p.obsFollowedBy()
		if !p.isPunct(")") {
			p.fail(p.tok.pos, "expected ')' to close the parenthesis opened at offset %d, found %s", open, p.describe())
		}
		p.advance()
		p.depth--
		return e
	case p.isKeyword("NOT"):
		p.fail(open, "NOT cannot negate an observation expression: it goes between an object path and its operator, or before EXISTS")
	case p.tok.kind == tokIdent:
		p.fail(open, "comparison outside brackets: expected '[' to start an observation expression, found %s", p.describe())
	}
	p.fail(open, "expected '[' or '(' to start an observation expression, found %s", p.describe())
	return nil
}

func (p *parser) within() Qualifier {
	p.advance()
	pos := p.tok.pos
	var secs float64
	switch {
	case p.tok.kind == tokLiteral && p.tok.lit.Kind == KindInt:
		secs = float64(p.tok.lit.Int)
	case p.tok.kind == tokLiteral && p.tok.lit.Kind == KindFloat:
		secs = p.tok.lit.Float
	default:
		p.fail(pos, "expected a number of seconds after WITHIN, found %s", p.describe())
	}
	if secs <= 0 {
		p.fail(pos, "WITHIN needs a positive number of seconds, found %s", p.tok.text)
	}
	p.advance()
	if !p.isKeyword("SECONDS") {
		p.fail(p.tok.pos, "expected SECONDS after WITHIN %s, found %s", formatFloat(secs), p.describe())
	}
	p.advance()
	return Within{Seconds: secs}
}

func (p *parser) repeats() Qualifier {
	p.advance()
	pos := p.tok.pos
	if p.tok.kind != tokLiteral || p.tok.lit.Kind != KindInt {
		p.fail(pos, "expected an integer after REPEATS, found %s", p.describe())
	}
	n := p.tok.lit.Int
	if n <= 0 {
		p.fail(pos, "REPEATS needs a positive integer, found %d", n)
	}
	p.advance()
	if !p.isKeyword("TIMES") {
		p.fail(p.tok.pos, "expected TIMES after REPEATS %d, found %s", n, p.describe())
	}
	p.advance()
	return Repeats{Times: int(n)}
}

func (p *parser) startStop() Qualifier {
	p.advance()
	start := p.timestamp("START")
	if !p.isKeyword("STOP") {
		p.fail(p.tok.pos, "expected STOP after the START timestamp, found %s", p.describe())
	}
	p.advance()
	stopPos := p.tok.pos
	stop := p.timestamp("STOP")
	q := StartStop{Start: start.Time, Stop: stop.Time}
	if start.Invalid != "" {
		q.StartText = start.Str
	}
	if stop.Invalid != "" {
		q.StopText = stop.Str
	}
	if q.Valid() && !q.Stop.After(q.Start) {
		p.fail(stopPos, "STOP timestamp must be after START timestamp")
	}
	return q
}

// timestamp reads one t'...' literal.
func (p *parser) timestamp(after string) Literal {
	if p.tok.kind != tokLiteral || p.tok.lit.Kind != KindTimestamp {
		if p.tok.kind == tokLiteral && p.tok.lit.Kind == KindString {
			p.fail(p.tok.pos, "%s needs a t'...' timestamp, found a plain string (STIX 2.0 syntax)", after)
		}
		p.fail(p.tok.pos, "expected a t'...' timestamp after %s, found %s", after, p.describe())
	}
	lit := p.tok.lit
	p.advance()
	return lit
}

func (p *parser) cmpOr() ComparisonExpr {
	left := p.cmpAnd()
	for p.isKeyword("OR") {
		p.advance()
		left = &ComparisonOp{Op: "OR", Left: left, Right: p.cmpAnd()}
	}
	return left
}

func (p *parser) cmpAnd() ComparisonExpr {
	left := p.propTest()
	for p.isKeyword("AND") {
		p.advance()
		left = &ComparisonOp{Op: "AND", Left: left, Right: p.propTest()}
	}
	return left
}

func (p *parser) propTest() ComparisonExpr {
	pos := p.tok.pos
	switch {
	case p.isPunct("("):
		p.enter(pos)
		p.advance()
		e := p.cmpOr()
		if !p.isPunct(")") {
			p.fail(p.tok.pos, "expected ')' to close the parenthesis opened at offset %d, found %s", pos, p.describe())
		}
		p.advance()
		p.depth--
		return e
	case p.isKeyword("NOT"):
		p.advance()
		if !p.isKeyword("EXISTS") {
			p.fail(pos, "NOT must follow an object path (path NOT = 'x') or precede EXISTS")
		}
		p.advance()
		return &Comparison{Path: p.path(), Op: "EXISTS", Negated: true}
	case p.isKeyword("EXISTS"):
		p.advance()
		return &Comparison{Path: p.path(), Op: "EXISTS"}
	case p.tok.kind == tokIdent:
	case p.isPunct("]"):
		p.fail(pos, "empty observation expression: expected a comparison")
	default:
		p.fail(pos, "expected a comparison, found %s", p.describe())
	}
	c := &Comparison{Path: p.path()}
	if p.isKeyword("NOT") {
		c.Negated = true
		p.advance()
	}
	opPos := p.tok.pos
	switch {
	case p.tok.kind == tokPunct && (p.tok.text == "=" || p.tok.text == "!="):
		c.Op = p.tok.text
		p.advance()
		c.Value = p.value(c.Op, false)
	case p.tok.kind == tokPunct && (p.tok.text == "<" || p.tok.text == ">" || p.tok.text == "<=" || p.tok.text == ">="):
		c.Op = p.tok.text
		p.advance()
		c.Value = p.value(c.Op, true)
	case p.isKeyword("IN"):
		c.Op = "IN"
		p.advance()
		c.Value = p.set()
	case p.isKeyword("LIKE"), p.isKeyword("MATCHES"), p.isKeyword("ISSUBSET"), p.isKeyword("ISSUPERSET"):
		c.Op = p.tok.text
		p.advance()
		if p.tok.kind != tokLiteral || p.tok.lit.Kind != KindString {
			p.fail(p.tok.pos, "%s takes a string, found %s", c.Op, p.describe())
		}
		c.Value = p.tok.lit
		p.advance()
	case p.isKeyword("EXISTS"):
		p.fail(opPos, "EXISTS goes before the object path: EXISTS %s", c.Path.String())
	default:
		p.fail(opPos, "expected a comparison operator after %s, found %s", c.Path.String(), p.describe())
	}
	return c
}

// value reads the constant of "=", "!=" (any primitive) or an ordering operator (no boolean).
func (p *parser) value(op string, ordering bool) Literal {
	if p.isPunct("(") {
		p.fail(p.tok.pos, "%s takes a single value, not a set: use IN", op)
	}
	if p.tok.kind != tokLiteral {
		p.fail(p.tok.pos, "expected a value after %s, found %s", op, p.describe())
	}
	if ordering && p.tok.lit.Kind == KindBool {
		p.fail(p.tok.pos, "%s cannot compare a boolean", op)
	}
	v := p.tok.lit
	p.advance()
	return v
}

func (p *parser) set() Literal {
	open := p.tok.pos
	if !p.isPunct("(") {
		p.fail(open, "expected '(' to start the IN set, found %s", p.describe())
	}
	p.advance()
	var members []Literal
	for {
		if p.isPunct(")") && len(members) == 0 {
			p.fail(p.tok.pos, "IN needs at least one value")
		}
		if p.tok.kind != tokLiteral {
			p.fail(p.tok.pos, "expected a value in the IN set, found %s", p.describe())
		}
		if len(members) > 0 && p.tok.lit.Kind != members[0].Kind {
			p.fail(p.tok.pos, "IN set mixes %s and %s values", members[0].Kind, p.tok.lit.Kind)
		}
		members = append(members, p.tok.lit)
		p.advance()
		if p.isPunct(")") {
			p.advance()
			return Literal{Kind: KindSet, Set: members}
		}
		if !p.isPunct(",") {
			p.fail(p.tok.pos, "expected ',' or ')' in the IN set opened at offset %d, found %s", open, p.describe())
		}
		p.advance()
	}
}

func (p *parser) path() ObjectPath {
	if p.tok.kind != tokIdent {
		p.fail(p.tok.pos, "expected an object path (type:property), found %s", p.describe())
	}
	path := ObjectPath{ObjectType: p.tok.text}
	p.advance()
	if !p.isPunct(":") {
		p.fail(p.tok.pos, "expected ':' after object type %q, found %s", path.ObjectType, p.describe())
	}
	p.advance()
	path.Components = append(path.Components, PathComponent{Key: p.key()})
	for {
		switch {
		case p.isPunct("."):
			p.advance()
			path.Components = append(path.Components, PathComponent{Key: p.key()})
		case p.isPunct("["):
			open := p.tok.pos
			p.advance()
			switch {
			case p.isPunct("*"):
				path.Components = append(path.Components, PathComponent{AnyIndex: true})
			case p.tok.kind == tokLiteral && p.tok.lit.Kind == KindInt && p.tok.lit.Int >= 0 && p.tok.text[0] != '+':
				i := int(p.tok.lit.Int)
				path.Components = append(path.Components, PathComponent{Index: &i})
			default:
				p.fail(p.tok.pos, "list index must be a non-negative integer or '*', found %s", p.describe())
			}
			p.advance()
			if !p.isPunct("]") {
				p.fail(p.tok.pos, "expected ']' to close the list index opened at offset %d, found %s", open, p.describe())
			}
			p.advance()
		default:
			return path
		}
	}
}

// key reads one property name or dictionary key: an identifier or a quoted string.
func (p *parser) key() string {
	switch {
	case p.tok.kind == tokIdent && p.tok.hyphen:
		p.fail(p.tok.pos, "property name %q contains '-': quote it as '%s'", p.tok.text, p.tok.text)
	case p.tok.kind == tokIdent:
	case p.tok.kind == tokLiteral && p.tok.lit.Kind == KindString:
		k := p.tok.lit.Str
		p.advance()
		return k
	case p.tok.kind == tokLiteral && (p.tok.lit.Kind == KindInt || p.tok.lit.Kind == KindFloat):
		p.fail(p.tok.pos, "property name %s starts with a digit: quote it", p.tok.text)
	default:
		p.fail(p.tok.pos, "expected a property name, found %s", p.describe())
	}
	k := p.tok.text
	p.advance()
	return k
}
