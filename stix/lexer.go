package stix

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

type tokKind int

const (
	tokEOF     tokKind = iota
	tokIdent           // IDENT or IDENT_HYPHEN (hyphen set)
	tokKeyword         // text holds the keyword
	tokPunct           // text holds the punctuation or operator
	tokLiteral         // lit holds the decoded value
)

type token struct {
	kind   tokKind
	text   string // raw text (keywords, punctuation, identifiers, numbers)
	pos    int
	hyphen bool
	lit    Literal
}

// keywords are case-sensitive; LAST is reserved by the grammar and unused.
var keywords = map[string]struct{}{
	"AND": {}, "OR": {}, "NOT": {}, "FOLLOWEDBY": {}, "LIKE": {}, "MATCHES": {}, "ISSUBSET": {},
	"ISSUPERSET": {}, "EXISTS": {}, "IN": {}, "START": {}, "STOP": {}, "WITHIN": {}, "SECONDS": {},
	"REPEATS": {}, "TIMES": {}, "LAST": {},
}

// maxInt is the largest magnitude the spec allows for an integer literal (2^53-1).
const maxInt = 1<<53 - 1

type lexer struct {
	src string
	pos int
}

func (l *lexer) errf(pos int, format string, args ...any) *SyntaxError {
	return &SyntaxError{Offset: pos, Msg: fmt.Sprintf(format, args...)}
}

// skip passes whitespace (Unicode White_Space) and comments.
func (l *lexer) skip() *SyntaxError {
	for l.pos < len(l.src) {
		c := l.src[l.pos]
		switch {
		case c == '/' && strings.HasPrefix(l.src[l.pos:], "/*"):
			end := strings.Index(l.src[l.pos+2:], "*/")
			if end < 0 {
				return l.errf(l.pos, "unterminated comment")
			}
			l.pos += 2 + end + 2
		case c == '/' && strings.HasPrefix(l.src[l.pos:], "//"):
			end := strings.IndexAny(l.src[l.pos:], "\r\n")
			if end < 0 {
				l.pos = len(l.src)
			} else {
				l.pos += end
			}
		case c < utf8.RuneSelf:
			if !unicode.IsSpace(rune(c)) {
				return nil
			}
			l.pos++
		default:
			r, n := utf8.DecodeRuneInString(l.src[l.pos:])
			if r == utf8.RuneError && n <= 1 {
				return l.errf(l.pos, "invalid UTF-8")
			}
			if !unicode.IsSpace(r) {
				return nil
			}
			l.pos += n
		}
	}
	return nil
}

func (l *lexer) next() (token, *SyntaxError) {
	if err := l.skip(); err != nil {
		return token{}, err
	}
	start := l.pos
	if start >= len(l.src) {
		return token{kind: tokEOF, pos: start}, nil
	}
	c := l.src[start]
	switch {
	case isIdentStart(c):
		end := start + 1
		hyphen := false
		for end < len(l.src) && (isIdentPart(l.src[end]) || l.src[end] == '-') {
			hyphen = hyphen || l.src[end] == '-'
			end++
		}
		text := l.src[start:end]
		if end < len(l.src) && l.src[end] == '\'' && (text == "h" || text == "b" || text == "t") {
			return l.prefixed(text[0])
		}
		l.pos = end
		if !hyphen {
			if _, ok := keywords[text]; ok {
				return token{kind: tokKeyword, text: text, pos: start}, nil
			}
			if text == "true" || text == "false" {
				return token{kind: tokLiteral, text: text, pos: start, lit: Literal{Kind: KindBool, Bool: text == "true"}}, nil
			}
		}
		return token{kind: tokIdent, text: text, pos: start, hyphen: hyphen}, nil
	case isDigit(c), c == '.' && l.digitAt(start+1),
		(c == '+' || c == '-') && (l.digitAt(start+1) || (l.byteAt(start+1) == '.' && l.digitAt(start+2))):
		return l.number()
	case c == '\'':
		s, err := l.quoted(start, "string literal")
		if err != nil {
			return token{}, err
		}
		return token{kind: tokLiteral, text: l.src[start:l.pos], pos: start, lit: Literal{Kind: KindString, Str: s}}, nil
	}
	two := ""
	if start+1 < len(l.src) {
		two = l.src[start : start+2]
	}
	switch two {
	case "==", "!=", "<>", "<=", ">=":
		l.pos += 2
		op := two
		switch two {
		case "==":
			op = "="
		case "<>":
			op = "!="
		}
		return token{kind: tokPunct, text: op, pos: start}, nil
	}
	switch c {
	case ':', '.', ',', '(', ')', '[', ']', '*', '=', '<', '>':
		l.pos++
		return token{kind: tokPunct, text: string(c), pos: start}, nil
	}
	r, _ := utf8.DecodeRuneInString(l.src[start:])
	if r == utf8.RuneError {
		return token{}, l.errf(start, "invalid UTF-8")
	}
	return token{}, l.errf(start, "unexpected character %q", r)
}

