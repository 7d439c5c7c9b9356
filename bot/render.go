package bot

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/defenderbot/defenderbot/approval"
	"github.com/defenderbot/defenderbot/defender"
	"github.com/defenderbot/defenderbot/machineinfo"
)

// Block and action IDs of the approval message.
const (
	blockDecision  = "decision"
	actionApprove  = "approve"
	actionReject   = "reject"
	callbackReject = "defenderbot_reject"
	callbackCmd    = "defenderbot_cmd"
	blockReason    = "reason"
)

// escapeMrkdwn neutralises user text for mrkdwn: Slack only needs &, < and >
// escaped, which stops <!channel>, <@U…> pings and forged <url|links>.
func escapeMrkdwn(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

func mrkdwn(s string) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.MarkdownType, s, false, false)
}

func plain(s string) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.PlainTextType, s, false, false)
}

func section(s string) *slack.SectionBlock { return slack.NewSectionBlock(mrkdwn(s), nil, nil) }

func contextBlock(s string) *slack.ContextBlock { return slack.NewContextBlock("", mrkdwn(s)) }

// paramLabels orders and names the request arguments shown to approvers
// (machine_id and comment are shown on their own).
var paramLabels = []struct{ key, label string }{
	{"isolation_type", "Isolation type"},
	{"scan_type", "Scan type"},
	{"action_id", "Machine action"},
	{"alert_id", "Alert"},
	{"status", "Status"},
	{"classification", "Classification"},
	{"determination", "Determination"},
	{"owner", "Owner"},
}

func userRef(id string) string {
	if id == "" {
		return "unknown"
	}
	return "<@" + escapeMrkdwn(id) + ">"
}

func fmtTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }

// requestFields are the facts approvers decide on.
func requestFields(r *approval.Request) []*slack.TextBlockObject {
	f := []*slack.TextBlockObject{
		mrkdwn("*Requested by*\n" + userRef(r.RequesterID)),
		mrkdwn("*Action*\n" + escapeMrkdwn(r.Action.Title())),
	}
	if id := r.Args.MachineID; id != "" {
		name := r.MachineName
		if name == "" {
			name = "(name unknown)"
		}
		f = append(f, mrkdwn(fmt.Sprintf("*Machine*\n%s\n`%s`", escapeMrkdwn(name), escapeMrkdwn(id))))
	}
	for _, p := range paramLabels {
		if v := r.Args.Get(p.key); v != "" {
			f = append(f, mrkdwn(fmt.Sprintf("*%s*\n`%s`", p.label, escapeMrkdwn(v))))
		}
	}
	return f
}

// quote renders user text as an escaped mrkdwn block quote.
func quote(s string) string {
	lines := strings.Split(escapeMrkdwn(s), "\n")
	return "> " + strings.Join(lines, "\n> ")
}

// renderApproval renders the approval message for r's current state: buttons
// while pending, the decision and outcome afterwards.
func renderApproval(r *approval.Request) []slack.Block { return renderApprovalWith(r, nil, 0, 0) }

// renderApprovalWith is renderApproval with the machine's context (nil: none).
func renderApprovalWith(r *approval.Request, info *machineinfo.Info, staleAfter time.Duration, cardAlerts int) []slack.Block {
	pending := r.State == approval.StatePending
	// Once decided, the message no longer asks for approval nor shows a
	// deadline that no longer applies.
	header, facts := r.Action.Title(), fmt.Sprintf("Request `%s`", escapeMrkdwn(r.ID))
	if pending {
		header = "Approval needed: " + header
		facts += fmt.Sprintf(" · needs %d approval(s) · expires %s", r.RequiredApprovals, fmtTime(r.ExpiresAt))
	}
	blocks := []slack.Block{
		slack.NewHeaderBlock(plain(header)),
		slack.NewSectionBlock(nil, requestFields(r), nil),
	}
	if info != nil {
		blocks = append(blocks, renderContext(*info, staleAfter, cardAlerts)...)
	}
	if c := r.Args.Comment; c != "" {
		blocks = append(blocks, section("*Comment*\n"+quote(c)))
	}
	blocks = append(blocks, contextBlock(facts))
	if len(r.Approvals) > 0 {
		blocks = append(blocks, contextBlock(fmt.Sprintf("Approved by %s (%d of %d)",
			approverList(r), len(r.Approvals), r.RequiredApprovals)))
	}
	if pending {
		blocks = append(blocks, decisionButtons(r, blockDecision))
		return fitMessage(blocks)
	}
	blocks = append(blocks, slack.NewDividerBlock(), section(outcomeText(r)))
	return fitMessage(blocks)
}

