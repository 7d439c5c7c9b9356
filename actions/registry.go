// Package actions is the registry of the Defender actions defenderbot can
// run: each action is declared once, in registry below, with its names (CLI
// name, aliases, Slack verb), title, arguments and their single validation,
// Defender permission, whether it changes state, its inverse, the machine
// action type Defender records for it, its Slack form and its help text,
// and how it calls the Defender client. The CLI (`defenderbot action`), the
// Slack parser, forms and help, the approval workflow, execution, audit and
// the README's action table all read it.
//
// It owns the action names and arguments; it must not import bot, store,
// approval, handlers or slack-go (it sits below them), and it imports
// defender only for the client it calls and the value checks it shares with
// the client's own guard.
package actions

import (
	"context"
	"strings"

	"github.com/defenderbot/defenderbot/defender"
)

// Name is an action's name as typed in the CLI and stored with a request.
type Name string

// The actions of the Defender playbook (pushing IOCs is the ioc package's job).
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
	// The forensic actions (beyond the Sekoia.io playbook).
	StopAndQuarantineFile       Name = "stop-and-quarantine-file"
	CollectInvestigationPackage Name = "collect-investigation-package"
	GetPackageURI               Name = "get-package-uri"
)

// Target is what an action acts on.
type Target int

// Targets.
const (
	TargetMachine       Target = iota + 1 // a machine (machine_id; in Slack an ID or a DNS name)
	TargetMachineAction                   // a machine action (action_id)
	TargetAlert                           // an alert (alert_id)
)

// Spec declares one action.
type Spec struct {
	Name    Name
	Title   string   // "Isolate a machine"
	Aliases []string // other names the CLI accepts (the Sekoia.io playbook's slugs, synonyms)

	// Verb is the /defender verb ("release", "alert comment"); VerbAliases
	// are other words for it ("deisolate"). SlackSyntax is what follows the
	// verb in usage texts, SlackNote a remark shown after it.
	Verb        string
	VerbAliases []string
	SlackSyntax string
	SlackNote   string
	// SlackChoice is the enum argument a Slack command may give as one word
	// after its target ("isolate ws-001 selective …"); SlackDefault is the
	// value Slack fills in when it is not given (the CLI requires scan_type).
	SlackChoice  string
	SlackDefault string
	// SlackPositional are arguments a Slack command gives as words after
	// its target, in order ("quarantine ws-001 <sha1> …").
	SlackPositional []string
	// SlackFields are the arguments a Slack command gives as key=value.
	SlackFields []string
	// Form lists the inputs of the Slack form (modal), in order: argument
	// names, and "machine" for a machine ID or DNS name.
	Form []string

	Required []string // argument names, in prompt order
	Optional []string
	// AtLeastOneOf: the action needs one of these (update-alert).
	AtLeastOneOf []string
	Outputs      []string // output fields, in the order of the Sekoia.io playbook's

	Help              string // one sentence for CLI usage and the README
	Permission        string // the WindowsDefenderATP application permission it needs
	ChangesState      bool   // false: read-only, nothing changes in Defender
	Inverse           Name   // the action that undoes it, if any
	MachineActionType string // the MachineAction type Defender records for it ("" if it creates none)
	Target            Target
	// Bulk: one request may name several machines ("isolate ws-1,ws-2 …"),
	// approved once and run once per machine.
	Bulk bool

	// call runs the action through the client with normalized arguments.
	call func(ctx context.Context, api API, a Args) (*defender.MachineAction, *defender.Alert, error)
	// link, instead of call, runs an action whose result is a link
	// (get-package-uri): it is never posted in Slack, so it has no Verb.
	link func(ctx context.Context, api API, a Args) (string, error)
}

var machineOutputs = []string{"id", "type", "status", "requestor", "title", "machineid"}
var scopedOutputs = []string{"id", "type", "scope", "status", "requestor", "title", "machineid"}

func machineCall(f func(api API, ctx context.Context, id, comment string) (*defender.MachineAction, error)) func(context.Context, API, Args) (*defender.MachineAction, *defender.Alert, error) {
	return func(ctx context.Context, api API, a Args) (*defender.MachineAction, *defender.Alert, error) {
		ma, err := f(api, ctx, a.MachineID, a.Comment)
		return ma, nil, err
	}
}

