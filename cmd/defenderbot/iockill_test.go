package main

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/defenderbot/defenderbot/defender/defendertest"
	"github.com/defenderbot/defenderbot/store"
	"github.com/defenderbot/defenderbot/store/storetest"
)

// The IOC kill test runs the real `defenderbot push-iocs`, kills it with
// SIGKILL at an instant of its run, then runs it again with a feed that
// only revokes the object: the indicator must be gone from Defender, and
// nothing defenderbot did not create touched (issue 9 §4).

const (
	revokedID    = "indicator--9c1a5d0e-0000-4000-8000-00000000c2c2"
	revokedValue = "c2.kill.example"
	keptValue    = "198.51.100.23"
	analystValue = "analyst-own.example"
)

// iocKillFeed brings the object to be revoked and another one.
var iocKillFeed = `[
 {"type":"indicator","spec_version":"2.1","id":"` + revokedID + `","created":"2025-01-01T00:00:00Z","modified":"2025-01-01T00:00:00Z","valid_from":"2025-01-01T00:00:00Z","pattern_type":"stix","pattern":"[domain-name:value = '` + revokedValue + `']"},
 {"type":"indicator","spec_version":"2.1","id":"indicator--9c1a5d0e-0000-4000-8000-00000000ee01","created":"2025-01-01T00:00:00Z","modified":"2025-01-01T00:00:00Z","valid_from":"2025-01-01T00:00:00Z","pattern_type":"stix","pattern":"[ipv4-addr:value = '` + keptValue + `']"}
]`

// iocRevokeFeed is only the revocation of that object: a newer version.
var iocRevokeFeed = `[
 {"type":"indicator","spec_version":"2.1","id":"` + revokedID + `","created":"2025-01-01T00:00:00Z","modified":"2025-02-01T00:00:00Z","valid_from":"2025-01-01T00:00:00Z","revoked":true,"pattern_type":"stix","pattern":"[domain-name:value = '` + revokedValue + `']"}
]`

// iocKillWorld is what outlives a push-iocs run: Defender and the store.
type iocKillWorld struct {
	emu         *defendertest.Server
	bin, cfg    string
	ca          string
	dir         string
	driver, dsn string
	// unlock, when set, releases what the crash held (the records table)
	// once the run is dead.
	unlock func()
}

func newIOCKillWorld(t *testing.T, bin, driver, dsn string) *iocKillWorld {
	t.Helper()
	w := &iocKillWorld{emu: defendertest.NewServer(t), bin: bin, dir: t.TempDir(), driver: driver, dsn: dsn}
	w.ca = filepath.Join(w.dir, "ca.pem")
	require.NoError(t, os.WriteFile(w.ca, w.emu.CACertPEM(), 0o600))
	// One replica name for both runs (a pod's name): the rerun may take the
	// lease the killed run left at once. Debug logs say when Defender's
	// answer was read.
	yaml := fmt.Sprintf(`log_format: json
log_level: debug
replica_id: iockill
defender:
  base_url: %q
  authority_host: %q
  tenant_id: %q
  app_id: %q
  app_secret: %q
store:
  driver: %s
  dsn: %q
iocs:
  action: Block
  severity: High
`, w.emu.URL, w.emu.URL, defendertest.TenantID, defendertest.ClientID, defendertest.ClientSecret, driver, dsn)
	w.cfg = filepath.Join(w.dir, "defenderbot.yaml")
	require.NoError(t, os.WriteFile(w.cfg, []byte(yaml), 0o600))
	return w
}

func (w *iocKillWorld) feed(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(w.dir, name)
	require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
	return p
}

// pushRun is one running `defenderbot push-iocs`.
type pushRun struct {
	cmd  *exec.Cmd
	logs *syncBuffer
	done chan struct{}
}

func (w *iocKillWorld) start(t *testing.T, feed string) *pushRun {
	t.Helper()
	cmd := exec.Command(w.bin, "push-iocs", "--config", w.cfg, "--stix-objects-path", feed)
	cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+w.ca)
	r := &pushRun{cmd: cmd, logs: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = r.logs, r.logs
	require.NoError(t, cmd.Start())
	go func() { _ = cmd.Wait(); close(r.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-r.done
		if t.Failed() {
			t.Logf("push-iocs %s output:\n%s", filepath.Base(feed), r.logs.String())
		}
	})
	return r
}

// wait returns the exit code of a run left to finish.
func (r *pushRun) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-r.done:
	case <-time.After(time.Minute):
		t.Fatalf("push-iocs did not finish:\n%s", r.logs.String())
	}
	return r.cmd.ProcessState.ExitCode()
}

// kill ends the run at once, as an OOM kill or a lost node would; the run
// must not have ended by itself first.
func (r *pushRun) kill(t *testing.T) {
	t.Helper()
	_ = r.cmd.Process.Kill()
	<-r.done
	require.Equal(t, -1, r.cmd.ProcessState.ExitCode(), "the run ended before the kill:\n%s", r.logs.String())
}

