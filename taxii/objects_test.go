package taxii_test

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/defenderbot/defenderbot/config"
	"github.com/defenderbot/defenderbot/taxii"
	"github.com/defenderbot/defenderbot/taxii/taxiitest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const coll = "91a7b528-80eb-42ed-a74d-c6fbd5a26116"

// sleeps records the client's waits instead of sleeping.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.d = append(s.d, d)
	return ctx.Err()
}

func (s *sleeps) all() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.d...)
}

func indicator(n int) []byte {
	return fmt.Appendf(nil, `{"type":"indicator","spec_version":"2.1","id":"indicator--00000000-0000-4000-8000-%012d","modified":"2026-01-01T00:00:00.000Z","pattern":"[ipv4-addr:value = '10.0.0.%d']","pattern_type":"stix","valid_from":"2026-01-01T00:00:00Z"}`, n, n%256)
}

func idOf(n int) string { return fmt.Sprintf("indicator--00000000-0000-4000-8000-%012d", n) }

// seed adds n indicators (and one identity, which match[type] filters out)
// one second apart from base and returns their date_added stamps.
func seed(t *testing.T, s *taxiitest.Server, n int) []string {
	t.Helper()
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	_, err := s.AddObjectsAt(coll, base, []byte(`{"type":"identity","id":"identity--00000000-0000-4000-8000-000000000000","name":"x"}`))
	require.NoError(t, err)
	var stamps []string
	for i := 1; i <= n; i++ {
		d, err := s.AddObjectsAt(coll, base.Add(time.Duration(i)*time.Second), indicator(i))
		require.NoError(t, err)
		stamps = append(stamps, d)
	}
	return stamps
}

// limits gives cfg config's timings where it leaves them unset (retries:
// config's too, unless set).
func limits(cfg taxii.Config) taxii.Config {
	cfg.Timeout = cmp.Or(cfg.Timeout, config.TAXIITimeout)
	cfg.MaxRetries = cmp.Or(cfg.MaxRetries, config.TAXIIMaxRetries)
	cfg.MaxWait = cmp.Or(cfg.MaxWait, config.TAXIIMaxWait)
	cfg.MaxPageBytes = cmp.Or(cfg.MaxPageBytes, config.TAXIIMaxPageBytes)
	return cfg
}

func newClient(t *testing.T, s *taxiitest.Server, cfg taxii.Config, opts ...taxii.Option) (*taxii.Client, *sleeps) {
	t.Helper()
	sl := &sleeps{}
	cfg = limits(cfg)
	cfg.APIRoot = s.APIRoot()
	c, err := taxii.New(cfg, append([]taxii.Option{taxii.WithSleeper(sl.sleep)}, opts...)...)
	require.NoError(t, err)
	return c, sl
}

// readAll returns the ids of every object the read hands on, page by page.
func readAll(t *testing.T, c *taxii.Client, opts taxii.ObjectsOptions) ([][]string, taxii.Result, error) {
	t.Helper()
	opts.Limit = cmp.Or(opts.Limit, 1000)
	var pages [][]string
	res, err := c.Objects(t.Context(), coll, opts, func(p *taxii.Page) error {
		var objs []struct {
			ID string `json:"id"`
		}
		if err := json.NewDecoder(p.Objects).Decode(&objs); err != nil {
			return err
		}
		ids := make([]string, len(objs))
		for i, o := range objs {
			ids[i] = o.ID
		}
		pages = append(pages, ids)
		return nil
	})
	return pages, res, err
}

func flat(pages [][]string) []string {
	var out []string
	for _, p := range pages {
		out = append(out, p...)
	}
	return out
}

func ids(from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, idOf(i))
	}
	return out
}

