package stix

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// This file decodes one JSON object of a feed into an Object in a single pass over its bytes, with
// the semantics of encoding/json decoding into the struct the reader used before (the differential
// fuzz test FuzzReaderMatchesReference holds the two together): keys matched exactly, else with
// encoding/json's case folding; the last of duplicate keys wins; null leaves a string or a boolean
// unchanged and clears a pointer or a slice; the first property of the wrong JSON type is the
// error, and decoding goes on so that the object's id is still known; invalid UTF-8 becomes U+FFFD.
// Properties the converter does not use are checked for JSON syntax and skipped without being decoded.

// syntaxError is bad JSON at an offset of the decoded bytes.
type syntaxError struct {
	msg string
	off int
	eof bool // the bytes ended inside the value: truncated, not malformed
}

// field identifies the properties of wireObject.
type field uint8

const (
	fNone field = iota
	fType
	fID
	fSpecVersion
	fName
	fDescription
	fPattern
	fPatternType
	fPatternVersion
	fCreated
	fModified
	fValidFrom
	fValidUntil
	fRevoked
	fLabels
	fIndicatorTypes
	fConfidence
	fXICObservableTypes
	nFields
)

var fieldNames = [nFields]string{
	fType: "type", fID: "id", fSpecVersion: "spec_version", fName: "name", fDescription: "description",
	fPattern: "pattern", fPatternType: "pattern_type", fPatternVersion: "pattern_version", fCreated: "created",
	fModified: "modified", fValidFrom: "valid_from", fValidUntil: "valid_until", fRevoked: "revoked",
	fLabels: "labels", fIndicatorTypes: "indicator_types", fConfidence: "confidence",
	fXICObservableTypes: "x_ic_observable_types",
}

// foldedFields maps encoding/json's folded form of each name to its field.
var foldedFields = func() map[string]field {
	m := make(map[string]field, nFields)
	for f := fType; f < nFields; f++ {
		m[string(appendFoldedName(nil, []byte(fieldNames[f])))] = f
	}
	return m
}()

// fieldLengths marks the lengths of the names, to rule out most unknown ASCII keys at once.
var fieldLengths = func() (l [32]bool) {
	for f := fType; f < nFields; f++ {
		l[len(fieldNames[f])] = true
	}
	return l
}()

func lookupField(key []byte) field {
	switch string(key) { // compiled to comparisons, no allocation
	case "type":
		return fType
	case "id":
		return fID
	case "spec_version":
		return fSpecVersion
	case "name":
		return fName
	case "description":
		return fDescription
	case "pattern":
		return fPattern
	case "pattern_type":
		return fPatternType
	case "pattern_version":
		return fPatternVersion
	case "created":
		return fCreated
	case "modified":
		return fModified
	case "valid_from":
		return fValidFrom
	case "valid_until":
		return fValidUntil
	case "revoked":
		return fRevoked
	case "labels":
		return fLabels
	case "indicator_types":
		return fIndicatorTypes
	case "confidence":
		return fConfidence
	case "x_ic_observable_types":
		return fXICObservableTypes
	}
	ascii := true
	for _, c := range key {
		if c >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii && (len(key) >= len(fieldLengths) || !fieldLengths[len(key)]) {
		return fNone
	}
	var buf [64]byte
	return foldedFields[string(appendFoldedName(buf[:0], key))]
}

// appendFoldedName is encoding/json's case folding of keys: ASCII upper case, and every other rune
// replaced by the smallest rune of its fold set.
func appendFoldedName(out, in []byte) []byte {
	for i := 0; i < len(in); {
		if c := in[i]; c < utf8.RuneSelf {
			if 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			}
			out = append(out, c)
			i++
			continue
		}
		r, n := utf8.DecodeRune(in[i:])
		for {
			r2 := unicode.SimpleFold(r)
			if r2 <= r {
				r = r2
				break
			}
			r = r2
		}
		out = utf8.AppendRune(out, r)
		i += n
	}
	return out
}

