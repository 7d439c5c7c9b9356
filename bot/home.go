package bot

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"

	"github.com/defenderbot/defenderbot/actions"
	"github.com/defenderbot/defenderbot/approval"
)

// The Home tab (App Home) shows one person what concerns them: requests
// waiting for their approval (with the same Approve / Reject buttons as the
// channel message, handled by the same decision path), their own open
// requests, what runs now, the last results, the machines defenderbot
// isolated that it has not released (with Release, the undo of the isolation
// as offered in its thread), and the last IOC sync.
// It is published on app_home_opened and again after a click on it.

// Home tab limits: the view holds 100 blocks.
const (
	homeMaxWaiting  = 15  // two blocks each
	homeMaxIsolated = 15  // one block each
	homeMaxLines    = 10  // lines of the list sections
	homeResults     = 10  // "the last ten results"
	homeScan        = 500 // the results scanned for the last ten
	homeCommentLen  = 300
)

// HandleEvent handles an Events API callback (HTTP or Socket Mode):
// app_home_opened publishes the user's Home tab. It returns at once.
func (s *Service) HandleEvent(ctx context.Context, ev slackevents.EventsAPIEvent) {
	e, ok := ev.InnerEvent.Data.(*slackevents.AppHomeOpenedEvent)
	if !ok || e.User == "" || (e.Tab != "" && e.Tab != "home") {
		return
	}
	user := e.User
	s.goAsync(ctx, "publish home", func(ctx context.Context) { s.publishHome(ctx, user) })
}

// homeData is what the Home tab shows; gathered from the store, rendered by
// renderHome.
type homeData struct {
	User     string
	Now      time.Time
	Waiting  []*approval.Request // waiting for User's approval
	Mine     []*approval.Request // User's own open requests
	Running  []*approval.Request // executing or running, anyone's
	Results  []*approval.Request // the last final outcomes
	Isolated []isolation         // the isolations still in force
	IOCs     string              // the IOC sync status, "" when not configured
	Problems []string            // parts that could not be read
}

// publishHome renders and publishes user's Home tab.
func (s *Service) publishHome(ctx context.Context, user string) {
	d := s.homeData(ctx, user)
	view := slack.HomeTabViewRequest{Type: slack.VTHomeTab, Blocks: slack.Blocks{BlockSet: renderHome(d)}}
	err := s.slackRetry(ctx, func() error {
		_, err := s.deps.Slack.PublishViewContext(ctx, slack.PublishViewContextRequest{UserID: user, View: view})
		return err
	})
	if err != nil {
		s.log.ErrorContext(ctx, "views.publish (home tab) failed", "user", user, "error", err)
	}
}

func (s *Service) homeData(ctx context.Context, user string) homeData {
	d := homeData{User: user, Now: s.now()}
	list := func(what string, limit int, acts []actions.Name, states ...approval.State) []*approval.Request {
		rs, err := s.deps.Store.ListRequests(ctx, approval.RequestFilter{States: states, Actions: acts, Limit: limit})
		if err != nil {
			s.log.ErrorContext(ctx, "home tab: listing requests failed", "what", what, "error", err)
			d.Problems = append(d.Problems, what)
		}
		return rs
	}
	approver, err := s.core.IsApprover(ctx, user)
	if err != nil {
		s.log.WarnContext(ctx, "home tab: approver check failed", "user", user, "error", err)
		d.Problems = append(d.Problems, "requests waiting for your approval (Slack user group look-up failed)")
	}
	for _, r := range list("pending requests", 0, nil, approval.StatePending) {
		if r.Expired(d.Now) {
			continue
		}
		if r.RequesterID == user {
			d.Mine = append(d.Mine, r)
		}
		if approver && (r.RequesterID != user || s.cfg.AllowSelfApproval) && !slices.Contains(r.Approvers(), user) {
			d.Waiting = append(d.Waiting, r)
		}
	}
	for _, r := range list("running requests", 0, nil, approval.StateApproved, approval.StateExecuting, approval.StateRunning) {
		d.Running = append(d.Running, r)
		if r.RequesterID == user {
			d.Mine = append(d.Mine, r)
		}
	}
	results := newestDone(list("results", homeScan, nil, approval.StateSucceeded, approval.StateFailed))
	d.Results = results[:min(homeResults, len(results))]
	// Every isolation and release, however old: an isolation still in
	// force must not drop off behind newer results of other actions.
	d.Isolated = stillIsolated(newestDone(list("isolated machines", 0, []actions.Name{actions.Isolate, actions.Deisolate},
		approval.StateSucceeded, approval.StateFailed)))
	if s.deps.IOCs != nil {
		txt, err := s.deps.IOCs.StatusText(ctx)
		if err != nil {
			s.log.ErrorContext(ctx, "home tab: reading the IOC sync status failed", "error", err)
			d.Problems = append(d.Problems, "the IOC sync status")
		}
		d.IOCs = txt
	}
	return d
}

