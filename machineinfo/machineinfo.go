// Package machineinfo gathers what Defender knows about a machine for the
// person deciding on an action against it: the device record, its open
// alerts and its latest machine actions. The three look-ups run in
// parallel; each one fails on its own (the caller shows "unavailable") and
// none blocks the others or the request.
//
// It owns the look-ups and the facts derived from them (stale, isolated,
// restricted, running). It must not import any defenderbot package but
// defender (the client's types), nor slack-go or the store: the Slack edge
// renders an Info.
package machineinfo

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/defenderbot/defenderbot/defender"
)

// API is the part of the Defender client the look-ups use.
type API interface {
	GetMachine(ctx context.Context, machineID string) (*defender.Machine, error)
	ListMachineAlerts(ctx context.Context, machineID string, openOnly bool) ([]defender.Alert, error)
	LatestMachineActions(ctx context.Context, machineID string, n int) ([]defender.MachineAction, error)
}

// Options tune Start. Timeout and Actions are required (package config
// supplies them: config.LookupTimeout, config.LatestActions); the clock
// and timer default to the real ones.
type Options struct {
	// Timeout bounds each look-up; one that takes longer is unavailable.
	Timeout time.Duration
	// Actions is how many of the latest machine actions to read.
	Actions int
	// Now is the clock (time.Now by default).
	Now func() time.Time
	// After is the timer Wait uses (time.After by default); tests inject it.
	After func(time.Duration) <-chan time.Time
	// Machine, when set, is the device record already read (resolving a
	// name reads it): it is used instead of reading it again.
	Machine *defender.Machine
}

func (o Options) withDefaults() Options {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.After == nil {
		o.After = time.After
	}
	return o
}

// ErrTimeout is the error of a look-up that took longer than Options.Timeout.
var ErrTimeout = errors.New("defender did not answer in time")

// Part is the result of one look-up.
type Part[T any] struct {
	Value T
	Err   error // the look-up failed: show "unavailable"
	Done  bool  // false while the look-up is still running
}

// OK reports a finished, successful look-up.
func (p Part[T]) OK() bool { return p.Done && p.Err == nil }

// Info is what is known about one machine at one moment.
type Info struct {
	MachineID string
	Machine   Part[*defender.Machine]
	Alerts    Part[[]defender.Alert]         // open (not Resolved), newest first
	Actions   Part[[]defender.MachineAction] // newest first
	At        time.Time                      // when this snapshot was taken
}

// Complete reports whether every look-up has finished (successfully or not).
func (i Info) Complete() bool { return i.Machine.Done && i.Alerts.Done && i.Actions.Done }

// Lookup is a running set of look-ups for one machine.
type Lookup struct {
	opts Options
	done chan struct{}

	mu   sync.Mutex
	info Info
	left int
}

// Start launches the three look-ups in the background. They stop when ctx
// is cancelled or after Options.Timeout each.
func Start(ctx context.Context, api API, machineID string, opts Options) *Lookup {
	opts = opts.withDefaults()
	l := &Lookup{opts: opts, done: make(chan struct{}), left: 3, info: Info{MachineID: machineID}}
	run(ctx, l, func(ctx context.Context) (*defender.Machine, error) {
		if opts.Machine != nil {
			return opts.Machine, nil
		}
		return api.GetMachine(ctx, machineID)
	}, func(i *Info, p Part[*defender.Machine]) { i.Machine = p })
	run(ctx, l, func(ctx context.Context) ([]defender.Alert, error) {
		alerts, err := api.ListMachineAlerts(ctx, machineID, true)
		// Defender filters Resolved out; be safe against a server that does not.
		alerts = slices.DeleteFunc(alerts, func(a defender.Alert) bool { return strings.EqualFold(a.Status, "Resolved") })
		slices.SortStableFunc(alerts, func(a, b defender.Alert) int { return b.AlertCreationTime.Compare(a.AlertCreationTime) })
		return alerts, err
	}, func(i *Info, p Part[[]defender.Alert]) { i.Alerts = p })
	run(ctx, l, func(ctx context.Context) ([]defender.MachineAction, error) {
		return api.LatestMachineActions(ctx, machineID, opts.Actions)
	}, func(i *Info, p Part[[]defender.MachineAction]) { i.Actions = p })
	return l
}