// wireObject is an Object as JSON carries it: timestamps stay strings so that their format is checked
// with a clear message.
type wireObject struct {
	Type, ID, SpecVersion, Name, Description, Pattern, PatternType, PatternVersion string
	Created, Modified, ValidFrom, ValidUntil                                       stamp
	Revoked                                                                        bool
	Labels, IndicatorTypes, XICObservableTypes                                     []string
	Confidence                                                                     *int
}

// stamp is a timestamp property as read: its (unquoted) text, pointing into the feed's bytes.
type stamp struct {
	set bool
	raw []byte
}

// decoder walks the bytes of one JSON value.
type decoder struct {
	b        []byte
	p        int
	stack    []byte // open containers while skipping a value
	skipText bool   // check name and description, do not decode them
	w        wireObject
}

func (d *decoder) ws() {
	for d.p < len(d.b) {
		switch d.b[d.p] {
		case ' ', '\t', '\n', '\r':
			d.p++
		default:
			return
		}
	}
}

func quoteChar(c byte) string {
	if c == '\'' {
		return `'\''`
	}
	if c == '"' {
		return `'"'`
	}
	s := strconv.Quote(string(c))
	return "'" + s[1:len(s)-1] + "'"
}

// fail returns the syntax error for the byte at d.p (or the end of the bytes).
func (d *decoder) fail(context string) *syntaxError {
	if d.p >= len(d.b) {
		return &syntaxError{msg: "unexpected end of JSON input", off: d.p, eof: true}
	}
	return &syntaxError{msg: "invalid character " + quoteChar(d.b[d.p]) + " " + context, off: d.p}
}

// str reads the string at d.p (which is '"'); it returns the span of its contents and whether they
// need unquoting (escapes, control or non-ASCII bytes).
func (d *decoder) str() (start, end int, slow bool, err *syntaxError) {
	b := d.b
	p := d.p + 1
	start = p
	for {
		p = plainRun(b, p)
		if p >= len(b) {
			d.p = p
			return 0, 0, false, d.fail("")
		}
		c := b[p]
		switch {
		case c == '"':
			d.p = p + 1
			return start, p, slow, nil
		case c == '\\':
			slow = true
			p++
			if p >= len(b) {
				d.p = p
				return 0, 0, false, d.fail("")
			}
			switch b[p] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				p++
			case 'u':
				p++
				for i := 0; i < 4; i++ {
					if p >= len(b) {
						d.p = p
						return 0, 0, false, d.fail("")
					}
					if !isHexDigit(b[p]) {
						d.p = p
						return 0, 0, false, d.fail(`in \u hexadecimal character escape`)
					}
					p++
				}
			default:
				d.p = p
				return 0, 0, false, d.fail("in string escape code")
			}
		case c < ' ':
			d.p = p
			return 0, 0, false, d.fail("in string literal")
		case c >= utf8.RuneSelf:
			slow = true
			p++
		default:
			p++
		}
	}
}

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// plainRun returns the index of the first byte from p on that a string's
// scan must look at (a quote, a backslash, a control character or a
// non-ASCII byte), or len(b). It looks at eight bytes at a time: most of a
// feed's bytes are plain ASCII in strings (descriptions, hashes, dates).
func plainRun(b []byte, p int) int {
	for p+8 <= len(b) {
		x := binary.LittleEndian.Uint64(b[p:])
		q := x ^ ('"' * ones)
		s := x ^ ('\\' * ones)
		// A byte is zero, or below 0x20, where subtracting borrows into its
		// high bit; bytes with the high bit set are caught by x itself.
		if ((q-ones)&^q|(s-ones)&^s|(x-' '*ones)|x)&highs != 0 {
			break
		}
		p += 8
	}
	for p < len(b) {
		if c := b[p]; c == '"' || c == '\\' || c < ' ' || c >= utf8.RuneSelf {
			return p
		}
		p++
	}
	return p
}

