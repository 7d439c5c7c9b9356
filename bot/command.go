package bot

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode"

	"github.com/defenderbot/defenderbot/defender"
	"github.com/defenderbot/defenderbot/playbook"
)

// Command is a parsed /defender command.
type Command struct {
	// Verb is the canonical verb as shown in usage: "isolate", "release",
	// "restrict", "unrestrict", "scan", "action", "cancel", "alert comment",
	// "alert update", "iocs sync", "iocs status" or "help".
	Verb string
	// Action is the playbook action name ("isolate", "get-action", ...) or
	// one of the bot's own: "iocs-sync", "iocs-status", "help".
	Action string
	// Machine is the <machine> argument as typed: a machine ID or a DNS name.
	Machine string
	// Params holds the seed's argument names (comment, isolation_type,
	// scan_type, action_id, alert_id, status, classification, determination,
	// owner) with canonical enum values. machine_id is set after the machine
	// is resolved.
	Params map[string]string
}

// ParseError is a malformed or incomplete command.
type ParseError struct {
	Verb    string // the verb whose usage applies; "" for an unknown verb
	Msg     string
	Missing bool // required arguments are missing: a form (modal) can collect them
}

func (e *ParseError) Error() string { return e.Msg }

// maxCommentLen keeps comments well within Defender's limits; the bot adds a
// request tag to it.
const maxCommentLen = 1000

var (
	machineIDRe   = regexp.MustCompile(`^[0-9a-fA-F]{40}$`)
	machineNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,253}$`)
	// Defender action IDs are GUIDs and alert IDs look like
	// da637472900382838869_1364969609; this also keeps them path-safe.
	idRe    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$`)
	ownerRe = regexp.MustCompile(`^[^\s<>&]{1,256}$`)
)

// token is one word of the command; quoted words are never keywords.
type token struct {
	text   string
	quoted bool
}

// splitArgs splits on whitespace, keeping "double", 'single' and Slack's
// “smart” quoted strings together.
func splitArgs(s string) ([]token, error) {
	var (
		toks  []token
		cur   strings.Builder
		inTok bool
		quote rune
		qtok  bool
	)
	closing := map[rune]rune{'"': '"', '\'': '\'', '“': '”', '‘': '’'}
	flush := func() {
		if inTok {
			toks = append(toks, token{text: cur.String(), quoted: qtok})
		}
		cur.Reset()
		inTok, qtok = false, false
	}
	for _, r := range s {
		switch {
		case quote != 0:
			if r == quote || (quote == '"' && r == '”') {
				quote = 0
				continue
			}
			cur.WriteRune(r)
		case unicode.IsSpace(r):
			flush()
		case closing[r] != 0 && !inTok:
			quote = closing[r]
			inTok, qtok = true, true
		default:
			inTok = true
			cur.WriteRune(r)
		}
	}
	if quote != 0 {
		return nil, errors.New("unterminated quote in the command")
	}
	flush()
	return toks, nil
}

func joinTokens(ts []token) string {
	parts := make([]string, len(ts))
	for i, t := range ts {
		parts[i] = t.text
	}
	return strings.TrimSpace(strings.Join(parts, " "))
}

// verbAliases maps what users type to the canonical verb.
var verbAliases = map[string]string{
	"isolate": "isolate", "release": "release", "deisolate": "release", "unisolate": "release",
	"restrict": "restrict", "unrestrict": "unrestrict", "scan": "scan", "action": "action",
	"cancel": "cancel", "alert": "alert", "iocs": "iocs", "help": "help",
}

// verbAction maps a canonical verb to its action.
var verbAction = map[string]string{
	"isolate": actIsolate, "release": actDeisolate, "restrict": actRestrict, "unrestrict": actUnrestrict,
	"scan": actScan, "action": actGetAction, "cancel": actCancelAction,
	"alert comment": actCommentAlert, "alert update": actUpdateAlert,
	"iocs sync": actIOCSync, "iocs status": actIOCStatus, "help": actHelp,
}