func TestObjectsFollowsNextToTheEnd(t *testing.T) {
	s := taxiitest.NewServer(t)
	stamps := seed(t, s, 25)
	c, _ := newClient(t, s, taxii.Config{})

	pages, res, err := readAll(t, c, taxii.ObjectsOptions{Types: []string{"indicator"}, Limit: 10})
	require.NoError(t, err)
	assert.Equal(t, []int{10, 10, 5}, []int{len(pages[0]), len(pages[1]), len(pages[2])})
	assert.Equal(t, ids(1, 25), flat(pages))
	assert.Equal(t, taxii.Result{Pages: 3, DateAddedLast: stamps[24]}, res)

	reqs := s.ObjectRequests()
	require.Len(t, reqs, 3)
	for i, r := range reqs {
		assert.Equal(t, "/api1/collections/"+coll+"/objects/", r.Path)
		assert.Equal(t, taxii.MediaType, r.Accept)
		q, err := url.ParseQuery(r.RawQuery)
		require.NoError(t, err)
		assert.Equal(t, "indicator", q.Get("match[type]"))
		assert.Equal(t, "10", q.Get("limit"))
		assert.Empty(t, q.Get("added_after"))
		assert.Equal(t, i > 0, q.Has("next"), "request %d", i)
	}
}

func TestObjectsWithoutNextCarriesOnAfterDateAddedLast(t *testing.T) {
	s := taxiitest.NewServer(t, taxiitest.WithoutNext())
	stamps := seed(t, s, 12)
	c, _ := newClient(t, s, taxii.Config{})

	pages, res, err := readAll(t, c, taxii.ObjectsOptions{Types: []string{"indicator"}, Limit: 5})
	require.NoError(t, err)
	assert.Equal(t, ids(1, 12), flat(pages))
	assert.Equal(t, stamps[11], res.DateAddedLast)
	reqs := s.ObjectRequests()
	require.Len(t, reqs, 3)
	q, _ := url.ParseQuery(reqs[1].RawQuery)
	assert.Equal(t, stamps[4], q.Get("added_after"))
}

func TestObjectsAddedAfterIsExclusive(t *testing.T) {
	s := taxiitest.NewServer(t)
	stamps := seed(t, s, 20)
	c, _ := newClient(t, s, taxii.Config{})

	pages, res, err := readAll(t, c, taxii.ObjectsOptions{Types: []string{"indicator"}, AddedAfter: stamps[9], Limit: 100})
	require.NoError(t, err)
	assert.Equal(t, ids(11, 20), flat(pages))
	assert.Equal(t, stamps[19], res.DateAddedLast)
	q, _ := url.ParseQuery(s.ObjectRequests()[0].RawQuery)
	assert.Equal(t, stamps[9], q.Get("added_after"))

	// Nothing new: the server answers {} and the cursor stays.
	pages, res, err = readAll(t, c, taxii.ObjectsOptions{Types: []string{"indicator"}, AddedAfter: stamps[19]})
	require.NoError(t, err)
	assert.Empty(t, pages)
	assert.Equal(t, taxii.Result{Pages: 1, DateAddedLast: stamps[19]}, res)
}

func TestObjectsLatestVersionOnly(t *testing.T) {
	s := taxiitest.NewServer(t)
	_, err := s.AddObjects(coll, indicator(1))
	require.NoError(t, err)
	v2 := []byte(`{"type":"indicator","spec_version":"2.1","id":"` + idOf(1) + `","modified":"2026-02-01T00:00:00.000Z","revoked":true,"pattern":"[ipv4-addr:value = '10.0.0.1']","pattern_type":"stix","valid_from":"2026-01-01T00:00:00Z"}`)
	_, err = s.AddObjects(coll, v2)
	require.NoError(t, err)
	c, _ := newClient(t, s, taxii.Config{})
	var got []json.RawMessage
	_, err = c.Objects(t.Context(), coll, taxii.ObjectsOptions{Limit: 1000}, func(p *taxii.Page) error {
		return json.NewDecoder(p.Objects).Decode(&got)
	})
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.JSONEq(t, string(v2), string(got[0]))
}

