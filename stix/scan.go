package stix

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// The scanner cuts a feed into its objects: it reads the stream in blocks, follows strings and
// brackets to find where each element of an array (or of a bundle's "objects") ends, checks the
// structure between elements, and hands blocks of elements over to be decoded. It decodes nothing
// itself, so that the decoding can run on several cores; it never holds more than one object
// (at most MaxObjectBytes) beyond the block being filled.

// ErrObjectTooLarge is wrapped by the ObjectError of an object larger than the cap (ReadOptions.MaxObjectBytes).
var ErrObjectTooLarge = errors.New("object too large")

// blockSize is the size of the blocks the stream is read into (a variable for the tests, which
// make it tiny to cut objects across blocks).
var blockSize = 256 << 10

type itemKind uint8

const (
	itemObject   itemKind = iota // buf[start:end] (or raw) is an element to decode
	itemOversize                 // raw is the start of an element larger than the cap; size is its size
	itemError                    // err is an object error (not a broken source)
	itemBroken                   // err ends the source (bad JSON, truncated, not a feed)
	itemIOError                  // err ends the feed (read failure)
)

type item struct {
	kind       itemKind
	start, end int
	size       int64
	base       int64  // absolute offset of buf[start]
	afterComma bool   // the element follows a comma (encoding/json reports its syntax errors a byte early)
	index      int    // position in the source
	raw        []byte // owned bytes (instead of buf[start:end]): a rebuilt single object, an oversized element's start
	err        error
}

// block is a run of consecutive items and the bytes they point into.
type block struct {
	buf   []byte
	items []item
	first int // index (in its source) of items[0]
}

// scanner reads one source.
type scanner struct {
	r       io.Reader
	max     int
	buf     []byte // current block's bytes: buf[:end] read so far
	base    int64  // absolute offset of buf[0]
	pos     int    // scan position
	end     int
	mark    int // start of the bytes that must be kept (the element being scanned)
	eof     bool
	rerr    error
	lastTok int64 // absolute end of the last complete token: where a truncated source is reported
	blk     *block
	index   int
	flush   func(*block) bool // hands a block over; false: stop reading
	stopped bool
	alloc   func(n int) []byte

	// Value scanning state, kept across refills.
	depth  int
	inStr  bool
	scalar bool
	// Oversize elements: how much was discarded, and the first bytes kept to find the id.
	skipping  bool
	discarded int64
	prefix    []byte
}

func newScanner(r io.Reader, maxBytes int, alloc func(int) []byte, flush func(*block) bool) *scanner {
	s := &scanner{r: r, max: maxBytes, alloc: alloc, flush: flush}
	s.buf = alloc(blockSize)
	s.blk = &block{}
	return s
}

func (s *scanner) abs(p int) int64 { return s.base + int64(p) }

// emit adds an item to the current block; a terminal item flushes the block.
func (s *scanner) emit(it item) {
	it.index = s.index
	s.blk.items = append(s.blk.items, it)
	if it.kind == itemObject || it.kind == itemOversize || it.kind == itemError {
		s.index++
	}
}

// handOver passes the current block on (if it has items) and starts a new one, keeping buf[s.mark:].
func (s *scanner) handOver(size int) {
	keep := s.end - s.mark
	var nb []byte
	if len(s.blk.items) == 0 && len(s.buf) >= size {
		nb = s.buf // nothing points into it: reuse in place
		copy(nb, s.buf[s.mark:s.end])
	} else {
		nb = s.alloc(size)
		copy(nb, s.buf[s.mark:s.end])
		if len(s.blk.items) > 0 {
			s.blk.buf = s.buf
			if !s.flush(s.blk) {
				s.stopped = true
			}
			s.blk = &block{first: s.index}
		}
	}
	s.base += int64(s.mark)
	s.pos -= s.mark
	s.end = keep
	s.mark = 0
	s.buf = nb
}

// more reads more of the stream, keeping buf[s.mark:]. It returns false at the end of the stream or on
// a read error (s.rerr).
func (s *scanner) more() bool {
	for !s.eof && !s.stopped {
		if s.end == len(s.buf) {
			// A new block, with room for the element being scanned and half a block more.
			size := blockSize
			for size < s.end-s.mark+blockSize/2 {
				size *= 2
			}
			s.handOver(size)
			if s.stopped {
				return false
			}
		}
		n, err := s.r.Read(s.buf[s.end:])
		s.end += n
		if err != nil {
			s.eof = true
			if !errors.Is(err, io.EOF) {
				s.rerr = err
			}
		}
		if n > 0 {
			return true
		}
	}
	return false
}

