package bot

// This file is the Slack edge of bulk requests ("/defender isolate
// ws-1,ws-2,ws-3 outbreak"): the machine list is resolved in full before
// anything is created, the approval card lists every machine with a
// one-line summary of its context, and once approved the thread keeps one
// progress table, updated in place, while the approval core runs and
// follows one Defender action per machine.

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/slack-go/slack"

	"github.com/defenderbot/defenderbot/actions"
	"github.com/defenderbot/defenderbot/approval"
	"github.com/defenderbot/defenderbot/defender"
	"github.com/defenderbot/defenderbot/machineinfo"
)

// Defaults of bulk requests.
const (
	// resolveParallel is how many machine look-ups run at once.
	resolveParallel = 4
	// maxBulkLines caps the lines of one section (Block Kit: 3,000 characters).
	maxBulkSectionText = 2900
)

// tooManyMachines refuses a command naming more machines than
// approval.max_bulk.
func (s *Service) tooManyMachines(c Command) string {
	e := actions.CheckMachines(c.Action, c.Machines, s.cfg.MaxBulk)
	if e == nil || e.Fault != actions.FaultTooMany {
		return "" // the parser reported the other faults
	}
	return fmt.Sprintf("%d machines listed: at most %d per request (approval.max_bulk). Split the list into several requests.",
		e.Count, e.Max)
}

// resolveMachines resolves every machine of a bulk command. It returns the
// machines in the order given, or nil and one line per machine that does
// not resolve to exactly one machine (or resolves to one listed already).
func (s *Service) resolveMachines(ctx context.Context, queries []string) ([]defender.Machine, []string) {
	type result struct {
		m       *defender.Machine
		problem string
	}
	results := make([]result, len(queries))
	sem := make(chan struct{}, resolveParallel)
	var wg sync.WaitGroup
	for i, q := range queries {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			m, problem := s.resolveOne(ctx, q)
			results[i] = result{m, problem}
		})
	}
	wg.Wait()
	var (
		out      []defender.Machine
		problems []string
		byID     = map[string]string{}
	)
	for i, r := range results {
		switch {
		case r.problem != "":
			problems = append(problems, r.problem)
		case byID[r.m.ID] != "":
			problems = append(problems, fmt.Sprintf("`%s` and `%s` are the same machine (`%s`): list it once",
				escapeMrkdwn(byID[r.m.ID]), escapeMrkdwn(queries[i]), escapeMrkdwn(r.m.ID)))
		default:
			byID[r.m.ID] = queries[i]
			out = append(out, *r.m)
		}
	}
	if len(problems) > 0 {
		return nil, problems
	}
	return out, nil
}

// resolveOne is resolveMachine's look-up, worded as one line of a list.
func (s *Service) resolveOne(ctx context.Context, q string) (*defender.Machine, string) {
	name := "`" + escapeMrkdwn(q) + "`"
	if machineIDRe.MatchString(q) {
		m, err := s.deps.Defender.GetMachine(ctx, q)
		switch {
		case err != nil && defender.IsNotFound(err):
			return nil, name + ": no machine with this ID in Defender"
		case err != nil:
			return nil, name + ": could not be looked up (" + escapeMrkdwn(explainDefenderError(err, "get-action")) + ")"
		}
		return m, ""
	}
	ms, err := s.deps.Defender.FindMachinesByName(ctx, q)
	switch {
	case err != nil:
		return nil, name + ": could not be looked up (" + escapeMrkdwn(explainDefenderError(err, "get-action")) + ")"
	case len(ms) == 0:
		return nil, name + ": no machine with this computer DNS name in Defender"
	case len(ms) > 1:
		ids := make([]string, 0, 3)
		for i, m := range ms {
			if i == 3 {
				ids = append(ids, "…")
				break
			}
			ids = append(ids, "`"+escapeMrkdwn(m.ID)+"`")
		}
		return nil, fmt.Sprintf("%s: %d machines have this name (use the machine ID: %s)", name, len(ms), strings.Join(ids, ", "))
	}
	return &ms[0], ""
}