// decisionButtons are the Approve / Reject buttons of a pending request, in
// the channel and on the Home tab alike (only the request ID is carried).
func decisionButtons(r *approval.Request, blockID string) *slack.ActionBlock {
	approve := slack.NewButtonBlockElement(actionApprove, r.ID, plain("Approve")).
		WithStyle(slack.StylePrimary).
		WithConfirm(slack.NewConfirmationBlockObject(
			plain("Approve this action?"),
			mrkdwn(fmt.Sprintf("This runs *%s* in Microsoft Defender%s.", escapeMrkdwn(r.Action.Title()), onMachine(r))),
			plain("Approve"), plain("Cancel")))
	reject := slack.NewButtonBlockElement(actionReject, r.ID, plain("Reject")).WithStyle(slack.StyleDanger)
	return slack.NewActionBlock(blockID, approve, reject)
}

func onMachine(r *approval.Request) string {
	if r.Bulk() {
		return " on " + plural(len(r.Targets), "machine")
	}
	if r.MachineName != "" {
		return " on " + escapeMrkdwn(r.MachineName)
	}
	if id := r.Args.MachineID; id != "" {
		return " on " + escapeMrkdwn(id)
	}
	return ""
}

// requestRef names a request in messages to people:
// "`<id>` (Isolate a machine on ws-001.contoso.com)".
func requestRef(r *approval.Request) string {
	return fmt.Sprintf("`%s` (%s%s)", r.ID, escapeMrkdwn(r.Action.Title()), onMachine(r))
}

func approverList(r *approval.Request) string {
	ids := make([]string, len(r.Approvals))
	for i, a := range r.Approvals {
		ids[i] = userRef(a.UserID)
	}
	return strings.Join(ids, ", ")
}

// outcomeText is the line replacing the buttons once a request left pending.
func outcomeText(r *approval.Request) string {
	if msg := bulkOutcome(r); r.Bulk() && msg != "" {
		return msg
	}
	action := ""
	if r.MachineActionID != "" {
		action = fmt.Sprintf("\nDefender action `%s`", escapeMrkdwn(r.MachineActionID))
		if r.MachineActionStatus != "" {
			action += ": " + escapeMrkdwn(r.MachineActionStatus)
		}
	}
	switch r.State {
	case approval.StateApproved, approval.StateExecuting:
		return fmt.Sprintf(":hourglass_flowing_sand: *Approved* by %s: calling Defender…", approverList(r))
	case approval.StateRunning:
		return fmt.Sprintf(":arrows_counterclockwise: *Approved* by %s: running in Defender.%s", approverList(r), action)
	case approval.StateSucceeded:
		return fmt.Sprintf(":white_check_mark: *Approved* by %s: *succeeded*.%s", approverList(r), action)
	case approval.StateFailed:
		msg := fmt.Sprintf(":warning: *Approved* by %s: *failed*.%s", approverList(r), action)
		if r.Error != "" {
			msg += "\n" + escapeMrkdwn(r.Error)
		}
		return msg
	case approval.StateRejected:
		msg := fmt.Sprintf(":x: *Rejected* by %s.", userRef(r.RejectedBy))
		if r.RejectReason != "" {
			msg += "\n*Reason*\n" + quote(r.RejectReason)
		}
		return msg
	case approval.StateExpired:
		return fmt.Sprintf(":hourglass: *Expired* at %s without enough approvals; nothing was run. Request it again if still needed.", fmtTime(r.ExpiresAt))
	}
	return escapeMrkdwn(string(r.State))
}

// approvalFallback is the notification text of the approval message. Slack
// reads it as mrkdwn, so the requester's name is escaped like any user text.
func approvalFallback(r *approval.Request) string {
	return fmt.Sprintf("%s requested: %s%s (%s)", escapeMrkdwn(r.RequesterName), escapeMrkdwn(r.Action.Title()), onMachine(r), escapeMrkdwn(string(r.State)))
}

