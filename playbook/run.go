package playbook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/defenderbot/defenderbot/defender"
)

// API is the part of the Defender client the playbook uses.
type API interface {
	IsolateMachine(ctx context.Context, machineID, comment string, t defender.IsolationType) (*defender.MachineAction, error)
	UnisolateMachine(ctx context.Context, machineID, comment string) (*defender.MachineAction, error)
	RestrictCodeExecution(ctx context.Context, machineID, comment string) (*defender.MachineAction, error)
	UnrestrictCodeExecution(ctx context.Context, machineID, comment string) (*defender.MachineAction, error)
	RunAntivirusScan(ctx context.Context, machineID, comment string, t defender.ScanType) (*defender.MachineAction, error)
	GetMachineAction(ctx context.Context, id string) (*defender.MachineAction, error)
	CancelMachineAction(ctx context.Context, id, comment string) (*defender.MachineAction, error)
	UpdateAlert(ctx context.Context, alertID string, u defender.AlertUpdate) (*defender.Alert, error)
	CommentAlert(ctx context.Context, alertID, comment string) (*defender.Alert, error)
}

// Result is what an action returned.
type Result struct {
	// Output holds exactly the seed's output fields of the action; absent
	// values (a null title) are nil.
	Output map[string]any
	// Raw is Microsoft's whole response body.
	Raw json.RawMessage
	// MachineAction is set for machine actions, get-action and cancel-action.
	MachineAction *defender.MachineAction
	// Alert is set for comment-alert and update-alert.
	Alert *defender.Alert
}

// Runner runs playbook actions against Defender.
type Runner struct {
	api API
}

// NewRunner returns a Runner calling api.
func NewRunner(api API) *Runner { return &Runner{api: api} }

// ErrNoResponse is returned when the client reported success without a body.
var ErrNoResponse = errors.New("defender returned no entity")

// Run normalizes a and runs action n. Argument errors wrap ErrInvalidArgs
// and are returned before any request is sent; Defender's errors (such as
// *defender.APIError) are returned wrapped with the action name.
func (r *Runner) Run(ctx context.Context, n Name, a Args) (*Result, error) {
	a, err := Normalize(n, a)
	if err != nil {
		return nil, err
	}
	var (
		ma    *defender.MachineAction
		alert *defender.Alert
	)
	switch n {
	case Isolate:
		ma, err = r.api.IsolateMachine(ctx, a.MachineID, a.Comment, defender.IsolationType(a.IsolationType))
	case Deisolate:
		ma, err = r.api.UnisolateMachine(ctx, a.MachineID, a.Comment)
	case RestrictCodeExecution:
		ma, err = r.api.RestrictCodeExecution(ctx, a.MachineID, a.Comment)
	case UnrestrictCodeExecution:
		ma, err = r.api.UnrestrictCodeExecution(ctx, a.MachineID, a.Comment)
	case Scan:
		ma, err = r.api.RunAntivirusScan(ctx, a.MachineID, a.Comment, defender.ScanType(a.ScanType))
	case GetAction:
		ma, err = r.api.GetMachineAction(ctx, a.ActionID)
	case CancelAction:
		ma, err = r.api.CancelMachineAction(ctx, a.ActionID, a.Comment)
	case CommentAlert:
		alert, err = r.api.CommentAlert(ctx, a.AlertID, a.Comment)
	case UpdateAlert:
		alert, err = r.api.UpdateAlert(ctx, a.AlertID, alertUpdate(a))
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n, err)
	}
	if n.TargetsAlert() {
		if alert == nil {
			return nil, fmt.Errorf("%s: %w", n, ErrNoResponse)
		}
		return AlertResult(n, alert), nil
	}
	if ma == nil {
		return nil, fmt.Errorf("%s: %w", n, ErrNoResponse)
	}
	return MachineActionResult(n, ma), nil
}

func alertUpdate(a Args) defender.AlertUpdate {
	var u defender.AlertUpdate
	ptr := func(s string) *string {
		if s == "" {
			return nil
		}
		return &s
	}
	u.Status = ptr(a.Status)
	u.Classification = ptr(a.Classification)
	u.Determination = ptr(a.Determination)
	u.Comment = ptr(a.Comment)
	u.AssignedTo = ptr(a.Owner)
	return u
}

func nullable(p *string) any {
	if p == nil {
		return nil
	}
	return *p
}

// MachineActionResult builds n's result from a MachineAction (n must return
// one; the output has n's seed fields).
func MachineActionResult(n Name, ma *defender.MachineAction) *Result {
	all := map[string]any{
		"id":        ma.ID,
		"type":      ma.Type,
		"scope":     nullable(ma.Scope),
		"status":    string(ma.Status),
		"requestor": ma.Requestor,
		"title":     nullable(ma.Title),
		"machineid": ma.MachineID,
	}
	return &Result{Output: pick(n, all), Raw: ma.Raw, MachineAction: ma}
}

