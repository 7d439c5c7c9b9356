package actions

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/defenderbot/defenderbot/defender"
)

// Argument names: the Sekoia.io playbook's, used as JSON keys, CLI flags
// (with dashes) and Slack form block IDs.
const (
	ArgAlertID        = "alert_id"
	ArgComment        = "comment"
	ArgMachineID      = "machine_id"
	ArgIsolationType  = "isolation_type"
	ArgScanType       = "scan_type"
	ArgActionID       = "action_id"
	ArgStatus         = "status"
	ArgClassification = "classification"
	ArgDetermination  = "determination"
	ArgOwner          = "owner"
	ArgSha1           = "sha1"
)

// Args are an action's arguments. JSON names are the argument names.
type Args struct {
	AlertID        string `json:"alert_id,omitempty"`
	Comment        string `json:"comment,omitempty"`
	MachineID      string `json:"machine_id,omitempty"`
	IsolationType  string `json:"isolation_type,omitempty"`
	ScanType       string `json:"scan_type,omitempty"`
	ActionID       string `json:"action_id,omitempty"`
	Status         string `json:"status,omitempty"`
	Classification string `json:"classification,omitempty"`
	Determination  string `json:"determination,omitempty"`
	Owner          string `json:"owner,omitempty"`
	Sha1           string `json:"sha1,omitempty"`
}

// MaxCommentLen is the one limit on an analyst's comment (and on a
// rejection reason): Defender stores it, defenderbot appends the request tag
// to it, and a Slack form's text input accepts at most 3,000 characters.
const MaxCommentLen = 1000

// maxOwnerLen bounds a user principal name.
const maxOwnerLen = 256

// ArgSpec declares one argument: how it is documented, asked for and checked.
type ArgSpec struct {
	Name  string
	Help  string // CLI flag help
	Label string // Slack form label
	// Choices are the canonical values of an enum argument (nil otherwise);
	// for determination, every determination of every classification.
	Choices []string
	// check returns the canonical value or a problem phrase ("must not
	// contain '/'"); a is the other (already canonical) arguments.
	check func(v string, a Args) (string, string)
}

func checkID(v string, _ Args) (string, string) { return v, defender.IDProblem(v) }

func checkComment(v string, _ Args) (string, string) {
	if n := utf8.RuneCountInString(v); n > MaxCommentLen {
		return v, fmt.Sprintf("is too long (%d characters, at most %d)", n, MaxCommentLen)
	}
	return v, defender.TextProblem(v)
}

func checkOwner(v string, _ Args) (string, string) {
	if len(v) > maxOwnerLen || strings.ContainsAny(v, " \t\r\n<>&") {
		return v, "must be a user principal name such as analyst@contoso.com"
	}
	return v, defender.TextProblem(v)
}

func enum[T ~string](parse func(string) (T, error), choices []string) func(string, Args) (string, string) {
	return func(v string, _ Args) (string, string) {
		t, err := parse(v)
		if err != nil {
			return v, fmt.Sprintf("%q is not allowed (%s)", quoteTrim(v), orList(choices))
		}
		return string(t), ""
	}
}

func checkDetermination(v string, a Args) (string, string) {
	if a.Classification == "" {
		return v, "requires classification (the determination must match it)"
	}
	d, err := defender.ParseDetermination(a.Classification, v)
	if err != nil {
		return v, fmt.Sprintf("%q does not match classification %s (allowed: %s)",
			quoteTrim(v), a.Classification, strings.Join(Determinations(a.Classification), ", "))
	}
	return d, ""
}

var (
	isolationTypes  = []string{string(defender.IsolationFull), string(defender.IsolationSelective), string(defender.IsolationUnManagedDevice)}
	scanTypes       = []string{string(defender.ScanQuick), string(defender.ScanFull)}
	alertStatuses   = []string{string(defender.AlertNew), string(defender.AlertInProgress), string(defender.AlertResolved)}
	classifications = []string{defender.ClassificationTruePositive, defender.ClassificationInformationalExpectedActivity,
		defender.ClassificationFalsePositive}
)