func (l *lexer) byteAt(i int) byte {
	if i < len(l.src) {
		return l.src[i]
	}
	return 0
}

func (l *lexer) digitAt(i int) bool { return isDigit(l.byteAt(i)) }

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// number lexes INT_POS, INT_NEG, FLOAT_POS and FLOAT_NEG.
func (l *lexer) number() (token, *SyntaxError) {
	start := l.pos
	i := start
	if l.src[i] == '+' || l.src[i] == '-' {
		i++
	}
	intStart := i
	for i < len(l.src) && isDigit(l.src[i]) {
		i++
	}
	intDigits := l.src[intStart:i]
	isFloat := false
	if l.byteAt(i) == '.' && l.digitAt(i+1) {
		isFloat = true
		i++
		for i < len(l.src) && isDigit(l.src[i]) {
			i++
		}
	}
	if i < len(l.src) && (isIdentPart(l.src[i]) || l.src[i] == '.' && l.digitAt(i+1)) {
		return token{}, l.errf(start, "bad number literal %q", l.src[start:l.tokenEnd(i)])
	}
	text := l.src[start:i]
	l.pos = i
	if isFloat {
		f, err := strconv.ParseFloat(text, 64)
		if err != nil || math.IsInf(f, 0) {
			return token{}, l.errf(start, "float literal %s out of range", text)
		}
		return token{kind: tokLiteral, text: text, pos: start, lit: Literal{Kind: KindFloat, Float: f}}, nil
	}
	if len(intDigits) > 1 && intDigits[0] == '0' {
		return token{}, l.errf(start, "bad integer literal %s: leading zeros are not allowed", text)
	}
	n, err := strconv.ParseInt(text, 10, 64)
	if err != nil || n > maxInt || n < -maxInt {
		return token{}, l.errf(start, "integer literal %s out of range (limit ±%d)", text, int64(maxInt))
	}
	return token{kind: tokLiteral, text: text, pos: start, lit: Literal{Kind: KindInt, Int: n}}, nil
}

// tokenEnd extends i over identifier characters, for quoting a whole bad token in a message.
func (l *lexer) tokenEnd(i int) int {
	for i < len(l.src) && (isIdentPart(l.src[i]) || l.src[i] == '.') && i-l.pos < 64 {
		i++
	}
	return i
}

// quoted reads a '...' body with \' and \\ escapes, starting at the opening quote at l.pos, and
// leaves l.pos after the closing quote.
func (l *lexer) quoted(start int, what string) (string, *SyntaxError) {
	var b strings.Builder
	i := l.pos + 1
	for i < len(l.src) {
		c := l.src[i]
		switch c {
		case '\'':
			l.pos = i + 1
			return b.String(), nil
		case '\\':
			if i+1 >= len(l.src) {
				return "", l.errf(start, "unterminated %s", what)
			}
			n := l.src[i+1]
			if n != '\'' && n != '\\' {
				r, _ := utf8.DecodeRuneInString(l.src[i+1:])
				return "", l.errf(i, "bad escape sequence \\%c in %s: only \\' and \\\\ are allowed", r, what)
			}
			b.WriteByte(n)
			i += 2
		default:
			if c >= utf8.RuneSelf {
				r, n := utf8.DecodeRuneInString(l.src[i:])
				if r == utf8.RuneError && n <= 1 {
					return "", l.errf(i, "invalid UTF-8 in %s", what)
				}
				b.WriteString(l.src[i : i+n])
				i += n
				continue
			}
			b.WriteByte(c)
			i++
		}
	}
	return "", l.errf(start, "unterminated %s", what)
}

