package ioc

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/defenderbot/defenderbot/config"
	"github.com/defenderbot/defenderbot/store"
	"github.com/defenderbot/defenderbot/taxii"
	"github.com/defenderbot/defenderbot/taxii/taxiitest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const taxiiColl = "2c4f0b7e-5d1a-4f43-9a3e-0d2b8c6e7f10"

// taxiiObjects are the indicators of testdata/all_kinds.json followed by
// generated domains: every kind of pattern and skip, over several pages.
func taxiiObjects(t *testing.T, extra int) []json.RawMessage {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "all_kinds.json"))
	require.NoError(t, err)
	var bundle struct {
		Objects []json.RawMessage `json:"objects"`
	}
	require.NoError(t, json.Unmarshal(data, &bundle))
	var out []json.RawMessage
	for _, o := range bundle.Objects {
		var head struct{ Type string }
		require.NoError(t, json.Unmarshal(o, &head))
		if head.Type == "indicator" {
			out = append(out, o)
		}
	}
	for _, d := range domains(100, 100+extra) {
		out = append(out, objJSON(t, d))
	}
	return out
}

// objJSON renders a feedObj as writeFeed does.
func objJSON(t *testing.T, o feedObj) json.RawMessage {
	t.Helper()
	dir := t.TempDir()
	writeFeed(t, dir, []feedObj{o})
	data, err := os.ReadFile(filepath.Join(dir, "feed.json"))
	require.NoError(t, err)
	var arr []json.RawMessage
	require.NoError(t, json.Unmarshal(data, &arr))
	return arr[0]
}

func writeRaw(t *testing.T, path string, objs []json.RawMessage) {
	t.Helper()
	data, err := json.Marshal(objs)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, data, 0o600))
}

// taxiiServer serves objs in taxiiColl, pageSize per page, with Basic auth.
func taxiiServer(t *testing.T, pageSize int, objs []json.RawMessage) *taxiitest.Server {
	t.Helper()
	s := taxiitest.NewServer(t, taxiitest.WithMaxPageSize(pageSize), taxiitest.WithBasicAuth("soc", "taxii-pw-secret"))
	s.AddCollection(taxiiColl, "test")
	addObjects(t, s, objs...)
	return s
}

func addObjects(t *testing.T, s *taxiitest.Server, objs ...json.RawMessage) {
	t.Helper()
	for _, o := range objs {
		_, err := s.AddObjects(taxiiColl, o)
		require.NoError(t, err)
	}
}

func taxiiFeed(t *testing.T, s *taxiitest.Server, password string) *TAXIIFeed {
	t.Helper()
	tc := config.Default().IOCs.TAXII.Client()
	tc.APIRoot, tc.Username, tc.Password, tc.MaxRetries = s.APIRoot(), "soc", password, 2
	c, err := taxii.New(tc, taxii.WithSleeper(func(ctx context.Context, _ time.Duration) error { return ctx.Err() }))
	require.NoError(t, err)
	return &TAXIIFeed{Client: c, Collection: taxiiColl, PageSize: 1000}
}

func (h *emuHarness) syncer(t *testing.T, st StateStore, mod func(*Options)) *Syncer {
	t.Helper()
	o := Options{StixObjectsPath: h.path, Action: "Block", MaxObjectBytes: config.DefaultMaxObjectBytes, Mode: ModeIncremental, Patterns: PatternsAll, TenantLimit: config.DefaultTenantLimit, Severity: "High", GenerateAlert: true, MaxDeleteFraction: 0.2,
		Now: func() time.Time { return testNow }}
	if mod != nil {
		mod(&o)
	}
	if st == nil {
		st = h.st
	}
	s, err := NewSyncer(h.api, st, o, nil)
	require.NoError(t, err)
	return s
}

func withFeed(f Feed, mod func(*Options)) func(*Options) {
	return func(o *Options) {
		o.StixObjectsPath, o.Feed = "", f
		if mod != nil {
			mod(o)
		}
	}
}