func TestObjectsAuthentication(t *testing.T) {
	const user, pass, token = "analyst", "pa55-w0rd-very-secret", "tok-3e8f-very-secret"
	for _, tc := range []struct {
		name   string
		server []taxiitest.Option
		cfg    taxii.Config
		kind   string
		ok     bool
	}{
		{"basic", []taxiitest.Option{taxiitest.WithBasicAuth(user, pass)}, taxii.Config{Username: user, Password: pass}, "basic", true},
		{"basic, wrong password", []taxiitest.Option{taxiitest.WithBasicAuth(user, pass)}, taxii.Config{Username: user, Password: pass + "x"}, "basic", false},
		{"bearer", []taxiitest.Option{taxiitest.WithBearerToken(token)}, taxii.Config{Token: token}, "bearer", true},
		{"bearer, wrong token", []taxiitest.Option{taxiitest.WithBearerToken(token)}, taxii.Config{Token: token + "x"}, "bearer", false},
		{"none sent", []taxiitest.Option{taxiitest.WithBearerToken(token)}, taxii.Config{}, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := taxiitest.NewServer(t, tc.server...)
			seed(t, s, 3)
			c, sl := newClient(t, s, tc.cfg)
			pages, _, err := readAll(t, c, taxii.ObjectsOptions{Types: []string{"indicator"}})
			reqs := s.ObjectRequests()
			require.Len(t, reqs, 1, "a refusal is not retried")
			assert.Equal(t, tc.kind, reqs[0].Auth)
			if tc.ok {
				require.NoError(t, err)
				assert.Len(t, flat(pages), 3)
				return
			}
			require.ErrorIs(t, err, taxii.ErrUnauthorized)
			var te *taxii.Error
			require.ErrorAs(t, err, &te)
			assert.Equal(t, http.StatusUnauthorized, te.StatusCode)
			assert.Contains(t, err.Error(), s.APIRoot()+"collections/"+coll+"/objects/")
			for _, secret := range []string{pass, token} {
				assert.NotContains(t, err.Error(), secret)
			}
			assert.Empty(t, sl.all())
		})
	}
}

func TestObjectsForbiddenAndNotFoundEndTheRead(t *testing.T) {
	s := taxiitest.NewServer(t)
	seed(t, s, 3)
	c, sl := newClient(t, s, taxii.Config{})

	_, err := c.Objects(t.Context(), "no-such-collection", taxii.ObjectsOptions{Limit: 1000}, func(*taxii.Page) error { return nil })
	require.ErrorIs(t, err, taxii.ErrNotFound)
	assert.Contains(t, err.Error(), s.APIRoot()+"collections/no-such-collection/objects/")
	assert.Contains(t, err.Error(), "Collection 'no-such-collection' not found")

	s.SetCanRead(coll, false)
	_, _, err = readAll(t, c, taxii.ObjectsOptions{Types: []string{"indicator"}})
	require.ErrorIs(t, err, taxii.ErrForbidden)
	assert.NotErrorIs(t, err, taxii.ErrNotFound)
	assert.Len(t, s.ObjectRequests(), 2)
	assert.Empty(t, sl.all())
}

func TestObjectsRetries429And5xxHonouringRetryAfter(t *testing.T) {
	s := taxiitest.NewServer(t)
	seed(t, s, 15)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	c, sl := newClient(t, s, taxii.Config{}, taxii.WithClock(func() time.Time { return now }))
	s.Inject(
		taxiitest.Fault{Status: http.StatusTooManyRequests, RetryAfter: "7"},
		taxiitest.Fault{}, // page 1
		taxiitest.Fault{Status: http.StatusServiceUnavailable, RetryAfter: now.Add(90 * time.Second).Format(http.TimeFormat)},
		taxiitest.Fault{Status: http.StatusInternalServerError},
		taxiitest.Fault{Status: http.StatusBadGateway},
	)
	pages, _, err := readAll(t, c, taxii.ObjectsOptions{Types: []string{"indicator"}, Limit: 10})
	require.NoError(t, err)
	assert.Equal(t, ids(1, 15), flat(pages), "every object once, in order")
	assert.Equal(t, []time.Duration{7 * time.Second, 90 * time.Second, 2 * time.Second, 4 * time.Second}, sl.all())
	assert.Len(t, s.ObjectRequests(), 6)
}

