package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/defenderbot/defenderbot/config"
	"github.com/defenderbot/defenderbot/defender/defendertest"
	"github.com/defenderbot/defenderbot/internal/slackfake"
)

// The demo's cast and places.
const (
	demoChannel   = "C0SOC"
	demoAnalyst   = "U0ALICE"
	demoApprover  = "U0BOB"
	demoMachine   = "finance-laptop-01.contoso.com"
	demoAlerts    = "C0ALERTS"
	demoStepLimit = 10 * time.Second
)

// runDemo runs the whole approval flow on loopback with no credentials: the
// Defender emulator, a Slack stand-in, a temporary SQLite store and the same
// server `serve` runs; a scripted analyst and approver drive it through real
// signed HTTP requests, and every step is printed.
func runDemo(ctx context.Context, c *cli, args []string) int {
	fs := newFlagSet(c, "demo", "demo [--verbose] [--timeout D]")
	verbose := fs.Bool("verbose", false, "also print the server's logs on stderr")
	timeout := fs.Duration("timeout", time.Minute, "give up after this long")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(c.stderr, "defenderbot demo: unexpected argument %q (the demo takes no configuration)\n", fs.Arg(0))
		return 2
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	logger := slog.New(slog.DiscardHandler)
	if *verbose {
		logger = newLoggerTo(c.stderr, &config.Config{LogLevel: "debug", LogFormat: "text"})
	}
	if err := demo(ctx, c, logger); err != nil {
		fmt.Fprintf(c.stderr, "defenderbot demo: %v\n", err)
		return 1
	}
	return 0
}

// demoEnv is the running demo: emulators, server and the scripted users' tools.
type demoEnv struct {
	out     io.Writer
	emu     *defendertest.Server
	slack   *slackfake.Server
	baseURL string
	secret  string
	http    *http.Client
	start   time.Time
}

func demo(ctx context.Context, c *cli, logger *slog.Logger) error {
	d := &demoEnv{out: c.stdout, http: &http.Client{Timeout: 5 * time.Second}, start: time.Now()}
	d.say("defenderbot demo: the whole Slack approval flow on loopback, no credentials needed\n\n")

	d.emu = defendertest.New()
	if err := d.emu.Start(nil); err != nil {
		return fmt.Errorf("start the Defender emulator: %w", err)
	}
	defer d.emu.Close()
	d.emu.AddSampleData()
	// An alert Graph lists from the start: the feed posts it at once.
	d.emu.NewDeviceAlert(defendertest.SampleMachineID2, "Ransomware behavior detected on a web server", "high")

	d.slack = slackfake.New()
	defer d.slack.Close()

	dir, err := os.MkdirTemp("", "defenderbot-demo-")
	if err != nil {
		return fmt.Errorf("temporary directory: %w", err)
	}
	defer func() { _ = os.RemoveAll(dir) }()

	secret := make([]byte, 16)
	_, _ = rand.Read(secret)
	d.secret = hex.EncodeToString(secret)

	cfg := demoConfig(d, filepath.Join(dir, "demo.db"))
	if err := cfg.Validate(config.ForServe); err != nil {
		return fmt.Errorf("demo configuration: %w", err)
	}
	// The emulator's self-signed certificate is trusted through the cli's client.
	dc := *c
	dc.httpClient = d.emu.HTTPClient()
	app, err := newServeApp(ctx, &dc, cfg, logger)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		app.close()
		return fmt.Errorf("listen: %w", err)
	}
	d.baseURL = "http://" + ln.Addr().String()
	srvCtx, stopServer := context.WithCancel(context.WithoutCancel(ctx))
	served := make(chan error, 1)
	go func() { served <- app.run(srvCtx, ln) }()

	d.say("  Defender emulator  %s (3 sample machines, emulated clock)\n", d.emu.URL)
	d.say("  Slack stand-in     %s\n", d.slack.APIURL())
	d.say("  store              SQLite in %s\n", dir)
	d.say("  defenderbot        %s (the same server as `defenderbot serve`)\n", d.baseURL)
	d.say("  approval channel   #%s; approvers alice (%s, the analyst) and bob (%s)\n", demoChannel, demoAnalyst, demoApprover)
	d.say("  alert channel      #%s (Defender alerts from Microsoft Graph, high and medium)\n\n", demoAlerts)

	scriptErr := d.script(ctx)

	stopServer()
	if err := <-served; err != nil && scriptErr == nil {
		scriptErr = err
	}
	if scriptErr != nil {
		return scriptErr
	}
	d.say("\nDemo complete in %s: requested, refused self-approval, approved by a second person, executed and followed until Succeeded; an alert posted and acted on from its card.\n",
		time.Since(d.start).Round(time.Millisecond))
	return nil
}