// peek skips whitespace and returns the next byte.
func (s *scanner) peek() (byte, bool) {
	for {
		for s.pos < s.end {
			switch c := s.buf[s.pos]; c {
			case ' ', '\t', '\n', '\r':
				s.pos++
			default:
				return c, true
			}
		}
		s.mark = s.pos
		if !s.more() {
			return 0, false
		}
	}
}

// endOfInput reports the end of the stream where a value or token was expected.
func (s *scanner) endOfInput(what string) {
	if s.rerr != nil {
		s.emit(item{kind: itemIOError, err: s.rerr})
		return
	}
	if s.stopped {
		return
	}
	s.emit(item{kind: itemBroken, err: fmt.Errorf("truncated JSON at byte %d%s", s.lastTok, what)})
}

func (s *scanner) syntax(off int64, msg string) {
	s.emit(item{kind: itemBroken, err: fmt.Errorf("bad JSON at byte %d: %s", off, msg)})
}

// run scans the whole source. It returns when the source ends or is broken, or when flush said stop.
func (s *scanner) run() {
	defer func() {
		if !s.stopped && len(s.blk.items) > 0 {
			s.blk.buf = s.buf
			s.flush(s.blk)
		}
	}()
	seen := false
	for !s.stopped {
		c, ok := s.peek()
		if !ok {
			switch {
			case s.rerr != nil:
				s.emit(item{kind: itemIOError, err: s.rerr})
			case !seen && !s.stopped:
				s.emit(item{kind: itemBroken, err: errors.New("empty source: no JSON value")})
			}
			return
		}
		seen = true
		var fine bool
		switch c {
		case '[':
			s.pos++
			s.lastTok = s.abs(s.pos)
			fine = s.array()
		case '{':
			s.pos++
			s.lastTok = s.abs(s.pos)
			fine = s.topObject()
		default:
			fine = false
			s.mark = s.pos
			if !isValueStart(c) {
				s.syntax(s.abs(s.pos), "invalid character "+quoteChar(c)+" looking for beginning of value")
				return
			}
			if !s.value() {
				if s.skipping {
					s.skipping, s.prefix = false, nil
					s.endOfInput("")
				} else if s.partial(false) {
					s.endOfInput("")
				}
				return
			}
			if s.skipping {
				s.skipping, s.prefix = false, nil
			} else {
				var d decoder
				d.b = s.buf[s.mark:s.pos]
				if err := d.skipAll("after top-level value"); err != nil {
					s.syntax(s.abs(s.mark+err.off), err.msg)
					return
				}
			}
			s.emit(item{kind: itemBroken, err: fmt.Errorf("top-level value is %s, not a STIX object, an array of objects or a bundle", describeFirst(c))})
		}
		if !fine {
			return
		}
	}
}