// renderStatusChange is a thread reply for a machine action status change.
func renderStatusChange(ma *defender.MachineAction) string {
	icon := ":arrows_counterclockwise:"
	switch ma.Status {
	case defender.StatusSucceeded:
		icon = ":white_check_mark:"
	case defender.StatusFailed, defender.StatusTimeOut, defender.StatusCancelled:
		icon = ":warning:"
	}
	return fmt.Sprintf("%s Defender action `%s` (%s) is now *%s*", icon, escapeMrkdwn(ma.ID), escapeMrkdwn(ma.Type), escapeMrkdwn(string(ma.Status)))
}

// renderHelp lists every verb.
func renderHelp(command string) []slack.Block {
	var b strings.Builder
	for _, v := range allVerbs() {
		u, _ := usage(v)
		// Slack reads <…> as a link or mention even in code: escape it.
		fmt.Fprintf(&b, "`%s %s`\n", escapeMrkdwn(command), escapeMrkdwn(u))
	}
	return fitMessage([]slack.Block{
		section("*Microsoft Defender for Endpoint from Slack*\nState-changing actions are posted for approval; `action` and `iocs status` answer at once."),
		section(strings.TrimRight(b.String(), "\n")),
		contextBlock("&lt;machine&gt; is a Defender machine ID (40 hex characters) or a computer DNS name; " + bulkVerbs() + " also take several, comma-separated without spaces (ws-1,ws-2), approved once. Quote a comment with \"…\" if it starts with a keyword."),
	})
}

// renderParseError explains a malformed command and shows the usage.
func renderParseError(command string, pe *ParseError) []slack.Block {
	blocks := []slack.Block{section(":warning: " + escapeMrkdwn(pe.Msg))}
	if u, ok := usage(pe.Verb); ok {
		blocks = append(blocks, section(fmt.Sprintf("Usage: `%s %s`", escapeMrkdwn(command), escapeMrkdwn(u))))
	} else {
		blocks = append(blocks, section(fmt.Sprintf("Try `%s help`.", escapeMrkdwn(command))))
	}
	return fitMessage(blocks)
}

// renderMachineChoices explains an ambiguous or unknown machine name.
func renderMachineChoices(query string, ms []defender.Machine) string {
	if len(ms) == 0 {
		return fmt.Sprintf(":warning: No machine named %s in Defender. Check the computer DNS name (or use the machine ID) in the Defender portal's device inventory.", "`"+escapeMrkdwn(query)+"`")
	}
	sorted := append([]defender.Machine(nil), ms...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].LastSeen.After(sorted[j].LastSeen) })
	var b strings.Builder
	fmt.Fprintf(&b, ":warning: %d machines match `%s`; run the command again with the machine ID:\n", len(ms), escapeMrkdwn(query))
	for i, m := range sorted {
		if i == 10 {
			fmt.Fprintf(&b, "…and %d more", len(sorted)-10)
			break
		}
		fmt.Fprintf(&b, "• %s `%s` health %s, last seen %s\n", escapeMrkdwn(m.ComputerDNSName), escapeMrkdwn(m.ID),
			escapeMrkdwn(orDash(m.HealthStatus)), fmtTime(m.LastSeen))
	}
	return strings.TrimRight(b.String(), "\n")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// renderOutput renders a read-only action's output fields.
func renderOutput(title string, out map[string]any) []slack.Block {
	keys := make([]string, 0, len(out))
	for k := range out {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fields := make([]*slack.TextBlockObject, 0, len(keys))
	for _, k := range keys {
		v := "-"
		if out[k] != nil {
			v = fmt.Sprint(out[k])
		}
		fields = append(fields, mrkdwn(fmt.Sprintf("*%s*\n`%s`", escapeMrkdwn(k), escapeMrkdwn(v))))
	}
	// fitMessage splits the fields into sections of at most ten.
	return fitMessage([]slack.Block{section("*" + escapeMrkdwn(title) + "*"), slack.NewSectionBlock(nil, fields, nil)})
}