func demoConfig(d *demoEnv, dbPath string) *config.Config {
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.LogLevel = "debug"
	cfg.Defender.BaseURL = d.emu.URL
	cfg.Defender.AuthorityHost = d.emu.URL
	cfg.Defender.TenantID = defendertest.TenantID
	cfg.Defender.AppID = defendertest.ClientID
	cfg.Defender.AppSecret = config.Secret(defendertest.ClientSecret)
	cfg.Defender.PollInterval = 50 * time.Millisecond
	cfg.Defender.PollTimeout = 30 * time.Second
	cfg.Slack.BotToken = "xoxb-demo"
	cfg.Slack.SigningSecret = config.Secret(d.secret)
	cfg.Slack.APIURL = d.slack.APIURL()
	cfg.Slack.ApprovalChannel = demoChannel
	cfg.Approval.Approvers = []string{demoAnalyst, demoApprover}
	cfg.Store.Driver = "sqlite"
	cfg.Store.DSN = config.Secret(dbPath)
	cfg.Defender.GraphBaseURL = d.emu.URL
	cfg.Defender.AlertsAPI = config.AlertsAPIGraph
	cfg.Alerts.Enabled = true
	cfg.Alerts.Channel = demoAlerts
	return cfg
}

func (d *demoEnv) say(format string, args ...any) { fmt.Fprintf(d.out, format, args...) }

// script is the scripted analyst and approver.
func (d *demoEnv) script(ctx context.Context) error {
	text := "isolate " + demoMachine + " full suspicious beacon"
	if err := d.forgedCommand(ctx, text); err != nil {
		return err
	}
	if err := d.command(ctx, text); err != nil {
		return err
	}
	approval, requestID, err := d.approvalPosted(ctx)
	if err != nil {
		return err
	}
	if err := d.selfApprovalRefused(ctx, requestID, approval); err != nil {
		return err
	}
	action, err := d.approved(ctx, requestID, approval)
	if err != nil {
		return err
	}
	if err := d.actionSucceeds(ctx, action, approval); err != nil {
		return err
	}
	return d.alertScript(ctx)
}

// forgedCommand is step 0: a command signed with the wrong secret is refused.
func (d *demoEnv) forgedCommand(ctx context.Context, text string) error {
	d.say("0. Someone without the signing secret forges the same command\n")
	status, _, err := d.post(ctx, "/slack/commands", "not-the-secret", demoCommandForm(demoAnalyst, text, d.slack.ResponseURL("forged")))
	if err != nil {
		return err
	}
	if status != http.StatusUnauthorized {
		return fmt.Errorf("forged request got HTTP %d, want 401", status)
	}
	d.say("   -> HTTP %d: refused before anything was parsed or stored\n\n", status)
	return nil
}

// command is step 1: the analyst asks for the isolation.
func (d *demoEnv) command(ctx context.Context, text string) error {
	d.say("1. alice (%s) types: /defender %s\n", demoAnalyst, text)
	start := time.Now()
	status, body, err := d.post(ctx, "/slack/commands", d.secret, demoCommandForm(demoAnalyst, text, d.slack.ResponseURL("analyst-command")))
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("slash command got HTTP %d: %s", status, body)
	}
	d.say("   -> signed POST /slack/commands acknowledged in %s: %q\n", time.Since(start).Round(time.Millisecond), demoMsgText(body))
	return nil
}

