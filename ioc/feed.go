package ioc

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/defenderbot/defenderbot/stix"
	"github.com/defenderbot/defenderbot/taxii"
)

// Feed is where a sync reads its STIX objects from: a file or directory
// (FileFeed) or a TAXII 2.1 collection (TAXIIFeed). Either way each stream
// goes through the same STIX reader and planner.
type Feed interface {
	// String names the feed in messages, and keys its position in the store.
	String() string
	// Positioned reports whether the feed has a position a later run can
	// resume after (a TAXII collection, whose objects come in date_added
	// order, new ones at the end).
	Positioned() bool
	// Streams calls fn with each stream of STIX objects in feed order (a
	// file, a page), named for messages, from after the position after
	// ("": the start). It returns the position reached ("" for a feed
	// without one), or an error, fn's unchanged: then the feed was not
	// read whole.
	Streams(ctx context.Context, after string, fn func(name string, r io.Reader) error) (string, error)
}

// CursorStore keeps the position of positioned feeds; *store.Store
// satisfies it. A Syncer on a positioned feed needs its StateStore to.
type CursorStore interface {
	FeedCursor(ctx context.Context, feed string) (string, error)
	SetFeedCursor(ctx context.Context, feed, position string, at time.Time) error
}

// FileFeed reads a file or directory as stix.Process does.
type FileFeed struct{ Path string }

func (f FileFeed) String() string { return f.Path }

// Positioned is false: a file is read whole every time.
func (f FileFeed) Positioned() bool { return false }

// Streams opens each file of the feed in turn.
func (f FileFeed) Streams(ctx context.Context, _ string, fn func(string, io.Reader) error) (string, error) {
	files, err := stix.FeedFiles(f.Path)
	if err != nil {
		return "", err
	}
	for _, name := range files {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		if err := readFile(name, fn); err != nil {
			return "", err
		}
	}
	return "", nil
}

func readFile(name string, fn func(string, io.Reader) error) error {
	fh, err := os.Open(name)
	if err != nil {
		return fmt.Errorf("stix feed: %w", err)
	}
	defer fh.Close() //nolint:errcheck // read-only
	return fn(name, fh)
}

// TAXIIFeed reads the indicators of a TAXII 2.1 collection, a page at a
// time; its position is the X-TAXII-Date-Added-Last reached.
type TAXIIFeed struct {
	Client     *taxii.Client
	Collection string
	// PageSize is the limit asked per page (config: iocs.taxii.page_size).
	PageSize int
}

func (f *TAXIIFeed) String() string {
	return "TAXII collection " + f.Collection + " at " + f.Client.APIRoot()
}

// Positioned is true: an incremental run asks for what was added after
// the last complete run.
func (f *TAXIIFeed) Positioned() bool { return true }

// Streams hands on each page's objects.
func (f *TAXIIFeed) Streams(ctx context.Context, after string, fn func(string, io.Reader) error) (string, error) {
	res, err := f.Client.Objects(ctx, f.Collection, taxii.ObjectsOptions{Types: []string{"indicator"}, AddedAfter: after, Limit: f.PageSize},
		func(p *taxii.Page) error {
			return fn(fmt.Sprintf("%s page %d", f.Collection, p.Number), p.Objects)
		})
	if err != nil {
		return "", err
	}
	return res.DateAddedLast, nil
}

// readFeed reads feed from after as stix.Process reads a file: work runs
// on every core, visit gets the results one at a time, in feed order. It
// returns the position reached.
func readFeed[T any](ctx context.Context, feed Feed, after string, opts stix.ReadOptions,
	work func(*stix.Object, *stix.ObjectError) T, visit func(T) error) (string, error) {
	return feed.Streams(ctx, after, func(name string, r io.Reader) error {
		return stix.ProcessFrom(ctx, r, name, opts, work, visit)
	})
}

// feedBytes sizes the sketch: a file's size, or a
// guess for a collection (its size is unknown until read).
func feedBytes(feed Feed) int64 {
	if f, ok := feed.(FileFeed); ok {
		return feedSize(f.Path)
	}
	return 64 << 20
}