// argSpecs declares every argument, in Args' field order.
var argSpecs = []ArgSpec{
	{Name: ArgAlertID, Help: "alert ID (comment-alert, update-alert)", Label: "Alert ID", check: checkID},
	{Name: ArgComment, Help: "comment recorded with the action or on the alert", Label: "Comment (recorded in Defender)", check: checkComment},
	{Name: ArgMachineID, Help: "machine ID (isolate, deisolate, restrict/unrestrict-code-execution, scan)", Label: "Machine ID", check: checkID},
	{Name: ArgIsolationType, Help: "Full (default), Selective or UnManagedDevice (isolate)", Label: "Isolation type",
		Choices: isolationTypes, check: enum(defender.ParseIsolationType, isolationTypes)},
	{Name: ArgScanType, Help: "Quick or Full (scan)", Label: "Scan type", Choices: scanTypes, check: enum(defender.ParseScanType, scanTypes)},
	{Name: ArgActionID, Help: "machine action ID (get-action, cancel-action)", Label: "Machine action ID", check: checkID},
	{Name: ArgStatus, Help: "New, InProgress or Resolved (update-alert)", Label: "Status", Choices: alertStatuses,
		check: enum(defender.ParseAlertStatus, alertStatuses)},
	{Name: ArgClassification, Help: "TruePositive, InformationalExpectedActivity or FalsePositive (update-alert)", Label: "Classification",
		Choices: classifications, check: enum(defender.ParseClassification, classifications)},
	{Name: ArgDetermination, Help: "determination matching the classification, e.g. Malware, NotMalicious, Other (update-alert)",
		Label: "Determination (must match the classification)", Choices: allDeterminations(), check: checkDetermination},
	{Name: ArgOwner, Help: "user the alert is assigned to (update-alert)", Label: "Owner (user principal name)", check: checkOwner},
	{Name: ArgSha1, Help: "SHA-1 of the file (stop-and-quarantine-file)", Label: "File SHA-1", check: checkSha1},
}

func checkSha1(v string, _ Args) (string, string) {
	h, err := defender.ParseSHA1(v)
	if err != nil {
		return v, "must be a SHA-1 hash (40 hexadecimal digits)"
	}
	return h, ""
}

// ArgSpecs returns every argument's declaration, in Args' field order.
func ArgSpecs() []ArgSpec { return append([]ArgSpec(nil), argSpecs...) }

// ArgSpecOf returns the declaration of the argument called name.
func ArgSpecOf(name string) (ArgSpec, bool) {
	for _, s := range argSpecs {
		if s.Name == name {
			return s, true
		}
	}
	return ArgSpec{}, false
}

// Canonical returns v in the canonical form of the argument called name
// (an enum in Microsoft's spelling); false if v breaks the argument's rule.
// A determination is checked on its own, against every classification.
func Canonical(name, v string) (string, bool) {
	s, ok := ArgSpecOf(name)
	if !ok {
		return "", false
	}
	v = strings.TrimSpace(v)
	if name == ArgDetermination {
		for _, d := range s.Choices {
			if strings.EqualFold(d, v) {
				return d, true
			}
		}
		return "", false
	}
	canon, problem := s.check(v, Args{})
	return canon, problem == "" && v != ""
}

// argNames lists every argument name, in Args' field order.
func argNames() []string {
	out := make([]string, len(argSpecs))
	for i, s := range argSpecs {
		out[i] = s.Name
	}
	return out
}

func (a *Args) field(name string) *string {
	switch name {
	case ArgAlertID:
		return &a.AlertID
	case ArgComment:
		return &a.Comment
	case ArgMachineID:
		return &a.MachineID
	case ArgIsolationType:
		return &a.IsolationType
	case ArgScanType:
		return &a.ScanType
	case ArgActionID:
		return &a.ActionID
	case ArgStatus:
		return &a.Status
	case ArgClassification:
		return &a.Classification
	case ArgDetermination:
		return &a.Determination
	case ArgOwner:
		return &a.Owner
	case ArgSha1:
		return &a.Sha1
	}
	return nil
}

// Get returns the argument called name ("" if unknown or unset).
func (a Args) Get(name string) string {
	if p := a.field(name); p != nil {
		return *p
	}
	return ""
}

// Set sets the argument called name; it reports false for an unknown name.
func (a *Args) Set(name, value string) bool {
	p := a.field(name)
	if p == nil {
		return false
	}
	*p = value
	return true
}

// Map returns the non-empty arguments keyed by their names.
func (a Args) Map() map[string]string {
	m := map[string]string{}
	for _, n := range argNames() {
		if v := a.Get(n); v != "" {
			m[n] = v
		}
	}
	return m
}

// ArgsFromMap is Map's inverse. An unknown name is an error (an *ArgError
// of kind Unknown): a misspelt key must never be dropped silently.
func ArgsFromMap(m map[string]string) (Args, error) {
	var a Args
	for k, v := range m {
		if !a.Set(k, v) {
			return Args{}, &ArgError{Arg: k, Kind: Unknown, Msg: fmt.Sprintf("unknown argument %q (known: %s)", k, strings.Join(argNames(), ", "))}
		}
	}
	return a, nil
}

// ErrInvalidArgs is wrapped by every argument error from Check, Normalize and Run.
var ErrInvalidArgs = errors.New("invalid arguments")

// Kind classifies an argument error, so that each front end can word it.
type Kind int

// Kinds of argument errors.
const (
	Invalid     Kind = iota // the value breaks the argument's rule
	Missing                 // a required argument (or one of AtLeastOneOf) is absent
	NotAccepted             // the action does not take this argument
	Unknown                 // no argument has this name
)

// ArgError is a bad or missing argument. Its message is meant for the
// analyst who typed the argument.
type ArgError struct {
	Action Name   // may be empty
	Arg    string // the argument name; "" for an AtLeastOneOf error or an unknown action
	Kind   Kind
	Value  string // the value as given (Invalid)
	Msg    string // full sentence fragment, e.g. "scan_type is required (Quick or Full)"
}

