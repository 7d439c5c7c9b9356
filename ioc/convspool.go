package ioc

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"time"

	"github.com/defenderbot/defenderbot/defender"
	"github.com/defenderbot/defenderbot/stix"
)

// convSpool keeps the feed's conversions, in feed order, in an unlinked
// temporary file, so that the planner can go over them a second time
// without reading, decoding and converting the feed again: the JSON is
// decoded once, and the second pass reads a compact binary record per
// object (a few times cheaper than the JSON, no pattern to parse, no value
// to normalise, no fingerprint to hash). It also makes a positioned feed
// (a TAXII collection) downloaded once per run.
type convSpool struct {
	file  *os.File
	w     *bufio.Writer
	buf   []byte
	n     int
	atDec *convDecoder
}

func newConvSpool() (*convSpool, error) {
	f, err := os.CreateTemp("", "defenderbot-feed-*")
	if err != nil {
		return nil, fmt.Errorf("spool the feed to a temporary file: %w", err)
	}
	_ = os.Remove(f.Name()) // unlinked: gone with the process, whatever happens
	return &convSpool{file: f, w: bufio.NewWriterSize(f, 256<<10)}, nil
}

func (s *convSpool) close() {
	if s != nil && s.file != nil {
		_ = s.file.Close()
	}
}

// add appends one object: its conversion, or why it could not be read.
func (s *convSpool) add(r *read) error {
	s.n++
	b := s.buf[:0]
	if r.err != nil {
		b = append(b, 1)
		msg, hasErr := "", r.err.Err != nil
		if hasErr {
			msg = r.err.Err.Error()
		}
		b = putString(putString(b, r.err.Source), r.err.ID)
		b = binary.AppendUvarint(b, uint64(r.err.Index))
		b = putBool(b, hasErr)
		b = putString(b, msg)
	} else {
		b = append(b, 0)
		b = encConversion(b, &r.c)
	}
	s.buf = b
	if _, err := s.w.Write(b); err != nil {
		return fmt.Errorf("spool the feed to a temporary file: %w", err)
	}
	return nil
}

// each calls fn with every object added, in order, and where its record
// starts (for at). The indicators come without their text (Title,
// Description and the like): at reads an object whole.
func (s *convSpool) each(fn func(off int64, r *read) error) error {
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("spool the feed to a temporary file: %w", err)
	}
	d := &convDecoder{r: &countingReader{r: bufio.NewReaderSize(io.NewSectionReader(s.file, 0, math.MaxInt64), 256<<10)},
		interned: map[string]string{}, skim: true}
	for range s.n {
		off := d.r.n
		var r read
		if err := d.read(&r); err != nil {
			return fmt.Errorf("read the spooled feed: %w", err)
		}
		if err := fn(off, &r); err != nil {
			return err
		}
	}
	return nil
}

// at reads back the record each gave at off.
func (s *convSpool) at(off int64) (*read, error) {
	if s.atDec == nil {
		s.atDec = &convDecoder{r: &countingReader{r: bufio.NewReaderSize(nil, 4<<10)}, interned: map[string]string{}}
	}
	d := s.atDec
	d.r.r.Reset(io.NewSectionReader(s.file, off, math.MaxInt64))
	d.err = nil
	var r read
	if err := d.read(&r); err != nil {
		return nil, fmt.Errorf("read the spooled feed: %w", err)
	}
	return &r, nil
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r *bufio.Reader
	n int64
}

func (c *countingReader) ReadByte() (byte, error) {
	b, err := c.r.ReadByte()
	if err == nil {
		c.n++
	}
	return b, err
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func putBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

// putZTime keeps a time's instant and its offset from UTC (a feed's
// valid_until may carry one; the payload shows it as read).
func putZTime(b []byte, t time.Time) []byte {
	_, off := t.Zone()
	b = binary.AppendVarint(b, t.Unix())
	b = binary.AppendUvarint(b, uint64(t.Nanosecond()))
	return binary.AppendVarint(b, int64(off))
}

func putStrings(b []byte, ss []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(ss)))
	for _, s := range ss {
		b = putString(b, s)
	}
	return b
}

func encConversion(b []byte, c *Conversion) []byte {
	b = putString(b, c.StixID)
	b = append(b, byte(c.State))
	b = putBool(putBool(b, c.evaluated), c.Compound)
	b = putZTime(putZTime(b, c.validFrom), c.modified)
	b = binary.AppendUvarint(b, uint64(len(c.Skipped)))
	for _, sk := range c.Skipped {
		b = encSkip(b, sk)
	}
	b = binary.AppendUvarint(b, uint64(len(c.Indicators)))
	for i := range c.Indicators {
		b = encIndicator(b, &c.Indicators[i])
	}
	return putStrings(putStrings(b, c.keys), c.fps)
}