// approvalPosted is step 2: the request waits in the approval channel; it
// returns the approval message and the request ID.
func (d *demoEnv) approvalPosted(ctx context.Context) (slackfake.Call, string, error) {
	approval, err := d.waitCall(ctx, "the approval request", func(c slackfake.Call) bool {
		return c.Method == slackfake.MethodPostMessage && c.Channel == demoChannel && c.ThreadTS == "" && c.Error == ""
	})
	if err != nil {
		return slackfake.Call{}, "", err
	}
	requestID, err := slackfake.ButtonValue(approval.Blocks, "approve")
	if err != nil {
		return slackfake.Call{}, "", fmt.Errorf("the approval message: %w", err)
	}
	if requestID == "" {
		return slackfake.Call{}, "", errors.New("the approval message has no Approve button")
	}
	d.say("2. The bot posts the request in #%s with Approve/Reject buttons: %q (request %s)\n", demoChannel, approval.Text, requestID)
	d.say("   -> the card shows the approver what is at stake, from Defender:\n")
	for _, line := range demoCardContext(approval.Blocks) {
		d.say("        %s\n", line)
	}
	c, err := d.waitCall(ctx, "the requester's confirmation", func(c slackfake.Call) bool {
		return c.Method == slackfake.MethodResponseURL && c.ResponseURL == "analyst-command"
	})
	if err != nil {
		return slackfake.Call{}, "", err
	}
	d.say("   -> %s is told: %q\n\n", demoAnalyst, c.Text)
	return approval, requestID, nil
}

// selfApprovalRefused is step 3: the requester cannot approve her own request.
func (d *demoEnv) selfApprovalRefused(ctx context.Context, requestID string, approval slackfake.Call) error {
	d.say("3. alice clicks Approve on her own request\n")
	if err := d.click(ctx, demoAnalyst, requestID, approval.TS); err != nil {
		return err
	}
	refusal, err := d.waitCall(ctx, "the self-approval refusal", func(c slackfake.Call) bool {
		return c.Method == slackfake.MethodPostEphemeral && c.User == demoAnalyst
	})
	if err != nil {
		return err
	}
	if n := len(d.emu.MachineActions()); n != 0 {
		return fmt.Errorf("self-approval reached Defender (%d machine actions)", n)
	}
	d.say("   -> refused, nothing sent to Defender: %q\n\n", refusal.Text)
	return nil
}

// demoRequesterDM matches a direct message to the requester.
func demoRequesterDM(c slackfake.Call) bool {
	return c.Method == slackfake.MethodPostMessage && c.Channel == demoAnalyst
}

// approved is step 4: a second person approves and Defender gets the call.
func (d *demoEnv) approved(ctx context.Context, requestID string, approval slackfake.Call) (defendertest.MachineAction, error) {
	d.say("4. bob (%s) clicks Approve\n", demoApprover)
	if err := d.click(ctx, demoApprover, requestID, approval.TS); err != nil {
		return defendertest.MachineAction{}, err
	}
	var action defendertest.MachineAction
	if err := d.waitFor(ctx, "the Defender machine action", func() bool {
		as := d.emu.MachineActions()
		if len(as) > 0 {
			action = as[0]
		}
		return len(as) > 0
	}); err != nil {
		return defendertest.MachineAction{}, err
	}
	for _, r := range d.emu.Requests() {
		if r.Method == http.MethodPost && strings.Contains(r.Path, "/isolate") {
			d.say("   -> Defender API: %s %s\n", r.Method, r.Path)
		}
	}
	d.say("   -> machine action %s (%s) on %s is %s; comment %q\n", action.ID, action.Type, action.ComputerDNSName, action.Status, action.RequestorComment)
	c, err := d.waitCall(ctx, "the thread reply", func(c slackfake.Call) bool {
		return c.Method == slackfake.MethodPostMessage && c.ThreadTS == approval.TS
	})
	if err != nil {
		return defendertest.MachineAction{}, err
	}
	d.say("   -> thread reply: %q\n", c.Text)
	c, err = d.waitNth(ctx, "the requester's 'approved' message", 1, demoRequesterDM)
	if err != nil {
		return defendertest.MachineAction{}, err
	}
	d.say("   -> %s gets a direct message: %q\n\n", demoAnalyst, c.Text)
	return action, nil
}