// stringValue returns the string at d.p, unquoted as encoding/json does.
func (d *decoder) stringValue() (string, *syntaxError) {
	s, e, slow, err := d.str()
	if err != nil {
		return "", err
	}
	if !slow {
		return internString(d.b[s:e]), nil
	}
	return string(unquote(d.b[s:e])), nil
}

// internString returns the common short values without allocating.
func internString(b []byte) string {
	switch string(b) {
	case "indicator":
		return "indicator"
	case "stix":
		return "stix"
	case "2.1":
		return "2.1"
	case "malicious-activity":
		return "malicious-activity"
	case "file":
		return "file"
	case "ipv4-addr":
		return "ipv4-addr"
	case "ipv6-addr":
		return "ipv6-addr"
	case "domain-name":
		return "domain-name"
	case "url":
		return "url"
	case "":
		return ""
	}
	return string(b)
}

// unquote decodes the contents of a valid JSON string (escapes checked by str).
func unquote(s []byte) []byte {
	b := make([]byte, 0, len(s)+utf8.UTFMax)
	for r := 0; r < len(s); {
		c := s[r]
		switch {
		case c == '\\':
			r++
			switch s[r] {
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				rr := getu4(s[r-1:])
				r += 5
				if utf16.IsSurrogate(rr) {
					if rr1 := getu4(s[r:]); rr1 >= 0 {
						if dec := utf16.DecodeRune(rr, rr1); dec != unicode.ReplacementChar {
							b = utf8.AppendRune(b, dec)
							r += 6
							continue
						}
					}
					rr = unicode.ReplacementChar
				}
				b = utf8.AppendRune(b, rr)
				continue
			default: // " \ /
				b = append(b, s[r])
			}
			r++
		case c < utf8.RuneSelf:
			b = append(b, c)
			r++
		default:
			rr, size := utf8.DecodeRune(s[r:])
			r += size
			b = utf8.AppendRune(b, rr)
		}
	}
	return b
}

func getu4(s []byte) rune {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return -1
	}
	var r rune
	for _, c := range s[2:6] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}

// number reads the number at d.p and returns its text.
func (d *decoder) number() ([]byte, *syntaxError) {
	b, start := d.b, d.p
	p := d.p
	if p < len(b) && b[p] == '-' {
		p++
	}
	digits := func() int {
		n := 0
		for p < len(b) && '0' <= b[p] && b[p] <= '9' {
			p++
			n++
		}
		return n
	}
	switch {
	case p < len(b) && b[p] == '0':
		p++
	case p < len(b) && '1' <= b[p] && b[p] <= '9':
		digits()
	default:
		d.p = p
		return nil, d.fail("in numeric literal")
	}
	if p < len(b) && b[p] == '.' {
		p++
		if digits() == 0 {
			d.p = p
			return nil, d.fail("after decimal point in numeric literal")
		}
	}
	if p < len(b) && (b[p] == 'e' || b[p] == 'E') {
		p++
		if p < len(b) && (b[p] == '+' || b[p] == '-') {
			p++
		}
		if digits() == 0 {
			d.p = p
			return nil, d.fail("in exponent of numeric literal")
		}
	}
	d.p = p
	return b[start:p], nil
}

// literal reads true, false or null at d.p.
func (d *decoder) literal() *syntaxError {
	var word string
	switch d.b[d.p] {
	case 't':
		word = "true"
	case 'f':
		word = "false"
	default:
		word = "null"
	}
	for i := 1; i < len(word); i++ {
		d.p++
		if d.p >= len(d.b) {
			return d.fail("")
		}
		if d.b[d.p] != word[i] {
			return d.fail("in literal " + word + " (expecting " + quoteChar(word[i]) + ")")
		}
	}
	d.p++
	return nil
}

