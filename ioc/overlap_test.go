package ioc

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// gatedFeed is a file feed whose read starts only once gate is closed (or
// gives up after a while), and records whether its read was cancelled.
type gatedFeed struct {
	FileFeed
	gate      chan struct{}
	cancelled chan struct{}
}

func (f *gatedFeed) Streams(ctx context.Context, after string, fn func(string, io.Reader) error) (string, error) {
	select {
	case <-f.gate:
	case <-ctx.Done():
		close(f.cancelled)
		return "", ctx.Err()
	case <-time.After(5 * time.Second):
		return "", errors.New("gatedFeed: the gate never opened")
	}
	return f.FileFeed.Streams(ctx, after, fn)
}

// TestTenantListedWhileTheFeedIsRead: Defender's listing does not wait for
// the feed's read (a large tenant's listing takes about as long as a large
// feed's read): here the read waits for the listing to start, which a run
// listing only after the read never does.
func TestTenantListedWhileTheFeedIsRead(t *testing.T) {
	h := newHarness(t)
	writeFeed(t, h.dir, domains(0, 3))
	feed := &gatedFeed{FileFeed: FileFeed{Path: h.path}, gate: make(chan struct{}), cancelled: make(chan struct{})}
	h.api.listHook = func(context.Context) error { close(feed.gate); return nil }
	rep := h.run(t, withFeed(feed, nil))
	assert.Equal(t, 3, rep.Imported)
	assert.Equal(t, 1, h.api.lists)
}

// TestListingFailureStopsTheRead: when Defender cannot be listed the run
// fails with that error at once, not after reading the whole feed, and
// sends nothing.
func TestListingFailureStopsTheRead(t *testing.T) {
	h := newHarness(t)
	writeFeed(t, h.dir, domains(0, 3))
	feed := &gatedFeed{FileFeed: FileFeed{Path: h.path}, gate: make(chan struct{}), cancelled: make(chan struct{})}
	listErr := errors.New("defender: 503 Service Unavailable")
	h.api.listHook = func(context.Context) error { return listErr }
	_, err := h.syncer(t, withFeed(feed, nil)).Run(context.Background(), "cli")
	require.ErrorIs(t, err, listErr)
	assert.ErrorContains(t, err, "list Defender indicators")
	assert.NotContains(t, err.Error(), "read STIX feed", "the read's cancellation is not the cause")
	select {
	case <-feed.cancelled:
	default:
		t.Fatal("the feed's read was not cancelled")
	}
	assert.Empty(t, h.api.imports)
}

// TestReadFailureStopsTheListing: a feed that cannot be read ends the run
// with the read's error, and the listing under way is cancelled and waited
// for (nothing of the run goes on after it returns).
func TestReadFailureStopsTheListing(t *testing.T) {
	h := newHarness(t)
	h.path = filepath.Join(h.dir, "missing.json")
	listed := make(chan error, 1)
	h.api.listHook = func(ctx context.Context) error {
		select {
		case <-ctx.Done():
			listed <- ctx.Err()
		case <-time.After(5 * time.Second):
			listed <- errors.New("never cancelled")
		}
		return ctx.Err()
	}
	_, err := h.syncer(t, nil).Run(context.Background(), "cli")
	require.ErrorContains(t, err, "read STIX feed")
	select {
	case lerr := <-listed:
		assert.ErrorIs(t, lerr, context.Canceled)
	default:
		t.Fatal("the run returned before its listing ended")
	}
	assert.Empty(t, h.api.imports)
}
