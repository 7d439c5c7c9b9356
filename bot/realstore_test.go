package bot

// Tests of the bot against both real stores (SQLite file and PostgreSQL),
// several replicas sharing one database. Every bot test uses a real store
// (the single-replica harness a temporary SQLite file, stubs_test.go);
// faults_test.go wraps one to inject failures. Helpers here are shared by
// replicas_test.go and faults_test.go.

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/defenderbot/defenderbot/approval"
	"github.com/defenderbot/defenderbot/config"
	"github.com/defenderbot/defenderbot/defender"
	"github.com/defenderbot/defenderbot/store"
	"github.com/defenderbot/defenderbot/store/storetest"
)

// testDB is one database that several replicas (stores) can open.
type testDB struct {
	driver, dsn string
}

// eachBackend runs f on a fresh SQLite file and on a fresh PostgreSQL schema
// (skipped without DEFENDERBOT_TEST_POSTGRES_DSN).
func eachBackend(t *testing.T, f func(t *testing.T, db testDB)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		f(t, testDB{store.DriverSQLite, storetest.SQLiteDSN(t)})
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		f(t, testDB{store.DriverPostgres, storetest.PostgresDSN(t)})
	})
}

// open opens a new store on db (a new connection pool, as a separate
// process would have) and closes it at the end of the test.
func (db testDB) open(t *testing.T, clock *fakeClock) store.Store {
	t.Helper()
	return storetest.MustOpen(t, db.driver, db.dsn, store.WithClock(clock.Now))
}

// logRecorder is a slog.Handler that keeps every record, so tests can assert
// that the bot logged no error (a store refusal is only logged).
type logRecorder struct {
	mu   *sync.Mutex
	recs *[]string
	attr []slog.Attr
}

func newLogRecorder() *logRecorder { return &logRecorder{mu: &sync.Mutex{}, recs: new([]string)} }

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Level.String() + " " + r.Message)
	for _, a := range l.attr {
		b.WriteString(" " + a.String())
	}
	r.Attrs(func(a slog.Attr) bool { b.WriteString(" " + a.String()); return true })
	l.mu.Lock()
	*l.recs = append(*l.recs, b.String())
	l.mu.Unlock()
	return nil
}

func (l *logRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	return &logRecorder{mu: l.mu, recs: l.recs, attr: append(slices.Clone(l.attr), as...)}
}

func (l *logRecorder) WithGroup(string) slog.Handler { return l }

// errors returns the ERROR records.
func (l *logRecorder) errors() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, r := range *l.recs {
		if strings.HasPrefix(r, "ERROR ") {
			out = append(out, r)
		}
	}
	return out
}

// replica is one bot.Service with its own Slack fake, as one process of a
// multi-replica deployment.
type replica struct {
	id    string
	svc   *Service
	slack *fakeSlack
	logs  *logRecorder
}

// replicaOpts tunes newReplica.
type replicaOpts struct {
	cfg     func(*Config)
	sleep   func(ctx context.Context, d time.Duration) error // default: advance the clock
	metrics approval.Metrics
}

func newReplica(t *testing.T, id string, st Store, def Defender, clock *fakeClock, o replicaOpts) *replica {
	t.Helper()
	cfg := ConfigFrom(config.Default(), id)
	cfg.ApprovalChannel = approvals
	cfg.Approvers = []string{approver1, approver2, "SSOCLEADS"}
	cfg.PollInterval, cfg.PollTimeout = time.Second, time.Hour
	if o.cfg != nil {
		o.cfg(&cfg)
	}
	rp := &replica{id: id, slack: newFakeSlack(t), logs: newLogRecorder()}
	rp.slack.groups["SSOCLEADS"] = []string{groupMem}
	sleep := o.sleep
	if sleep == nil {
		// Polls advance the fake clock instead of sleeping.
		sleep = func(ctx context.Context, d time.Duration) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			clock.Advance(d)
			return nil
		}
	}
	svc, err := New(cfg, Deps{Store: st, Slack: rp.slack, Defender: def, Logger: slog.New(rp.logs), Now: clock.Now, Sleep: sleep, Metrics: o.metrics})
	require.NoError(t, err)
	rp.svc = svc
	t.Cleanup(func() { svc.core.Stop(); svc.Wait() })
	return rp
}

func (rp *replica) command(t *testing.T, user, text string) {
	t.Helper()
	rp.svc.HandleCommand(context.Background(), slashCommand(user, text))
	rp.svc.Wait()
}