// newestDone sorts finished requests newest outcome first.
func newestDone(done []*approval.Request) []*approval.Request {
	sorted := slices.Clone(done)
	sort.SliceStable(sorted, func(i, j int) bool {
		if !sorted[i].UpdatedAt.Equal(sorted[j].UpdatedAt) {
			return sorted[i].UpdatedAt.After(sorted[j].UpdatedAt)
		}
		return sorted[i].CreatedAt.After(sorted[j].CreatedAt) // a release is requested after its isolation
	})
	return sorted
}

// isolation is a request that isolated machines defenderbot has not
// released since.
type isolation struct {
	Request  *approval.Request
	Machines []approval.Target // still isolated by it: one, or those of a bulk request
}

// stillIsolated returns the isolations defenderbot ran that no later
// release by defenderbot undid, machine by machine: a bulk request counts
// on each machine where it succeeded (request_targets), whatever the
// others did, and a bulk release releases each machine where it succeeded.
// done is newest first.
func stillIsolated(done []*approval.Request) []isolation {
	seen := map[string]bool{}
	var out []isolation
	for _, r := range done {
		if r.Action != actions.Isolate && r.Action != actions.Deisolate {
			continue
		}
		var left []approval.Target
		for _, t := range undoMachines(r) {
			if seen[t.MachineID] {
				continue
			}
			seen[t.MachineID] = true
			if r.Action == actions.Isolate {
				left = append(left, t)
			}
		}
		if len(left) > 0 {
			out = append(out, isolation{Request: r, Machines: left})
		}
	}
	return out
}

// isolatedText describes one isolation still in force on the Home tab.
func isolatedText(iso isolation) string {
	r := iso.Request
	if !r.Bulk() {
		return fmt.Sprintf("%s `%s`\nisolated %s (request `%s`)",
			escapeMrkdwn(orDash(r.MachineName)), escapeMrkdwn(r.Args.MachineID), fmtTime(r.UpdatedAt), escapeMrkdwn(shortID(r.ID)))
	}
	var b strings.Builder
	for i, t := range iso.Machines {
		if i == homeMaxLines {
			fmt.Fprintf(&b, "…and %d more\n", len(iso.Machines)-homeMaxLines)
			break
		}
		fmt.Fprintf(&b, "%s `%s`\n", escapeMrkdwn(truncate(orDash(t.MachineName), 80)), escapeMrkdwn(t.MachineID))
	}
	fmt.Fprintf(&b, "isolated %s by request `%s` on %s; Release asks to release every machine where it succeeded",
		fmtTime(r.UpdatedAt), escapeMrkdwn(shortID(r.ID)), plural(len(r.Targets), "machine"))
	return b.String()
}

// homeLine is a one-line summary of a request for the Home tab's lists.
func homeLine(r *approval.Request) string {
	line := fmt.Sprintf("• %s%s · `%s` · %s", escapeMrkdwn(r.Action.Title()), onMachine(r), escapeMrkdwn(shortID(r.ID)), escapeMrkdwn(string(r.State)))
	if r.MachineActionStatus != "" && !r.State.Final() {
		line += " (Defender: " + escapeMrkdwn(r.MachineActionStatus) + ")"
	}
	if r.State == approval.StateFailed && r.Error != "" {
		line += ": " + escapeMrkdwn(truncate(r.Error, 120))
	}
	return line
}

func shortID(id string) string { return id[:min(8, len(id))] }