func encIndicator(b []byte, d *defender.Indicator) []byte {
	for _, s := range [...]string{d.ID, d.IndicatorValue, string(d.IndicatorType), d.Action, d.Application, d.Title,
		d.Description, d.Severity, d.RecommendedActions, d.ExternalID, d.CreatedByDisplayName, d.CreatedBy, d.SourceType} {
		b = putString(b, s)
	}
	b = putStrings(b, d.RBACGroupNames)
	b = putBool(b, d.RBACGroupNames != nil)
	b = putBool(b, d.GenerateAlert)
	for _, t := range [...]*time.Time{d.ExpirationTime, d.CreationTimeDateTimeUTC, d.LastUpdateTime} {
		b = putBool(b, t != nil)
		if t != nil {
			b = putZTime(b, *t)
		}
	}
	return b
}

// convDecoder reads what convSpool wrote. Short strings that recur (types,
// actions, severities, reasons) are shared rather than allocated again.
type convDecoder struct {
	r        *countingReader
	skim     bool // skip the indicators' text (each)
	scratch  []byte
	interned map[string]string
	err      error
}

func (d *convDecoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, err := binary.ReadUvarint(d.r)
	d.err = err
	return v
}

func (d *convDecoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, err := binary.ReadVarint(d.r)
	d.err = err
	return v
}

func (d *convDecoder) byte() byte {
	if d.err != nil {
		return 0
	}
	c, err := d.r.ReadByte()
	d.err = err
	return c
}

func (d *convDecoder) bool() bool { return d.byte() == 1 }

func (d *convDecoder) string() string {
	n := d.uvarint()
	if d.err != nil || n == 0 {
		return ""
	}
	if n > 32 {
		b := make([]byte, n)
		_, d.err = io.ReadFull(d.r, b)
		return string(b)
	}
	if cap(d.scratch) < int(n) {
		d.scratch = make([]byte, 32)
	}
	b := d.scratch[:n]
	if _, d.err = io.ReadFull(d.r, b); d.err != nil {
		return ""
	}
	if s, ok := d.interned[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(d.interned) < 4096 {
		d.interned[s] = s
	}
	return s
}

func (d *convDecoder) strings() []string {
	n := d.uvarint()
	if n == 0 || d.err != nil {
		return nil
	}
	ss := make([]string, n)
	for i := range ss {
		ss[i] = d.string()
	}
	return ss
}

func (d *convDecoder) time() time.Time {
	sec, ns, off := d.varint(), d.uvarint(), d.varint()
	t := time.Unix(sec, int64(ns)).UTC()
	if off != 0 {
		t = t.In(time.FixedZone("", int(off)))
	}
	return t
}

func (d *convDecoder) timePtr() *time.Time {
	if !d.bool() {
		return nil
	}
	t := d.time()
	return &t
}

func (d *convDecoder) read(r *read) error {
	kind := d.byte()
	if kind == 1 {
		e := &stix.ObjectError{Source: d.string(), ID: d.string()}
		e.Index = int(d.uvarint())
		hasErr, msg := d.bool(), d.string()
		if hasErr {
			e.Err = errors.New(msg)
		}
		r.err = e
		return noEOF(d.err)
	}
	c := &r.c
	c.StixID = d.string()
	c.State = ObjectState(d.byte())
	c.evaluated, c.Compound = d.bool(), d.bool()
	c.validFrom, c.modified = d.time(), d.time()
	if n := d.uvarint(); n > 0 && d.err == nil {
		c.Skipped = make([]Skip, n)
		for i := range c.Skipped {
			c.Skipped[i] = Skip{StixID: d.string(), Reason: SkipReason(d.string()), Detail: d.string()}
		}
	}
	if n := d.uvarint(); n > 0 && d.err == nil {
		c.Indicators = make([]defender.Indicator, n)
		for i := range c.Indicators {
			d.indicator(&c.Indicators[i])
		}
	}
	c.keys, c.fps = d.strings(), d.strings()
	return noEOF(d.err)
}

func (d *convDecoder) indicator(ind *defender.Indicator) {
	// Skimming, the text only the payload needs is skipped: the planner's
	// pass reads what ranks and keys indicators, the payloads of those sent
	// or listed are read again (at).
	text := d.string
	if d.skim {
		text = d.skip
	}
	ind.ID, ind.IndicatorValue, ind.IndicatorType = d.string(), d.string(), defender.IndicatorType(d.string())
	ind.Action, ind.Application, ind.Title = d.string(), d.string(), text()
	ind.Description, ind.Severity, ind.RecommendedActions = text(), d.string(), text()
	ind.ExternalID, ind.CreatedByDisplayName, ind.CreatedBy, ind.SourceType = d.string(), text(), text(), text()
	groups := d.strings()
	if d.bool() && groups == nil {
		groups = []string{}
	}
	ind.RBACGroupNames = groups
	ind.GenerateAlert = d.bool()
	ind.ExpirationTime, ind.CreationTimeDateTimeUTC, ind.LastUpdateTime = d.timePtr(), d.timePtr(), d.timePtr()
}

// skip reads past a string.
func (d *convDecoder) skip() string {
	n := d.uvarint()
	if d.err == nil && n > 0 {
		var m int
		m, d.err = d.r.r.Discard(int(n))
		d.r.n += int64(m)
	}
	return ""
}
