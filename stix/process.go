package stix

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
)

// ReadOptions tune the reading of a feed.
type ReadOptions struct {
	// MaxObjectBytes caps the size of one object (required: config.DefaultMaxObjectBytes). A larger object is
	// reported as unreadable (ErrObjectTooLarge) and skipped without being held in memory.
	MaxObjectBytes int
	// Workers is the number of goroutines that decode objects and run the work function
	// (0: runtime.GOMAXPROCS).
	Workers int
	// SkipText leaves Name and Description empty: they are checked (a wrong JSON type still makes
	// the object unreadable) but not decoded, for a reader that does not use them.
	SkipText bool
}

// check names a missing option.
func (o ReadOptions) check() error {
	if o.MaxObjectBytes <= 0 {
		return errors.New("stix: ReadOptions.MaxObjectBytes must be positive")
	}
	return nil
}

// Process reads the feed under path as ReadFeed does, calls work for every object (or object error)
// on opts.Workers goroutines at once, and calls visit with the results one at a time, in feed order.
// work must be safe for concurrent use; visit is never called concurrently. Memory is bounded by a few
// blocks of the stream per worker, whatever the size of the feed.
func Process[T any](ctx context.Context, path string, opts ReadOptions, work func(*Object, *ObjectError) T, visit func(T) error) error {
	if err := opts.check(); err != nil {
		return err
	}
	files, err := FeedFiles(path)
	if err != nil {
		return err
	}
	for _, f := range files {
		if err := processFile(ctx, f, opts, work, visit); err != nil {
			return err
		}
	}
	return nil
}

func processFile[T any](ctx context.Context, path string, opts ReadOptions, work func(*Object, *ObjectError) T, visit func(T) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("stix feed: %w", err)
	}
	defer f.Close() //nolint:errcheck // read-only
	return ProcessFrom(ctx, f, path, opts, work, visit)
}

// ProcessFrom is Process over one stream (a file, a page of a TAXII collection); source names it in
// Object.Source and ObjectError.Source.
func ProcessFrom[T any](ctx context.Context, r io.Reader, source string, opts ReadOptions, work func(*Object, *ObjectError) T, visit func(T) error) error {
	if err := opts.check(); err != nil {
		return err
	}
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	p := &pipeline[T]{ctx: ctx, source: source, max: opts.MaxObjectBytes, skipText: opts.SkipText, work: work, visit: visit}
	if opts.Workers == 1 {
		return p.sequential(r)
	}
	return p.parallel(r, opts.Workers)
}

// blockPool recycles the blocks the stream is read into.
var blockPool = sync.Pool{New: func() any { b := make([]byte, blockSize); return &b }}

func allocBlock(n int) []byte {
	if n == blockSize {
		if b := *(blockPool.Get().(*[]byte)); len(b) == n {
			return b
		}
	}
	return make([]byte, n)
}

func freeBlock(b []byte) {
	if len(b) == blockSize {
		blockPool.Put(&b)
	}
}

type pipeline[T any] struct {
	ctx      context.Context
	source   string
	max      int
	skipText bool
	work     func(*Object, *ObjectError) T
	visit    func(T) error
}

// result is one item's outcome.
type result[T any] struct {
	v    T
	stop bool  // the source ends here (broken: v is its error's result)
	err  error // the feed read fails here (I/O)
}

// decode turns an item into its result; d is the worker's scratch decoder.
func (p *pipeline[T]) decode(b *block, it *item, d *decoder) result[T] {
	oerr := func(id string, err error) result[T] {
		return result[T]{v: p.work(nil, &ObjectError{Source: p.source, Index: it.index, ID: id, Err: err})}
	}
	switch it.kind {
	case itemObject:
		raw := it.raw
		if raw == nil {
			raw = b.buf[it.start:it.end]
		}
		w, serr, terr := decodeObject(raw, d)
		if serr != nil {
			off := it.base + int64(serr.off)
			if it.afterComma {
				off--
			}
			r := oerr("", fmt.Errorf("%w: bad JSON at byte %d: %s", ErrBrokenSource, off, serr.msg))
			r.stop = true
			return r
		}
		if terr != nil {
			id := ""
			if w != nil {
				id = w.ID
			}
			return oerr(id, terr)
		}
		if w == nil {
			return oerr("", errors.New("object is null"))
		}
		o, err := w.object()
		if err != nil {
			return oerr(w.ID, err)
		}
		o.Source, o.Index = p.source, it.index
		return result[T]{v: p.work(o, nil)}
	case itemOversize:
		return oerr(partialID(it.raw, d), tooLargeError{size: it.size, max: p.max})
	case itemError:
		return oerr("", it.err)
	case itemBroken:
		r := oerr("", fmt.Errorf("%w: %w", ErrBrokenSource, it.err))
		r.stop = true
		return r
	}
	return result[T]{stop: true, err: fmt.Errorf("stix feed %s: read: %w", p.source, it.err)}
}

// deliver passes one result on; it returns false when reading must stop, with the error to return.
func (p *pipeline[T]) deliver(r result[T]) (bool, error) {
	if r.err != nil {
		return false, r.err
	}
	if !r.stop {
		if err := p.ctx.Err(); err != nil {
			return false, err
		}
	}
	if err := p.visit(r.v); err != nil {
		return false, err
	}
	return !r.stop, nil
}

func (p *pipeline[T]) sequential(r io.Reader) error {
	d := decoder{skipText: p.skipText}
	var err error
	sc := newScanner(r, p.max, allocBlock, func(b *block) bool {
		defer freeBlock(b.buf)
		for i := range b.items {
			more, e := p.deliver(p.decode(b, &b.items[i], &d))
			if !more {
				err = e
				return false
			}
		}
		return true
	})
	sc.run()
	return err
}

// job is a block on its way through the workers.
type job[T any] struct {
	blk  *block
	out  []result[T]
	done chan struct{}
}

// parallel runs the scanner on one goroutine, decoding and work on n workers, and delivers the
// results here in order. At most 2n blocks are in flight.
func (p *pipeline[T]) parallel(r io.Reader, n int) error {
	work := make(chan *job[T], n)
	order := make(chan *job[T], 2*n)
	stop := make(chan struct{})
	go func() {
		defer close(order)
		defer close(work)
		sc := newScanner(r, p.max, allocBlock, func(b *block) bool {
			j := &job[T]{blk: b, done: make(chan struct{})}
			select {
			case order <- j:
			case <-stop:
				return false
			}
			select {
			case work <- j:
				return true
			case <-stop:
				close(j.done)
				return false
			}
		})
		sc.run()
	}()
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := decoder{skipText: p.skipText}
			for j := range work {
				j.out = make([]result[T], len(j.blk.items))
				for i := range j.blk.items {
					j.out[i] = p.decode(j.blk, &j.blk.items[i], &d)
					if j.out[i].stop {
						j.out = j.out[:i+1]
						break
					}
				}
				close(j.done)
			}
		}()
	}
	defer wg.Wait()
	var err error
	running := true
	for j := range order {
		<-j.done
		if running {
			for _, res := range j.out {
				var more bool
				if more, err = p.deliver(res); !more {
					running = false
					close(stop)
					break
				}
			}
		}
		freeBlock(j.blk.buf)
	}
	return err
}