func (e *ArgError) Error() string {
	if e.Action != "" {
		return string(e.Action) + ": " + e.Msg
	}
	return e.Msg
}

// Unwrap makes errors.Is(err, ErrInvalidArgs) and
// errors.Is(err, defender.ErrInvalidArgument) hold.
func (e *ArgError) Unwrap() []error { return []error{ErrInvalidArgs, defender.ErrInvalidArgument} }

// Normalize checks a's arguments for action n and returns them canonical:
// values trimmed, enums in Microsoft's spelling, isolation_type defaulted to
// Full. It returns the first problem Check finds.
func Normalize(n Name, a Args) (Args, error) {
	out, errs := Check(n, a)
	if len(errs) > 0 {
		return Args{}, errs[0]
	}
	return out, nil
}

// Check is the one validation of an action's arguments. It returns a's
// arguments canonical and every problem, in a stable order: arguments the
// action does not take, missing ones, then each value's rule. Arguments the
// action does not take are rejected rather than ignored, so a typo cannot
// change what runs.
func Check(n Name, a Args) (Args, []*ArgError) {
	s, ok := n.Spec()
	if !ok {
		return Args{}, []*ArgError{{Kind: Unknown, Msg: fmt.Sprintf("unknown action %q (known: %s)", n, joinNames())}}
	}
	var errs []*ArgError
	add := func(arg string, k Kind, v, format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		if arg != "" {
			msg = arg + " " + msg
		}
		errs = append(errs, &ArgError{Action: n, Arg: arg, Kind: k, Value: v, Msg: msg})
	}
	takes := append(append([]string(nil), s.Required...), s.Optional...)
	var out Args
	for _, name := range argNames() {
		v := strings.TrimSpace(a.Get(name))
		if v == "" {
			continue
		}
		if !contains(takes, name) {
			add(name, NotAccepted, v, "is not an argument of %s (it takes %s)", n, strings.Join(takes, ", "))
			continue
		}
		out.Set(name, v)
	}
	if n == Isolate && out.IsolationType == "" {
		out.IsolationType = string(defender.IsolationFull)
	}
	for _, name := range s.Required {
		if out.Get(name) != "" {
			continue
		}
		switch spec, _ := ArgSpecOf(name); {
		case name == ArgComment:
			add(name, Missing, "", "is required (Defender records it with the action)")
		case spec.Choices != nil:
			add(name, Missing, "", "is required (%s)", orList(spec.Choices))
		default:
			add(name, Missing, "", "is required")
		}
	}
	if len(s.AtLeastOneOf) > 0 && !anySet(out, s.AtLeastOneOf) {
		add("", Missing, "", "%s needs at least one of %s", n, strings.Join(s.AtLeastOneOf, ", "))
	}
	failed := map[string]bool{}
	for _, spec := range argSpecs {
		v := out.Get(spec.Name)
		if v == "" || (spec.Name == ArgDetermination && failed[ArgClassification]) {
			continue
		}
		canon, problem := spec.check(v, out)
		if problem != "" {
			add(spec.Name, Invalid, v, "%s", problem)
			failed[spec.Name] = true
			continue
		}
		out.Set(spec.Name, canon)
	}
	return out, errs
}

// Determinations lists the determinations Microsoft pairs with a canonical
// classification (nil for an unknown one).
func Determinations(classification string) []string {
	var out []string
	for _, d := range determinations {
		if _, err := defender.ParseDetermination(classification, d); err == nil {
			out = append(out, d)
		}
	}
	return out
}

var determinations = []string{"MultiStagedAttack", "MaliciousUserActivity", "CompromisedUser", "Malware", "Phishing",
	"UnwantedSoftware", "SecurityTesting", "LineOfBusinessApplication", "ConfirmedActivity", "ConfirmedUserActivity",
	"NotMalicious", "Clean", "InsufficientData", "Other"}

// allDeterminations lists every determination once, grouped by
// classification (the form's menu).
func allDeterminations() []string {
	var out []string
	seen := map[string]bool{}
	for _, c := range classifications {
		for _, d := range Determinations(c) {
			if !seen[d] {
				seen[d] = true
				out = append(out, d)
			}
		}
	}
	return out
}

func anySet(a Args, names []string) bool {
	for _, n := range names {
		if a.Get(n) != "" {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// orList renders "A, B or C".
func orList(vals []string) string {
	if len(vals) <= 1 {
		return strings.Join(vals, "")
	}
	return strings.Join(vals[:len(vals)-1], ", ") + " or " + vals[len(vals)-1]
}

// quoteTrim shortens a value quoted back in a message.
func quoteTrim(s string) string {
	r := []rune(s)
	if len(r) <= 60 {
		return s
	}
	return string(r[:60]) + "…"
}

func joinNames() string {
	names := Names()
	s := make([]string, len(names))
	for i, n := range names {
		s[i] = string(n)
	}
	return strings.Join(s, ", ")
}