func indicatorValues(h *emuHarness) []string {
	var out []string
	for _, i := range h.srv.Indicators() {
		out = append(out, i.IndicatorType+"|"+i.IndicatorValue)
	}
	sort.Strings(out)
	return out
}

func cursorOf(t *testing.T, st store.Store, f Feed) string {
	t.Helper()
	pos, err := st.FeedCursor(context.Background(), f.String())
	if notFound(err) {
		return ""
	}
	require.NoError(t, err)
	return pos
}

// TestTAXIIGivesTheSamePlanAsAFile: the same objects, from a file or from a
// collection read over several pages, give the same dry-run plan and the
// same sync.
func TestTAXIIGivesTheSamePlanAsAFile(t *testing.T) {
	objs := taxiiObjects(t, 40)
	srv := taxiiServer(t, 7, objs)

	file, remote := newEmuHarness(t), newEmuHarness(t)
	writeRaw(t, file.path, objs)
	feed := taxiiFeed(t, srv, "taxii-pw-secret")

	want, err := file.syncer(t, nil, nil).Plan(context.Background())
	require.NoError(t, err)
	got, err := remote.syncer(t, nil, withFeed(feed, nil)).Plan(context.Background())
	require.NoError(t, err)
	assert.Equal(t, want, got)
	assert.NotEmpty(t, got.Import)
	assert.NotEmpty(t, got.Skipped)
	pages := len(srv.ObjectRequests())
	assert.Equal(t, (len(objs)+6)/7, pages, "the collection is downloaded once per run")
	assert.Empty(t, cursorOf(t, remote.st, feed), "a dry run moves no position")

	wantRep, err := file.syncer(t, nil, nil).Run(context.Background(), "cli")
	require.NoError(t, err)
	gotRep, err := remote.syncer(t, nil, withFeed(feed, nil)).Run(context.Background(), "cli")
	require.NoError(t, err)
	for _, r := range []*Report{wantRep, gotRep} {
		r.StartedAt, r.Duration = time.Time{}, 0
	}
	assert.Equal(t, wantRep, gotRep)
	assert.Equal(t, indicatorValues(file), indicatorValues(remote))
	assert.NotEmpty(t, cursorOf(t, remote.st, feed))
}

// TestTAXIIIncrementalAsksForWhatWasAdded: the second run sends the first
// run's X-TAXII-Date-Added-Last as added_after and syncs only what came since.
func TestTAXIIIncrementalAsksForWhatWasAdded(t *testing.T) {
	srv := taxiiServer(t, 4, nil)
	addObjects(t, srv, objJSON(t, domainObj(1)), objJSON(t, domainObj(2)), objJSON(t, domainObj(3)))
	h := newEmuHarness(t)
	feed := taxiiFeed(t, srv, "taxii-pw-secret")

	rep, err := h.syncer(t, nil, withFeed(feed, nil)).Run(context.Background(), "cli")
	require.NoError(t, err)
	assert.Equal(t, 3, rep.Imported)
	first := cursorOf(t, h.st, feed)
	require.NotEmpty(t, first)
	for _, r := range srv.ObjectRequests() {
		q, _ := url.ParseQuery(r.RawQuery)
		assert.Empty(t, q.Get("added_after"))
		assert.Equal(t, "indicator", q.Get("match[type]"))
		assert.Equal(t, "1000", q.Get("limit"))
	}

	// A new indicator and a revocation of an old one arrive.
	revoked := domainObj(2)
	revoked.Revoked, revoked.Modified = true, testNow.Add(-time.Hour)
	last, err := srv.AddObjects(taxiiColl, objJSON(t, domainObj(4)), objJSON(t, revoked))
	require.NoError(t, err)
	before := len(srv.ObjectRequests())
	rep, err = h.syncer(t, nil, withFeed(feed, nil)).Run(context.Background(), "cli")
	require.NoError(t, err)
	assert.Equal(t, 1, rep.Imported)
	assert.Equal(t, 1, rep.Deleted)
	assert.Equal(t, 2, rep.Read, "only what was added after the first run")
	reqs := srv.ObjectRequests()[before:]
	require.NotEmpty(t, reqs)
	for _, r := range reqs {
		q, _ := url.ParseQuery(r.RawQuery)
		assert.Equal(t, first, q.Get("added_after"))
	}
	assert.Equal(t, last, cursorOf(t, h.st, feed))
	assert.Equal(t, []string{"DomainName|d1.example", "DomainName|d3.example", "DomainName|d4.example"}, indicatorValues(h))

	// Nothing new: {} from the server, no write, the position stays.
	h.srv.ResetRequests()
	rep, err = h.syncer(t, nil, withFeed(feed, nil)).Run(context.Background(), "cli")
	require.NoError(t, err)
	assert.Zero(t, rep.Read)
	imports, deletes := h.writes()
	assert.Zero(t, imports+deletes)
	assert.Equal(t, last, cursorOf(t, h.st, feed))
}

