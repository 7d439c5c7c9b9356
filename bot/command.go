package bot

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode"

	"github.com/defenderbot/defenderbot/actions"
	"github.com/defenderbot/defenderbot/defender"
)

// Command is a parsed /defender command.
type Command struct {
	// Verb is the canonical verb as shown in usage: an action's Slack verb
	// ("isolate", "release", "alert comment", ...) or one of the bot's own:
	// "iocs sync", "iocs status" or "help".
	Verb string
	// Action is the registry's action of Verb ("" for the bot's own verbs).
	Action actions.Name
	// Machine is the <machine> argument as typed: a machine ID or a DNS name.
	Machine string
	// Machines are the machines of a bulk command ("isolate ws-1,ws-2 …"),
	// as typed; Machine is then empty.
	Machines []string
	// Args are the action's arguments, canonical once valid. MachineID is
	// set after the machine is resolved.
	Args actions.Args
}

// The bot's own verbs, which are not Defender actions.
const (
	verbIOCSync   = "iocs sync"
	verbIOCStatus = "iocs status"
	verbHelp      = "help"
)

var ownVerbs = []string{verbIOCSync, verbIOCStatus, verbHelp}

// ParseError is a malformed or incomplete command.
type ParseError struct {
	Verb    string // the verb whose usage applies; "" for an unknown verb
	Msg     string
	Missing bool // required arguments are missing: a form (modal) can collect them
}

func (e *ParseError) Error() string { return e.Msg }