func TestObjectsGivesUpWithTypedErrors(t *testing.T) {
	t.Run("5xx after the retries", func(t *testing.T) {
		s := taxiitest.NewServer(t)
		seed(t, s, 3)
		c, sl := newClient(t, s, taxii.Config{MaxRetries: 2})
		for range 3 {
			s.Inject(taxiitest.Fault{Status: http.StatusInternalServerError})
		}
		_, _, err := readAll(t, c, taxii.ObjectsOptions{Types: []string{"indicator"}})
		require.ErrorIs(t, err, taxii.ErrServer)
		assert.Len(t, s.ObjectRequests(), 3)
		assert.Len(t, sl.all(), 2)
	})
	t.Run("Retry-After beyond MaxWait", func(t *testing.T) {
		s := taxiitest.NewServer(t)
		seed(t, s, 3)
		c, sl := newClient(t, s, taxii.Config{MaxWait: time.Minute})
		s.Inject(taxiitest.Fault{Status: http.StatusTooManyRequests, RetryAfter: "3600"})
		_, _, err := readAll(t, c, taxii.ObjectsOptions{Types: []string{"indicator"}})
		require.ErrorIs(t, err, taxii.ErrThrottled)
		var te *taxii.Error
		require.ErrorAs(t, err, &te)
		assert.Equal(t, time.Hour, te.RetryAfter)
		assert.Empty(t, sl.all())
	})
	t.Run("slow server", func(t *testing.T) {
		s := taxiitest.NewServer(t)
		seed(t, s, 3)
		c, _ := newClient(t, s, taxii.Config{Timeout: 50 * time.Millisecond, MaxRetries: 1})
		s.Inject(taxiitest.Fault{Delay: time.Minute}, taxiitest.Fault{Delay: time.Minute})
		_, _, err := readAll(t, c, taxii.ObjectsOptions{Types: []string{"indicator"}})
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Contains(t, err.Error(), "giving up after 2 attempts")
	})
	t.Run("cancelled", func(t *testing.T) {
		s := taxiitest.NewServer(t)
		seed(t, s, 3)
		c, _ := newClient(t, s, taxii.Config{})
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := c.Objects(ctx, coll, taxii.ObjectsOptions{Limit: 1000}, func(*taxii.Page) error { return nil })
		require.ErrorIs(t, err, context.Canceled)
	})
}

func TestObjectsCutOffPageIsFetchedAgainWithoutDuplicates(t *testing.T) {
	s := taxiitest.NewServer(t)
	seed(t, s, 15)
	c, sl := newClient(t, s, taxii.Config{})
	s.Inject(taxiitest.Fault{}, taxiitest.Fault{CutOff: true})
	pages, _, err := readAll(t, c, taxii.ObjectsOptions{Types: []string{"indicator"}, Limit: 10})
	require.NoError(t, err)
	assert.Equal(t, ids(1, 15), flat(pages))
	assert.Len(t, s.ObjectRequests(), 3)
	assert.Len(t, sl.all(), 1)

	// Cut off every time: the read fails, having handed on page 1 only.
	c, _ = newClient(t, s, taxii.Config{MaxRetries: 1})
	s.Inject(taxiitest.Fault{}, taxiitest.Fault{CutOff: true}, taxiitest.Fault{CutOff: true})
	pages, _, err = readAll(t, c, taxii.ObjectsOptions{Types: []string{"indicator"}, Limit: 10})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "giving up after 2 attempts")
	assert.Equal(t, ids(1, 10), flat(pages))
}