// submitBulk resolves a bulk command's machines and hands the request to
// the approval core, or refuses it whole.
func (s *Service) submitBulk(ctx context.Context, inv invocation, c Command, sub approval.Submission) {
	if msg := s.tooManyMachines(c); msg != "" {
		s.reply(ctx, inv, ":warning: "+escapeMrkdwn(msg))
		return
	}
	ms, problems := s.resolveMachines(ctx, c.Machines)
	if len(problems) > 0 {
		s.reply(ctx, inv, bulkRefusal(problems))
		return
	}
	sub.Args.MachineID = ""
	sub.Targets = make([]approval.Target, len(ms))
	for i, m := range ms {
		sub.Targets[i] = approval.Target{MachineID: m.ID, MachineName: m.ComputerDNSName}
	}
	switch s.core.RouteOf(c.Action) {
	case approval.RouteApproval:
		s.createBulkRequest(ctx, inv, sub, ms)
	default:
		s.runUnapproved(ctx, inv, sub)
	}
}

// bulkRefusal says why nothing was requested: every machine that did not resolve.
func bulkRefusal(problems []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, ":warning: Nothing was requested: %s of the list could not be used.\n", plural(len(problems), "machine"))
	for i, p := range problems {
		if i == 20 {
			fmt.Fprintf(&b, "• …and %d more\n", len(problems)-20)
			break
		}
		b.WriteString("• " + p + "\n")
	}
	b.WriteString("Fix or remove these machines and ask again.")
	return b.String()
}

// createBulkRequest records a pending bulk request and posts its card with
// each machine's context (what arrived within ContextWait; the rest by an
// update). known are the device records already read (the others are read
// for the card). It returns the request, or nil if it was not created or
// could not be posted (then withdrawn).
func (s *Service) createBulkRequest(ctx context.Context, inv invocation, sub approval.Submission, known []defender.Machine) *approval.Request {
	r, err := s.core.Create(ctx, sub)
	if err != nil {
		s.log.ErrorContext(ctx, "creating the bulk request failed", "error", err)
		s.reply(ctx, inv, notRecordedText)
		return nil
	}
	var lookups map[string]*machineinfo.Lookup
	complete := true
	if s.deps.MachineInfo != nil {
		lookups = make(map[string]*machineinfo.Lookup, len(r.Targets))
		for _, t := range r.Targets {
			var m *defender.Machine
			for i := range known {
				if known[i].ID == t.MachineID {
					m = &known[i]
				}
			}
			lookups[t.MachineID] = machineinfo.Start(context.WithoutCancel(ctx), s.deps.MachineInfo, t.MachineID,
				machineinfo.Options{Timeout: s.cfg.LookupTimeout, Actions: s.cfg.LatestActions, Machine: m, Now: s.now, After: s.after})
		}
		deadline := s.after(s.cfg.ContextWait)
	wait:
		for _, l := range lookups {
			select {
			case <-l.Done():
			case <-deadline:
				break wait
			case <-ctx.Done():
				break wait
			}
		}
		for id, l := range lookups {
			info := l.Snapshot()
			s.setCardInfo(ctx, bulkCardKey(r.ID, id), info)
			complete = complete && info.Complete()
		}
	}
	var ch, ts string
	err = s.slackRetry(ctx, func() error {
		var err error
		ch, ts, err = s.deps.Slack.PostMessageContext(ctx, s.cfg.ApprovalChannel, s.cardMsg(ctx, r)...)
		return err
	})
	if err != nil {
		s.log.ErrorContext(ctx, "posting the approval request failed", "request", r.ID, "error", err)
		s.core.Withdraw(ctx, r.ID, "the approval message could not be posted")
		s.reply(ctx, inv, approvalPostFailed(err, s.cfg.ApprovalChannel))
		return nil
	}
	s.core.SetApprovalMessage(ctx, r.ID, ch, ts)
	if !complete {
		s.goAsync(ctx, "bulk card context", func(ctx context.Context) { s.completeBulkContext(ctx, r, lookups) })
	}
	s.reply(ctx, inv, fmt.Sprintf(":inbox_tray: Request %s is waiting for %s in <#%s>.",
		requestRef(r), plural(r.RequiredApprovals, "approval"), escapeMrkdwn(ch)))
	return r
}