// TestTAXIISnapshotReadsTheWholeCollection: snapshot mode never sends
// added_after, and deletes what left the feed.
func TestTAXIISnapshotReadsTheWholeCollection(t *testing.T) {
	h := newEmuHarness(t)
	writeFeed(t, h.dir, domains(0, 5))
	_, err := h.syncer(t, nil, nil).Run(context.Background(), "cli")
	require.NoError(t, err)

	srv := taxiiServer(t, 2, nil)
	for _, d := range domains(0, 4) { // d4 left the feed
		addObjects(t, srv, objJSON(t, d))
	}
	feed := taxiiFeed(t, srv, "taxii-pw-secret")
	require.NoError(t, h.st.SetFeedCursor(context.Background(), feed.String(), "2099-01-01T00:00:00.000000Z", time.Time{}))

	rep, err := h.syncer(t, nil, withFeed(feed, func(o *Options) { o.Mode, o.MaxDeleteFraction = ModeSnapshot, 1 })).Run(context.Background(), "cli")
	require.NoError(t, err)
	assert.Equal(t, 4, rep.Read)
	assert.Equal(t, 1, rep.Deleted)
	assert.NotContains(t, indicatorValues(h), "DomainName|d4.example")
	for _, r := range srv.ObjectRequests() {
		q, _ := url.ParseQuery(r.RawQuery)
		assert.False(t, q.Has("added_after"), r.RawQuery)
	}
}

// TestTAXIIPartialReadDeletesNothing: a collection that cannot be read to
// its end (a page failing past the retries, or cut off every time) fails
// the run: nothing is deleted or imported and the position stays.
func TestTAXIIPartialReadDeletesNothing(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault taxiitest.Fault
	}{
		{"server error", taxiitest.Fault{Status: http.StatusInternalServerError}},
		{"throttled", taxiitest.Fault{Status: http.StatusTooManyRequests, RetryAfter: "1"}},
		{"cut off", taxiitest.Fault{CutOff: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newEmuHarness(t)
			srv := taxiiServer(t, 2, nil)
			for _, d := range domains(0, 6) {
				addObjects(t, srv, objJSON(t, d))
			}
			feed := taxiiFeed(t, srv, "taxii-pw-secret")
			snapshot := withFeed(feed, func(o *Options) { o.Mode, o.MaxDeleteFraction = ModeSnapshot, 1 })
			_, err := h.syncer(t, nil, snapshot).Run(context.Background(), "cli")
			require.NoError(t, err)
			pos := cursorOf(t, h.st, feed)
			before := indicatorValues(h)
			require.Len(t, before, 6)

			// Now only d0-d1 would be read whole: page 2 fails 3 times (the retries).
			h.srv.ResetRequests()
			srv.Inject(taxiitest.Fault{}, tc.fault, tc.fault, tc.fault)
			_, err = h.syncer(t, nil, snapshot).Run(context.Background(), "cli")
			require.Error(t, err)
			assert.Contains(t, err.Error(), srv.APIRoot()+"collections/"+taxiiColl+"/objects/")
			imports, deletes := h.writes()
			assert.Zero(t, imports+deletes, "nothing written")
			assert.Equal(t, before, indicatorValues(h))
			assert.Equal(t, pos, cursorOf(t, h.st, feed), "the position stays")
		})
	}
}

