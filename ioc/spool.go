package ioc

import (
	"bufio"
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
)

// spool keeps a list that can be as long as the feed (the skips and the
// left-out indicators a dry run lists) without holding it: up to spoolMem
// items in memory, the rest in a temporary file, written in runs that are
// sorted when the list is ordered (cmp), and merged when read back.
type spool[T any] struct {
	cmp  func(a, b T) int // nil: insertion order
	enc  func([]byte, T) []byte
	dec  func(*bufio.Reader) (T, error)
	mem  []T
	file *os.File
	w    *bufio.Writer
	runs []spoolRun
	off  int64
	n    int
	err  error
	// A run is sorted and written by a goroutine of its own while the
	// planner goes on (one at a time: writing waits for the run before);
	// spare is the buffer it gives back.
	writing chan struct{}
	spare   []T
}

type spoolRun struct{ off, size int64 }

// spoolMem is how many items a spool holds before it writes a run: a few
// MB at most, and few enough runs to merge (a million items: 250 runs).
var spoolMem = 4 << 10

func newSpool[T any](cmp func(a, b T) int, enc func([]byte, T) []byte, dec func(*bufio.Reader) (T, error)) *spool[T] {
	return &spool[T]{cmp: cmp, enc: enc, dec: dec}
}

func (s *spool[T]) len() int {
	if s == nil {
		return 0
	}
	return s.n
}

func (s *spool[T]) add(v T) {
	s.n++
	s.mem = append(s.mem, v)
	if len(s.mem) >= spoolMem {
		s.flush()
	}
}

// flush hands the items in memory over to be written as one run.
func (s *spool[T]) flush() {
	s.wait()
	if s.err != nil || len(s.mem) == 0 {
		s.mem = s.mem[:0]
		return
	}
	mem := s.mem
	s.mem, s.spare = s.spare[:0], nil
	done := make(chan struct{})
	s.writing = done
	go func() {
		defer close(done)
		s.writeRun(mem)
		clear(mem)
		s.spare = mem
	}()
}

// wait waits for the run being written, if any.
func (s *spool[T]) wait() {
	if s.writing != nil {
		<-s.writing
		s.writing = nil
	}
}

// writeRun writes mem, sorted when the list is ordered, as one run.
func (s *spool[T]) writeRun(mem []T) {
	if s.file == nil {
		f, err := os.CreateTemp("", "defenderbot-plan-*")
		if err != nil {
			s.err = fmt.Errorf("spool the plan to a temporary file: %w", err)
			return
		}
		_ = os.Remove(f.Name()) // unlinked: gone with the process, whatever happens
		s.file, s.w = f, bufio.NewWriterSize(f, 64<<10)
	}
	if s.cmp != nil {
		slices.SortFunc(mem, s.cmp)
	}
	start := s.off
	var buf []byte
	for _, v := range mem {
		buf = s.enc(buf[:0], v)
		n, err := s.w.Write(buf)
		s.off += int64(n)
		if err != nil {
			s.err = fmt.Errorf("spool the plan to a temporary file: %w", err)
			return
		}
	}
	if err := s.w.Flush(); err != nil {
		s.err = fmt.Errorf("spool the plan to a temporary file: %w", err)
		return
	}
	s.runs = append(s.runs, spoolRun{start, s.off - start})
}

// each calls fn with every item, in order (sorted by cmp, else as added).
func (s *spool[T]) each(fn func(T) error) error {
	if s == nil {
		return nil
	}
	s.wait()
	if s.err != nil {
		return s.err
	}
	if s.cmp != nil {
		slices.SortFunc(s.mem, s.cmp)
	}
	if len(s.runs) == 0 {
		for _, v := range s.mem {
			if err := fn(v); err != nil {
				return err
			}
		}
		return nil
	}
	if s.cmp == nil {
		for _, r := range s.runs {
			br := bufio.NewReaderSize(io.NewSectionReader(s.file, r.off, r.size), 64<<10)
			for {
				v, err := s.dec(br)
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					return fmt.Errorf("read the spooled plan: %w", err)
				}
				if err := fn(v); err != nil {
					return err
				}
			}
		}
		for _, v := range s.mem {
			if err := fn(v); err != nil {
				return err
			}
		}
		return nil
	}
	// Merge the sorted runs and the sorted items in memory.
	h := &mergeHeap[T]{cmp: s.cmp}
	for _, r := range s.runs {
		br := bufio.NewReaderSize(io.NewSectionReader(s.file, r.off, r.size), 16<<10)
		v, err := s.dec(br)
		if err != nil {
			return fmt.Errorf("read the spooled plan: %w", err)
		}
		h.items = append(h.items, mergeItem[T]{v: v, r: br})
	}
	mem := 0
	if len(s.mem) > 0 {
		h.items = append(h.items, mergeItem[T]{v: s.mem[0], mem: true})
		mem = 1
	}
	heap.Init(h)
	for h.Len() > 0 {
		top := &h.items[0]
		if err := fn(top.v); err != nil {
			return err
		}
		if top.mem {
			if mem < len(s.mem) {
				top.v = s.mem[mem]
				mem++
				heap.Fix(h, 0)
			} else {
				heap.Pop(h)
			}
			continue
		}
		v, err := s.dec(top.r)
		switch {
		case errors.Is(err, io.EOF):
			heap.Pop(h)
		case err != nil:
			return fmt.Errorf("read the spooled plan: %w", err)
		default:
			top.v = v
			heap.Fix(h, 0)
		}
	}
	return nil
}

