package playbook

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/defenderbot/defenderbot/defender"
)

// Args are an action's arguments. JSON names are the seed's argument names.
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
}

// ArgNames lists every argument name, in Args' field order.
func ArgNames() []string {
	return []string{"alert_id", "comment", "machine_id", "isolation_type", "scan_type", "action_id",
		"status", "classification", "determination", "owner"}
}

func (a *Args) field(name string) *string {
	switch name {
	case "alert_id":
		return &a.AlertID
	case "comment":
		return &a.Comment
	case "machine_id":
		return &a.MachineID
	case "isolation_type":
		return &a.IsolationType
	case "scan_type":
		return &a.ScanType
	case "action_id":
		return &a.ActionID
	case "status":
		return &a.Status
	case "classification":
		return &a.Classification
	case "determination":
		return &a.Determination
	case "owner":
		return &a.Owner
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

// Map returns the non-empty arguments keyed by their seed names.
func (a Args) Map() map[string]string {
	m := map[string]string{}
	for _, n := range ArgNames() {
		if v := a.Get(n); v != "" {
			m[n] = v
		}
	}
	return m
}

// ArgsFromMap is Map's inverse; unknown keys are ignored (use
// ArgsFromMapStrict to reject them).
func ArgsFromMap(m map[string]string) Args {
	var a Args
	for k, v := range m {
		a.Set(k, v)
	}
	return a
}

// ArgsFromMapStrict is ArgsFromMap that rejects unknown argument names.
func ArgsFromMapStrict(m map[string]string) (Args, error) {
	var a Args
	for k, v := range m {
		if !a.Set(k, v) {
			return Args{}, &ArgError{Arg: k, Msg: fmt.Sprintf("unknown argument %q (known: %s)", k, strings.Join(ArgNames(), ", "))}
		}
	}
	return a, nil
}

// ErrInvalidArgs is wrapped by every argument error from Normalize and Run.
var ErrInvalidArgs = errors.New("invalid arguments")

// ArgError is a bad or missing argument. Its message is meant for the
// analyst who typed the argument.
type ArgError struct {
	Action Name   // may be empty
	Arg    string // the seed's argument name, may be empty
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

// Limits on free text: Defender stores comments, and a pasted log should not
// become a request body of megabytes.
const (
	maxCommentLen = 4000
	maxIDLen      = 256
)

// Normalize checks a's arguments for action n and returns them canonical:
// values trimmed, enums in Microsoft's spelling, isolation_type defaulted to
// Full. Arguments the action does not take are rejected rather than
// silently ignored, so a typo cannot change what runs.
func Normalize(n Name, a Args) (Args, error) {
	s, ok := specOf(n)
	if !ok {
		return Args{}, &ArgError{Arg: "", Msg: fmt.Sprintf("unknown action %q (known: %s)", n, joinNames())}
	}
	bad := func(arg, format string, args ...any) error {
		return &ArgError{Action: n, Arg: arg, Msg: arg + " " + fmt.Sprintf(format, args...)}
	}
	out := Args{}
	accepted := map[string]bool{}
	for _, name := range s.required {
		accepted[name] = true
	}
	for _, name := range s.optional {
		accepted[name] = true
	}
	for _, name := range ArgNames() {
		v := strings.TrimSpace(a.Get(name))
		if v == "" {
			continue
		}
		if !accepted[name] {
			return Args{}, bad(name, "is not an argument of %s (it takes %s)", n, strings.Join(append(append([]string{}, s.required...), s.optional...), ", "))
		}
		out.Set(name, v)
	}

	for _, name := range s.required {
		if out.Get(name) != "" {
			continue
		}
		switch name {
		case "scan_type":
			return Args{}, bad(name, "is required (Quick or Full)")
		case "comment":
			return Args{}, bad(name, "is required (Defender records it with the action)")
		default:
			return Args{}, bad(name, "is required")
		}
	}
	for _, name := range []string{"alert_id", "machine_id", "action_id"} {
		if v := out.Get(name); v != "" {
			if msg := checkID(v); msg != "" {
				return Args{}, bad(name, "%s", msg)
			}
		}
	}
	for _, name := range []string{"comment", "owner"} {
		if v := out.Get(name); v != "" {
			if msg := checkText(v); msg != "" {
				return Args{}, bad(name, "%s", msg)
			}
		}
	}

	switch n {
	case Isolate:
		if out.IsolationType == "" {
			out.IsolationType = string(defender.IsolationFull)
		}
		t, err := defender.ParseIsolationType(out.IsolationType)
		if err != nil {
			return Args{}, bad("isolation_type", "%q is not allowed (Full, Selective or UnManagedDevice)", out.IsolationType)
		}
		out.IsolationType = string(t)
	case Scan:
		t, err := defender.ParseScanType(out.ScanType)
		if err != nil {
			return Args{}, bad("scan_type", "%q is not allowed (Quick or Full)", out.ScanType)
		}
		out.ScanType = string(t)
	case UpdateAlert:
		if out.Status == "" && out.Classification == "" && out.Determination == "" && out.Comment == "" && out.Owner == "" {
			return Args{}, &ArgError{Action: n, Msg: "update-alert needs at least one of status, classification, determination, comment, owner"}
		}
		if out.Status != "" {
			st, err := defender.ParseAlertStatus(out.Status)
			if err != nil {
				return Args{}, bad("status", "%q is not allowed (New, InProgress or Resolved)", out.Status)
			}
			out.Status = string(st)
		}
		if out.Classification != "" {
			c, err := defender.ParseClassification(out.Classification)
			if err != nil {
				return Args{}, bad("classification", "%q is not allowed (TruePositive, InformationalExpectedActivity or FalsePositive)", out.Classification)
			}
			out.Classification = c
		}
		if out.Determination != "" {
			if out.Classification == "" {
				return Args{}, bad("determination", "requires classification (the determination must match it)")
			}
			d, err := defender.ParseDetermination(out.Classification, out.Determination)
			if err != nil {
				return Args{}, bad("determination", "%q does not match classification %s (allowed: %s)",
					out.Determination, out.Classification, strings.Join(Determinations(out.Classification), ", "))
			}
			out.Determination = d
		}
	}
	return out, nil
}

// Determinations lists the determinations Microsoft pairs with a canonical
// classification (nil for an unknown one).
func Determinations(classification string) []string {
	var out []string
	for _, d := range []string{"MultiStagedAttack", "MaliciousUserActivity", "CompromisedUser", "Malware", "Phishing",
		"UnwantedSoftware", "SecurityTesting", "LineOfBusinessApplication", "ConfirmedActivity", "ConfirmedUserActivity",
		"NotMalicious", "Clean", "InsufficientData", "Other"} {
		if _, err := defender.ParseDetermination(classification, d); err == nil {
			out = append(out, d)
		}
	}
	return out
}

// checkID rejects IDs that could change the URL they are put in.
func checkID(id string) string {
	if len(id) > maxIDLen {
		return fmt.Sprintf("is longer than %d characters", maxIDLen)
	}
	if !utf8.ValidString(id) {
		return "is not valid UTF-8"
	}
	if strings.Contains(id, "..") {
		return `must not contain ".."`
	}
	for _, r := range id {
		if r == '/' || r == '\\' || r == '?' || r == '#' || r == '%' || r == '&' {
			return fmt.Sprintf("must not contain %q", r)
		}
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return "must not contain spaces or control characters"
		}
	}
	return ""
}

func checkText(s string) string {
	if len(s) > maxCommentLen {
		return fmt.Sprintf("is longer than %d characters", maxCommentLen)
	}
	if !utf8.ValidString(s) {
		return "is not valid UTF-8"
	}
	for _, r := range s {
		if unicode.IsControl(r) && r != '\n' && r != '\t' && r != '\r' {
			return "must not contain control characters"
		}
	}
	return ""
}

func joinNames() string {
	names := Names()
	s := make([]string, len(names))
	for i, n := range names {
		s[i] = string(n)
	}
	return strings.Join(s, ", ")
}
