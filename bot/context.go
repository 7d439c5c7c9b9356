package bot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/defenderbot/defenderbot/approval"
	"github.com/defenderbot/defenderbot/defender"
	"github.com/defenderbot/defenderbot/machineinfo"
)

// This file puts what Defender knows about the machine on the approval
// card, so that the approver sees what is at stake: the device, its open
// alerts, whether it is already isolated or restricted and what is running
// on it. The look-ups never block or fail the request.

// startContext launches the machine look-ups of a request on a machine
// (nil when the bot has no MachineInfo or the request targets no machine).
func (s *Service) startContext(ctx context.Context, r *approval.Request, m *defender.Machine) *machineinfo.Lookup {
	if s.deps.MachineInfo == nil || !r.Action.TargetsMachine() || r.Args.MachineID == "" {
		return nil
	}
	return machineinfo.Start(context.WithoutCancel(ctx), s.deps.MachineInfo, r.Args.MachineID,
		machineinfo.Options{Timeout: s.cfg.LookupTimeout, Actions: s.cfg.LatestActions, Machine: m, Now: s.now, After: s.after})
}

// cardInfo returns the context request id's card shows: this replica's
// copy, or the one the replica that made the card saved (nil if none).
// Without it, a replica updating the card (an approval clicked there) would
// drop the context from it.
func (s *Service) cardInfo(ctx context.Context, id string) *machineinfo.Info {
	s.mu.Lock()
	info, ok := s.cards[id]
	s.mu.Unlock()
	if ok {
		return &info
	}
	return s.storedCardInfo(ctx, id)
}

// storedCardInfo returns the context request id's card shows as the store
// has it (nil if none).
func (s *Service) storedCardInfo(ctx context.Context, id string) *machineinfo.Info {
	data, err := s.deps.Store.CardContext(ctx, id)
	if err != nil {
		s.log.WarnContext(ctx, "reading the card's context failed", "request", id, "error", err)
		return nil
	}
	if data == "" {
		return nil
	}
	var w wireInfo
	if err := json.Unmarshal([]byte(data), &w); err != nil {
		s.log.WarnContext(ctx, "the card's stored context is unreadable", "request", id, "error", err)
		return nil
	}
	got := w.info()
	return &got
}

