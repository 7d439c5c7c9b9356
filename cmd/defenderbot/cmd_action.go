package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/defenderbot/defenderbot/actions"
	"github.com/defenderbot/defenderbot/config"
	"github.com/defenderbot/defenderbot/defender"
)

// argFlag maps each argument to its CLI flag (underscores become dashes).
func argFlag(arg string) string { return strings.ReplaceAll(arg, "_", "-") }

// runAction runs one action of the registry and prints its output fields
// as one JSON object. Exit codes: 0 success, 1 failure (nothing on stdout,
// except with --wait when the action ended in a status other than
// Succeeded: the JSON is printed and the exit code is 1), 2 usage.
// An action that may run on several machines takes a comma-separated
// --machine-id list: one call per machine (the client paces them), then
// one JSON object per line per machine that Defender accepted, in the
// order given; exit code 1 if any machine failed (each named on stderr).
func runAction(ctx context.Context, c *cli, args []string) int {
	fs, f := newActionFlags(c)
	name, code, ok := parseActionCommand(c, fs, f, args)
	if !ok {
		return code
	}
	list, err := f.actionArgs(fs, name)
	if err != nil {
		fmt.Fprintf(c.stderr, "defenderbot: %v\n", err)
		return 1
	}

	cfg, ok := loadConfigFor(c, *f.cfgPath, config.ForDefender)
	if !ok {
		return 1
	}
	if len(list) > 1 {
		ids := make([]string, len(list))
		for i, a := range list {
			ids[i] = a.MachineID
		}
		switch e := actions.CheckMachines(name, ids, cfg.Approval.MaxBulk); {
		case e != nil && e.Fault == actions.FaultTooMany:
			fmt.Fprintf(c.stderr, "defenderbot: %d machines listed: at most %d per run (approval.max_bulk)\n", e.Count, e.Max)
			return 1
		case e != nil:
			fmt.Fprintf(c.stderr, "defenderbot: --machine-id: %v\n", e)
			return 1
		}
	}
	client, err := newDefenderClient(c, cfg, newLogger(c, cfg))
	if err != nil {
		fmt.Fprintf(c.stderr, "defenderbot: %v\n", err)
		return 1
	}
	runner, err := newRunner(c, cfg, newLogger(c, cfg), client, nil)
	if err != nil {
		fmt.Fprintf(c.stderr, "defenderbot: %v\n", err)
		return 1
	}
	// Every machine is called before any is waited for: one decision, the
	// machines contained together.
	results := make([]*actions.Result, len(list))
	for i, a := range list {
		res, err := runner.Run(ctx, name, a)
		if err != nil {
			if len(list) > 1 {
				fmt.Fprintf(c.stderr, "defenderbot: machine %s:\n", a.MachineID)
			}
			printActionError(c.stderr, err)
			code = 1
			continue
		}
		results[i] = res
	}
	for _, res := range results {
		if res == nil {
			continue
		}
		if *f.wait {
			waited, wcode, ok := f.waitForAction(ctx, c, cfg, runner, name, res)
			code = max(code, wcode)
			if !ok {
				code = 1
				continue
			}
			res = waited
		}
		out, err := renderResult(name, res, *f.raw)
		if err != nil {
			fmt.Fprintf(c.stderr, "defenderbot: %v\n", err)
			code = 1
			continue
		}
		if _, err := c.stdout.Write(out); err != nil {
			return 1
		}
	}
	return code
}

// actionFlags are the flags of `defenderbot action`.
type actionFlags struct {
	cfgPath, argsFile         *string
	raw, wait                 *bool
	pollInterval, pollTimeout *time.Duration
	// argVals holds one flag per argument of the registry, by argument name.
	argVals map[string]*string
}

func newActionFlags(c *cli) (*flag.FlagSet, *actionFlags) {
	fs := newFlagSet(c, "action", "action NAME [flags]")
	fs.Usage = func() { actionUsage(c.stderr, fs) }
	f := &actionFlags{
		cfgPath:      configFlag(fs),
		argsFile:     fs.String("args", "", "JSON file holding the argument object, keyed by argument name (flags override its values)"),
		raw:          fs.Bool("raw", false, "print Microsoft's whole response body instead of the action's output fields"),
		wait:         fs.Bool("wait", false, "poll the machine action until it reaches a final status (or defender.poll_timeout)"),
		pollInterval: fs.Duration("poll-interval", 0, "with --wait, time between polls (default defender.poll_interval)"),
		pollTimeout:  fs.Duration("poll-timeout", 0, "with --wait, how long to wait (default defender.poll_timeout)"),
		argVals:      map[string]*string{},
	}
	for _, a := range actions.ArgSpecs() {
		f.argVals[a.Name] = fs.String(argFlag(a.Name), "", a.Help)
	}
	return fs, f
}

