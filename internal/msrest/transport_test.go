package msrest

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNeverSent(t *testing.T) {
	assert.True(t, NeverSent(&net.OpError{Op: "dial", Err: errors.New("refused")}))
	assert.True(t, NeverSent(&net.DNSError{Err: "no such host", Name: "x"}))
	assert.True(t, NeverSent(&tls.CertificateVerificationError{Err: errors.New("bad cert")}))
	assert.False(t, NeverSent(&net.OpError{Op: "read", Err: errors.New("reset")}))
	assert.False(t, NeverSent(errors.New("EOF")))
	assert.False(t, NeverSent(context.DeadlineExceeded))
}

type tokens string

func (s tokens) Token(context.Context) (string, error) { return string(s), nil }

type nopObserver struct{}

func (nopObserver) ObserveCall(string, string, int, time.Duration) {}
func (nopObserver) ObserveRetry(string, string)                    {}

func testOptions() Options {
	return Options{Name: "test", Base: &url.URL{Scheme: "https", Host: "api.example"}, HTTPClient: http.DefaultClient,
		Tokens: tokens("t"), Observer: nopObserver{}, Sleep: func(context.Context, time.Duration) error { return nil },
		Now: time.Now, Timeout: time.Second, BaseBackoff: time.Second, MaxBackoff: 5 * time.Second}
}

func TestBackoffCappedAtMaxBackoff(t *testing.T) {
	tr, err := New(testOptions())
	require.NoError(t, err)
	for attempt := range 40 {
		d := tr.Backoff(attempt)
		assert.LessOrEqual(t, d, 5*time.Second)
		assert.Positive(t, d)
	}
}

// New refuses a transport that would not time out or not wait between
// attempts, naming the fields.
func TestNewRejectsMissingSettings(t *testing.T) {
	o := testOptions()
	o.Timeout = 0
	_, err := New(o)
	assert.ErrorContains(t, err, "Timeout, BaseBackoff and MaxBackoff must be positive")
	o = testOptions()
	o.Tokens = nil
	_, err = New(o)
	assert.ErrorContains(t, err, "are required")
}

// Both APIs' envelopes are read: Defender's target, Graph's
// innerError.request-id (or the request-id header), and a snippet of a
// body that is not JSON.
func TestStatusErrorEnvelope(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	h := http.Header{"Retry-After": {"7"}}
	se := newStatusError("GET", "/api/x", 404, h, []byte(`{"error":{"code":"ResourceNotFound","message":"gone","target":"c-1"}}`), now)
	assert.Equal(t, &StatusError{StatusCode: 404, Code: "ResourceNotFound", Message: "gone", Target: "c-1", Method: "GET", Path: "/api/x", RetryAfter: 7 * time.Second}, se)

	h = http.Header{"Request-Id": {"hdr"}}
	se = newStatusError("PATCH", "/v1.0/a", 400, h, []byte(`{"error":{"code":"badRequest","message":"no","innerError":{"request-id":"inner"}}}`), now)
	assert.Equal(t, "inner", se.RequestID)
	se = newStatusError("PATCH", "/v1.0/a", 502, h, []byte("<html>\n  Bad\x00 gateway\xff</html>"), now)
	assert.Equal(t, "hdr", se.RequestID)
	assert.Equal(t, "<html> Bad gateway </html>", se.Message)
}

func TestDescribe(t *testing.T) {
	assert.Equal(t, "defender: GET /api/alerts/a: 429 TooManyRequests (target t1) (retry after 30s)",
		Describe("defender", "GET", "/api/alerts/a", 429, "TooManyRequests", "", "target t1", 30*time.Second))
	assert.Equal(t, "graph: GET /v1.0/x: 503 Service Unavailable: busy",
		Describe("graph", "GET", "/v1.0/x", 503, "", "busy", "", 0))
}