func (rp *replica) click(t *testing.T, user, actionID, requestID string) {
	t.Helper()
	_, err := rp.svc.HandleInteraction(context.Background(), blockAction(user, actionID, requestID))
	require.NoError(t, err)
	rp.svc.Wait()
}

func slashCommand(user, text string) slack.SlashCommand {
	return slack.SlashCommand{UserID: user, UserName: user, ChannelID: "CSOC", Text: text, TriggerID: "trig"}
}

// thread returns the status texts this replica posted under the approval
// message ts (not the offer to undo a success).
func (rp *replica) thread(ts string) []string {
	var out []string
	for _, c := range rp.slack.find("chat.postMessage") {
		if c.Thread == ts && !strings.HasPrefix(c.Text, ":leftwards_arrow_with_hook:") {
			out = append(out, c.Text)
		}
	}
	return out
}

// dms returns the direct messages this replica sent to user.
func (rp *replica) dms(user string) []string {
	var out []string
	for _, c := range rp.slack.find("chat.postMessage") {
		if c.Channel == user && c.Thread == "" {
			out = append(out, c.Text)
		}
	}
	return out
}

// lastUpdate is the last chat.update of the approval message (its blocks).
func (rp *replica) lastUpdate(t *testing.T) string {
	t.Helper()
	ups := rp.slack.find("chat.update")
	require.NotEmpty(t, ups, "replica %s never updated the approval message", rp.id)
	return ups[len(ups)-1].Blocks
}

// onlyRequest returns the single request in st.
func onlyRequest(t *testing.T, st Store) *approval.Request {
	t.Helper()
	rs, err := st.ListRequests(context.Background(), approval.RequestFilter{})
	require.NoError(t, err)
	require.Len(t, rs, 1)
	return rs[0]
}

func getRequest(t *testing.T, st Store, id string) *approval.Request {
	t.Helper()
	r, err := st.GetRequest(context.Background(), id)
	require.NoError(t, err)
	return r
}

// auditKinds lists the kinds of the audit events of one request, in order.
func auditKinds(t *testing.T, st store.Store, requestID string) []string {
	t.Helper()
	evs, err := st.ListAudit(context.Background(), time.Time{})
	require.NoError(t, err)
	var out []string
	for _, e := range evs {
		if e.RequestID == requestID {
			out = append(out, e.Kind)
		}
	}
	return out
}