// parseActionCommand reads the action name, then its flags. When ok is
// false the command ends with code (0 after --help, 2 for a usage error).
func parseActionCommand(c *cli, fs *flag.FlagSet, f *actionFlags, args []string) (name actions.Name, code int, ok bool) {
	if len(args) == 0 {
		fmt.Fprintln(c.stderr, "defenderbot action: missing action name")
		actionUsage(c.stderr, fs)
		return "", 2, false
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		actionUsage(c.stderr, fs)
		return "", 0, false
	}
	if strings.HasPrefix(args[0], "-") {
		fmt.Fprintln(c.stderr, "defenderbot action: the action name comes first: defenderbot action NAME [flags]")
		actionUsage(c.stderr, fs)
		return "", 2, false
	}
	name, ok = actions.Lookup(args[0])
	if !ok {
		fmt.Fprintf(c.stderr, "defenderbot action: unknown action %q\n", args[0])
		actionUsage(c.stderr, fs)
		return "", 2, false
	}
	if code, ok := parseFlags(fs, args[1:]); !ok {
		return "", code, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(c.stderr, "defenderbot action: unexpected argument %q (values go in flags, e.g. --comment \"...\")\n", fs.Arg(0))
		return "", 2, false
	}
	if *f.wait && !name.ReturnsMachineAction() {
		fmt.Fprintf(c.stderr, "defenderbot action: --wait applies to machine actions, not %s\n", name)
		return "", 2, false
	}
	if *f.pollInterval < 0 || *f.pollTimeout < 0 {
		fmt.Fprintln(c.stderr, "defenderbot action: --poll-interval and --poll-timeout must be positive")
		return "", 2, false
	}
	return name, 0, true
}

// actionArgs builds the action's arguments: the --args file, then the
// flags given, normalised for the action; one set per machine of a
// comma-separated --machine-id list (actions that may run on several
// machines only; each machine once).
func (f *actionFlags) actionArgs(fs *flag.FlagSet, name actions.Name) ([]actions.Args, error) {
	var a actions.Args
	if *f.argsFile != "" {
		var err error
		if a, err = readArgsFile(*f.argsFile); err != nil {
			return nil, err
		}
	}
	fs.Visit(func(fl *flag.Flag) {
		for arg, v := range f.argVals {
			if fl.Name == argFlag(arg) {
				a.Set(arg, *v)
			}
		}
	})
	if !strings.Contains(a.MachineID, ",") {
		n, err := actions.Normalize(name, a)
		if err != nil {
			return nil, err
		}
		return []actions.Args{n}, nil
	}
	ids := strings.Split(a.MachineID, ",")
	for i := range ids {
		ids[i] = strings.TrimSpace(ids[i])
	}
	// The limit (approval.max_bulk) is checked once the configuration is read.
	if e := actions.CheckMachines(name, ids, actions.UnknownMax); e != nil {
		switch e.Fault {
		case actions.FaultOneMachine:
			return nil, fmt.Errorf("%s runs on one machine: --machine-id takes one machine ID", name)
		case actions.FaultEmpty:
			return nil, errors.New(`--machine-id "": an entry of the list is empty (separate machine IDs with commas)`)
		default:
			return nil, fmt.Errorf("--machine-id lists %s twice", e.Machine)
		}
	}
	var out []actions.Args
	for _, id := range ids {
		a.MachineID = id
		n, err := actions.Normalize(name, a)
		if err != nil {
			return nil, fmt.Errorf("--machine-id %q: %w", id, err)
		}
		out = append(out, n)
	}
	return out, nil
}

// waitForAction (--wait) polls the machine action until it is final or
// the poll timeout. It returns the last result and the exit code; when ok
// is false nothing is to be printed.
func (f *actionFlags) waitForAction(ctx context.Context, c *cli, cfg *config.Config, runner *actions.Runner, name actions.Name, res *actions.Result) (_ *actions.Result, code int, ok bool) {
	if !res.MachineAction.Status.Final() {
		interval := cfg.Defender.PollInterval
		if *f.pollInterval > 0 {
			interval = *f.pollInterval
		}
		timeout := cfg.Defender.PollTimeout
		if *f.pollTimeout > 0 {
			timeout = *f.pollTimeout
		}
		id := res.MachineAction.ID
		wctx, cancel := context.WithTimeout(ctx, timeout)
		waited, werr := runner.Wait(wctx, name, id, interval)
		cancel()
		switch {
		case werr != nil && waited == nil:
			printActionError(c.stderr, werr)
			return nil, 1, false
		case werr != nil:
			fmt.Fprintf(c.stderr, "defenderbot: action %s is still %s after %s; check later with: defenderbot action get-action --action-id %s\n",
				id, waited.MachineAction.Status, timeout, id)
			code = 1
		}
		res = waited
	}
	if res.MachineAction.Status.Final() && res.MachineAction.Status != defender.StatusSucceeded {
		fmt.Fprintf(c.stderr, "defenderbot: action %s ended %s\n", res.MachineAction.ID, res.MachineAction.Status)
		code = 1
	}
	return res, code, true
}

func actionUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintln(w, "usage: defenderbot action NAME [flags]")
	fmt.Fprintln(w, "\nRuns one action against Defender and prints its output fields as one JSON object.")
	fmt.Fprintln(w, "Actions on machines that Slack runs in bulk take --machine-id a,b,c: one JSON object per line per machine.")
	fmt.Fprintln(w, "\nactions:")
	for _, n := range actions.Names() {
		req := make([]string, 0, 4)
		for _, a := range n.RequiredArgs() {
			req = append(req, "--"+argFlag(a))
		}
		for _, a := range n.OptionalArgs() {
			req = append(req, "[--"+argFlag(a)+"]")
		}
		fmt.Fprintf(w, "  %-26s %s: %s\n", n, n.Title(), strings.Join(req, " "))
	}
	for _, s := range actions.All() {
		if len(s.AtLeastOneOf) > 0 {
			flags := make([]string, len(s.AtLeastOneOf))
			for i, a := range s.AtLeastOneOf {
				flags[i] = "--" + argFlag(a)
			}
			fmt.Fprintf(w, "  (%s needs at least one of %s)\n", s.Name, strings.Join(flags, ", "))
		}
	}
	fmt.Fprintln(w, "\nflags:")
	fs.SetOutput(w)
	fs.PrintDefaults()
}

// readArgsFile reads the JSON argument object. Unknown keys and
// non-string values are rejected: a misspelt key must not be ignored.
func readArgsFile(path string) (actions.Args, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return actions.Args{}, fmt.Errorf("--args: %w", err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return actions.Args{}, fmt.Errorf("--args %s: not a JSON object: %w", path, err)
	}
	strs := make(map[string]string, len(m))
	for k, v := range m {
		switch v := v.(type) {
		case string:
			strs[k] = v
		case nil:
		default:
			return actions.Args{}, fmt.Errorf("--args %s: %s must be a string", path, k)
		}
	}
	a, err := actions.ArgsFromMap(strs)
	if err != nil {
		return actions.Args{}, fmt.Errorf("--args %s: %w", path, err)
	}
	return a, nil
}

// renderResult returns one JSON object and a newline: the action's output
// fields in their declared order, or Microsoft's body with --raw.
func renderResult(n actions.Name, res *actions.Result, raw bool) ([]byte, error) {
	var buf bytes.Buffer
	if raw {
		if len(res.Raw) == 0 {
			return nil, errors.New("the raw response from Defender is not available")
		}
		if err := json.Compact(&buf, res.Raw); err != nil {
			return nil, fmt.Errorf("the raw response from Defender is not JSON: %w", err)
		}
		buf.WriteByte('\n')
		return buf.Bytes(), nil
	}
	buf.WriteByte('{')
	for i, k := range n.Outputs() {
		if i > 0 {
			buf.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		vb, err := json.Marshal(res.Output[k])
		if err != nil {
			return nil, err
		}
		buf.Write(kb)
		buf.WriteByte(':')
		buf.Write(vb)
	}
	buf.WriteString("}\n")
	return buf.Bytes(), nil
}

// printActionError prints Microsoft's code and message when Defender
// answered, the error otherwise.
func printActionError(w io.Writer, err error) {
	var apiErr *defender.APIError
	if errors.As(err, &apiErr) {
		code := apiErr.Code
		if code == "" {
			code = "HTTP"
		}
		msg := apiErr.Message
		if msg == "" {
			msg = strings.ToLower(httpStatusText(apiErr.StatusCode))
		}
		fmt.Fprintf(w, "defenderbot: Defender error %s (%d): %s\n", code, apiErr.StatusCode, msg)
		if apiErr.Code == defender.CodeActiveRequestAlreadyExists {
			fmt.Fprintln(w, "defenderbot: an action of this kind is already pending on the machine: find it with the Defender portal or cancel it with `defenderbot action cancel-action`")
		}
		if apiErr.Target != "" {
			fmt.Fprintf(w, "defenderbot: Microsoft correlation id (target): %s\n", apiErr.Target)
		}
		return
	}
	fmt.Fprintf(w, "defenderbot: %v\n", err)
}

func httpStatusText(code int) string {
	if t := http.StatusText(code); t != "" {
		return t
	}
	return "error"
}
