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

	"github.com/defenderbot/defenderbot/defender/defendertest"
)

// BenchmarkSlashCommandAck measures how long Slack waits for the
// acknowledgement of a slash command (Slack gives up after 3 s) when 50
// commands arrive at once: signature check, replay bookkeeping in SQLite,
// parsing and the bot's synchronous part, over loopback HTTP, while the
// bot's asynchronous work (storing requests, posting approval messages and
// replies to the Slack stand-in) runs alongside. Each iteration is a burst of 50 concurrent commands;
// p50/p99 are over every request.
func BenchmarkSlashCommandAck(b *testing.B) {
	const concurrency = 50
	w := newWorld(b)
	p := w.start(b)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: concurrency}, Timeout: 10 * time.Second}
	var seq atomic.Int64
	var (
		mu        sync.Mutex
		latencies []time.Duration
	)

	b.ResetTimer()
	for b.Loop() {
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range concurrency {
			n := seq.Add(1)
			req, err := signedCommand(p, n)
			if err != nil {
				b.Fatal(err)
			}
			wg.Go(func() {
				<-start
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				d := time.Since(t0)
				if resp.StatusCode != http.StatusOK {
					b.Errorf("HTTP %d", resp.StatusCode)
				}
				mu.Lock()
				latencies = append(latencies, d)
				mu.Unlock()
			})
		}
		close(start)
		wg.Wait()
	}
	b.StopTimer()

	slices.Sort(latencies)
	pct := func(q float64) float64 {
		i := int(q * float64(len(latencies)-1))
		return float64(latencies[i].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(len(latencies))/float64(b.N), "req/op")
}

func signedCommand(p *proc, n int64) (*http.Request, error) {
	// A command whose asynchronous part needs no Defender look-up, so the
	// Defender API's per-minute limits do not stall the background work.
	form := commandForm(p.w, alice, fmt.Sprintf("alert comment %s triage note %d", defendertest.SampleAlertID1, n))
	return signedRequest(context.Background(), p.srv.URL+"/slack/commands", form)
}