// AlertResult builds n's result from an Alert.
func AlertResult(n Name, al *defender.Alert) *Result {
	all := map[string]any{
		"id":             al.ID,
		"title":          al.Title,
		"description":    al.Description,
		"status":         al.Status,
		"classification": nullable(al.Classification),
		"determination":  nullable(al.Determination),
		"category":       al.Category,
	}
	return &Result{Output: pick(n, all), Raw: al.Raw, Alert: al}
}

func pick(n Name, all map[string]any) map[string]any {
	out := make(map[string]any)
	for _, k := range n.Outputs() {
		out[k] = all[k]
	}
	return out
}

// Wait polls the machine action id every interval until its status is final
// or ctx ends (bound the wait with a context deadline), and returns it as
// n's result. The last status seen is returned with ctx's error on timeout.
func (r *Runner) Wait(ctx context.Context, n Name, id string, interval time.Duration) (*Result, error) {
	if !n.ReturnsMachineAction() {
		return nil, &ArgError{Action: n, Msg: fmt.Sprintf("%s does not return a machine action to wait for", n)}
	}
	if msg := checkID(id); id == "" || msg != "" {
		return nil, &ArgError{Action: n, Arg: "action_id", Msg: "action_id is invalid"}
	}
	if interval <= 0 {
		return nil, &ArgError{Action: n, Msg: "poll interval must be positive"}
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	var last *defender.MachineAction
	for {
		ma, err := r.api.GetMachineAction(ctx, id)
		switch {
		case err != nil && ctx.Err() == nil:
			return nil, fmt.Errorf("%s: polling action %s: %w", n, id, err)
		case err == nil && ma == nil:
			return nil, fmt.Errorf("%s: polling action %s: %w", n, id, ErrNoResponse)
		case err == nil:
			last = ma
			if ma.Status.Final() {
				return MachineActionResult(n, ma), nil
			}
		}
		select {
		case <-ctx.Done():
			if last == nil {
				return nil, fmt.Errorf("%s: waiting for action %s: %w", n, id, ctx.Err())
			}
			return MachineActionResult(n, last), fmt.Errorf("%s: action %s still %s: %w", n, id, last.Status, ctx.Err())
		case <-ticker.C:
		}
	}
}

// Describe renders the action in one line for humans, e.g.
// "Isolate machine 1e5bc9d7… (Full): suspicious beaconing". Long IDs are
// shortened; use the arguments themselves where the full ID matters.
func Describe(n Name, a Args) string {
	if na, err := Normalize(n, a); err == nil {
		a = na
	}
	var b strings.Builder
	switch n {
	case Isolate:
		fmt.Fprintf(&b, "Isolate machine %s (%s)", short(a.MachineID), orDefault(a.IsolationType, "Full"))
	case Deisolate:
		fmt.Fprintf(&b, "Release machine %s from isolation", short(a.MachineID))
	case RestrictCodeExecution:
		fmt.Fprintf(&b, "Restrict code execution on machine %s", short(a.MachineID))
	case UnrestrictCodeExecution:
		fmt.Fprintf(&b, "Remove the code execution restriction on machine %s", short(a.MachineID))
	case Scan:
		fmt.Fprintf(&b, "Run a %s antivirus scan on machine %s", orDefault(a.ScanType, "?"), short(a.MachineID))
	case GetAction:
		fmt.Fprintf(&b, "Get the status of machine action %s", short(a.ActionID))
	case CancelAction:
		fmt.Fprintf(&b, "Cancel machine action %s", short(a.ActionID))
	case CommentAlert:
		fmt.Fprintf(&b, "Comment alert %s", short(a.AlertID))
	case UpdateAlert:
		fmt.Fprintf(&b, "Update alert %s", short(a.AlertID))
		var parts []string
		for _, k := range []string{"status", "classification", "determination", "owner"} {
			if v := a.Get(k); v != "" {
				parts = append(parts, k+" "+oneLine(v, 60))
			}
		}
		if len(parts) > 0 {
			b.WriteString(" (" + strings.Join(parts, ", ") + ")")
		}
	default:
		fmt.Fprintf(&b, "Unknown action %q", string(n))
	}
	if a.Comment != "" {
		b.WriteString(": " + oneLine(a.Comment, 120))
	}
	return b.String()
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// short abbreviates long IDs (machine IDs are 40 hex digits) for one-liners.
func short(id string) string {
	if id == "" {
		return "?"
	}
	r := []rune(id)
	if len(r) <= 12 {
		return id
	}
	return string(r[:8]) + "…"
}

func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	r := []rune(s)
	if len(r) <= max {
		return s
	}
	return string(r[:max-1]) + "…"
}