// ParseCommand parses the text after the slash command. It never panics; any
// problem is a *ParseError naming the verb whose usage to show.
func ParseCommand(text string) (Command, error) {
	toks, err := splitArgs(text)
	if err != nil {
		return Command{}, &ParseError{Msg: err.Error()}
	}
	if len(toks) == 0 {
		return Command{Verb: "help", Action: actHelp, Params: map[string]string{}}, nil
	}
	verb, ok := verbAliases[strings.ToLower(toks[0].text)]
	if !ok || toks[0].quoted {
		return Command{}, &ParseError{Msg: fmt.Sprintf("unknown command %q", truncate(toks[0].text, 40))}
	}
	rest := toks[1:]
	switch verb {
	case "alert", "iocs":
		sub := map[string][]string{"alert": {"comment", "update"}, "iocs": {"sync", "status"}}[verb]
		if len(rest) == 0 {
			return Command{}, &ParseError{Verb: verb, Msg: fmt.Sprintf("%s needs a subcommand: %s", verb, strings.Join(sub, " or ")), Missing: verb == "alert"}
		}
		s := strings.ToLower(rest[0].text)
		if s != sub[0] && s != sub[1] {
			return Command{}, &ParseError{Verb: verb, Msg: fmt.Sprintf("unknown %s subcommand %q: use %s", verb, truncate(rest[0].text, 40), strings.Join(sub, " or "))}
		}
		verb += " " + s
		rest = rest[1:]
	}
	c := Command{Verb: verb, Action: verbAction[verb], Params: map[string]string{}}
	perr := func(msg string, missing bool) error { return &ParseError{Verb: verb, Msg: msg, Missing: missing} }

	switch verb {
	case "help", "iocs sync", "iocs status":
		if len(rest) > 0 {
			return Command{}, perr(fmt.Sprintf("%s takes no arguments", verb), false)
		}
		return c, nil
	case "isolate", "release", "restrict", "unrestrict", "scan":
		if len(rest) == 0 {
			return Command{}, perr("which machine? give a machine ID or its computer DNS name", true)
		}
		c.Machine = rest[0].text
		rest = rest[1:]
		if len(rest) > 0 && !rest[0].quoted {
			switch verb {
			case "isolate":
				if t, err := defender.ParseIsolationType(rest[0].text); err == nil {
					c.Params["isolation_type"] = string(t)
					rest = rest[1:]
				}
			case "scan":
				if t, err := defender.ParseScanType(rest[0].text); err == nil {
					c.Params["scan_type"] = string(t)
					rest = rest[1:]
				}
			}
		}
		if verb == "isolate" && c.Params["isolation_type"] == "" {
			c.Params["isolation_type"] = string(defender.IsolationFull)
		}
		if verb == "scan" && c.Params["scan_type"] == "" {
			c.Params["scan_type"] = string(defender.ScanQuick)
		}
		c.Params["comment"] = joinTokens(rest)
	case "action":
		if len(rest) == 0 {
			return Command{}, perr("which action? give the machine action ID", true)
		}
		if len(rest) > 1 {
			return Command{}, perr("action takes only the action ID", false)
		}
		c.Params["action_id"] = rest[0].text
	case "cancel":
		if len(rest) == 0 {
			return Command{}, perr("which action? give the machine action ID and a comment", true)
		}
		c.Params["action_id"] = rest[0].text
		c.Params["comment"] = joinTokens(rest[1:])
	case "alert comment":
		if len(rest) == 0 {
			return Command{}, perr("which alert? give the alert ID and a comment", true)
		}
		c.Params["alert_id"] = rest[0].text
		c.Params["comment"] = joinTokens(rest[1:])
	case "alert update":
		if len(rest) == 0 {
			return Command{}, perr("which alert? give the alert ID and at least one change", true)
		}
		c.Params["alert_id"] = rest[0].text
		var comment []token
		for _, t := range rest[1:] {
			k, v, isKV := strings.Cut(t.text, "=")
			if !isKV || t.quoted {
				comment = append(comment, t)
				continue
			}
			key := strings.ToLower(k)
			switch key {
			case "status", "classification", "determination", "owner":
			default:
				return Command{}, perr(fmt.Sprintf("unknown field %q: use status=, classification=, determination= or owner= (quote a comment that contains =)", truncate(k, 40)), false)
			}
			if _, dup := c.Params[key]; dup {
				return Command{}, perr(fmt.Sprintf("%s is given twice", key), false)
			}
			c.Params[key] = v
		}
		if len(comment) > 0 {
			c.Params["comment"] = joinTokens(comment)
		}
	}
	if errs := validateParams(&c); len(errs) > 0 {
		return c, perr(errs[0].msg, errs[0].missing)
	}
	return c, nil
}

// fieldError is one invalid field; field is the seed argument name (and the
// modal's input block ID).
type fieldError struct {
	field   string
	msg     string
	missing bool
}

// validateParams checks and canonicalises c's arguments in place. It is
// shared by the slash-command parser and the modal submission.
func validateParams(c *Command) []fieldError {
	var errs []fieldError
	add := func(field, msg string, missing bool) { errs = append(errs, fieldError{field, msg, missing}) }
	machine := targetsMachine(c.Action)
	if machine {
		switch {
		case c.Machine == "":
			add("machine", "which machine? give a machine ID or its computer DNS name", true)
		case !machineIDRe.MatchString(c.Machine) && !machineNameRe.MatchString(c.Machine):
			add("machine", fmt.Sprintf("%q is neither a machine ID (40 hex characters) nor a computer DNS name", truncate(c.Machine, 60)), false)
		}
	}
	if c.Action == actIsolate {
		if t, err := defender.ParseIsolationType(c.Params["isolation_type"]); err == nil {
			c.Params["isolation_type"] = string(t)
		} else {
			add("isolation_type", "isolation type must be full, selective or unmanaged", false)
		}
	}
	if c.Action == actScan {
		if t, err := defender.ParseScanType(c.Params["scan_type"]); err == nil {
			c.Params["scan_type"] = string(t)
		} else {
			add("scan_type", "scan type must be quick or full", false)
		}
	}
	for _, f := range []string{"action_id", "alert_id"} {
		needs := (f == "action_id" && (c.Action == actGetAction || c.Action == actCancelAction)) ||
			(f == "alert_id" && (c.Action == actCommentAlert || c.Action == actUpdateAlert))
		if !needs {
			continue
		}
		v := c.Params[f]
		what := strings.TrimSuffix(f, "_id")
		switch {
		case v == "":
			add(f, fmt.Sprintf("which %s? give its ID", what), true)
		case !idRe.MatchString(v):
			add(f, fmt.Sprintf("%q is not a valid %s ID", truncate(v, 60), what), false)
		}
	}
	needsComment := machine || c.Action == actCancelAction || c.Action == actCommentAlert
	comment := strings.TrimSpace(c.Params["comment"])
	switch {
	case needsComment && comment == "":
		add("comment", "a comment is required: say why (it is recorded in Defender)", true)
	case len(comment) > maxCommentLen:
		add("comment", fmt.Sprintf("the comment is too long (%d characters, at most %d)", len(comment), maxCommentLen), false)
	}
	if comment == "" {
		delete(c.Params, "comment")
	} else {
		c.Params["comment"] = comment
	}
	if c.Action == actUpdateAlert {
		errs = append(errs, validateAlertUpdate(c.Params)...)
	}
	return errs
}

