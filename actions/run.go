package actions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/defenderbot/defenderbot/defender"
)

// API is the part of the Defender client the actions call; adding an
// action adds its client method here.
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
	StopAndQuarantineFile(ctx context.Context, machineID, sha1, comment string) (*defender.MachineAction, error)
	CollectInvestigationPackage(ctx context.Context, machineID, comment string) (*defender.MachineAction, error)
	GetPackageURI(ctx context.Context, actionID string) (string, error)
}

// Result is what an action returned.
type Result struct {
	// Output holds exactly the action's output fields; absent
	// values (a null title) are nil.
	Output map[string]any
	// Raw is Microsoft's whole response body.
	Raw json.RawMessage
	// MachineAction is set for machine actions, get-action and cancel-action.
	MachineAction *defender.MachineAction
	// Alert is set for comment-alert and update-alert.
	Alert *defender.Alert
	// PackageURI is set for get-package-uri (also Output's package_uri). It
	// grants access to forensic data: never log it or post it in a channel.
	PackageURI string
}

// AlertAPI answers comment-alert and update-alert. The Defender client is
// one (its legacy /api/alerts); graph.DefenderAlerts is the other
// (Microsoft Graph alerts_v2, defender.alerts_api: graph).
type AlertAPI interface {
	UpdateAlert(ctx context.Context, alertID string, u defender.AlertUpdate) (*defender.Alert, error)
	CommentAlert(ctx context.Context, alertID, comment string) (*defender.Alert, error)
}

// Runner runs actions against Defender.
type Runner struct {
	api API
}

// NewRunner returns a Runner calling api. A non-nil alerts takes the alert
// actions (comment-alert, update-alert) instead of api.
func NewRunner(api API, alerts ...AlertAPI) *Runner {
	for _, a := range alerts {
		if a != nil {
			api = alertsVia{API: api, alerts: a}
		}
	}
	return &Runner{api: api}
}

// alertsVia routes the alert methods of API to another AlertAPI.
type alertsVia struct {
	API
	alerts AlertAPI
}

func (v alertsVia) UpdateAlert(ctx context.Context, alertID string, u defender.AlertUpdate) (*defender.Alert, error) {
	return v.alerts.UpdateAlert(ctx, alertID, u)
}

func (v alertsVia) CommentAlert(ctx context.Context, alertID, comment string) (*defender.Alert, error) {
	return v.alerts.CommentAlert(ctx, alertID, comment)
}

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
	if link := n.spec().link; link != nil {
		uri, err := link(ctx, r.api, a)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n, err)
		}
		return &Result{Output: map[string]any{"package_uri": uri}, PackageURI: uri}, nil
	}
	ma, alert, err := n.spec().call(ctx, r.api, a)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n, err)
	}
	if n.TargetsAlert() {
		if alert == nil {
			return nil, fmt.Errorf("%s: %w", n, ErrNoResponse)
		}
		return alertResult(n, alert), nil
	}
	if ma == nil {
		return nil, fmt.Errorf("%s: %w", n, ErrNoResponse)
	}
	return machineActionResult(n, ma), nil
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

// machineActionResult builds n's result from a MachineAction (n must return
// one; the output has n's output fields).
func machineActionResult(n Name, ma *defender.MachineAction) *Result {
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

// alertResult builds n's result from an Alert.
func alertResult(n Name, al *defender.Alert) *Result {
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
	if id == "" || defender.IDProblem(id) != "" {
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
				return machineActionResult(n, ma), nil
			}
		}
		select {
		case <-ctx.Done():
			if last == nil {
				return nil, fmt.Errorf("%s: waiting for action %s: %w", n, id, ctx.Err())
			}
			return machineActionResult(n, last), fmt.Errorf("%s: action %s still %s: %w", n, id, last.Status, ctx.Err())
		case <-ticker.C:
		}
	}
}