// answerRead returns whether the run logged Defender's 200 answer to a
// call of this API (the client logs it once the body is read).
func (r *pushRun) answerRead(api string) func() bool {
	return func() bool { return r.logged(api) }
}

func (r *pushRun) logged(api string) bool {
	sc := bufio.NewScanner(strings.NewReader(r.logs.String()))
	for sc.Scan() {
		var line struct {
			Msg    string `json:"msg"`
			API    string `json:"api"`
			Status int    `json:"status"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "defender call" &&
			line.API == api && line.Status == http.StatusOK {
			return true
		}
	}
	return false
}

func (w *iocKillWorld) calls(method, api string) int {
	n := 0
	for _, r := range w.emu.Requests() {
		if r.Method == method && r.API == api {
			n++
		}
	}
	return n
}

func (w *iocKillWorld) indicator(value string) (defendertest.Indicator, bool) {
	for _, i := range w.emu.Indicators() {
		if strings.EqualFold(i.IndicatorValue, value) {
			return i, true
		}
	}
	return defendertest.Indicator{}, false
}

// lockRecords holds the indicator records table, as a slow database would,
// until w.unlock is called; waiting reports whether someone waits for it.
// On PostgreSQL the run is seen waiting inside its write; SQLite does not
// show who waits (its lock is the whole database's): there the run has
// read the answer logged before the write, and writes nothing while the
// lock is held.
func (w *iocKillWorld) lockRecords(t *testing.T) (waiting func() bool) {
	t.Helper()
	ctx := context.Background()
	var db *sql.DB
	var err error
	if w.driver == store.DriverSQLite {
		db, err = sql.Open("sqlite", w.dsn+"?_pragma=busy_timeout(10000)")
	} else {
		db, err = sql.Open("pgx", w.dsn)
	}
	require.NoError(t, err)
	conn, err := db.Conn(ctx)
	require.NoError(t, err)
	if w.driver == store.DriverSQLite {
		// The write lock: the run's next write transaction waits for it.
		_, err = conn.ExecContext(ctx, "BEGIN IMMEDIATE")
	} else {
		_, err = conn.ExecContext(ctx, "BEGIN")
		if err == nil {
			_, err = conn.ExecContext(ctx, "LOCK TABLE indicator_records IN SHARE MODE")
		}
	}
	require.NoError(t, err)
	waiting = func() bool {
		if w.driver == store.DriverSQLite {
			return true // SQLite does not show who waits for its lock
		}
		var n int
		err := db.QueryRowContext(ctx, "SELECT count(*) FROM pg_locks WHERE relation = 'indicator_records'::regclass AND NOT granted").Scan(&n)
		return err == nil && n > 0
	}
	var once sync.Once
	w.unlock = func() {
		once.Do(func() {
			_, _ = conn.ExecContext(ctx, "ROLLBACK")
			_ = conn.Close()
			_ = db.Close()
		})
	}
	t.Cleanup(w.unlock)
	return waiting
}

// TestKillPushIOCsThenRevoke: whatever instant push-iocs dies at, a rerun
// with only the revocation removes the indicator, and the analyst's own
// indicator stays as it was.
func TestKillPushIOCsThenRevoke(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real binary")
	}
	bin := defenderbotBinary(t)
	const within = 30 * time.Second
	tests := []struct {
		name string
		// crash arms the emulator before the first run and returns what
		// waits, once it runs, for the instant to kill it at (nil: no kill).
		crash func(t *testing.T, w *iocKillWorld) func(t *testing.T, r *pushRun)
		// kept: the other object's indicator is in Defender after the
		// rerun (the revocation-only feed does not bring it: only a record
		// of it written before the crash gets it there).
		kept bool
	}{
		{
			name: "while listing Defender's indicators, nothing recorded yet",
			crash: func(t *testing.T, w *iocKillWorld) func(*testing.T, *pushRun) {
				w.emu.InjectFault(defendertest.Fault{Method: http.MethodGet, Path: defendertest.APIIndicators, Delay: time.Hour})
				return func(t *testing.T, _ *pushRun) {
					require.Eventually(t, func() bool { return w.calls(http.MethodGet, defendertest.APIIndicators) == 1 }, within, time.Millisecond)
				}
			},
		},
		{
			name: "recording what it is about to import",
			crash: func(t *testing.T, w *iocKillWorld) func(*testing.T, *pushRun) {
				release := make(chan struct{})
				w.emu.InjectFault(defendertest.Fault{Method: http.MethodGet, Path: defendertest.APIIndicators, Hold: time.Hour, Release: release})
				return func(t *testing.T, r *pushRun) {
					// The list is the last call before the first write of
					// records: hold the table, then let the answer go.
					require.Eventually(t, func() bool { return w.calls(http.MethodGet, defendertest.APIIndicators) == 1 }, within, time.Millisecond)
					waiting := w.lockRecords(t)
					close(release)
					require.Eventually(t, r.answerRead(defendertest.APIIndicators), within, time.Millisecond, "the answer was not read")
					require.Eventually(t, waiting, within, time.Millisecond, "the record write does not wait")
					require.Zero(t, w.calls(http.MethodPost, defendertest.APIIndicatorImport), "nothing is sent before it is recorded")
				}
			},
		},
		{
			name: "import sent, before Defender accepted it",
			crash: func(t *testing.T, w *iocKillWorld) func(*testing.T, *pushRun) {
				w.emu.InjectFault(defendertest.Fault{Method: http.MethodPost, Path: defendertest.APIIndicatorImport, Delay: time.Hour})
				return func(t *testing.T, _ *pushRun) {
					require.Eventually(t, func() bool { return w.calls(http.MethodPost, defendertest.APIIndicatorImport) == 1 }, within, time.Millisecond)
				}
			},
			kept: true,
		},
		{
			name: "right after Defender acknowledged the import, its answer unread",
			crash: func(t *testing.T, w *iocKillWorld) func(*testing.T, *pushRun) {
				w.emu.InjectFault(defendertest.Fault{Method: http.MethodPost, Path: defendertest.APIIndicatorImport, Hold: time.Hour})
				return func(t *testing.T, _ *pushRun) {
					require.Eventually(t, func() bool { _, ok := w.indicator(revokedValue); return ok }, within, time.Millisecond)
				}
			},
			kept: true,
		},
		{
			name: "answer read, while its records are being written",
			crash: func(t *testing.T, w *iocKillWorld) func(*testing.T, *pushRun) {
				release := make(chan struct{})
				w.emu.InjectFault(defendertest.Fault{Method: http.MethodPost, Path: defendertest.APIIndicatorImport, Hold: time.Hour, Release: release})
				return func(t *testing.T, r *pushRun) {
					require.Eventually(t, func() bool { _, ok := w.indicator(revokedValue); return ok }, within, time.Millisecond)
					// Defender has them; the records written before the
					// call are committed. Hold the table, then let the
					// answer go: the run reads it and waits to record it.
					waiting := w.lockRecords(t)
					close(release)
					require.Eventually(t, r.answerRead(defendertest.APIIndicatorImport), within, time.Millisecond, "the answer was not read")
					require.Eventually(t, waiting, within, time.Millisecond, "the record write does not wait")
				}
			},
			kept: true,
		},
		{
			name:  "no kill: the run finished",
			crash: func(*testing.T, *iocKillWorld) func(*testing.T, *pushRun) { return nil },
			kept:  true,
		},
	}
	drivers := []struct {
		name string
		dsn  func(tb testing.TB) string
	}{
		{store.DriverSQLite, storetest.SQLiteDSN},
		{store.DriverPostgres, storetest.PostgresDSN},
	}
	for _, d := range drivers {
		t.Run(d.name, func(t *testing.T) {
			if d.name == store.DriverPostgres && os.Getenv(storetest.PostgresDSNEnv) == "" {
				t.Skip("PostgreSQL tests skipped: set " + storetest.PostgresDSNEnv)
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					t.Parallel()
					w := newIOCKillWorld(t, bin, d.name, d.dsn(t))
					analystID := w.emu.AddIndicator(defendertest.Indicator{IndicatorValue: analystValue, IndicatorType: "DomainName",
						Action: "Block", Title: "Known bad", Description: "added by hand in the portal"})
					analyst, ok := w.indicator(analystValue)
					require.True(t, ok)

					reached := tt.crash(t, w)
					first := w.start(t, w.feed(t, "feed.json", iocKillFeed))
					if reached == nil {
						require.Equal(t, 0, first.wait(t), first.logs.String())
					} else {
						reached(t, first)
						first.kill(t)
					}
					if w.unlock != nil {
						w.unlock()
					}
					w.emu.ClearFaults()

					rerun := w.start(t, w.feed(t, "revoke.json", iocRevokeFeed))
					require.Equal(t, 0, rerun.wait(t), rerun.logs.String())

					_, present := w.indicator(revokedValue)
					assert.False(t, present, "the revoked indicator is gone from Defender")
					_, present = w.indicator(keptValue)
					assert.Equal(t, tt.kept, present, "the other object's indicator")
					after, ok := w.indicator(analystValue)
					assert.True(t, ok, "the analyst's indicator is still there")
					assert.Equal(t, analyst, after, "the analyst's indicator is untouched")
					for _, r := range w.emu.Requests() {
						if r.API == defendertest.APIIndicatorDelete {
							var body struct{ IndicatorIds []string }
							require.NoError(t, json.Unmarshal(r.Body, &body))
							assert.NotContains(t, body.IndicatorIds, analystID, "never asked to delete the analyst's indicator")
						}
						if r.API == defendertest.APIIndicatorImport {
							assert.NotContains(t, strings.ToLower(string(r.Body)), analystValue, "never sent the analyst's value")
						}
					}

					st, err := store.Open(context.Background(), w.driver, w.dsn)
					require.NoError(t, err)
					defer st.Close()
					recs, err := st.ListIndicatorRecords(context.Background())
					require.NoError(t, err)
					for _, rec := range recs {
						assert.NotEqual(t, revokedID, rec.StixID, "no record of the revoked object is left: %+v", rec)
					}
				})
			}
		})
	}
}
