package defender

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRateLimitError_message(t *testing.T) {
	err := &RateLimitError{&APIError{StatusCode: 429, Code: "TooManyRequests", Method: "GET", Path: "/api/alerts/a", RetryAfter: 30 * time.Second}}
	assert.Equal(t, "defender: GET /api/alerts/a: 429 TooManyRequests (retry after 30s)", err.Error())
}

// closedAddr returns an https URL on which nothing listens.
func closedAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return "https://" + addr
}

func TestRetry_refusedConnectionIsBounded(t *testing.T) {
	var waits []time.Duration
	obs := &recObserver{}
	c, err := New(complete(Config{BaseURL: closedAddr(t), MaxRetries: 2, Limits: noLimits()}),
		WithTokenProvider(staticTokens("t")), WithObserver(obs),
		WithSleeper(func(_ context.Context, d time.Duration) error { waits = append(waits, d); return nil }))
	require.NoError(t, err)

	// Refused before sending: even a machine action may be re-sent.
	_, err = c.IsolateMachine(t.Context(), "m1", "c", IsolationFull)
	require.Error(t, err)
	assert.NotErrorIs(t, err, ErrOutcomeUnknown)
	assert.Contains(t, err.Error(), "giving up after 3 attempts")
	assert.Len(t, waits, 2)
	assert.Equal(t, []string{"machineactions conn", "machineactions conn"}, obs.Retries())
}
