package defender

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"time"
)

// lookupSkew widens the "created since" window of the look-up after an
// unknown outcome, to absorb clock skew between us and Defender.
const lookupSkew = 10 * time.Minute

// Machine action types as Defender reports them in MachineAction.Type.
const (
	ActionIsolate                 = "Isolate"
	ActionUnisolate               = "Unisolate"
	ActionRestrictCodeExecution   = "RestrictCodeExecution"
	ActionUnrestrictCodeExecution = "UnrestrictCodeExecution"
	ActionRunAntiVirusScan        = "RunAntiVirusScan"
)

// commentBody is {"Comment":...}; machine action bodies are PascalCase.
type commentBody struct {
	Comment string `json:"Comment"`
}

type isolateBody struct {
	Comment       string        `json:"Comment"`
	IsolationType IsolationType `json:"IsolationType"`
}

type scanBody struct {
	Comment  string   `json:"Comment"`
	ScanType ScanType `json:"ScanType"`
}

// IsolateMachine isolates a device from the network. An empty t means Full;
// the type is always sent explicitly, in Microsoft's spelling (t is matched
// case-insensitively, like ParseIsolationType).
//
// API: POST /api/machines/{id}/isolate
func (c *Client) IsolateMachine(ctx context.Context, machineID, comment string, t IsolationType) (*MachineAction, error) {
	if t == "" {
		t = IsolationFull
	}
	t, err := ParseIsolationType(string(t))
	if err != nil {
		return nil, err
	}
	return c.machineAction(ctx, machineID, comment, "isolate", ActionIsolate, isolateBody{comment, t})
}

// UnisolateMachine releases a device from isolation.
//
// API: POST /api/machines/{id}/unisolate
func (c *Client) UnisolateMachine(ctx context.Context, machineID, comment string) (*MachineAction, error) {
	return c.machineAction(ctx, machineID, comment, "unisolate", ActionUnisolate, commentBody{comment})
}

// RestrictCodeExecution allows only Microsoft-signed code to run on a device.
//
// API: POST /api/machines/{id}/restrictCodeExecution
func (c *Client) RestrictCodeExecution(ctx context.Context, machineID, comment string) (*MachineAction, error) {
	return c.machineAction(ctx, machineID, comment, "restrictCodeExecution", ActionRestrictCodeExecution, commentBody{comment})
}

// UnrestrictCodeExecution lifts a code execution restriction.
//
// API: POST /api/machines/{id}/unrestrictCodeExecution
func (c *Client) UnrestrictCodeExecution(ctx context.Context, machineID, comment string) (*MachineAction, error) {
	return c.machineAction(ctx, machineID, comment, "unrestrictCodeExecution", ActionUnrestrictCodeExecution, commentBody{comment})
}

// RunAntivirusScan starts a Microsoft Defender Antivirus scan. t is required
// (Microsoft has no default) and matched like ParseScanType.
//
// API: POST /api/machines/{id}/runAntiVirusScan
func (c *Client) RunAntivirusScan(ctx context.Context, machineID, comment string, t ScanType) (*MachineAction, error) {
	t, err := ParseScanType(string(t))
	if err != nil {
		return nil, err
	}
	return c.machineAction(ctx, machineID, comment, "runAntiVirusScan", ActionRunAntiVirusScan, scanBody{comment, t})
}

// machineAction posts a machine action. When the outcome is unknown (timeout,
// dropped connection, 5xx) it does not re-send: it looks for the action
// Defender may have created, and returns it if found.
func (c *Client) machineAction(ctx context.Context, machineID, comment, verb, actionType string, body any) (*MachineAction, error) {
	if err := validateID("machine id", machineID); err != nil {
		return nil, err
	}
	if err := validateText("comment", comment, true); err != nil {
		return nil, err
	}
	started := c.now()
	cl := &call{
		api:    APIMachineActions,
		method: "POST",
		path:   "/api/machines/" + url.PathEscape(machineID) + "/" + verb,
		body:   body,
		unsafe: true,
	}
	ma, err := c.doAction(ctx, cl)
	var uo *unknownOutcome
	if !errors.As(err, &uo) {
		return ma, err
	}
	how := fmt.Sprintf("check with GET /api/machineactions?$filter=machineId eq '%s' and type eq '%s' (defenderbot: get the machine's actions) before trying again", machineID, actionType)
	if ctx.Err() != nil {
		return nil, fmt.Errorf("%w; %s", uo, how)
	}
	c.log.WarnContext(ctx, "defender machine action outcome unknown, looking it up",
		"machine_id", machineID, "type", actionType, "cause", uo.cause)
	found, lerr := c.findAction(ctx, machineID, actionType, comment, started)
	if lerr != nil {
		return nil, fmt.Errorf("%w; the look-up failed too (%v); %s", uo, lerr, how)
	}
	if found != nil {
		c.log.InfoContext(ctx, "defender machine action found after unknown outcome",
			"machine_id", machineID, "type", actionType, "action_id", found.ID)
		return found, nil
	}
	return nil, fmt.Errorf("%w; no matching %s action was found yet, but Defender may still create it; %s", uo, actionType, how)
}