// actionSucceeds is step 5: the action is followed until it succeeds, and
// its thread offers the undo.
func (d *demoEnv) actionSucceeds(ctx context.Context, action defendertest.MachineAction, approval slackfake.Call) error {
	d.say("5. Time passes on the emulator's clock (3 minutes); the bot keeps polling the action\n")
	d.emu.Advance(3 * time.Minute)
	outcome, err := d.waitNth(ctx, "the outcome message", 2, demoRequesterDM)
	if err != nil {
		return err
	}
	final, _ := d.emu.MachineAction(action.ID)
	m, _ := d.slack.Message(demoChannel, approval.TS)
	d.say("   -> Defender reports the action %s\n", final.Status)
	for _, c := range d.slack.CallsTo(slackfake.MethodPostMessage) {
		if c.ThreadTS == approval.TS && strings.Contains(c.Text, "Succeeded") {
			d.say("   -> thread reply: %q\n", c.Text)
		}
	}
	d.say("   -> the approval message now reads: %q\n", m.Text)
	d.say("   -> %s gets a direct message: %q\n", demoAnalyst, outcome.Text)
	if final.Status != "Succeeded" {
		return fmt.Errorf("machine action ended %s, want Succeeded", final.Status)
	}
	undo, err := d.waitCall(ctx, "the undo button", func(c slackfake.Call) bool {
		return c.Method == slackfake.MethodPostMessage && c.ThreadTS == approval.TS && strings.Contains(string(c.Blocks), `"action_id":"undo"`)
	})
	if err != nil {
		return err
	}
	d.say("   -> the thread offers a [Release] button: %q\n", undo.Text)
	return nil
}

// alertScript: an alert arrives in the alert channel and is acted on from
// its card, through the same approval.
func (d *demoEnv) alertScript(ctx context.Context) error {
	d.say("\n6. A Defender alert arrives in Microsoft Graph; the bot posts it in #%s\n", demoAlerts)
	card, err := d.waitCall(ctx, "the alert card", func(c slackfake.Call) bool {
		return c.Method == slackfake.MethodPostMessage && c.Channel == demoAlerts
	})
	if err != nil {
		return err
	}
	alertID, err := slackfake.ButtonValue(card.Blocks, "alert_scan")
	if err != nil || alertID == "" {
		return fmt.Errorf("the alert card has no Run scan button (%v)", err)
	}
	d.say("   -> card %q with buttons Isolate device, Run scan, Assign to me, Resolve…, Comment…\n\n", card.Text)

	d.say("7. alice clicks Run scan on the card\n")
	if err := d.clickButton(ctx, demoAnalyst, "alert_scan", alertID, demoAlerts, card.TS); err != nil {
		return err
	}
	approval, err := d.waitNth(ctx, "the scan's approval request", 2, func(c slackfake.Call) bool {
		return c.Method == slackfake.MethodPostMessage && c.Channel == demoChannel && c.ThreadTS == "" && c.Error == ""
	})
	if err != nil {
		return err
	}
	requestID, err := slackfake.ButtonValue(approval.Blocks, "approve")
	if err != nil || requestID == "" {
		return fmt.Errorf("the scan's approval message has no Approve button (%v)", err)
	}
	d.say("   -> the usual approval request in #%s: %q (request %s, comment names the alert)\n\n", demoChannel, approval.Text, requestID)

	d.say("8. bob approves; the scan runs on the alert's device and succeeds\n")
	if err := d.click(ctx, demoApprover, requestID, approval.TS); err != nil {
		return err
	}
	if err := d.waitFor(ctx, "the scan", func() bool { return len(d.emu.MachineActions()) == 2 }); err != nil {
		return err
	}
	scan := d.emu.MachineActions()[1]
	d.say("   -> machine action %s (%s) on %s\n", scan.ID, scan.Type, scan.ComputerDNSName)
	d.emu.Advance(3 * time.Minute)
	var comment string
	if err := d.waitFor(ctx, "the comment on the alert", func() bool {
		a, _ := d.emu.GraphAlert(alertID)
		if len(a.Comments) > 0 {
			comment = a.Comments[len(a.Comments)-1].Comment
		}
		return comment != ""
	}); err != nil {
		return err
	}
	d.say("   -> the alert gets a comment through Graph: %q\n", comment)
	return nil
}