// ErrOptions fails every look-up of a Start whose Options lack Timeout or
// Actions.
var ErrOptions = errors.New("machineinfo: Options.Timeout and Options.Actions must be positive")

func run[T any](ctx context.Context, l *Lookup, get func(context.Context) (T, error), set func(*Info, Part[T])) {
	go func() {
		var (
			v   T
			err error
		)
		if l.opts.Timeout <= 0 || l.opts.Actions <= 0 {
			err = ErrOptions
		} else {
			cctx, cancel := context.WithTimeout(ctx, l.opts.Timeout)
			v, err = get(cctx)
			if err != nil && cctx.Err() == context.DeadlineExceeded && ctx.Err() == nil {
				err = ErrTimeout
			}
			cancel()
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		set(&l.info, Part[T]{Value: v, Err: err, Done: true})
		l.left--
		if l.left == 0 {
			close(l.done)
		}
	}()
}

// Done is closed when every look-up has finished.
func (l *Lookup) Done() <-chan struct{} { return l.done }

// Snapshot returns what is known now.
func (l *Lookup) Snapshot() Info {
	l.mu.Lock()
	defer l.mu.Unlock()
	info := l.info
	info.At = l.opts.Now()
	return info
}

// Wait returns when every look-up has finished, after d, or when ctx is
// done, whichever comes first, with what is known then.
func (l *Lookup) Wait(ctx context.Context, d time.Duration) Info {
	select {
	case <-l.done:
	case <-l.opts.After(d):
	case <-ctx.Done():
	}
	return l.Snapshot()
}

// Stale reports a machine whose last report to Defender is older than
// after (config.StaleAfter), so the facts shown may be out of date.
func (i Info) Stale(after time.Duration) bool {
	m := i.Machine.Value
	return i.Machine.OK() && m != nil && !m.LastSeen.IsZero() && i.At.Sub(m.LastSeen) > after
}

// Containment is the state of one kind of containment (isolation or code
// execution restriction) as the latest machine actions tell it.
type Containment struct {
	// Active: the latest succeeded action of the pair put the machine in
	// containment (Isolate, RestrictCodeExecution).
	Active bool
	// Last is that latest succeeded action (nil if none was found).
	Last *defender.MachineAction
	// Pending is an action of the pair still Pending or InProgress.
	Pending *defender.MachineAction
}

// Isolation tells whether the machine is isolated, by whom, and whether an
// isolate or release is under way.
func (i Info) Isolation() Containment {
	return i.containment(defender.ActionIsolate, defender.ActionUnisolate)
}

// Restriction is Isolation for code execution restriction.
func (i Info) Restriction() Containment {
	return i.containment(defender.ActionRestrictCodeExecution, defender.ActionUnrestrictCodeExecution)
}

func (i Info) containment(on, off string) Containment {
	var c Containment
	for k := range i.Actions.Value { // newest first
		a := &i.Actions.Value[k]
		if a.Type != on && a.Type != off {
			continue
		}
		if !a.Status.Final() && c.Pending == nil {
			c.Pending = a
		}
		if a.Status == defender.StatusSucceeded && c.Last == nil {
			c.Last = a
			c.Active = a.Type == on
		}
	}
	return c
}

// Running returns the machine actions still Pending or InProgress, newest first.
func (i Info) Running() []defender.MachineAction {
	var out []defender.MachineAction
	for _, a := range i.Actions.Value {
		if !a.Status.Final() {
			out = append(out, a)
		}
	}
	return out
}
