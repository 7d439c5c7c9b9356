// Package playbook implements the nine actions of the MicrosoftDefenderXDR
// playbook (arguments, validation, the seed's output fields) on top of a
// Defender client. The CLI and the Slack bot share it.
package playbook

import (
	"strings"

	"github.com/defenderbot/defenderbot/defender"
)

// Name is a playbook action name as typed in the CLI and in Slack.
type Name string

// The seed's actions (Push IOCs is the ioc package's job).
const (
	CommentAlert            Name = "comment-alert"
	UpdateAlert             Name = "update-alert"
	Isolate                 Name = "isolate"
	Deisolate               Name = "deisolate"
	RestrictCodeExecution   Name = "restrict-code-execution"
	UnrestrictCodeExecution Name = "unrestrict-code-execution"
	Scan                    Name = "scan"
	GetAction               Name = "get-action"
	CancelAction            Name = "cancel-action"
)

type spec struct {
	title    string
	required []string // argument names, in prompt order
	optional []string
	outputs  []string // the seed's output fields, in the seed's order
}

var machineOutputs = []string{"id", "type", "status", "requestor", "title", "machineid"}
var scopedOutputs = []string{"id", "type", "scope", "status", "requestor", "title", "machineid"}

func specOf(n Name) (spec, bool) {
	switch n {
	case CommentAlert:
		return spec{"Comment an alert", []string{"alert_id", "comment"}, nil, []string{"id"}}, true
	case UpdateAlert:
		return spec{"Update an alert", []string{"alert_id"}, []string{"status", "classification", "determination", "comment", "owner"},
			[]string{"id", "title", "description", "status", "classification", "determination", "category"}}, true
	case Isolate:
		return spec{"Isolate a machine", []string{"machine_id", "comment"}, []string{"isolation_type"}, scopedOutputs}, true
	case Deisolate:
		return spec{"Deisolate a machine", []string{"machine_id", "comment"}, nil, machineOutputs}, true
	case RestrictCodeExecution:
		return spec{"Restrict code execution", []string{"machine_id", "comment"}, nil, machineOutputs}, true
	case UnrestrictCodeExecution:
		return spec{"Unrestrict code execution", []string{"machine_id", "comment"}, nil, machineOutputs}, true
	case Scan:
		return spec{"Scan a machine", []string{"machine_id", "comment", "scan_type"}, nil, scopedOutputs}, true
	case GetAction:
		return spec{"Get action info", []string{"action_id"}, nil, machineOutputs}, true
	case CancelAction:
		return spec{"Cancel machine action", []string{"action_id", "comment"}, nil, machineOutputs}, true
	}
	return spec{}, false
}

// Names returns every action, in a stable order for usage and help texts.
func Names() []Name {
	return []Name{Isolate, Deisolate, RestrictCodeExecution, UnrestrictCodeExecution, Scan,
		GetAction, CancelAction, CommentAlert, UpdateAlert}
}

// aliases accept the seed's slugs and common synonyms.
var aliases = map[string]Name{
	"isolate-endpoint":      Isolate,
	"isolate-machine":       Isolate,
	"unisolate":             Deisolate,
	"deisolate-endpoint":    Deisolate,
	"release":               Deisolate,
	"restrict":              RestrictCodeExecution,
	"unrestrict":            UnrestrictCodeExecution,
	"scan-machine":          Scan,
	"get-action-info":       GetAction,
	"cancel-machine-action": CancelAction,
	"add-comment-to-alert":  CommentAlert,
}

// Lookup maps s (any case, '-' or '_', or one of the seed's slugs) to an
// action name.
func Lookup(s string) (Name, bool) {
	k := strings.ReplaceAll(strings.ToLower(strings.TrimSpace(s)), "_", "-")
	if _, ok := specOf(Name(k)); ok {
		return Name(k), true
	}
	n, ok := aliases[k]
	return n, ok
}

// Valid reports whether n is one of Names.
func (n Name) Valid() bool { _, ok := specOf(n); return ok }

// ReadOnly reports whether the action changes nothing in Defender.
func (n Name) ReadOnly() bool { return n == GetAction }

// TargetsMachine reports whether the action acts on a machine.
func (n Name) TargetsMachine() bool {
	switch n {
	case Isolate, Deisolate, RestrictCodeExecution, UnrestrictCodeExecution, Scan:
		return true
	}
	return false
}

// MachineActionType is the MachineAction type Defender records for the
// action ("Isolate", "RunAntiVirusScan", ...), so that the action can be
// found again in the machine's action list; "" for actions that create no
// machine action of their own (alert actions, get-action, cancel-action).
func (n Name) MachineActionType() string {
	switch n {
	case Isolate:
		return defender.ActionIsolate
	case Deisolate:
		return defender.ActionUnisolate
	case RestrictCodeExecution:
		return defender.ActionRestrictCodeExecution
	case UnrestrictCodeExecution:
		return defender.ActionUnrestrictCodeExecution
	case Scan:
		return defender.ActionRunAntiVirusScan
	}
	return ""
}

// TargetsAlert reports whether the action changes an alert.
func (n Name) TargetsAlert() bool { return n == CommentAlert || n == UpdateAlert }

// ReturnsMachineAction reports whether the action's result is a MachineAction
// (and so can be polled with get-action).
func (n Name) ReturnsMachineAction() bool {
	return n.TargetsMachine() || n == GetAction || n == CancelAction
}

// Title is the seed's human title ("Isolate a machine").
func (n Name) Title() string {
	s, ok := specOf(n)
	if !ok {
		return string(n)
	}
	return s.title
}

// RequiredArgs lists the argument names the action requires (for
// update-alert, alert_id; at least one optional argument is also needed).
func (n Name) RequiredArgs() []string {
	s, _ := specOf(n)
	return append([]string(nil), s.required...)
}

// OptionalArgs lists the argument names the action also accepts.
func (n Name) OptionalArgs() []string {
	s, _ := specOf(n)
	return append([]string(nil), s.optional...)
}

// Outputs lists the seed's output fields of the action, in the seed's order.
func (n Name) Outputs() []string {
	s, _ := specOf(n)
	return append([]string(nil), s.outputs...)
}