// homeList renders a titled list of requests, at most homeMaxLines lines.
func homeList(title, empty string, rs []*approval.Request, line func(*approval.Request) string) slack.Block {
	var b strings.Builder
	fmt.Fprintf(&b, "*%s*", title)
	if len(rs) == 0 {
		b.WriteString("\n_" + empty + "_")
	}
	for i, r := range rs {
		if i == homeMaxLines {
			fmt.Fprintf(&b, "\n…and %d more", len(rs)-homeMaxLines)
			break
		}
		b.WriteString("\n" + line(r))
	}
	return section(b.String())
}

// renderHome renders the Home tab.
func renderHome(d homeData) []slack.Block {
	blocks := []slack.Block{
		slack.NewHeaderBlock(plain("Microsoft Defender approvals")),
		contextBlock(fmt.Sprintf("As of %s. Reopen the tab to refresh.", fmtTime(d.Now))),
	}
	if len(d.Problems) > 0 {
		blocks = append(blocks, section(":warning: Could not read "+escapeMrkdwn(strings.Join(d.Problems, ", "))+"; the rest is shown."))
	}

	blocks = append(blocks, slack.NewDividerBlock(), section(fmt.Sprintf("*Waiting for your approval* (%d)", len(d.Waiting))))
	if len(d.Waiting) == 0 {
		blocks = append(blocks, contextBlock("Nothing waits for you."))
	}
	for i, r := range d.Waiting {
		if i == homeMaxWaiting {
			blocks = append(blocks, contextBlock(fmt.Sprintf("…and %d more in the approval channel.", len(d.Waiting)-homeMaxWaiting)))
			break
		}
		text := fmt.Sprintf("*%s*%s\nRequested by %s · `%s` · %d of %d approvals · expires %s",
			escapeMrkdwn(r.Action.Title()), onMachine(r), userRef(r.RequesterID), escapeMrkdwn(shortID(r.ID)),
			len(r.Approvals), r.RequiredApprovals, fmtTime(r.ExpiresAt))
		if c := r.Args.Comment; c != "" {
			text += "\n" + quote(truncate(c, homeCommentLen))
		}
		blocks = append(blocks, section(text), decisionButtons(r, "home:"+r.ID))
	}

	blocks = append(blocks,
		slack.NewDividerBlock(),
		homeList("Your open requests", "You have no open request.", d.Mine, homeLine),
		homeList("Running now", "No action is running.", d.Running, homeLine),
		homeList("Last results", "No result yet.", d.Results, func(r *approval.Request) string {
			return homeLine(r) + " · " + fmtTime(r.UpdatedAt)
		}),
		slack.NewDividerBlock(),
		section(fmt.Sprintf("*Isolated by defenderbot* (%d)", isolatedMachines(d.Isolated))),
	)
	if len(d.Isolated) == 0 {
		blocks = append(blocks, contextBlock("No machine that defenderbot isolated is still isolated (as far as defenderbot released it)."))
	}
	for i, iso := range d.Isolated {
		if i == homeMaxIsolated {
			blocks = append(blocks, contextBlock(fmt.Sprintf("…and %d more.", len(d.Isolated)-homeMaxIsolated)))
			break
		}
		// The thread's Release button: the same undo form and linked request.
		release := slack.NewButtonBlockElement(actionUndo, iso.Request.ID, plain("Release"))
		blocks = append(blocks, slack.NewSectionBlock(mrkdwn(isolatedText(iso)), nil, slack.NewAccessory(release)))
	}

	blocks = append(blocks, slack.NewDividerBlock())
	if d.IOCs == "" {
		blocks = append(blocks, section("*IOC sync*\n_Not configured._"))
	} else {
		blocks = append(blocks, section("*IOC sync*\n"+escapeMrkdwn(d.IOCs)))
	}
	return fitBlocks(blocks, maxViewBlocks)
}

// isolatedMachines counts the machines of isolations.
func isolatedMachines(isos []isolation) int {
	n := 0
	for _, iso := range isos {
		n += len(iso.Machines)
	}
	return n
}

// refreshHome publishes the clicker's Home tab again after a click on it.
func (s *Service) refreshHome(ctx context.Context, inv invocation) {
	if inv.FromHome {
		s.publishHome(ctx, inv.UserID)
	}
}
