package e2e_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/defenderbot/defenderbot/approval"
	"github.com/defenderbot/defenderbot/defender/defendertest"
	"github.com/defenderbot/defenderbot/internal/slackfake"
)

// BenchmarkSlashCommandAck is the webhook load test: how long Slack waits
// for the acknowledgement of a slash command (Slack gives up after 3 s) when
// 50 signed commands arrive at once, on each store backend. Each iteration is
// a burst of 50 concurrent commands over loopback HTTP: signature check,
// replay bookkeeping in the store, parsing and the bot's synchronous part,
// while the bot's asynchronous work (storing requests, posting approval
// messages and replies to the Slack stand-in) runs alongside. The run is
// bounded by -benchtime and every request by a 10 s client timeout.
//
// Reported: req/s (acknowledged commands per second of wall time), p50_ms
// and p99_ms over every request, and pending_ms, how long the background
// work took to drain after the last burst (the store writes behind the acks).
//
//	source .ci/postgres && go test -run '^$' -bench SlashCommandAck -benchtime 40x ./e2e/
func BenchmarkSlashCommandAck(b *testing.B) {
	for _, driver := range backends {
		b.Run(driver, func(b *testing.B) { benchmarkAck(b, driver) })
	}
}

func benchmarkAck(b *testing.B, driver string) {
	const concurrency = 50
	w := newWorldOn(b, driver)
	// The command's background work makes no Defender call; no pacing
	// keeps it that way should the bot start looking alerts up.
	w.limits = noPacing()
	p := w.start(b)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: concurrency}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	var seq atomic.Int64
	var (
		mu        sync.Mutex
		latencies []time.Duration
		failed    atomic.Int64
	)

	var elapsed time.Duration
	b.ResetTimer()
	for b.Loop() {
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range concurrency {
			req, err := signedCommand(p, seq.Add(1))
			if err != nil {
				b.Fatal(err)
			}
			wg.Go(func() {
				<-start
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					failed.Add(1)
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				d := time.Since(t0)
				if resp.StatusCode != http.StatusOK {
					failed.Add(1)
					b.Errorf("HTTP %d", resp.StatusCode)
				}
				mu.Lock()
				latencies = append(latencies, d)
				mu.Unlock()
			})
		}
		t0 := time.Now()
		close(start)
		wg.Wait()
		elapsed += time.Since(t0)
	}
	b.StopTimer()
	drain := time.Now()
	p.bot.Wait()
	pending := time.Since(drain)
	// Every acknowledged command must have become a stored, posted request:
	// a fast ack that lost work would be no result at all.
	rs, err := p.store.ListRequests(context.Background(), approval.RequestFilter{})
	if err != nil {
		b.Fatal(err)
	}
	if posted := len(w.slack.CallsTo(slackfake.MethodPostMessage)); len(rs) != int(seq.Load()) || posted != len(rs) {
		b.Fatalf("%d commands acknowledged, %d requests stored, %d approval messages posted", seq.Load(), len(rs), posted)
	}

	if len(latencies) == 0 {
		return
	}
	slices.Sort(latencies)
	pct := func(q float64) float64 {
		i := int(q * float64(len(latencies)-1))
		return float64(latencies[i].Microseconds()) / 1000
	}
	b.ReportMetric(float64(len(latencies))/elapsed.Seconds(), "req/s")
	b.ReportMetric(pct(0.50), "p50_ms")
	b.ReportMetric(pct(0.99), "p99_ms")
	b.ReportMetric(float64(pending.Microseconds())/1000, "pending_ms")
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d of %d requests failed", n, seq.Load())
	}
}

func signedCommand(p *proc, n int64) (*http.Request, error) {
	// A command whose asynchronous part needs no Defender look-up, so the
	// Defender API's per-minute limits do not stall the background work.
	form := commandForm(p.w, alice, fmt.Sprintf("alert comment %s triage note %d", defendertest.SampleAlertID1, n))
	return signedRequest(context.Background(), p.srv.URL+"/slack/commands", form)
}
