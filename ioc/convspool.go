package ioc

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"sync"
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
	atDec *convDecoder // at's
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
// Each record is its length and its bytes, so that the reads back take it
// whole from their buffer and decode it from memory.
func (s *convSpool) add(r *read) error {
	s.n++
	b := append(s.buf[:0], make([]byte, binary.MaxVarintLen64)...)
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
	body := len(b) - binary.MaxVarintLen64
	var head [binary.MaxVarintLen64]byte
	h := binary.PutUvarint(head[:], uint64(body))
	rec := b[binary.MaxVarintLen64-h:]
	copy(rec, head[:h])
	if _, err := s.w.Write(rec); err != nil {
		return fmt.Errorf("spool the feed to a temporary file: %w", err)
	}
	return nil
}

// records reads the spool's records in order from off.
type records struct {
	r       *bufio.Reader
	n       int64 // offset of the next record
	scratch []byte
}

func (s *convSpool) records(off int64, bufSize int) *records {
	return &records{r: bufio.NewReaderSize(io.NewSectionReader(s.file, off, math.MaxInt64), bufSize), n: off}
}

// next returns the next record's bytes (good until the next call) and its offset.
func (rs *records) next() ([]byte, int64, error) {
	off := rs.n
	size, err := binary.ReadUvarint(rs.r)
	if err != nil {
		return nil, off, noEOF(err)
	}
	head := int64(uvarintLen(size))
	if int(size) <= rs.r.Size() {
		b, err := rs.r.Peek(int(size))
		if err != nil {
			return nil, off, noEOF(err)
		}
		_, _ = rs.r.Discard(len(b)) // peeked: cannot fail
		rs.n += head + int64(size)
		return b, off, nil
	}
	if cap(rs.scratch) < int(size) {
		rs.scratch = make([]byte, size)
	}
	b := rs.scratch[:size]
	if _, err := io.ReadFull(rs.r, b); err != nil {
		return nil, off, noEOF(err)
	}
	rs.n += head + int64(size)
	return b, off, nil
}

// skipTo moves forward to the record at off.
func (rs *records) skipTo(off int64) error {
	if off < rs.n {
		return fmt.Errorf("record at %d is behind %d", off, rs.n)
	}
	n, err := rs.r.Discard(int(off - rs.n))
	rs.n += int64(n)
	return noEOF(err)
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// each calls fn with every object added, in order, and where its record
// starts (for at). The indicators come without their text (Title,
// Description and the like): at reads an object whole. The records are
// decoded on every core (workers, 0: runtime.GOMAXPROCS), fn gets them one
// at a time, in order.
func (s *convSpool) each(workers int, fn func(off int64, r *read) error) error {
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("spool the feed to a temporary file: %w", err)
	}
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	if workers == 1 {
		return s.eachSequential(fn)
	}
	free := make(chan []byte, 3*workers) // batch buffers, recycled
	work := make(chan *spoolBatch, workers)
	order := make(chan *spoolBatch, 2*workers)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(order)
		defer close(work)
		rs := s.records(0, 256<<10)
		for i := 0; i < s.n; {
			b := &spoolBatch{done: make(chan struct{})}
			select {
			case b.buf = <-free:
			default:
				b.buf = make([]byte, 0, spoolBatchBytes)
			}
			for ; i < s.n && len(b.buf) < spoolBatchBytes; i++ {
				rec, off, err := rs.next()
				if err != nil {
					b.err = err
					i = s.n
					break
				}
				b.buf = append(b.buf, rec...)
				b.ends, b.offs = append(b.ends, len(b.buf)), append(b.offs, off)
			}
			select {
			case order <- b:
			case <-stop:
				return
			}
			select {
			case work <- b:
			case <-stop:
				return
			}
		}
	}()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := &convDecoder{interned: map[string]string{}, skim: true}
			for b := range work {
				b.out = make([]read, len(b.ends))
				start := 0
				for j, end := range b.ends {
					if err := d.read(b.buf[start:end], &b.out[j]); err != nil {
						b.out, b.err = b.out[:j], err
						break
					}
					start = end
				}
				close(b.done)
			}
		}()
	}
	defer wg.Wait()
	defer close(stop)
	for b := range order {
		<-b.done
		for j := range b.out {
			if err := fn(b.offs[j], &b.out[j]); err != nil {
				return err
			}
		}
		if b.err != nil {
			return fmt.Errorf("read the spooled feed: %w", b.err)
		}
		select {
		case free <- b.buf[:0]: // decoded: nothing points into it
		default:
		}
	}
	return nil
}

// spoolBatchBytes is about how many bytes of records a worker of each
// decodes at a time.
const spoolBatchBytes = 128 << 10

// spoolBatch is a run of records on its way through each's workers.
type spoolBatch struct {
	buf  []byte
	ends []int   // end of each record in buf
	offs []int64 // its offset in the spool
	out  []read
	err  error
	done chan struct{}
}