// scalar reads a string, number or literal at d.p (the caller checked its first byte).
func (d *decoder) scalar() *syntaxError {
	switch c := d.b[d.p]; {
	case c == '"':
		_, _, _, err := d.str()
		return err
	case c == '-' || '0' <= c && c <= '9':
		_, err := d.number()
		return err
	default:
		return d.literal()
	}
}

// maxDepth is encoding/json's nesting limit.
const maxDepth = 10000

// skip checks and steps over the value at d.p (whitespace before it included).
func (d *decoder) skip() *syntaxError {
	stack := d.stack[:0]
	defer func() { d.stack = stack[:0] }()
	for {
		// A value.
		d.ws()
		if d.p >= len(d.b) {
			return d.fail("")
		}
		switch c := d.b[d.p]; {
		case c == '{' || c == '[':
			if len(stack) >= maxDepth {
				return &syntaxError{msg: "exceeded max depth", off: d.p}
			}
			d.p++
			d.ws()
			if d.p < len(d.b) && d.b[d.p] == c+2 { // '}' or ']'
				d.p++
				break
			}
			stack = append(stack, c)
			if c == '{' {
				if err := d.key(); err != nil {
					return err
				}
			}
			continue
		case c == '"' || c == '-' || '0' <= c && c <= '9' || c == 't' || c == 'f' || c == 'n':
			if err := d.scalar(); err != nil {
				return err
			}
		default:
			return d.fail("looking for beginning of value")
		}
		// After a value: close containers, or go on with the next member.
	next:
		for {
			if len(stack) == 0 {
				return nil
			}
			d.ws()
			if d.p >= len(d.b) {
				return d.fail("")
			}
			c := d.b[d.p]
			if stack[len(stack)-1] == '{' {
				switch c {
				case ',':
					d.p++
					if err := d.key(); err != nil {
						return err
					}
					break next
				case '}':
					d.p++
					stack = stack[:len(stack)-1]
				default:
					return d.fail("after object key:value pair")
				}
				continue
			}
			switch c {
			case ',':
				d.p++
				break next
			case ']':
				d.p++
				stack = stack[:len(stack)-1]
			default:
				return d.fail("after array element")
			}
		}
	}
}

// skipAll checks that the bytes are exactly one value; context names what may follow it.
func (d *decoder) skipAll(context string) *syntaxError {
	if err := d.skip(); err != nil {
		return err
	}
	if d.ws(); d.p < len(d.b) {
		return d.fail(context)
	}
	return nil
}

// key reads `"name":` (whitespace around included) and leaves d.p at the value.
func (d *decoder) key() *syntaxError {
	_, _, err := d.keyName()
	return err
}

func (d *decoder) keyName() ([]byte, bool, *syntaxError) {
	d.ws()
	if d.p >= len(d.b) || d.b[d.p] != '"' {
		return nil, false, d.fail("looking for beginning of object key string")
	}
	s, e, slow, err := d.str()
	if err != nil {
		return nil, false, err
	}
	d.ws()
	if d.p >= len(d.b) || d.b[d.p] != ':' {
		return nil, false, d.fail("after object key")
	}
	d.p++
	return d.b[s:e], slow, nil
}

// jsonKind names the JSON type of the value starting with c, as encoding/json's type errors do.
func jsonKind(c byte) string {
	switch c {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "bool"
	case 'n':
		return "null"
	}
	return "number"
}