// completeBulkContext waits for the look-ups still running when the card
// was posted and updates the card once with their results.
func (s *Service) completeBulkContext(ctx context.Context, r *approval.Request, lookups map[string]*machineinfo.Lookup) {
	for id, l := range lookups {
		select {
		case <-l.Done():
		case <-ctx.Done():
			return
		}
		s.setCardInfo(ctx, bulkCardKey(r.ID, id), l.Snapshot())
	}
	cur, err := s.core.Get(ctx, r.ID)
	if err != nil || cur.ApprovalTS == "" {
		return
	}
	s.chatUpdate(ctx, cur)
	// A decision made meanwhile must not be hidden by this older render.
	if now, err := s.core.Get(ctx, r.ID); err == nil && (now.State != cur.State || len(now.Approvals) != len(cur.Approvals)) {
		s.chatUpdate(ctx, now)
	}
}

// bulkCardKey keys one machine's context of a bulk card in Service.cards.
func bulkCardKey(requestID, machineID string) string { return requestID + "/" + machineID }

// bulkCardInfo returns the context r's card shows for each machine (see
// cardInfo: this replica's copy, or the one saved by the replica that
// looked it up).
func (s *Service) bulkCardInfo(ctx context.Context, r *approval.Request) map[string]machineinfo.Info {
	out := map[string]machineinfo.Info{}
	for _, t := range r.Targets {
		if info := s.cardInfo(ctx, bulkCardKey(r.ID, t.MachineID)); info != nil {
			out[t.MachineID] = *info
		}
	}
	return out
}