func TestObjectsCallbackErrorIsReturnedUnchanged(t *testing.T) {
	s := taxiitest.NewServer(t)
	seed(t, s, 15)
	c, _ := newClient(t, s, taxii.Config{})
	stop := errors.New("stop")
	_, err := c.Objects(t.Context(), coll, taxii.ObjectsOptions{Limit: 10}, func(*taxii.Page) error { return stop })
	assert.Same(t, stop, err)
	assert.Len(t, s.ObjectRequests(), 1)
}

func TestObjectsRefusesWhatIsNotATAXIIEnvelope(t *testing.T) {
	for _, tc := range []struct {
		name, ctype, body, want string
	}{
		{"html login page", "text/html", "<html>login</html>", `Content-Type "text/html"`},
		{"TAXII 2.0", "application/taxii+json;version=2.0", `{}`, "TAXII 2.0, not 2.1"},
		{"not JSON", "application/taxii+json;version=2.1", `{"more":tru`, "not a TAXII envelope"},
		{"more without a way on", "application/taxii+json;version=2.1", `{"more":true,"objects":[{"type":"indicator","id":"indicator--x"}]}`, "gives no next token"},
		{"same next again", "application/taxii+json;version=2.1", `{"more":true,"next":"a","objects":[{"type":"indicator","id":"indicator--x"}]}`, "repeats the same next"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tc.ctype)
				_, _ = io.WriteString(w, tc.body)
			}))
			t.Cleanup(srv.Close)
			c, err := taxii.New(taxii.Config{APIRoot: srv.URL + "/root", Timeout: time.Minute, MaxWait: time.Minute, MaxPageBytes: 1 << 20})
			require.NoError(t, err)
			_, err = c.Objects(t.Context(), "c1", taxii.ObjectsOptions{Limit: 1000}, func(*taxii.Page) error { return nil })
			require.ErrorIs(t, err, taxii.ErrBadResponse)
			assert.Contains(t, err.Error(), tc.want)
			assert.Contains(t, err.Error(), srv.URL+"/root/collections/c1/objects/")
		})
	}
}

func TestNewChecksConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  taxii.Config
		want string
	}{
		{"no URL", taxii.Config{}, "absolute http(s) URL"},
		{"relative", taxii.Config{APIRoot: "taxii.example/api1/"}, "absolute http(s) URL"},
		{"credentials in URL", taxii.Config{APIRoot: "https://u:secret-pw@taxii.example/api1/"}, "must not contain credentials"},
		{"query", taxii.Config{APIRoot: "https://taxii.example/api1/?x=1"}, "query"},
		{"both kinds", taxii.Config{APIRoot: "https://taxii.example/", Username: "u", Password: "p", Token: "t"}, "not both"},
		{"username without password", taxii.Config{APIRoot: "https://taxii.example/", Username: "u"}, "needs a password"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := taxii.New(limits(tc.cfg))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.NotContains(t, err.Error(), "secret-pw")
		})
	}
	c, err := taxii.New(limits(taxii.Config{APIRoot: "https://taxii.example/api1"}))
	require.NoError(t, err)
	assert.Equal(t, "https://taxii.example/api1/", c.APIRoot())

	// No defaults of its own: package config supplies the timings.
	for want, unset := range map[string]func(*taxii.Config){
		"Timeout must be positive":      func(c *taxii.Config) { c.Timeout = 0 },
		"MaxWait must be positive":      func(c *taxii.Config) { c.MaxWait = 0 },
		"MaxPageBytes must be positive": func(c *taxii.Config) { c.MaxPageBytes = 0 },
		"MaxRetries must not be negat":  func(c *taxii.Config) { c.MaxRetries = -1 },
	} {
		cfg := limits(taxii.Config{APIRoot: "https://taxii.example/api1"})
		unset(&cfg)
		_, err := taxii.New(cfg)
		assert.ErrorContains(t, err, want)
	}
	_, err = c.Objects(t.Context(), "c1", taxii.ObjectsOptions{}, func(*taxii.Page) error { return nil })
	assert.ErrorContains(t, err, "limit must be positive")
}