// decodeObject decodes one feed element. It returns the syntax error that makes the source broken,
// or else the object (nil for null) and the first property of the wrong type (then w is partly
// filled, for its id).
func decodeObject(b []byte, d *decoder) (w *wireObject, synErr *syntaxError, typeErr error) {
	d.b, d.p = b, 0
	d.ws()
	if d.p >= len(d.b) {
		return nil, d.fail(""), nil
	}
	c := d.b[d.p]
	if c != '{' {
		if err := d.skipAll("after array element"); err != nil {
			return nil, err, nil
		}
		if c == 'n' {
			return nil, nil, nil
		}
		return nil, nil, fmt.Errorf("object is a JSON %s, not a JSON object", jsonKind(c))
	}
	d.p++
	// The worker's own: an object is made of it before the next one is
	// decoded (one allocation less per object).
	d.w = wireObject{}
	w = &d.w
	d.ws()
	if d.p < len(d.b) && d.b[d.p] == '}' {
		d.p++
		return w, nil, nil
	}
	for {
		key, slow, err := d.keyName()
		if err != nil {
			return nil, err, nil
		}
		if slow {
			key = unquote(key)
		}
		f := lookupField(key)
		d.ws()
		if d.p >= len(d.b) {
			return nil, d.fail(""), nil
		}
		if f == fNone {
			if err := d.skip(); err != nil {
				return nil, err, nil
			}
		} else if err, terr := d.field(w, f); err != nil {
			return nil, err, nil
		} else if terr != nil && typeErr == nil {
			typeErr = terr
		}
		d.ws()
		if d.p >= len(d.b) {
			return nil, d.fail(""), nil
		}
		switch d.b[d.p] {
		case ',':
			d.p++
			continue
		case '}':
			d.p++
			return w, nil, typeErr
		}
		return nil, d.fail("after object key:value pair"), nil
	}
}

// field decodes the value at d.p into f.
func (d *decoder) field(w *wireObject, f field) (synErr *syntaxError, typeErr error) {
	c := d.b[d.p]
	mismatch := func(want string) (*syntaxError, error) {
		kind := jsonKind(c)
		if err := d.skip(); err != nil {
			return err, nil
		}
		return nil, fmt.Errorf("property %s is a JSON %s, want %s", fieldNames[f], kind, want)
	}
	if c == 'n' { // null: clears pointers and slices, leaves the rest
		if err := d.literal(); err != nil {
			return err, nil
		}
		switch f {
		case fCreated:
			w.Created = stamp{}
		case fModified:
			w.Modified = stamp{}
		case fValidFrom:
			w.ValidFrom = stamp{}
		case fValidUntil:
			w.ValidUntil = stamp{}
		case fLabels:
			w.Labels = nil
		case fIndicatorTypes:
			w.IndicatorTypes = nil
		case fXICObservableTypes:
			w.XICObservableTypes = nil
		case fConfidence:
			w.Confidence = nil
		}
		return nil, nil
	}
	switch f {
	case fType, fID, fSpecVersion, fName, fDescription, fPattern, fPatternType, fPatternVersion,
		fCreated, fModified, fValidFrom, fValidUntil:
		if c != '"' {
			return mismatch("string")
		}
		if d.skipText && (f == fName || f == fDescription) {
			_, _, _, err := d.str()
			return err, nil
		}
		if f >= fCreated {
			s, e, slow, err := d.str()
			if err != nil {
				return err, nil
			}
			st := stamp{set: true, raw: d.b[s:e]}
			if slow {
				st.raw = unquote(st.raw)
			}
			switch f {
			case fCreated:
				w.Created = st
			case fModified:
				w.Modified = st
			case fValidFrom:
				w.ValidFrom = st
			default:
				w.ValidUntil = st
			}
			return nil, nil
		}
		s, err := d.stringValue()
		if err != nil {
			return err, nil
		}
		switch f {
		case fType:
			w.Type = s
		case fID:
			w.ID = s
		case fSpecVersion:
			w.SpecVersion = s
		case fName:
			w.Name = s
		case fDescription:
			w.Description = s
		case fPattern:
			w.Pattern = s
		case fPatternType:
			w.PatternType = s
		case fPatternVersion:
			w.PatternVersion = s
		}
		return nil, nil
	case fRevoked:
		if c != 't' && c != 'f' {
			return mismatch("boolean")
		}
		if err := d.literal(); err != nil {
			return err, nil
		}
		w.Revoked = c == 't'
		return nil, nil
	case fConfidence:
		if c != '-' && (c < '0' || c > '9') {
			return mismatch("integer")
		}
		num, err := d.number()
		if err != nil {
			return err, nil
		}
		n, perr := strconv.ParseInt(string(num), 10, strconv.IntSize)
		if perr != nil {
			return nil, fmt.Errorf("property confidence is a JSON number %s, want integer", num)
		}
		v := int(n)
		w.Confidence = &v
		return nil, nil
	}
	// The arrays of strings.
	if c != '[' {
		return mismatch("array of strings")
	}
	list := []string{}
	d.p++
	d.ws()
	if d.p < len(d.b) && d.b[d.p] == ']' {
		d.p++
	} else {
		for {
			d.ws()
			if d.p >= len(d.b) {
				return d.fail(""), nil
			}
			switch e := d.b[d.p]; e {
			case '"':
				s, err := d.stringValue()
				if err != nil {
					return err, nil
				}
				list = append(list, s)
			case 'n':
				if err := d.literal(); err != nil {
					return err, nil
				}
				list = append(list, "")
			default:
				if err := d.skip(); err != nil {
					return err, nil
				}
				if typeErr == nil {
					typeErr = fmt.Errorf("property %s is a JSON %s, want string", fieldNames[f], jsonKind(e))
				}
				list = append(list, "")
			}
			d.ws()
			if d.p >= len(d.b) {
				return d.fail(""), nil
			}
			if d.b[d.p] == ',' {
				d.p++
				continue
			}
			if d.b[d.p] == ']' {
				d.p++
				break
			}
			return d.fail("after array element"), nil
		}
	}
	switch f {
	case fLabels:
		w.Labels = list
	case fIndicatorTypes:
		w.IndicatorTypes = list
	default:
		w.XICObservableTypes = list
	}
	return nil, typeErr
}