// renderBulkApproval renders a bulk request's approval message: the
// request's facts, one line per machine with its context, the comment, and
// the buttons or the outcome.
func renderBulkApproval(r *approval.Request, infos map[string]machineinfo.Info, staleAfter time.Duration) []slack.Block {
	pending := r.State == approval.StatePending
	header, facts := fmt.Sprintf("%s: %s", r.Action.Title(), plural(len(r.Targets), "machine")), fmt.Sprintf("Request `%s`", escapeMrkdwn(r.ID))
	if pending {
		header = "Approval needed: " + header
		facts += fmt.Sprintf(" · needs %d approval(s) · expires %s · one Defender action per machine", r.RequiredApprovals, fmtTime(r.ExpiresAt))
	}
	blocks := []slack.Block{
		slack.NewHeaderBlock(plain(header)),
		slack.NewSectionBlock(nil, requestFields(r), nil),
	}
	lines := make([]string, len(r.Targets))
	for i, t := range r.Targets {
		var info *machineinfo.Info
		if in, ok := infos[t.MachineID]; ok {
			info = &in
		}
		lines[i] = bulkMachineLine(t, info, staleAfter)
	}
	for _, text := range packLines("*Machines*", lines) {
		blocks = append(blocks, section(text))
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

// packLines joins lines under a title into as few section texts as fit
// Block Kit's 3,000 characters each.
func packLines(title string, lines []string) []string {
	var (
		out []string
		b   strings.Builder
	)
	b.WriteString(title)
	for _, l := range lines {
		if b.Len()+1+len(l) > maxBulkSectionText {
			out = append(out, b.String())
			b.Reset()
		} else {
			b.WriteString("\n")
		}
		b.WriteString(l)
	}
	return append(out, b.String())
}

// bulkMachineLine is one machine of a bulk card: its name and ID, and a
// one-line summary of its context (nil: no context look-up).
func bulkMachineLine(t approval.Target, info *machineinfo.Info, staleAfter time.Duration) string {
	line := fmt.Sprintf("• *%s* `%s`", escapeMrkdwn(truncate(orDash(t.MachineName), 80)), escapeMrkdwn(t.MachineID))
	if info == nil {
		return line
	}
	var parts []string
	switch m := info.Machine; {
	case !m.Done:
		parts = append(parts, "details loading…")
	case m.Err != nil || m.Value == nil:
		parts = append(parts, "details unavailable")
	default:
		v := m.Value
		os := strings.TrimSpace(v.OSPlatform + " " + v.Version)
		parts = append(parts, escapeMrkdwn(truncate(orDash(os), 40)), "health "+escapeMrkdwn(truncate(orDash(v.HealthStatus), 20)),
			"risk "+escapeMrkdwn(truncate(orDash(v.RiskScore), 20)), "exposure "+escapeMrkdwn(truncate(orDash(v.ExposureLevel), 20)))
		seen := "never seen"
		if !v.LastSeen.IsZero() {
			seen = "seen " + ago(info.At, v.LastSeen)
			if info.Stale(staleAfter) {
				seen = ":warning: *stale*, " + seen
			}
		}
		parts = append(parts, seen)
	}
	switch a := info.Alerts; {
	case !a.Done:
		parts = append(parts, "alerts loading…")
	case a.Err != nil:
		parts = append(parts, "alerts unavailable")
	case len(a.Value) == 0:
		parts = append(parts, "no open alert")
	default:
		parts = append(parts, fmt.Sprintf("*%s* (%s)", plural(len(a.Value), "open alert"), escapeMrkdwn(truncate(orDash(a.Value[0].Severity), 20))))
	}
	switch ac := info.Actions; {
	case !ac.Done:
		parts = append(parts, "actions loading…")
	case ac.Err != nil:
		parts = append(parts, "actions unavailable")
	default:
		if info.Isolation().Active {
			parts = append(parts, "*isolated*")
		}
		if info.Restriction().Active {
			parts = append(parts, "*restricted*")
		}
		if n := len(info.Running()); n > 0 {
			parts = append(parts, fmt.Sprintf("%s running", plural(n, "action")))
		}
	}
	return line + " · " + strings.Join(parts, " · ")
}

// bulkOutcome words a bulk request's outcome line on its approval message.
func bulkOutcome(r *approval.Request) string {
	succeeded, failed := countTargets(r)
	switch r.State {
	case approval.StateApproved, approval.StateExecuting:
		return fmt.Sprintf(":hourglass_flowing_sand: *Approved* by %s: calling Defender for %s (progress in the thread)…", approverList(r), plural(len(r.Targets), "machine"))
	case approval.StateRunning:
		return fmt.Sprintf(":arrows_counterclockwise: *Approved* by %s: running in Defender on %s (progress in the thread).", approverList(r), plural(len(r.Targets), "machine"))
	case approval.StateSucceeded:
		return fmt.Sprintf(":white_check_mark: *Approved* by %s: *succeeded* on all %s.", approverList(r), plural(len(r.Targets), "machine"))
	case approval.StateFailed:
		return fmt.Sprintf(":warning: *Approved* by %s: *failed* on %d of %d machines (%d succeeded); see the thread.", approverList(r), failed, len(r.Targets), succeeded)
	}
	return ""
}

func countTargets(r *approval.Request) (succeeded, failed int) {
	for _, t := range r.Targets {
		switch t.State {
		case approval.TargetSucceeded:
			succeeded++
		case approval.TargetFailed:
			failed++
		}
	}
	return succeeded, failed
}

// targetStatus is a machine's line of the progress table:
// Pending / InProgress / Succeeded / Failed, as Defender words them.
func targetStatus(t approval.Target) string {
	action := ""
	if t.MachineActionID != "" {
		action = fmt.Sprintf(" · action `%s`", escapeMrkdwn(t.MachineActionID))
	}
	switch t.State {
	case approval.TargetQueued:
		return ":white_circle: Pending (not sent yet)"
	case approval.TargetCalling:
		return ":hourglass_flowing_sand: Pending (sending to Defender)"
	case approval.TargetRunning:
		st := orDash(t.MachineActionStatus)
		return ":arrows_counterclockwise: " + escapeMrkdwn(st) + action
	case approval.TargetSucceeded:
		return ":white_check_mark: Succeeded" + action
	case approval.TargetFailed:
		msg := ":warning: Failed" + action
		if t.Error != "" {
			msg += ": " + escapeMrkdwn(truncate(t.Error, 200))
		}
		return msg
	}
	return escapeMrkdwn(string(t.State))
}

// renderProgress is the bulk request's progress table, one line per
// machine; the thread keeps one such message, updated in place.
func renderProgress(r *approval.Request) (string, []slack.Block) {
	succeeded, failed := countTargets(r)
	done := succeeded + failed
	summary := fmt.Sprintf("*Progress* of request `%s`: %d of %d machines done (%d succeeded, %d failed)",
		escapeMrkdwn(r.ID), done, len(r.Targets), succeeded, failed)
	lines := make([]string, len(r.Targets))
	for i, t := range r.Targets {
		lines[i] = fmt.Sprintf("• *%s* `%s` → %s", escapeMrkdwn(truncate(orDash(t.MachineName), 80)), escapeMrkdwn(t.MachineID), targetStatus(t))
	}
	var blocks []slack.Block
	for _, text := range packLines(summary, lines) {
		blocks = append(blocks, section(text))
	}
	fallback := fmt.Sprintf("Progress of request %s: %d of %d machines done (%d succeeded, %d failed)", r.ID, done, len(r.Targets), succeeded, failed)
	return fallback, fitMessage(blocks)
}

// showProgress posts the progress table in the approval message's thread,
// or updates it in place once posted (its ts is kept with the request, so
// that a replica taking over updates the same message), at most once per
// Config.ProgressEvery (progress.go).
func (s *Service) showProgress(ctx context.Context, r *approval.Request) {
	if r.ApprovalChannel == "" || r.ApprovalTS == "" {
		return
	}
	if r.ProgressTS == "" {
		if cur, err := s.core.Get(ctx, r.ID); err == nil {
			r.ProgressTS = cur.ProgressTS
		}
	}
	if r.ProgressTS != "" {
		s.updateProgress(ctx, r)
		return
	}
	text, blocks := renderProgress(r)
	opts := []slack.MsgOption{slack.MsgOptionText(text, false), slack.MsgOptionBlocks(blocks...)}
	var ts string
	err := s.slackRetry(ctx, func() error {
		var err error
		_, ts, err = s.deps.Slack.PostMessageContext(ctx, r.ApprovalChannel, append(opts, slack.MsgOptionTS(r.ApprovalTS))...)
		return err
	})
	if err != nil {
		s.log.ErrorContext(ctx, "posting the progress table failed", "request", r.ID, "error", err)
		return
	}
	r.ProgressTS = ts
	s.core.SetProgressMessage(ctx, r.ID, ts)
	s.progressPosted(r)
	how := "was approved"
	if len(r.Approvals) == 0 {
		how = "needs no approval"
	}
	s.dm(ctx, r.RequesterID, fmt.Sprintf(":arrows_counterclockwise: Your request %s %s; defenderbot is calling Defender for each machine (progress in the approval thread). I will tell you the outcome per machine.",
		requestRef(r), how))
}

// bulkFinishedText tells the requester the outcome of each machine.
func bulkFinishedText(r *approval.Request) string {
	succeeded, failed := countTargets(r)
	var b strings.Builder
	if r.State == approval.StateSucceeded {
		fmt.Fprintf(&b, ":white_check_mark: Your request %s succeeded on all %s:", requestRef(r), plural(len(r.Targets), "machine"))
	} else {
		fmt.Fprintf(&b, ":warning: Your request %s failed on %d of %d machines (%d succeeded):", requestRef(r), failed, len(r.Targets), succeeded)
	}
	for _, t := range r.Targets {
		fmt.Fprintf(&b, "\n• %s `%s`: %s", escapeMrkdwn(orDash(t.MachineName)), escapeMrkdwn(t.MachineID), targetStatus(t))
	}
	return b.String()
}