// setCardInfo keeps info as request id's card context, here and in the
// store for the other replicas.
func (s *Service) setCardInfo(ctx context.Context, id string, info machineinfo.Info) {
	if data, err := json.Marshal(wireOf(info)); err != nil {
		s.log.WarnContext(ctx, "encoding the card's context failed", "request", id, "error", err)
	} else if err := s.deps.Store.SaveCardContext(ctx, id, string(data)); err != nil {
		s.log.WarnContext(ctx, "saving the card's context failed", "request", id, "error", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cards[id] = info
	// A request decided on another replica is never final here: forget
	// context older than any request can stay pending.
	for k, v := range s.cards {
		if info.At.Sub(v.At) > 2*s.cfg.TTL {
			delete(s.cards, k)
		}
	}
}

func (s *Service) dropCardInfo(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.cards, id)
	for k := range s.cards {
		if strings.HasPrefix(k, id+"/") { // a bulk request's machines
			delete(s.cards, k)
		}
	}
}

// completeContext waits for the look-ups still running when the card was
// posted and updates the card with their results.
func (s *Service) completeContext(ctx context.Context, r *approval.Request, l *machineinfo.Lookup) {
	select {
	case <-l.Done():
	case <-ctx.Done():
		return
	}
	s.setCardInfo(ctx, r.ID, l.Snapshot())
	cur, err := s.core.Get(ctx, r.ID)
	if err != nil {
		s.log.WarnContext(ctx, "re-reading the request for its context failed", "request", r.ID, "error", err)
		return
	}
	if cur.ApprovalTS == "" {
		return
	}
	s.chatUpdate(ctx, cur)
	// A decision made meanwhile must not be hidden by this older render.
	if now, err := s.core.Get(ctx, r.ID); err == nil && (now.State != cur.State || len(now.Approvals) != len(cur.Approvals)) {
		s.chatUpdate(ctx, now)
	}
}

// renderContext renders info for the card: machine facts, open alerts and
// containment. Parts still loading say so; failed parts say "unavailable".
// It lists up to cardAlerts open alerts.
func renderContext(info machineinfo.Info, staleAfter time.Duration, cardAlerts int) []slack.Block {
	var blocks []slack.Block
	m := info.Machine
	switch {
	case !m.Done:
		blocks = append(blocks, contextBlock(":hourglass_flowing_sand: Machine details: loading…"))
	case m.Err != nil || m.Value == nil:
		blocks = append(blocks, contextBlock(":grey_question: Machine details: unavailable"+reason(m.Err)))
	default:
		blocks = append(blocks, slack.NewSectionBlock(nil, machineFields(m.Value, info.At, info.Stale(staleAfter)), nil))
	}

	a := info.Alerts
	switch {
	case !a.Done:
		blocks = append(blocks, contextBlock(":hourglass_flowing_sand: Open alerts: loading…"))
	case a.Err != nil:
		blocks = append(blocks, contextBlock(":grey_question: Open alerts: unavailable"+reason(a.Err)))
	default:
		blocks = append(blocks, section(alertsText(a.Value, cardAlerts)))
	}

	ac := info.Actions
	switch {
	case !ac.Done:
		blocks = append(blocks, contextBlock(":hourglass_flowing_sand: Isolation, restriction and running actions: loading…"))
	case ac.Err != nil:
		blocks = append(blocks, contextBlock(":grey_question: Isolation, restriction and running actions: unavailable"+reason(ac.Err)))
	default:
		blocks = append(blocks, contextBlock(containmentText(info)))
	}
	return blocks
}

// reason words a failed look-up briefly (Defender's code, not its whole message).
func reason(err error) string {
	var stored storedReason
	switch {
	case err == nil:
		return ""
	case errors.As(err, &stored):
		return string(stored)
	case defender.IsNotFound(err):
		return " (Defender: not found)"
	case err == machineinfo.ErrTimeout:
		return " (Defender did not answer in time)"
	case errors.Is(err, errLookupAbandoned):
		return " (" + errLookupAbandoned.Error() + ")"
	}
	return " (Defender look-up failed)"
}

func machineFields(m *defender.Machine, now time.Time, stale bool) []*slack.TextBlockObject {
	os := strings.TrimSpace(m.OSPlatform + " " + m.Version)
	if m.OSBuild != nil {
		os += fmt.Sprintf(" (build %d)", *m.OSBuild)
	}
	seen := "never"
	if !m.LastSeen.IsZero() {
		seen = fmtTime(m.LastSeen) + " (" + ago(now, m.LastSeen) + ")"
		if stale {
			seen = ":warning: *stale* " + seen
		}
	}
	group := "-"
	if m.RBACGroupName != nil && *m.RBACGroupName != "" {
		group = *m.RBACGroupName
	}
	tags := "-"
	if len(m.MachineTags) > 0 {
		tags = strings.Join(m.MachineTags, ", ")
	}
	return []*slack.TextBlockObject{
		mrkdwn("*Computer*\n" + escapeMrkdwn(orDash(m.ComputerDNSName))),
		mrkdwn("*OS*\n" + escapeMrkdwn(orDash(os))),
		mrkdwn("*Health*\n" + escapeMrkdwn(orDash(m.HealthStatus))),
		mrkdwn("*Risk / exposure*\n" + escapeMrkdwn(orDash(m.RiskScore)+" / "+orDash(m.ExposureLevel))),
		mrkdwn("*Last seen*\n" + seen),
		mrkdwn("*Last IP*\n" + escapeMrkdwn(orDash(m.LastIPAddress))),
		mrkdwn("*Device group*\n" + escapeMrkdwn(group)),
		mrkdwn("*Tags*\n" + escapeMrkdwn(tags)),
	}
}

// alertsText lists up to limit alerts and counts the others.
func alertsText(alerts []defender.Alert, limit int) string {
	if len(alerts) == 0 {
		return "*Open alerts*: none"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "*Open alerts*: %d", len(alerts))
	for i, a := range alerts {
		if i == limit {
			fmt.Fprintf(&b, "\n• and %d more", len(alerts)-limit)
			break
		}
		fmt.Fprintf(&b, "\n• *%s* %s", escapeMrkdwn(orDash(a.Severity)), escapeMrkdwn(truncate(a.Title, 150)))
	}
	return b.String()
}

func containmentText(info machineinfo.Info) string {
	parts := []string{
		containmentLine("Isolated", info.Isolation(), info.At),
		containmentLine("Code execution restricted", info.Restriction(), info.At),
	}
	if running := info.Running(); len(running) > 0 {
		names := make([]string, len(running))
		for i, a := range running {
			names[i] = fmt.Sprintf("%s (%s%s)", a.Type, a.Status, byWhom(a))
		}
		parts = append(parts, "Running: "+escapeMrkdwn(strings.Join(names, ", ")))
	} else {
		parts = append(parts, "Running: nothing")
	}
	return strings.Join(parts, " · ")
}

func containmentLine(what string, c machineinfo.Containment, now time.Time) string {
	if c.Last == nil || !c.Active {
		return what + ": no"
	}
	return fmt.Sprintf("%s: *yes*, since %s (%s)%s", what, fmtTime(c.Last.LastUpdateDateTimeUTC), ago(now, c.Last.LastUpdateDateTimeUTC),
		escapeMrkdwn(byWhom(*c.Last)))
}

// byWhom says who asked for a machine action: defenderbot (its comments
// carry the request tag) or the requestor Defender recorded.
func byWhom(a defender.MachineAction) string {
	if i := strings.Index(a.RequestorComment, "(defenderbot request "); i >= 0 {
		id, _, _ := strings.Cut(a.RequestorComment[i+len("(defenderbot request "):], ",")
		return ", by defenderbot request " + strings.TrimSuffix(id, ")")
	}
	if a.Requestor != "" {
		return ", by " + a.Requestor
	}
	return ""
}

// ago renders how long before now t was, coarsely ("3 hours ago").
func ago(now, t time.Time) string {
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return plural(int(d/time.Minute), "minute") + " ago"
	case d < 48*time.Hour:
		return plural(int(d/time.Hour), "hour") + " ago"
	}
	return plural(int(d/(24*time.Hour)), "day") + " ago"
}