func validateAlertUpdate(p map[string]string) []fieldError {
	var errs []fieldError
	for _, k := range []string{"status", "classification", "determination", "owner"} {
		if v, ok := p[k]; ok && strings.TrimSpace(v) == "" {
			delete(p, k)
		}
	}
	if p["status"] == "" && p["classification"] == "" && p["determination"] == "" && p["owner"] == "" && p["comment"] == "" {
		return []fieldError{{field: "status", msg: "nothing to update: give status=, classification=, determination=, owner= or a comment", missing: true}}
	}
	if v := p["status"]; v != "" {
		if st, err := defender.ParseAlertStatus(v); err == nil {
			p["status"] = string(st)
		} else {
			errs = append(errs, fieldError{field: "status", msg: fmt.Sprintf("status %q is not one of %s", truncate(v, 40), strings.Join(alertStatuses, ", "))})
		}
	}
	cls := p["classification"]
	if cls != "" {
		if c, err := defender.ParseClassification(cls); err == nil {
			p["classification"] = c
			cls = c
		} else {
			errs = append(errs, fieldError{field: "classification", msg: fmt.Sprintf("classification %q is not one of %s", truncate(cls, 40), strings.Join(classifications, ", "))})
			cls = ""
		}
	}
	if d := p["determination"]; d != "" {
		switch {
		case cls == "" && p["classification"] == "":
			errs = append(errs, fieldError{field: "determination", msg: "determination needs a classification (determination must match it)"})
		case cls != "":
			if c, err := defender.ParseDetermination(cls, d); err == nil {
				p["determination"] = c
			} else {
				errs = append(errs, fieldError{field: "determination", msg: fmt.Sprintf("determination %q does not match classification %s: use one of %s", truncate(d, 40), cls, strings.Join(playbook.Determinations(cls), ", "))})
			}
		}
	}
	if o := p["owner"]; o != "" && !ownerRe.MatchString(o) {
		errs = append(errs, fieldError{field: "owner", msg: "owner must be a user principal name such as analyst@contoso.com"})
	}
	return errs
}

// The alert enums in Microsoft's spelling, for messages and the form's menus
// (parsing is defender.ParseAlertStatus and defender.ParseClassification).
var (
	alertStatuses   = []string{string(defender.AlertNew), string(defender.AlertInProgress), string(defender.AlertResolved)}
	classifications = []string{defender.ClassificationTruePositive, defender.ClassificationInformationalExpectedActivity,
		defender.ClassificationFalsePositive}
)

// truncate shortens user input quoted back in messages.
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}

// usage is each verb's one-line syntax.
var usage = map[string]string{
	"isolate":       "isolate <machine> [full|selective|unmanaged] <comment…>   (default full)",
	"release":       "release <machine> <comment…>   (also: deisolate, unisolate)",
	"restrict":      "restrict <machine> <comment…>",
	"unrestrict":    "unrestrict <machine> <comment…>",
	"scan":          "scan <machine> [quick|full] <comment…>   (default quick)",
	"action":        "action <action-id>",
	"cancel":        "cancel <action-id> <comment…>",
	"alert":         "alert comment <alert-id> <comment…>  |  alert update <alert-id> [status=…] [classification=…] [determination=…] [owner=…] [comment…]",
	"alert comment": "alert comment <alert-id> <comment…>",
	"alert update":  "alert update <alert-id> [status=New|InProgress|Resolved] [classification=…] [determination=…] [owner=…] [comment…]",
	"iocs":          "iocs sync  |  iocs status",
	"iocs sync":     "iocs sync",
	"iocs status":   "iocs status",
	"help":          "help",
}

// usageOrder is the order of the help text.
var usageOrder = []string{"isolate", "release", "restrict", "unrestrict", "scan", "action", "cancel", "alert comment", "alert update", "iocs sync", "iocs status", "help"}