// registry declares every action, in the order of usage and help texts.
var registry = []Spec{
	{
		Name: Isolate, Title: "Isolate a machine", Aliases: []string{"isolate-endpoint", "isolate-machine"},
		Verb: "isolate", SlackSyntax: "<machine> [full|selective|unmanaged] <comment…>", SlackNote: "(default full)",
		SlackChoice: ArgIsolationType, SlackDefault: string(defender.IsolationFull),
		Form:     []string{"machine", ArgIsolationType, ArgComment},
		Required: []string{ArgMachineID, ArgComment}, Optional: []string{ArgIsolationType}, Outputs: scopedOutputs,
		Help:       "cuts the machine off the network (Full, Selective or UnManagedDevice; default Full)",
		Permission: "Machine.Isolate", ChangesState: true, Inverse: Deisolate,
		MachineActionType: defender.ActionIsolate, Target: TargetMachine, Bulk: true,
		call: func(ctx context.Context, api API, a Args) (*defender.MachineAction, *defender.Alert, error) {
			ma, err := api.IsolateMachine(ctx, a.MachineID, a.Comment, defender.IsolationType(a.IsolationType))
			return ma, nil, err
		},
	},
	{
		Name: Deisolate, Title: "Deisolate a machine", Aliases: []string{"unisolate", "deisolate-endpoint", "release"},
		Verb: "release", VerbAliases: []string{"deisolate", "unisolate"}, SlackSyntax: "<machine> <comment…>",
		Form:     []string{"machine", ArgComment},
		Required: []string{ArgMachineID, ArgComment}, Outputs: machineOutputs,
		Help:       "releases the machine from isolation",
		Permission: "Machine.Isolate", ChangesState: true, Inverse: Isolate,
		MachineActionType: defender.ActionUnisolate, Target: TargetMachine, Bulk: true,
		call: machineCall(API.UnisolateMachine),
	},
	{
		Name: RestrictCodeExecution, Title: "Restrict code execution", Aliases: []string{"restrict"},
		Verb: "restrict", SlackSyntax: "<machine> <comment…>",
		Form:     []string{"machine", ArgComment},
		Required: []string{ArgMachineID, ArgComment}, Outputs: machineOutputs,
		Help:       "lets only Microsoft-signed code run on the machine",
		Permission: "Machine.RestrictExecution", ChangesState: true, Inverse: UnrestrictCodeExecution,
		MachineActionType: defender.ActionRestrictCodeExecution, Target: TargetMachine, Bulk: true,
		call: machineCall(API.RestrictCodeExecution),
	},
	{
		Name: UnrestrictCodeExecution, Title: "Unrestrict code execution", Aliases: []string{"unrestrict"},
		Verb: "unrestrict", SlackSyntax: "<machine> <comment…>",
		Form:     []string{"machine", ArgComment},
		Required: []string{ArgMachineID, ArgComment}, Outputs: machineOutputs,
		Help:       "lifts the code execution restriction",
		Permission: "Machine.RestrictExecution", ChangesState: true, Inverse: RestrictCodeExecution,
		MachineActionType: defender.ActionUnrestrictCodeExecution, Target: TargetMachine, Bulk: true,
		call: machineCall(API.UnrestrictCodeExecution),
	},
	{
		Name: Scan, Title: "Scan a machine", Aliases: []string{"scan-machine"},
		Verb: "scan", SlackSyntax: "<machine> [quick|full] <comment…>", SlackNote: "(default quick)",
		SlackChoice: ArgScanType, SlackDefault: string(defender.ScanQuick),
		Form:     []string{"machine", ArgScanType, ArgComment},
		Required: []string{ArgMachineID, ArgComment, ArgScanType}, Outputs: scopedOutputs,
		Help:       "runs a Quick or Full antivirus scan",
		Permission: "Machine.Scan", ChangesState: true,
		MachineActionType: defender.ActionRunAntiVirusScan, Target: TargetMachine, Bulk: true,
		call: func(ctx context.Context, api API, a Args) (*defender.MachineAction, *defender.Alert, error) {
			ma, err := api.RunAntivirusScan(ctx, a.MachineID, a.Comment, defender.ScanType(a.ScanType))
			return ma, nil, err
		},
	},
	{
		Name: StopAndQuarantineFile, Title: "Stop and quarantine a file", Aliases: []string{"quarantine", "quarantine-file"},
		Verb: "quarantine", SlackSyntax: "<machine> <sha1> <comment…>", SlackPositional: []string{ArgSha1},
		Form:     []string{"machine", ArgSha1, ArgComment},
		Required: []string{ArgMachineID, ArgSha1, ArgComment}, Outputs: machineOutputs,
		Help:       "stops the processes running the file with this SHA-1 on the machine and quarantines it",
		Permission: "Machine.StopAndQuarantine", ChangesState: true,
		MachineActionType: defender.ActionStopAndQuarantineFile, Target: TargetMachine,
		call: func(ctx context.Context, api API, a Args) (*defender.MachineAction, *defender.Alert, error) {
			ma, err := api.StopAndQuarantineFile(ctx, a.MachineID, a.Sha1, a.Comment)
			return ma, nil, err
		},
	},
	{
		Name: CollectInvestigationPackage, Title: "Collect an investigation package", Aliases: []string{"collect", "collect-package"},
		Verb: "collect", SlackSyntax: "<machine> <comment…>",
		Form:     []string{"machine", ArgComment},
		Required: []string{ArgMachineID, ArgComment}, Outputs: machineOutputs,
		Help:       "collects a forensic package from the machine; its download link goes by direct message to the requester and approvers only",
		Permission: "Machine.CollectForensics", ChangesState: true,
		MachineActionType: defender.ActionCollectInvestigationPackage, Target: TargetMachine, Bulk: true,
		call: machineCall(API.CollectInvestigationPackage),
	},
	{
		Name: GetPackageURI, Title: "Get an investigation package's download link", Aliases: []string{"get-package-sas-uri"},
		Form:     []string{ArgActionID},
		Required: []string{ArgActionID}, Outputs: []string{"package_uri"},
		Help:       "prints the short-lived download link of a collected investigation package (command line only: never posted in Slack)",
		Permission: "Machine.Read.All", Target: TargetMachineAction,
		link: func(ctx context.Context, api API, a Args) (string, error) {
			return api.GetPackageURI(ctx, a.ActionID)
		},
	},
	{
		Name: GetAction, Title: "Get action info", Aliases: []string{"get-action-info"},
		Verb: "action", SlackSyntax: "<action-id>",
		Form:     []string{ArgActionID},
		Required: []string{ArgActionID}, Outputs: machineOutputs,
		Help:       "shows a machine action's status (read-only: no approval)",
		Permission: "Machine.Read.All", Target: TargetMachineAction,
		call: func(ctx context.Context, api API, a Args) (*defender.MachineAction, *defender.Alert, error) {
			ma, err := api.GetMachineAction(ctx, a.ActionID)
			return ma, nil, err
		},
	},
	{
		Name: CancelAction, Title: "Cancel machine action", Aliases: []string{"cancel-machine-action"},
		Verb: "cancel", SlackSyntax: "<action-id> <comment…>",
		Form:     []string{ArgActionID, ArgComment},
		Required: []string{ArgActionID, ArgComment}, Outputs: machineOutputs,
		Help:       "cancels a machine action that has not finished",
		Permission: "Machine.Isolate / Machine.RestrictExecution / Machine.Scan (that of the action cancelled)", ChangesState: true,
		Target: TargetMachineAction,
		call: func(ctx context.Context, api API, a Args) (*defender.MachineAction, *defender.Alert, error) {
			ma, err := api.CancelMachineAction(ctx, a.ActionID, a.Comment)
			return ma, nil, err
		},
	},
	{
		Name: CommentAlert, Title: "Comment an alert", Aliases: []string{"add-comment-to-alert"},
		Verb: "alert comment", SlackSyntax: "<alert-id> <comment…>",
		Form:     []string{ArgAlertID, ArgComment},
		Required: []string{ArgAlertID, ArgComment}, Outputs: []string{"id"},
		Help:       "adds a comment to an alert",
		Permission: "Alert.ReadWrite.All", ChangesState: true, Target: TargetAlert,
		call: func(ctx context.Context, api API, a Args) (*defender.MachineAction, *defender.Alert, error) {
			al, err := api.CommentAlert(ctx, a.AlertID, a.Comment)
			return nil, al, err
		},
	},
	{
		Name: UpdateAlert, Title: "Update an alert",
		Verb: "alert update", SlackSyntax: "<alert-id> [status=New|InProgress|Resolved] [classification=…] [determination=…] [owner=…] [comment…]",
		SlackFields: []string{ArgStatus, ArgClassification, ArgDetermination, ArgOwner},
		Form:        []string{ArgAlertID, ArgStatus, ArgClassification, ArgDetermination, ArgOwner, ArgComment},
		Required:    []string{ArgAlertID}, Optional: []string{ArgStatus, ArgClassification, ArgDetermination, ArgComment, ArgOwner},
		AtLeastOneOf: []string{ArgStatus, ArgClassification, ArgDetermination, ArgComment, ArgOwner},
		Outputs:      []string{"id", "title", "description", "status", "classification", "determination", "category"},
		Help:         "sets an alert's status, classification, determination, owner or comment",
		Permission:   "Alert.ReadWrite.All", ChangesState: true, Target: TargetAlert,
		call: func(ctx context.Context, api API, a Args) (*defender.MachineAction, *defender.Alert, error) {
			al, err := api.UpdateAlert(ctx, a.AlertID, alertUpdate(a))
			return nil, al, err
		},
	},
}