// clickButton sends user's signed click on button actionID of a message.
func (d *demoEnv) clickButton(ctx context.Context, user, actionID, value, channel, messageTS string) error {
	form, err := slackfake.InteractionForm(slackfake.BlockAction(user, actionID, value, channel, messageTS, d.slack.ResponseURL("click-"+user)))
	if err != nil {
		return err
	}
	status, body, err := d.post(ctx, "/slack/interactions", d.secret, form)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("%s click by %s got HTTP %d: %s", actionID, user, status, body)
	}
	return nil
}

// post sends a form signed with secret and returns status and body.
func (d *demoEnv) post(ctx context.Context, path, secret string, form url.Values) (int, []byte, error) {
	req, err := slackfake.SignedRequest(ctx, d.baseURL+path, secret, time.Now(), form)
	if err != nil {
		return 0, nil, err
	}
	resp, err := d.http.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("POST %s: %w", path, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, body, err
}

// click sends user's signed Approve click on the approval message.
func (d *demoEnv) click(ctx context.Context, user, requestID, messageTS string) error {
	return d.clickButton(ctx, user, "approve", requestID, demoChannel, messageTS)
}

// waitCall waits (bounded) for the first Slack call matching match.
func (d *demoEnv) waitCall(ctx context.Context, what string, match func(slackfake.Call) bool) (slackfake.Call, error) {
	return d.waitNth(ctx, what, 1, match)
}

// waitNth waits (bounded) for the nth Slack call matching match.
func (d *demoEnv) waitNth(ctx context.Context, what string, n int, match func(slackfake.Call) bool) (slackfake.Call, error) {
	ctx, cancel := context.WithTimeout(ctx, demoStepLimit)
	defer cancel()
	found, err := d.slack.WaitNth(ctx, n, match)
	if err != nil {
		return found, fmt.Errorf("waiting for %s: %w", what, err)
	}
	return found, nil
}

// waitFor polls cond (state outside Slack) briefly until it holds.
func (d *demoEnv) waitFor(ctx context.Context, what string, cond func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, demoStepLimit)
	defer cancel()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-t.C:
		}
	}
	return nil
}

var demoNames = map[string]string{demoAnalyst: "alice", demoApprover: "bob"}

func demoCommandForm(user, text, responseURL string) url.Values {
	return slackfake.CommandForm(slack.SlashCommand{
		Command: "/defender", Text: text, UserID: user, UserName: demoNames[user],
		ChannelID: "C0ANALYST", ChannelName: "soc-analysts", TeamID: "T0DEMO",
		ResponseURL: responseURL, TriggerID: "trigger-" + user,
	})
}

// demoMsgText is the text of a JSON Slack message body ("" if none).
func demoMsgText(body []byte) string {
	var m slack.Msg
	if json.Unmarshal(body, &m) != nil {
		return ""
	}
	return m.Text
}

// demoCardContext returns the machine context lines of an approval card:
// the Defender facts, open alerts and containment.
func demoCardContext(raw json.RawMessage) []string {
	var blocks []struct {
		Type     string                           `json:"type"`
		Text     *struct{ Text string }           `json:"text"`
		Fields   []struct{ Text string }          `json:"fields"`
		Elements []struct{ Text json.RawMessage } `json:"elements"` // a string in context blocks
	}
	if json.Unmarshal(raw, &blocks) != nil {
		return nil
	}
	flat := func(s string) string { return strings.Join(strings.Fields(strings.ReplaceAll(s, "*", "")), " ") }
	var out []string
	for _, b := range blocks {
		for _, f := range b.Fields {
			for _, k := range []string{"*Computer*", "*OS*", "*Health*", "*Risk / exposure*", "*Last seen*", "*Last IP*", "*Device group*", "*Tags*"} {
				if strings.HasPrefix(f.Text, k+"\n") {
					out = append(out, strings.Trim(k, "*")+": "+flat(strings.TrimPrefix(f.Text, k+"\n")))
				}
			}
		}
		if b.Text != nil && strings.HasPrefix(b.Text.Text, "*Open alerts*") {
			for _, l := range strings.Split(b.Text.Text, "\n") {
				out = append(out, flat(l))
			}
		}
		for _, e := range b.Elements {
			var text string
			if json.Unmarshal(e.Text, &text) == nil && strings.HasPrefix(text, "Isolated:") {
				out = append(out, flat(text))
			}
		}
	}
	return out
}