// findAction looks for the action a lost request would have created: same
// machine and type, created since just before the request, same comment.
func (c *Client) findAction(ctx context.Context, machineID, actionType, comment string, since time.Time) (*MachineAction, error) {
	actions, err := c.ListMachineActions(ctx, MachineActionListOptions{
		MachineID:    machineID,
		Type:         actionType,
		CreatedSince: since.Add(-lookupSkew),
	})
	if err != nil {
		return nil, err
	}
	var best *MachineAction
	for i := range actions {
		a := &actions[i]
		if a.RequestorComment != comment || a.MachineID != machineID || a.Type != actionType {
			continue
		}
		if best == nil || a.CreationDateTimeUTC.After(best.CreationDateTimeUTC) {
			best = a
		}
	}
	return best, nil
}

func (c *Client) doAction(ctx context.Context, cl *call) (*MachineAction, error) {
	var ma MachineAction
	raw, err := c.do(ctx, cl, &ma)
	if err != nil {
		return nil, err
	}
	ma.Raw = json.RawMessage(raw)
	return &ma, nil
}

// GetMachineAction returns one machine action (poll it for the status).
//
// API: GET /api/machineactions/{id}
func (c *Client) GetMachineAction(ctx context.Context, actionID string) (*MachineAction, error) {
	if err := validateID("action id", actionID); err != nil {
		return nil, err
	}
	return c.doAction(ctx, &call{api: APIMachineActions, method: "GET", path: "/api/machineactions/" + url.PathEscape(actionID)})
}

// CancelMachineAction cancels an action that has not reached a final state.
// If the outcome is unknown it checks whether the action got cancelled with
// this comment instead of re-sending.
//
// API: POST /api/machineactions/{id}/cancel
func (c *Client) CancelMachineAction(ctx context.Context, actionID, comment string) (*MachineAction, error) {
	if err := validateID("action id", actionID); err != nil {
		return nil, err
	}
	if err := validateText("comment", comment, true); err != nil {
		return nil, err
	}
	ma, err := c.doAction(ctx, &call{
		api: APIMachineActions, method: "POST", unsafe: true,
		path: "/api/machineactions/" + url.PathEscape(actionID) + "/cancel",
		body: commentBody{comment},
	})
	var uo *unknownOutcome
	if !errors.As(err, &uo) {
		return ma, err
	}
	how := fmt.Sprintf("check with GET /api/machineactions/%s before trying again", actionID)
	if ctx.Err() != nil {
		return nil, fmt.Errorf("%w; %s", uo, how)
	}
	got, lerr := c.GetMachineAction(ctx, actionID)
	if lerr != nil {
		return nil, fmt.Errorf("%w; the look-up failed too (%v); %s", uo, lerr, how)
	}
	if got.Status == StatusCancelled && got.CancellationComment != nil && *got.CancellationComment == comment {
		return got, nil
	}
	return nil, fmt.Errorf("%w; action %s is %s and not cancelled with this comment yet; %s", uo, actionID, got.Status, how)
}

// MachineActionListOptions filters ListMachineActions. Empty fields are not
// filtered on. Top 0 returns every match (all pages).
type MachineActionListOptions struct {
	MachineID string
	// Type is a MachineAction type such as Isolate or RunAntiVirusScan (any case).
	Type string
	// Status is a MachineAction status such as Pending (any case).
	Status string
	Top    int
	Skip   int
	// CreatedSince, when set, keeps actions created at or after it.
	CreatedSince time.Time
}

// ListMachineActions lists machine actions matching opts, in Defender's
// order, following paging when opts.Top is 0.
//
// API: GET /api/machineactions?$filter=...
func (c *Client) ListMachineActions(ctx context.Context, opts MachineActionListOptions) ([]MachineAction, error) {
	if opts.MachineID != "" {
		if err := validateID("machine id", opts.MachineID); err != nil {
			return nil, err
		}
	}
	var typ, status string
	if opts.Type != "" {
		t, err := lookup("type", opts.Type, aliasesOf(validActionTypes), validActionTypes)
		if err != nil {
			return nil, err
		}
		typ = t
	}
	if opts.Status != "" {
		s, err := lookup("status", opts.Status, aliasesOf(validActionStatuses), validActionStatuses)
		if err != nil {
			return nil, err
		}
		status = string(s)
	}
	if err := validatePaging(opts.Top, opts.Skip); err != nil {
		return nil, err
	}
	filter := eqFilter("machineId", opts.MachineID, "type", typ, "status", status)
	if !opts.CreatedSince.IsZero() {
		f := "creationDateTimeUtc ge " + odataTime(opts.CreatedSince)
		if filter != "" {
			filter += " and " + f
		} else {
			filter = f
		}
	}
	raws, err := c.list(ctx, APIMachineActions, "/api/machineactions", filter, opts.Top, opts.Skip, false)
	if err != nil {
		return nil, err
	}
	out := make([]MachineAction, len(raws))
	for i, r := range raws {
		if err := json.Unmarshal(r, &out[i]); err != nil {
			return nil, fmt.Errorf("defender: GET /api/machineactions: decoding item %d: %w", i, err)
		}
		out[i].Raw = r
	}
	return out, nil
}