// byName indexes registry.
var byName = func() map[Name]*Spec {
	m := make(map[Name]*Spec, len(registry))
	for i := range registry {
		m[registry[i].Name] = &registry[i]
	}
	return m
}()

// All returns every action's Spec, in registry order.
func All() []Spec { return append([]Spec(nil), registry...) }

// Names returns every action, in a stable order for usage and help texts.
func Names() []Name {
	out := make([]Name, len(registry))
	for i, s := range registry {
		out[i] = s.Name
	}
	return out
}

// Lookup maps s (any case, '-' or '_', or one of its aliases) to an action name.
func Lookup(s string) (Name, bool) {
	k := strings.ReplaceAll(strings.ToLower(strings.TrimSpace(s)), "_", "-")
	if _, ok := byName[Name(k)]; ok {
		return Name(k), true
	}
	for _, sp := range registry {
		for _, a := range sp.Aliases {
			if a == k {
				return sp.Name, true
			}
		}
	}
	return "", false
}

// ByVerb returns the action of a canonical Slack verb ("release").
func ByVerb(verb string) (Spec, bool) {
	for _, s := range registry {
		if s.Verb != "" && s.Verb == verb {
			return s, true
		}
	}
	return Spec{}, false
}

// Spec returns n's declaration (false for an unknown name).
func (n Name) Spec() (Spec, bool) {
	s, ok := byName[n]
	if !ok {
		return Spec{}, false
	}
	return *s, true
}