// storedReason is a failed look-up read back from the store: its reason as
// the card words it.
type storedReason string

func (r storedReason) Error() string { return "look-up failed" + string(r) }

// wirePart and wireInfo are machineinfo.Info as the store keeps it: a
// failed look-up keeps the reason the card shows.
type wirePart[T any] struct {
	Value  T      `json:"value"`
	Done   bool   `json:"done"`
	Failed string `json:"failed,omitempty"` // reason(err); " (…)" or "" for none
	Err    bool   `json:"err,omitempty"`
}

func wirePartOf[T any](p machineinfo.Part[T]) wirePart[T] {
	return wirePart[T]{Value: p.Value, Done: p.Done, Err: p.Err != nil, Failed: reason(p.Err)}
}

func (w wirePart[T]) part() machineinfo.Part[T] {
	p := machineinfo.Part[T]{Value: w.Value, Done: w.Done}
	if w.Err {
		p.Err = storedReason(w.Failed)
	}
	return p
}

type wireInfo struct {
	MachineID string                             `json:"machine_id"`
	Machine   wirePart[*defender.Machine]        `json:"machine"`
	Alerts    wirePart[[]defender.Alert]         `json:"alerts"`
	Actions   wirePart[[]defender.MachineAction] `json:"actions"`
	At        time.Time                          `json:"at"`
}

func wireOf(i machineinfo.Info) wireInfo {
	return wireInfo{MachineID: i.MachineID, Machine: wirePartOf(i.Machine), Alerts: wirePartOf(i.Alerts),
		Actions: wirePartOf(i.Actions), At: i.At}
}

func (w wireInfo) info() machineinfo.Info {
	return machineinfo.Info{MachineID: w.MachineID, Machine: w.Machine.part(), Alerts: w.Alerts.part(),
		Actions: w.Actions.part(), At: w.At}
}