// partialID finds the object's top-level "id" in the first bytes of an object too large to decode.
func partialID(prefix []byte, d *decoder) string {
	d.b, d.p = prefix, 0
	d.ws()
	if d.p >= len(d.b) || d.b[d.p] != '{' {
		return ""
	}
	d.p++
	id := ""
	d.ws()
	for d.p < len(d.b) && d.b[d.p] != '}' {
		key, slow, err := d.keyName()
		if err != nil {
			return id
		}
		if slow {
			key = unquote(key)
		}
		d.ws()
		if d.p >= len(d.b) {
			return id
		}
		if lookupField(key) == fID && d.b[d.p] == '"' {
			s, err := d.stringValue()
			if err != nil {
				return id
			}
			id = s
		} else if err := d.skip(); err != nil {
			return id
		}
		d.ws()
		if d.p < len(d.b) && d.b[d.p] == ',' {
			d.p++
		}
	}
	return id
}

func (w *wireObject) object() (*Object, error) {
	o := &Object{
		Type: w.Type, ID: w.ID, SpecVersion: w.SpecVersion, Name: w.Name, Description: w.Description,
		Pattern: w.Pattern, PatternType: w.PatternType, PatternVersion: w.PatternVersion,
		Revoked: w.Revoked, Labels: w.Labels, IndicatorTypes: w.IndicatorTypes, Confidence: w.Confidence,
		XICObservableTypes: w.XICObservableTypes,
	}
	var errs []error
	parse := func(name string, in stamp, out *time.Time) {
		if !in.set {
			return
		}
		t, msg := parseTimestamp(in.raw)
		if msg != "" {
			var err error
			if t, err = ParseTimestamp(string(in.raw)); err != nil {
				errs = append(errs, fmt.Errorf("property %s: %w", name, err))
			}
		}
		*out = t
	}
	parse("created", w.Created, &o.Created)
	parse("modified", w.Modified, &o.Modified)
	parse("valid_from", w.ValidFrom, &o.ValidFrom)
	if w.ValidUntil.set {
		var t time.Time
		parse("valid_until", w.ValidUntil, &t)
		o.ValidUntil = &t
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return o, nil
}