func (n Name) spec() Spec { s, _ := n.Spec(); return s }

// Valid reports whether n is one of Names.
func (n Name) Valid() bool { _, ok := byName[n]; return ok }

// ReadOnly reports whether the action changes nothing in Defender.
func (n Name) ReadOnly() bool { return n.Valid() && !n.spec().ChangesState }

// TargetsMachine reports whether the action acts on a machine.
func (n Name) TargetsMachine() bool { return n.spec().Target == TargetMachine }

// Bulk reports whether one request may run n on several machines.
func (n Name) Bulk() bool { return n.spec().Bulk }

// TargetsAlert reports whether the action changes an alert.
func (n Name) TargetsAlert() bool { return n.spec().Target == TargetAlert }

// ReturnsMachineAction reports whether the action's result is a MachineAction
// (and so can be polled with get-action).
func (n Name) ReturnsMachineAction() bool {
	if n.spec().link != nil {
		return false
	}
	t := n.spec().Target
	return t == TargetMachine || t == TargetMachineAction
}

// MachineActionType is the MachineAction type Defender records for the
// action ("Isolate", "RunAntiVirusScan", ...), so that the action can be
// found again in the machine's action list; "" for actions that create no
// machine action of their own (alert actions, get-action, cancel-action).
func (n Name) MachineActionType() string { return n.spec().MachineActionType }

// Title is the action's human title ("Isolate a machine"); n itself if unknown.
func (n Name) Title() string {
	if s, ok := n.Spec(); ok {
		return s.Title
	}
	return string(n)
}

// Permission names the WindowsDefenderATP application permission the action needs.
func (n Name) Permission() string {
	if s, ok := n.Spec(); ok {
		return s.Permission
	}
	return "Machine.Read.All"
}

// Inverse is the action that undoes n ("" if none).
func (n Name) Inverse() Name { return n.spec().Inverse }

// RequiredArgs lists the argument names the action requires (for
// update-alert, alert_id; at least one optional argument is also needed).
func (n Name) RequiredArgs() []string { return append([]string(nil), n.spec().Required...) }

// OptionalArgs lists the argument names the action also accepts.
func (n Name) OptionalArgs() []string { return append([]string(nil), n.spec().Optional...) }

// Outputs lists the action's output fields, in the Sekoia.io playbook's order.
func (n Name) Outputs() []string { return append([]string(nil), n.spec().Outputs...) }