var (
	machineIDRe   = regexp.MustCompile(`^[0-9a-fA-F]{40}$`)
	machineNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,253}$`)
)

// validID is the check of an ID taken from Slack (an argument, or a request
// ID on a button): the registry's one ID rule.
func validID(id string) bool { return id != "" && defender.IDProblem(id) == "" }

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

// allVerbs lists every canonical verb, in usage order: the registry's
// actions, then the bot's own.
func allVerbs() []string {
	var vs []string
	for _, sp := range actions.All() {
		if sp.Verb != "" { // command-line-only actions have no verb
			vs = append(vs, sp.Verb)
		}
	}
	return append(vs, ownVerbs...)
}

// verbGroups maps the first word of two-word verbs ("alert") to their
// second words, in usage order.
func verbGroups() map[string][]string {
	g := map[string][]string{}
	for _, v := range allVerbs() {
		if first, second, ok := strings.Cut(v, " "); ok {
			g[first] = append(g[first], second)
		}
	}
	return g
}

// canonicalVerb maps the first word users type to a canonical verb or a
// verb group ("alert").
func canonicalVerb(word string) (string, bool) {
	w := strings.ToLower(word)
	if _, ok := verbGroups()[w]; ok {
		return w, true
	}
	for _, v := range ownVerbs {
		if v == w {
			return v, true
		}
	}
	for _, sp := range actions.All() {
		if (sp.Verb != "" && sp.Verb == w) || slices.Contains(sp.VerbAliases, w) {
			return sp.Verb, true
		}
	}
	return "", false
}

// parseCommand parses the text after the slash command. It never panics; any
// problem is a *ParseError naming the verb whose usage to show.
func parseCommand(text string) (Command, error) {
	toks, err := splitArgs(text)
	if err != nil {
		return Command{}, &ParseError{Msg: err.Error()}
	}
	if len(toks) == 0 {
		return Command{Verb: verbHelp}, nil
	}
	verb, ok := canonicalVerb(toks[0].text)
	if !ok || toks[0].quoted {
		return Command{}, &ParseError{Msg: fmt.Sprintf("unknown command %q", truncate(toks[0].text, 40))}
	}
	rest := toks[1:]
	if sub, group := verbGroups()[verb]; group {
		_, hasAction := actions.ByVerb(verb + " " + sub[0])
		if len(rest) == 0 {
			return Command{}, &ParseError{Verb: verb, Msg: fmt.Sprintf("%s needs a subcommand: %s", verb, strings.Join(sub, " or ")), Missing: hasAction}
		}
		s := strings.ToLower(rest[0].text)
		if !slices.Contains(sub, s) {
			return Command{}, &ParseError{Verb: verb, Msg: fmt.Sprintf("unknown %s subcommand %q: use %s", verb, truncate(rest[0].text, 40), strings.Join(sub, " or "))}
		}
		verb += " " + s
		rest = rest[1:]
	}
	c := Command{Verb: verb}
	perr := func(msg string, missing bool) error { return &ParseError{Verb: verb, Msg: msg, Missing: missing} }
	spec, isAction := actions.ByVerb(verb)
	if !isAction {
		if len(rest) > 0 {
			return Command{}, perr(fmt.Sprintf("%s takes no arguments", verb), false)
		}
		return c, nil
	}
	c.Action = spec.Name
	if len(rest) == 0 {
		return Command{}, perr(whichTarget(spec), true)
	}
	if spec.Target == actions.TargetMachine {
		c.setMachines(rest[0].text)
	} else {
		c.Args.Set(spec.Required[0], rest[0].text)
	}
	rest = rest[1:]
	for _, arg := range spec.SlackPositional {
		if len(rest) == 0 {
			break // missing: validation asks for it (a form can collect it)
		}
		c.Args.Set(arg, rest[0].text)
		rest = rest[1:]
	}
	if spec.SlackChoice != "" {
		if len(rest) > 0 && !rest[0].quoted {
			if v, ok := actions.Canonical(spec.SlackChoice, rest[0].text); ok {
				c.Args.Set(spec.SlackChoice, v)
				rest = rest[1:]
			}
		}
		if c.Args.Get(spec.SlackChoice) == "" {
			c.Args.Set(spec.SlackChoice, spec.SlackDefault)
		}
	}
	var comment []token
	for _, t := range rest {
		k, v, isKV := strings.Cut(t.text, "=")
		if len(spec.SlackFields) == 0 || !isKV || t.quoted {
			comment = append(comment, t)
			continue
		}
		key := strings.ToLower(k)
		if !slices.Contains(spec.SlackFields, key) {
			return Command{}, perr(fmt.Sprintf("unknown field %q: use %s (quote a comment that contains =)", truncate(k, 40), fieldList(spec.SlackFields)), false)
		}
		if c.Args.Get(key) != "" {
			return Command{}, perr(fmt.Sprintf("%s is given twice", key), false)
		}
		c.Args.Set(key, v)
	}
	switch {
	case takes(spec, actions.ArgComment):
		c.Args.Comment = joinTokens(comment)
	case len(comment) > 0:
		return Command{}, perr(fmt.Sprintf("%s takes only the %s ID", verb, targetWord(spec)), false)
	}
	if errs := validateCommand(&c); len(errs) > 0 {
		return c, perr(errs[0].msg, errs[0].missing)
	}
	return c, nil
}

// setMachines takes the <machine> argument: one machine, or several
// separated by commas without spaces.
func (c *Command) setMachines(text string) {
	c.Machine, c.Machines = "", nil
	if strings.Contains(text, ",") {
		c.Machines = strings.Split(text, ",")
		return
	}
	c.Machine = text
}

// machinesText is the <machine> argument as the user typed it.
func (c Command) machinesText() string {
	if len(c.Machines) > 0 {
		return strings.Join(c.Machines, ",")
	}
	return c.Machine
}

// bulkVerbs lists the verbs that take several machines, for messages.
func bulkVerbs() string {
	var vs []string
	for _, sp := range actions.All() {
		if sp.Bulk && sp.Verb != "" {
			vs = append(vs, sp.Verb)
		}
	}
	return strings.Join(vs[:len(vs)-1], ", ") + " and " + vs[len(vs)-1]
}

// checkMachineList checks a bulk command's machines as typed: each one
// well formed, none empty, none twice (names compared without case).
func checkMachineList(spec actions.Spec, ms []string) *fieldError {
	// The limit is the service's (tooManyMachines): parsing does not know it.
	if e := actions.CheckMachines(spec.Name, ms, actions.UnknownMax); e != nil {
		switch e.Fault {
		case actions.FaultOneMachine:
			return &fieldError{"machine", fmt.Sprintf("%s runs on one machine per request; only %s take several machines", spec.Verb, bulkVerbs()), false}
		case actions.FaultEmpty:
			return &fieldError{"machine", "a machine in the list is empty: separate machines with commas and no spaces (ws-1,ws-2,ws-3)", false}
		default:
			return &fieldError{"machine", fmt.Sprintf("%q is listed twice (as %q and %q): list each machine once", truncate(e.Machine, 60), truncate(e.First, 60), truncate(e.Machine, 60)), false}
		}
	}
	for _, m := range ms {
		if !machineIDRe.MatchString(m) && !machineNameRe.MatchString(m) {
			return &fieldError{"machine", fmt.Sprintf("%q is neither a machine ID (40 hex characters) nor a computer DNS name", truncate(m, 60)), false}
		}
	}
	return nil
}

// fieldList renders key=value fields for a message: "a=, b= or c=".
func fieldList(fields []string) string {
	s := make([]string, len(fields))
	for i, f := range fields {
		s[i] = f + "="
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}

func takes(spec actions.Spec, arg string) bool {
	return slices.Contains(spec.Required, arg) || slices.Contains(spec.Optional, arg)
}

// targetWord names what an action acts on, as analysts say it.
func targetWord(spec actions.Spec) string {
	switch spec.Target {
	case actions.TargetMachine:
		return "machine"
	case actions.TargetAlert:
		return "alert"
	}
	return "action"
}

// whichTarget asks for a command's missing target.
func whichTarget(spec actions.Spec) string {
	switch {
	case spec.Target == actions.TargetMachine:
		return "which machine? give a machine ID or its computer DNS name"
	case len(spec.AtLeastOneOf) > 0:
		return fmt.Sprintf("which %s? give the %s ID and at least one change", targetWord(spec), targetWord(spec))
	}
	what := targetWord(spec) + " ID"
	if spec.Target == actions.TargetMachineAction {
		what = "machine action ID"
	}
	if slices.Contains(spec.Required, actions.ArgComment) {
		what += " and a comment"
	}
	return fmt.Sprintf("which %s? give the %s", targetWord(spec), what)
}

// fieldError is one invalid field; field is the argument name (and the
// form's input block ID), or "machine".
type fieldError struct {
	field   string
	msg     string
	missing bool
}

// validateCommand checks c with the registry's one validation and makes its
// arguments canonical. It is shared by the slash-command parser and the
// form submission; only the <machine> reference (an ID or a DNS name,
// resolved later) and the wording are the bot's own.
func validateCommand(c *Command) []fieldError {
	spec, ok := c.Action.Spec()
	if !ok {
		return []fieldError{{msg: "unknown action"}}
	}
	var errs []fieldError
	if spec.Target == actions.TargetMachine && len(c.Machines) > 0 {
		if fe := checkMachineList(spec, c.Machines); fe != nil {
			errs = append(errs, *fe)
		}
	} else if spec.Target == actions.TargetMachine {
		switch {
		case c.Machine == "":
			errs = append(errs, fieldError{"machine", "which machine? give a machine ID or its computer DNS name", true})
		case !machineIDRe.MatchString(c.Machine) && !machineNameRe.MatchString(c.Machine):
			errs = append(errs, fieldError{"machine", fmt.Sprintf("%q is neither a machine ID (40 hex characters) nor a computer DNS name", truncate(c.Machine, 60)), false})
		}
	}
	canon, aerrs := actions.Check(c.Action, c.Args)
	for _, e := range aerrs {
		if e.Arg == actions.ArgMachineID && e.Kind == actions.Missing {
			continue // resolved from <machine> after validation
		}
		errs = append(errs, slackArgError(spec, c.Args, e))
	}
	if len(errs) == 0 {
		canon.MachineID = c.Args.MachineID
		c.Args = canon
	}
	return errs
}

// slackArgError words a registry argument error for Slack.
func slackArgError(spec actions.Spec, given actions.Args, e *actions.ArgError) fieldError {
	v := truncate(e.Value, 40)
	switch {
	case e.Kind == actions.Missing && e.Arg == "":
		return fieldError{spec.AtLeastOneOf[0], fmt.Sprintf("nothing to update: give %s or a comment", strings.Join(fieldsEq(spec.SlackFields), ", ")), true}
	case e.Kind == actions.Missing && e.Arg == actions.ArgComment:
		return fieldError{e.Arg, "a comment is required: say why (it is recorded in Defender)", true}
	case e.Kind == actions.Missing && (e.Arg == actions.ArgActionID || e.Arg == actions.ArgAlertID):
		return fieldError{e.Arg, fmt.Sprintf("which %s? give its ID", strings.TrimSuffix(e.Arg, "_id")), true}
	case e.Kind == actions.Missing:
		return fieldError{e.Arg, e.Msg, true}
	case e.Kind != actions.Invalid:
		return fieldError{e.Arg, e.Msg, false}
	}
	switch e.Arg {
	case actions.ArgActionID, actions.ArgAlertID, actions.ArgMachineID:
		return fieldError{e.Arg, fmt.Sprintf("%q is not a valid %s ID", truncate(e.Value, 60), strings.TrimSuffix(e.Arg, "_id")), false}
	case actions.ArgIsolationType:
		return fieldError{e.Arg, "isolation type must be full, selective or unmanaged", false}
	case actions.ArgScanType:
		return fieldError{e.Arg, "scan type must be quick or full", false}
	case actions.ArgSha1:
		return fieldError{e.Arg, fmt.Sprintf("%q is not a SHA-1 hash (40 hexadecimal digits)", v), false}
	case actions.ArgComment:
		return fieldError{e.Arg, "the " + e.Msg, false}
	case actions.ArgStatus, actions.ArgClassification:
		as, _ := actions.ArgSpecOf(e.Arg)
		return fieldError{e.Arg, fmt.Sprintf("%s %q is not one of %s", e.Arg, v, strings.Join(as.Choices, ", ")), false}
	case actions.ArgDetermination:
		if given.Classification == "" {
			return fieldError{e.Arg, "determination needs a classification (determination must match it)", false}
		}
		cls, _ := actions.Canonical(actions.ArgClassification, given.Classification)
		return fieldError{e.Arg, fmt.Sprintf("determination %q does not match classification %s: use one of %s", v, cls, strings.Join(actions.Determinations(cls), ", ")), false}
	}
	return fieldError{e.Arg, e.Msg, false}
}

func fieldsEq(fields []string) []string {
	out := make([]string, len(fields))
	for i, f := range fields {
		out[i] = f + "="
	}
	return out
}

// truncate shortens user input quoted back in messages.
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}

// usage is a verb's one-line syntax; a verb group's ("alert") lists its verbs.
func usage(verb string) (string, bool) {
	if spec, ok := actions.ByVerb(verb); ok {
		u := verb + " " + spec.SlackSyntax
		var notes []string
		if spec.SlackNote != "" {
			notes = append(notes, spec.SlackNote)
		}
		if len(spec.VerbAliases) > 0 {
			notes = append(notes, "(also: "+strings.Join(spec.VerbAliases, ", ")+")")
		}
		if len(notes) > 0 {
			u += "   " + strings.Join(notes, " ")
		}
		return u, true
	}
	if slices.Contains(ownVerbs, verb) {
		return verb, true
	}
	if sub, ok := verbGroups()[verb]; ok {
		parts := make([]string, len(sub))
		for i, s := range sub {
			parts[i], _ = usage(verb + " " + s)
		}
		return strings.Join(parts, "  |  "), true
	}
	return "", false
}