// TestRealStoreFlows runs each end of the approval workflow against the real
// store and checks the final state, what Slack and the requester were told,
// the audit trail, and that nothing was logged as an error (every store
// call, in particular every state change, was accepted).
func TestRealStoreFlows(t *testing.T) {
	type flow struct {
		name      string
		required  int
		runStatus defender.ActionStatus   // status of the action Run creates
		statuses  []defender.ActionStatus // successive polls
		runErr    error
		// do clicks after the request exists.
		do        func(t *testing.T, rp *replica, st store.Store, clock *fakeClock, id string)
		wantState approval.State
		wantRuns  int
		wantAudit []string
		wantDM    string
		wantErr   string // in Request.Error
		wantPosts []string
	}
	approve := func(users ...string) func(t *testing.T, rp *replica, st store.Store, clock *fakeClock, id string) {
		return func(t *testing.T, rp *replica, _ store.Store, _ *fakeClock, id string) {
			for _, u := range users {
				rp.click(t, u, actionApprove, id)
			}
		}
	}
	flows := []flow{
		{
			name: "followed up to Succeeded", required: 1, runStatus: defender.StatusPending,
			statuses: []defender.ActionStatus{defender.StatusInProgress, defender.StatusInProgress, defender.StatusSucceeded},
			do:       approve(approver1), wantState: approval.StateSucceeded, wantRuns: 1,
			wantAudit: []string{"request", "approve", "call", "result", "status", "status", "result"},
			wantDM:    "succeeded", wantPosts: []string{"*Pending*", "*InProgress*", "*Succeeded*"},
		},
		{
			name: "followed up to Failed", required: 1, runStatus: defender.StatusPending,
			statuses: []defender.ActionStatus{defender.StatusFailed},
			do:       approve(approver1), wantState: approval.StateFailed, wantRuns: 1,
			wantAudit: []string{"request", "approve", "call", "result", "status", "result"},
			wantDM:    "failed", wantErr: "Failed", wantPosts: []string{"*Pending*", "*Failed*"},
		},
		{
			name: "final within the call", required: 1, runStatus: defender.StatusSucceeded,
			do: approve(approver1), wantState: approval.StateSucceeded, wantRuns: 1,
			wantAudit: []string{"request", "approve", "call", "result"},
			wantDM:    "succeeded", wantPosts: []string{"*Succeeded*"},
		},
		{
			name: "Defender refuses the call", required: 1,
			runErr: &defender.APIError{StatusCode: 400, Code: "ActiveRequestAlreadyExists", Message: "Action is already in progress"},
			do:     approve(approver1), wantState: approval.StateFailed, wantRuns: 1,
			wantAudit: []string{"request", "approve", "call", "result"},
			wantDM:    "failed",
		},
		{
			name: "two approvals", required: 2, runStatus: defender.StatusSucceeded,
			do: approve(groupMem, groupMem, approver2), wantState: approval.StateSucceeded, wantRuns: 1,
			wantAudit: []string{"request", "approve", "refused", "approve", "call", "result"},
			wantDM:    "succeeded", wantPosts: []string{"*Succeeded*"},
		},
		{
			name: "rejected", required: 1,
			do: func(t *testing.T, rp *replica, _ store.Store, _ *fakeClock, id string) {
				rp.click(t, approver1, actionReject, id)
				views := rp.slack.find("views.open")
				require.Len(t, views, 1)
				_, err := rp.svc.HandleInteraction(context.Background(), viewSubmission(approver1, views[0].View, map[string]string{blockReason: "no evidence"}))
				require.NoError(t, err)
				rp.svc.Wait()
				rp.click(t, approver2, actionApprove, id) // too late
			},
			wantState: approval.StateRejected, wantRuns: 0,
			wantAudit: []string{"request", "reject", "refused"}, wantDM: "rejected",
		},
		{
			name: "expired by the sweep", required: 1,
			do: func(t *testing.T, rp *replica, _ store.Store, clock *fakeClock, id string) {
				clock.Advance(time.Hour + time.Second)
				rp.svc.core.Scan(context.Background())
				rp.click(t, approver1, actionApprove, id)
			},
			wantState: approval.StateExpired, wantRuns: 0,
			wantAudit: []string{"request", "expire", "refused"}, wantDM: "expired",
		},
		{
			name: "expired at the click", required: 1,
			do: func(t *testing.T, rp *replica, _ store.Store, clock *fakeClock, id string) {
				clock.Advance(time.Hour + time.Second)
				rp.click(t, approver1, actionApprove, id)
				rp.click(t, approver2, actionApprove, id) // already expired: announced once only
			},
			wantState: approval.StateExpired, wantRuns: 0,
			wantAudit: []string{"request", "expire", "refused", "refused"}, wantDM: "expired",
		},
	}
	for _, fl := range flows {
		t.Run(fl.name, func(t *testing.T) {
			eachBackend(t, func(t *testing.T, db testDB) {
				clock := &fakeClock{t: t0}
				st := db.open(t, clock)
				def := newFakeDefender()
				def.runStatus, def.statuses, def.runErr = fl.runStatus, fl.statuses, fl.runErr
				rp := newReplica(t, "r1", st, def, clock, replicaOpts{cfg: func(c *Config) { c.RequiredApprovals = fl.required }})

				rp.command(t, analyst, "isolate ws-001.contoso.com full beaconing to c2")
				r := onlyRequest(t, st)
				require.Equal(t, approval.StatePending, r.State)
				require.NotEmpty(t, r.ApprovalTS, "the approval message ts is stored")
				assert.Equal(t, map[string]string{"machine_id": machineID, "isolation_type": "Full", "comment": "beaconing to c2"}, r.Args.Map())

				fl.do(t, rp, st, clock, r.ID)

				got := getRequest(t, st, r.ID)
				assert.Equal(t, fl.wantState, got.State)
				assert.Equal(t, fl.wantRuns, def.runCount())
				assert.Contains(t, got.Error, fl.wantErr)
				if fl.wantRuns > 0 && fl.runErr == nil {
					assert.Equal(t, "ma-1", got.MachineActionID)
					assert.JSONEq(t, `{"id":"ma-1","status":"`+string(fl.runStatus)+`"}`, got.Result)
				}
				assert.Equal(t, fl.wantAudit, auditKinds(t, st, r.ID))
				assert.Empty(t, rp.logs.errors(), "every store call must be accepted")

				thread := rp.thread(r.ApprovalTS)
				require.Len(t, thread, len(fl.wantPosts), "thread: %q", thread)
				for i, w := range fl.wantPosts {
					assert.Contains(t, thread[i], w)
				}
				dms := rp.dms(analyst)
				require.NotEmpty(t, dms)
				assert.Contains(t, dms[len(dms)-1], fl.wantDM)
				assert.NotContains(t, rp.lastUpdate(t), `"type":"actions"`, "a decided request keeps no buttons")
			})
		})
	}
}