func TestTAXIIAuthenticationFailureEndsTheRun(t *testing.T) {
	h := newEmuHarness(t)
	srv := taxiiServer(t, 10, []json.RawMessage{objJSON(t, domainObj(1))})
	feed := taxiiFeed(t, srv, "wrong-pw-secret")
	rep, err := h.syncer(t, nil, withFeed(feed, nil)).Run(context.Background(), "cli")
	require.ErrorIs(t, err, taxii.ErrUnauthorized)
	assert.Contains(t, err.Error(), srv.APIRoot()+"collections/"+taxiiColl+"/objects/")
	assert.NotContains(t, err.Error(), "wrong-pw-secret")
	assert.NotContains(t, rep.Error, "wrong-pw-secret")
	assert.Len(t, srv.ObjectRequests(), 1, "a refusal is not retried")
	assert.Empty(t, h.srv.Indicators())

	feed = taxiiFeed(t, srv, "taxii-pw-secret")
	feed.Collection = "gone"
	_, err = h.syncer(t, nil, withFeed(feed, nil)).Run(context.Background(), "cli")
	require.ErrorIs(t, err, taxii.ErrNotFound)
}

// growingStore adds objects to the collection once the run has read it,
// when the records are listed.
type growingStore struct {
	store.Store
	onList func()
}

func (g *growingStore) ListIndicatorRecords(ctx context.Context) ([]store.IndicatorRecord, error) {
	if g.onList != nil {
		g.onList()
		g.onList = nil
	}
	return g.Store.ListIndicatorRecords(ctx)
}

// TestTAXIICollectionGrowingDuringARun: objects added after the run read the
// collection are left for the next run, which finds them after the position.
func TestTAXIICollectionGrowingDuringARun(t *testing.T) {
	h := newEmuHarness(t)
	srv := taxiiServer(t, 2, nil)
	for _, d := range domains(0, 3) {
		addObjects(t, srv, objJSON(t, d))
	}
	feed := taxiiFeed(t, srv, "taxii-pw-secret")
	st := &growingStore{Store: h.st, onList: func() { addObjects(t, srv, objJSON(t, domainObj(7))) }}
	rep, err := h.syncer(t, st, withFeed(feed, nil)).Run(context.Background(), "cli")
	require.NoError(t, err)
	assert.Equal(t, 3, rep.Imported)

	rep, err = h.syncer(t, nil, withFeed(feed, nil)).Run(context.Background(), "cli")
	require.NoError(t, err)
	assert.Equal(t, 1, rep.Read)
	assert.Equal(t, 1, rep.Imported)
	assert.Len(t, indicatorValues(h), 4)
}

func TestSyncerNeedsOneFeed(t *testing.T) {
	h := newHarness(t)
	srv := taxiiServer(t, 10, nil)
	_, err := NewSyncer(h.api, h.st, Options{StixObjectsPath: h.path, Feed: taxiiFeed(t, srv, "x"), Action: "Block"}, nil)
	require.ErrorIs(t, err, ErrInvalidOptions)
	// A state store that keeps no feed positions.
	_, err = NewSyncer(h.api, struct{ StateStore }{h.st}, Options{Feed: taxiiFeed(t, srv, "x"), Action: "Block"}, nil)
	require.ErrorContains(t, err, "cannot keep the position")
	var _ CursorStore = store.Store(nil)
}