// prefixed lexes h'..', b'..' and t'..'; l.pos is at the prefix letter.
func (l *lexer) prefixed(prefix byte) (token, *SyntaxError) {
	start := l.pos
	name := map[byte]string{'h': "hex literal", 'b': "binary literal", 't': "timestamp literal"}[prefix]
	end := strings.IndexByte(l.src[start+2:], '\'')
	if end < 0 {
		return token{}, l.errf(start, "unterminated %s", name)
	}
	body := l.src[start+2 : start+2+end]
	l.pos = start + 2 + end + 1
	text := l.src[start:l.pos]
	tok := token{kind: tokLiteral, text: text, pos: start}
	switch prefix {
	case 'h':
		b, err := hex.DecodeString(body)
		if err != nil {
			return token{}, l.errf(start, "bad hex literal %s: want pairs of hex digits", text)
		}
		if b == nil {
			b = []byte{}
		}
		tok.lit = Literal{Kind: KindHex, Bytes: b}
	case 'b':
		b, err := decodeBinary(body)
		if err != nil {
			return token{}, l.errf(start, "bad binary literal %s: want base64 in groups of 4 characters", text)
		}
		tok.lit = Literal{Kind: KindBinary, Bytes: b}
	case 't':
		t, msg := parseTimestamp(body)
		switch {
		case msg == errNoSuchDay:
			// The grammar takes any day 01-31: the literal parses, and only
			// the comparison or qualifier that holds it is unusable.
			tok.lit = Literal{Kind: KindTimestamp, Str: body, Invalid: msg}
		case msg != "":
			return token{}, l.errf(start, "bad timestamp literal %s: %s", text, msg)
		default:
			tok.lit = Literal{Kind: KindTimestamp, Time: t}
		}
	}
	return tok, nil
}

func decodeBinary(body string) ([]byte, error) {
	if len(body) < 4 || len(body)%4 != 0 {
		return nil, fmt.Errorf("length %d", len(body))
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		if !(isIdentPart(c) && c != '_' || c == '+' || c == '/' || c == '=' && i >= len(body)-2) {
			return nil, fmt.Errorf("character %q", c)
		}
	}
	return base64.StdEncoding.DecodeString(body)
}

// errNoSuchDay is parseTimestamp's message for a day 01-31 that its month does not have: the grammar
// accepts it (t'2024-02-30T00:00:00Z' lexes), but it names no instant.
const errNoSuchDay = "no such day in that month"

// parseTimestamp reads YYYY-MM-DDTHH:MM:SS[.f+]Z, the only form STIX allows, and checks that the date
// exists (the grammar does not; 02-31 gives errNoSuchDay rather than rolling into March). A leap second
// (:60) is accepted and rolls into the next minute. It returns a non-empty message on failure.
func parseTimestamp[S string | []byte](s S) (time.Time, string) {
	const want = "want YYYY-MM-DDTHH:MM:SS[.fraction]Z in UTC"
	if len(s) < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' || s[len(s)-1] != 'Z' {
		return time.Time{}, want
	}
	num := func(a, b int) int {
		n := 0
		for i := a; i < b; i++ {
			if !isDigit(s[i]) {
				return -1
			}
			n = n*10 + int(s[i]-'0')
		}
		return n
	}
	year, month, day := num(0, 4), num(5, 7), num(8, 10)
	hour, minute, sec := num(11, 13), num(14, 16), num(17, 19)
	if year < 0 || month < 0 || day < 0 || hour < 0 || minute < 0 || sec < 0 {
		return time.Time{}, want
	}
	nanos := 0
	switch rest := s[19 : len(s)-1]; {
	case len(rest) == 0:
	case rest[0] == '.' && len(rest) > 1:
		digits := rest[1:]
		for i := 0; i < len(digits); i++ {
			if !isDigit(digits[i]) {
				return time.Time{}, want
			}
		}
		if len(digits) > 9 {
			digits = digits[:9] // beyond nanoseconds: truncate, as time.Parse does
		}
		for i := 0; i < 9; i++ {
			nanos *= 10
			if i < len(digits) {
				nanos += int(digits[i] - '0')
			}
		}
	default:
		return time.Time{}, want
	}
	switch {
	case month < 1 || month > 12:
		return time.Time{}, "month out of range"
	case day < 1 || day > 31:
		return time.Time{}, "day out of range"
	case hour > 23:
		return time.Time{}, "hour out of range"
	case minute > 59:
		return time.Time{}, "minute out of range"
	case sec > 60:
		return time.Time{}, "second out of range"
	case day > time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day():
		return time.Time{}, errNoSuchDay
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nanos, time.UTC)
	if t.Year() > 9999 { // a leap second on the last day of 9999 has no four-digit rendering
		return time.Time{}, "second out of range"
	}
	return t, ""
}