func describeFirst(c byte) string {
	switch c {
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

func isValueStart(c byte) bool {
	return c == '{' || c == '[' || c == '"' || c == '-' || '0' <= c && c <= '9' || c == 't' || c == 'f' || c == 'n'
}

// array streams the elements of an array whose '[' was just read, and its ']'. It returns false when
// the source ended (broken, truncated or stopped).
func (s *scanner) array() bool {
	first := true
	for !s.stopped {
		c, ok := s.peek()
		if !ok {
			s.endOfInput("")
			return false
		}
		if c == ']' {
			s.pos++
			s.lastTok = s.abs(s.pos)
			return true
		}
		afterComma := false
		if !first {
			if c != ',' {
				s.syntax(s.abs(s.pos), "expected comma after array element")
				return false
			}
			s.pos++
			s.lastTok = s.abs(s.pos)
			afterComma = true
			if c, ok = s.peek(); !ok {
				s.endOfInput("")
				return false
			}
		}
		first = false
		if !isValueStart(c) {
			off := s.abs(s.pos)
			if afterComma {
				off--
			}
			s.syntax(off, "invalid character "+quoteChar(c)+" looking for beginning of value")
			return false
		}
		s.mark = s.pos
		if !s.value() {
			if s.skipping {
				// The end of an oversized element never came: the source is truncated.
				s.skipping, s.prefix = false, nil
				s.endOfInput("")
				return false
			}
			if s.partial(afterComma) {
				s.endOfInput("")
			}
			return false
		}
		if s.skipping {
			s.skipping = false
			s.emit(item{kind: itemOversize, raw: s.prefix, size: s.discarded + int64(s.pos-s.mark)})
			s.prefix = nil
		} else {
			s.emit(item{kind: itemObject, start: s.mark, end: s.pos, base: s.abs(s.mark), afterComma: afterComma})
		}
		s.mark = s.pos
		s.lastTok = s.abs(s.pos)
	}
	return false
}

// partial handles an element cut short by the end of the stream, starting at s.mark: bad JSON in it is
// reported as such (as encoding/json would, reading in order); it returns true when it is only truncated.
func (s *scanner) partial(afterComma bool) bool {
	if s.rerr != nil {
		s.emit(item{kind: itemIOError, err: s.rerr})
		return false
	}
	if s.stopped {
		return false
	}
	var d decoder
	d.b = s.buf[s.mark:s.end]
	if err := d.skip(); err != nil && !err.eof {
		off := s.abs(s.mark + err.off)
		if afterComma {
			off--
		}
		s.syntax(off, err.msg)
		return false
	}
	return true
}

// value moves s.pos past the JSON value that starts at s.pos (its first byte is a value start),
// following only strings and brackets; the decoder checks the rest. An element longer than the
// cap is skipped with bounded memory (s.skipping set, its first bytes in s.prefix). It returns false
// when the stream ends first.
func (s *scanner) value() bool {
	s.depth, s.inStr, s.scalar = 0, false, false
	s.skipping, s.discarded, s.prefix = false, 0, nil
	start := s.abs(s.pos)
	for {
		if s.advance() {
			s.trimScalar()
			if !s.skipping && s.pos-s.mark > s.max {
				s.skipping = true
				s.prefix = bytes.Clone(s.buf[s.mark : s.mark+s.max])
			}
			return true
		}
		if !s.skipping && s.abs(s.pos)-start > int64(s.max) {
			// Too large: keep its first bytes (to name its id), drop the rest as it streams by.
			s.skipping = true
			s.prefix = bytes.Clone(s.buf[s.mark : s.mark+s.max])
		}
		if s.skipping {
			s.discarded += int64(s.pos - s.mark)
			s.mark = s.pos
		}
		if !s.more() {
			if s.scalar && s.rerr == nil && !s.stopped {
				s.trimScalar()
				return true // a number or literal ends with the stream
			}
			return false
		}
	}
}

// trimScalar ends a number or literal where its grammar ends, as encoding/json does ("00" is the
// value 0 followed by an unexpected 0).
func (s *scanner) trimScalar() {
	if !s.scalar || s.skipping {
		return
	}
	d := decoder{b: s.buf[s.mark:s.pos]}
	if d.scalar() == nil {
		s.pos = s.mark + d.p
	}
}

// advance scans buf[pos:end] for the end of the value; it returns true when found (s.pos after it).
func (s *scanner) advance() bool {
	b := s.buf[:s.end]
	p, depth := s.pos, s.depth
	defer func() { s.pos, s.depth = p, depth }()
	for p < len(b) {
		if s.inStr {
			rest := b[p:]
			k := bytes.IndexByte(rest, '"')
			seg := rest
			if k >= 0 {
				seg = rest[:k]
			}
			if bs := bytes.IndexByte(seg, '\\'); bs >= 0 {
				if p+bs+1 >= len(b) {
					p += bs // the escaped byte is not read yet
					return false
				}
				p += bs + 2
				continue
			}
			if k < 0 {
				p = len(b)
				return false
			}
			p += k + 1
			s.inStr = false
			if depth == 0 {
				return true
			}
			continue
		}
		if s.scalar {
			for p < len(b) {
				switch b[p] {
				case ' ', '\t', '\n', '\r', ',', ']', '}', '[', '{', '"', ':':
					return true
				}
				p++
			}
			return false
		}
		switch b[p] {
		case '"':
			s.inStr = true
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth <= 0 {
				p++
				return true
			}
		default:
			if depth == 0 {
				s.scalar = true
				continue
			}
		}
		p++
	}
	return false
}

// topObject reads a top-level object whose '{' was just read: a bundle (its "objects" array streamed
// whatever its position among the keys) or a single STIX object (kept, up to the cap, and decoded
// whole). It returns false when the source ended.
func (s *scanner) topObject() bool {
	rest := map[string]json.RawMessage{}
	restSize := 0
	tooLarge := false
	bundle := false
	first := true
	for !s.stopped {
		c, ok := s.peek()
		if !ok {
			s.endOfInput("")
			return false
		}
		if c == '}' {
			s.pos++
			s.lastTok = s.abs(s.pos)
			break
		}
		if !first {
			if c != ',' {
				s.syntax(s.abs(s.pos), "invalid character "+quoteChar(c)+" after object key:value pair")
				return false
			}
			s.pos++
			s.lastTok = s.abs(s.pos)
			if c, ok = s.peek(); !ok {
				s.endOfInput("")
				return false
			}
		}
		first = false
		if c != '"' {
			s.syntax(s.abs(s.pos), "invalid character "+quoteChar(c)+" looking for beginning of object key string")
			return false
		}
		s.mark = s.pos
		if !s.value() || s.skipping {
			if s.skipping || s.partial(false) {
				s.skipping, s.prefix = false, nil
				s.endOfInput("")
			}
			return false
		}
		var d decoder
		d.b = s.buf[s.mark:s.pos]
		ks, ke, slow, err := d.str()
		if err != nil {
			s.syntax(s.abs(s.mark+err.off), err.msg)
			return false
		}
		key := string(d.b[ks:ke])
		if slow {
			key = string(unquote(d.b[ks:ke]))
		}
		s.lastTok = s.abs(s.pos)
		if c, ok = s.peek(); !ok {
			s.endOfInput("")
			return false
		}
		if c != ':' {
			s.syntax(s.abs(s.pos), "expected colon after object key")
			return false
		}
		s.pos++
		s.lastTok = s.abs(s.pos)
		if c, ok = s.peek(); !ok {
			s.endOfInput("")
			return false
		}
		if key == "objects" {
			if bundle {
				// encoding/json would keep the last, a reader the first: either way objects would be
				// lost (and a snapshot run would delete their indicators).
				s.emit(item{kind: itemBroken, err: errors.New(`the bundle has a second "objects" property: which one is the feed is ambiguous`)})
				return false
			}
			if c != '[' {
				s.emit(item{kind: itemBroken, err: errors.New(`top-level object has an "objects" property that is not an array`)})
				return false
			}
			s.pos++
			s.lastTok = s.abs(s.pos)
			bundle = true
			if !s.array() {
				return false
			}
			continue
		}
		if !isValueStart(c) {
			s.syntax(s.abs(s.pos), "invalid character "+quoteChar(c)+" looking for beginning of value")
			return false
		}
		s.mark = s.pos
		if !s.value() {
			if s.skipping || s.partial(false) {
				s.skipping, s.prefix = false, nil
				s.endOfInput("")
			}
			return false
		}
		if s.skipping {
			s.skipping, s.prefix = false, nil
			tooLarge = true
		} else {
			d = decoder{b: s.buf[s.mark:s.pos]}
			if err := d.skipAll("after object key:value pair"); err != nil {
				s.syntax(s.abs(s.mark+err.off), err.msg)
				return false
			}
			restSize += len(key) + s.pos - s.mark
			switch {
			case key == "type" || key == "id":
				rest[key] = bytes.Clone(d.b)
			case restSize > s.max:
				tooLarge = true
			default:
				rest[key] = bytes.Clone(d.b)
			}
		}
		s.mark = s.pos
		s.lastTok = s.abs(s.pos)
	}
	if s.stopped {
		return false
	}
	if bundle {
		var typ string
		if raw, ok := rest["type"]; ok && (json.Unmarshal(raw, &typ) != nil || typ != "bundle") {
			s.emit(item{kind: itemError, err: fmt.Errorf(`top-level object has an "objects" array but type %s, not "bundle"`, raw)})
		}
		return true
	}
	if tooLarge {
		s.emit(item{kind: itemOversize, raw: []byte(`{"id":` + string(rest["id"]) + `}`), size: -1})
		return true
	}
	// The single object is rebuilt as encoding/json would (last of duplicate keys, sorted) and
	// decoded like an element.
	whole, err := json.Marshal(rest)
	if err != nil {
		s.emit(item{kind: itemError, err: err})
		return true
	}
	s.emit(item{kind: itemObject, raw: whole})
	return true
}

// tooLargeError reports an object over the cap.
type tooLargeError struct {
	size int64 // -1: not measured (a single top-level object)
	max  int
}

func (e tooLargeError) Error() string {
	if e.size < 0 {
		return fmt.Sprintf("%s: more than %d bytes (iocs.max_object_bytes), skipped", ErrObjectTooLarge, e.max)
	}
	return fmt.Sprintf("%s: %s bytes, more than %d (iocs.max_object_bytes), skipped", ErrObjectTooLarge, strconv.FormatInt(e.size, 10), e.max)
}

func (e tooLargeError) Unwrap() error { return ErrObjectTooLarge }