func (s *spool[T]) close() {
	if s != nil {
		s.wait()
	}
	if s != nil && s.file != nil {
		_ = s.file.Close()
		s.file = nil
	}
}

type mergeItem[T any] struct {
	v   T
	r   *bufio.Reader
	mem bool
}

type mergeHeap[T any] struct {
	items []mergeItem[T]
	cmp   func(a, b T) int
}

func (h *mergeHeap[T]) Len() int           { return len(h.items) }
func (h *mergeHeap[T]) Less(i, j int) bool { return h.cmp(h.items[i].v, h.items[j].v) < 0 }
func (h *mergeHeap[T]) Swap(i, j int)      { h.items[i], h.items[j] = h.items[j], h.items[i] }
func (h *mergeHeap[T]) Push(x any)         { h.items = append(h.items, x.(mergeItem[T])) }
func (h *mergeHeap[T]) Pop() any {
	old := h.items
	x := old[len(old)-1]
	h.items = old[:len(old)-1]
	return x
}

// Encodings of the spooled items: length-prefixed strings, times as
// seconds and nanoseconds.

func putString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func getString(r *bufio.Reader) (string, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return "", err
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", noEOF(err)
	}
	return string(b), nil
}

// noEOF turns an end of file inside an item into an error.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

func encSkip(b []byte, s Skip) []byte {
	return putString(putString(putString(b, s.StixID), string(s.Reason)), s.Detail)
}

func decSkip(r *bufio.Reader) (Skip, error) {
	id, err := getString(r)
	if err != nil {
		return Skip{}, err
	}
	reason, err := getString(r)
	if err != nil {
		return Skip{}, noEOF(err)
	}
	detail, err := getString(r)
	return Skip{StixID: id, Reason: SkipReason(reason), Detail: detail}, noEOF(err)
}

func encKeyedSkip(b []byte, s keyedSkip) []byte { return encSkip(putString(b, s.key), s.skip) }

func decKeyedSkip(r *bufio.Reader) (keyedSkip, error) {
	k, err := getString(r)
	if err != nil {
		return keyedSkip{}, err
	}
	s, err := decSkip(r)
	return keyedSkip{key: k, skip: s}, noEOF(err)
}

// Left-out indicators keep only what ranks them.
func encLeftOut(b []byte, e ranked) []byte {
	b = append(putString(b, e.key), byte(e.severity))
	b = binary.AppendVarint(b, e.validFrom.sec)
	b = binary.AppendVarint(b, int64(e.validFrom.nsec))
	b = binary.AppendVarint(b, e.modified.sec)
	return binary.AppendVarint(b, int64(e.modified.nsec))
}

func decLeftOut(r *bufio.Reader) (ranked, error) {
	k, err := getString(r)
	if err != nil {
		return ranked{}, err
	}
	e := ranked{key: k}
	sev, err := r.ReadByte()
	if err != nil {
		return ranked{}, noEOF(err)
	}
	e.severity = int8(sev)
	var v [4]int64
	for i := range v {
		if v[i], err = binary.ReadVarint(r); err != nil {
			return ranked{}, noEOF(err)
		}
	}
	e.validFrom, e.modified = instant{v[0], int32(v[1])}, instant{v[2], int32(v[3])}
	return e, nil
}

func byKeyedSkip(a, b keyedSkip) int {
	if a.key < b.key {
		return -1
	}
	if a.key > b.key {
		return 1
	}
	return 0
}