func (s *convSpool) eachSequential(fn func(off int64, r *read) error) error {
	rs := s.records(0, 256<<10)
	d := &convDecoder{interned: map[string]string{}, skim: true}
	for range s.n {
		b, off, err := rs.next()
		if err != nil {
			return fmt.Errorf("read the spooled feed: %w", err)
		}
		var r read
		if err := d.read(b, &r); err != nil {
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
		s.atDec = &convDecoder{interned: map[string]string{}}
	}
	b, _, err := s.records(off, 4<<10).next()
	if err != nil {
		return nil, fmt.Errorf("read the spooled feed: %w", err)
	}
	var r read
	if err := s.atDec.read(b, &r); err != nil {
		return nil, fmt.Errorf("read the spooled feed: %w", err)
	}
	return &r, nil
}

// forward reads back records each gave, at increasing offsets, in one
// sequential pass over the spool (no seek, no small read per record).
type forward struct {
	rs   *records
	d    *convDecoder
	last int64 // offset of the record in r, -1: none
	r    read
}

// forward returns a reader of records in offset order; skim as each.
func (s *convSpool) forward(skim bool) (*forward, error) {
	if err := s.w.Flush(); err != nil {
		return nil, fmt.Errorf("spool the feed to a temporary file: %w", err)
	}
	return &forward{rs: s.records(0, 256<<10), d: &convDecoder{interned: map[string]string{}, skim: skim}, last: -1}, nil
}

// at reads the record at off, which is not before the last one read.
func (f *forward) at(off int64) (*read, error) {
	if off == f.last {
		return &f.r, nil
	}
	f.last = -1
	if err := f.rs.skipTo(off); err != nil {
		return nil, fmt.Errorf("read the spooled feed: %w", err)
	}
	b, _, err := f.rs.next()
	if err != nil {
		return nil, fmt.Errorf("read the spooled feed: %w", err)
	}
	f.r = read{}
	if err := f.d.read(b, &f.r); err != nil {
		return nil, fmt.Errorf("read the spooled feed: %w", err)
	}
	f.last = off
	return &f.r, nil
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

// convDecoder reads what convSpool wrote, one record's bytes at a time.
// Short strings that recur (types, actions, severities, reasons) are
// shared rather than allocated again.
type convDecoder struct {
	b        []byte
	p        int
	skim     bool // skip the indicators' text (each)
	interned map[string]string
	err      error
	// Skimming, the slices of the conversions are cut from chunks (a few
	// hundred records' worth): the planner's pass reads every record and
	// keeps none of them, so one allocation serves many.
	inds []defender.Indicator
	strs []string
}

// carve hands out n elements of *pool, refilled by chunks of at least 256.
func carve[T any](pool *[]T, n int) []T {
	if len(*pool) < n {
		*pool = make([]T, max(n, 256))
	}
	s := (*pool)[:n:n]
	*pool = (*pool)[n:]
	return s
}

var errShortRecord = errors.New("record cut short")

func (d *convDecoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.p:])
	if n <= 0 {
		d.err = errShortRecord
		return 0
	}
	d.p += n
	return v
}

func (d *convDecoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b[d.p:])
	if n <= 0 {
		d.err = errShortRecord
		return 0
	}
	d.p += n
	return v
}

func (d *convDecoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if d.p >= len(d.b) {
		d.err = errShortRecord
		return 0
	}
	c := d.b[d.p]
	d.p++
	return c
}

func (d *convDecoder) bool() bool { return d.byte() == 1 }

// bytes is the next n bytes of the record.
func (d *convDecoder) bytes(n uint64) []byte {
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)-d.p) {
		d.err = errShortRecord
		return nil
	}
	b := d.b[d.p : d.p+int(n)]
	d.p += int(n)
	return b
}

func (d *convDecoder) string() string {
	n := d.uvarint()
	b := d.bytes(n)
	if d.err != nil || n == 0 {
		return ""
	}
	if n > 32 {
		return string(b)
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

// count reads the length of a list whose items take a byte at least.
func (d *convDecoder) count() uint64 {
	n := d.uvarint()
	if n > uint64(len(d.b)-d.p) {
		d.err = errShortRecord
		return 0
	}
	return n
}

func (d *convDecoder) strings() []string {
	n := d.count()
	if n == 0 {
		return nil
	}
	var ss []string
	if d.skim {
		ss = carve(&d.strs, int(n))
	} else {
		ss = make([]string, n)
	}
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

func (d *convDecoder) read(b []byte, r *read) error {
	d.b, d.p, d.err = b, 0, nil
	kind := d.byte()
	if kind == 1 {
		e := &stix.ObjectError{Source: d.string(), ID: d.string()}
		e.Index = int(d.uvarint())
		hasErr, msg := d.bool(), d.string()
		if hasErr {
			e.Err = errors.New(msg)
		}
		r.err = e
		return d.err
	}
	c := &r.c
	c.StixID = d.string()
	c.State = ObjectState(d.byte())
	c.evaluated, c.Compound = d.bool(), d.bool()
	c.validFrom, c.modified = d.time(), d.time()
	if n := d.count(); n > 0 {
		c.Skipped = make([]Skip, n)
		for i := range c.Skipped {
			c.Skipped[i] = Skip{StixID: d.string(), Reason: SkipReason(d.string()), Detail: d.string()}
		}
	}
	if n := d.count(); n > 0 {
		if d.skim {
			c.Indicators = carve(&d.inds, int(n))
		} else {
			c.Indicators = make([]defender.Indicator, n)
		}
		for i := range c.Indicators {
			d.indicator(&c.Indicators[i])
		}
	}
	c.keys, c.fps = d.strings(), d.strings()
	return d.err
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
	d.bytes(d.uvarint())
	return ""
}
