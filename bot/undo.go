package bot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/slack-go/slack"

	"github.com/defenderbot/defenderbot/actions"
	"github.com/defenderbot/defenderbot/approval"
)

// This file is the undo offered in the thread of a succeeded isolation or
// restriction: a button opens a form for the comment, and submitting it
// creates the inverse request for the same machine, which goes through
// approval like any other (unless its action is exempt). For a bulk
// request the undo is one inverse request for the machines where it
// succeeded (even if others failed). The audit links the undo to the
// original ("undo" on the new request, "undo_requested" on the original)
// and the original message shows who undid it.

// IDs of the undo button and form.
const (
	actionUndo   = "undo"
	callbackUndo = "defenderbot_undo"
	blockUndo    = "undo"
)

// undoable reports whether a succeeded request of action n offers an undo
// (isolate and restrict: the containments an analyst lifts again).
func undoable(n actions.Name) bool {
	return n == actions.Isolate || n == actions.RestrictCodeExecution
}

// undoLabel is the undo button's label for the original action n.
func undoLabel(n actions.Name) string {
	if n == actions.RestrictCodeExecution {
		return "Remove restriction"
	}
	return "Release"
}

// undoMachines are the machines an undo of r acts on: r's machine once r
// succeeded; for a bulk request, each machine where it succeeded once the
// request is over.
func undoMachines(r *approval.Request) []approval.Target {
	if !r.Bulk() {
		if r.State != approval.StateSucceeded || r.Args.MachineID == "" {
			return nil
		}
		return []approval.Target{{MachineID: r.Args.MachineID, MachineName: r.MachineName}}
	}
	if !r.State.Final() {
		return nil
	}
	var out []approval.Target
	for _, t := range r.Targets {
		if t.State == approval.TargetSucceeded {
			out = append(out, approval.Target{MachineID: t.MachineID, MachineName: t.MachineName})
		}
	}
	return out
}

// undoWhere names the machines an undo of r acts on, for people.
func undoWhere(r *approval.Request) string {
	if !r.Bulk() {
		return onMachineBare(r)
	}
	ms := undoMachines(r)
	names := make([]string, 0, maxUndoNames+1)
	for i, t := range ms {
		if i == maxUndoNames {
			names = append(names, fmt.Sprintf("and %d more", len(ms)-maxUndoNames))
			break
		}
		names = append(names, escapeMrkdwn(truncate(orDash(t.MachineName), 80)))
	}
	where := plural(len(ms), "machine")
	if len(ms) < len(r.Targets) {
		where = fmt.Sprintf("the %d of %d machines where it succeeded", len(ms), len(r.Targets))
	}
	return where + " (" + strings.Join(names, ", ") + ")"
}

// maxUndoNames is how many machine names an undo's messages list.
const maxUndoNames = 10

// offerUndo posts the undo button in the thread of a succeeded request
// (of a bulk request that succeeded on at least one machine).
func (s *Service) offerUndo(ctx context.Context, r *approval.Request) {
	if !undoable(r.Action) || r.ApprovalChannel == "" || r.ApprovalTS == "" || len(undoMachines(r)) == 0 {
		return
	}
	text, blocks := renderUndoOffer(r)
	err := s.slackRetry(ctx, func() error {
		_, _, err := s.deps.Slack.PostMessageContext(ctx, r.ApprovalChannel, slack.MsgOptionText(text, false),
			slack.MsgOptionBlocks(blocks...), slack.MsgOptionTS(r.ApprovalTS))
		return err
	})
	if err != nil {
		s.log.ErrorContext(ctx, "posting the undo button failed", "request", r.ID, "error", err)
	}
}

// renderUndoOffer is the thread message offering to undo r.
func renderUndoOffer(r *approval.Request) (string, []slack.Block) {
	where := undoWhere(r)
	if r.Bulk() {
		where += ": one request for all of them"
	}
	text := fmt.Sprintf(":leftwards_arrow_with_hook: To undo this, *%s* %s (it goes through approval).", undoLabel(r.Action), where)
	return text, fitMessage([]slack.Block{
		section(text),
		slack.NewActionBlock(blockUndo, slack.NewButtonBlockElement(actionUndo, r.ID, plain(undoLabel(r.Action)))),
	})
}

// renderUndone is the original request's message once undo, requested by
// its requester, succeeded at.
func renderUndone(orig, undo *approval.Request, at time.Time, staleAfter time.Duration) []slack.Block {
	if !orig.Bulk() && !undo.Bulk() {
		return fitMessage(append(renderApproval(orig), contextBlock(fmt.Sprintf(":leftwards_arrow_with_hook: *Undone* by %s: request `%s` (%s) succeeded %s.",
			userRef(undo.RequesterID), escapeMrkdwn(undo.ID), escapeMrkdwn(undo.Action.Title()), fmtTime(at)))))
	}
	base := renderApproval(orig)
	if orig.Bulk() {
		base = renderBulkApproval(orig, nil, staleAfter)
	}
	ok := len(undoMachines(undo))
	what, outcome, tail := "Undone", "succeeded on "+plural(ok, "machine"), ""
	if all := max(1, len(undo.Targets)); undo.Bulk() && ok < all {
		what, outcome, tail = "Partly undone", fmt.Sprintf("succeeded on %d of %d machines", ok, all), " (the others: see its thread)"
	}
	return fitMessage(append(base, contextBlock(fmt.Sprintf(":leftwards_arrow_with_hook: *%s* by %s: request `%s` (%s) %s %s%s.",
		what, userRef(undo.RequesterID), escapeMrkdwn(undo.ID), escapeMrkdwn(undo.Action.Title()), outcome, fmtTime(at), tail))))
}

func onMachineBare(r *approval.Request) string {
	return strings.TrimPrefix(onMachine(r), " on ")
}

// clickUndo opens the undo form after checking that the click still makes
// sense: the clicker may request actions and the original succeeded.
func (s *Service) clickUndo(ctx context.Context, inv invocation, originalID, trigger, buttonTS string) {
	orig, msg := s.undoTarget(ctx, inv, originalID)
	if orig == nil {
		s.postEphemeral(ctx, inv, msg)
		return
	}
	view := undoModal(orig, inv.ChannelID, buttonTS)
	if err := s.slackRetry(ctx, func() error {
		_, err := s.deps.Slack.OpenViewContext(ctx, trigger, view)
		return err
	}); err != nil {
		s.log.ErrorContext(ctx, "views.open (undo) failed", "error", err)
		s.postEphemeral(ctx, inv, fmt.Sprintf(":warning: Could not open the form; click %s again.", undoLabel(orig.Action)))
	}
}

// undoTarget re-reads the original request (the button carries only its ID)
// and checks the clicker; on refusal it returns a message for them.
func (s *Service) undoTarget(ctx context.Context, inv invocation, originalID string) (*approval.Request, string) {
	orig, err := s.core.Get(ctx, originalID)
	if err != nil {
		return nil, ":warning: Could not read that request (database error or unknown request); try again."
	}
	if !undoable(orig.Action) || len(undoMachines(orig)) == 0 {
		return nil, fmt.Sprintf(":no_entry: Request %s cannot be undone from here.", requestRef(orig))
	}
	if err := s.core.CheckRequester(ctx, inv.UserID, string(orig.Action.Inverse())); err != nil {
		var ref *approval.Refusal
		if errors.As(err, &ref) {
			return nil, ":no_entry: You are not allowed to request Defender actions. Ask an administrator to add you (or your user group) to approval.requesters."
		}
		return nil, ":warning: Could not check whether you may request Defender actions (Slack user group look-up failed). Try again in a minute."
	}
	return orig, ""
}

// undoModal asks for the comment of the inverse request.
func undoModal(orig *approval.Request, channelID, buttonTS string) slack.ModalViewRequest {
	meta, _ := json.Marshal(modalMeta{RequestID: orig.ID, ChannelID: channelID, TS: buttonTS})
	inverse := orig.Action.Inverse()
	where := undoWhere(orig)
	if orig.Bulk() {
		where = "on " + where
	}
	return fitView(slack.ModalViewRequest{
		Type:   slack.VTModal,
		Title:  plain(truncate(undoLabel(orig.Action), 24)),
		Submit: plain("Request"),
		Close:  plain("Cancel"),
		Blocks: slack.Blocks{BlockSet: []slack.Block{
			section(fmt.Sprintf("*%s* %s, undoing request `%s`. The request goes through approval like any other.",
				escapeMrkdwn(inverse.Title()), where, escapeMrkdwn(orig.ID))),
			textInput(actions.ArgComment, "Comment (recorded in Defender)", "", true),
		}},
		CallbackID:      callbackUndo,
		PrivateMetadata: string(meta),
	})
}

// submitUndo validates the form and creates the inverse request.
func (s *Service) submitUndo(ctx context.Context, cb slack.InteractionCallback, inv invocation) any {
	var meta modalMeta
	_ = json.Unmarshal([]byte(cb.View.PrivateMetadata), &meta)
	if !validID(meta.RequestID) {
		return slack.NewErrorsViewSubmissionResponse(map[string]string{actions.ArgComment: "This form is no longer valid; click the button again."})
	}
	comment := strings.TrimSpace(inputValue(cb.View.State, actions.ArgComment))
	// The registry's one comment rule (the machine is the original's).
	if _, errs := actions.Check(actions.Deisolate, actions.Args{MachineID: "m", Comment: comment}); len(errs) > 0 {
		return slack.NewErrorsViewSubmissionResponse(map[string]string{actions.ArgComment: slackArgError(actions.Spec{}, actions.Args{}, errs[0]).msg})
	}
	if meta.ChannelID != "" {
		inv.ChannelID = meta.ChannelID
	}
	s.goAsync(ctx, "undo", func(ctx context.Context) { s.undo(ctx, inv, meta.RequestID, comment, meta.TS) })
	return nil
}

// undo creates the inverse request of originalID and links the two.
func (s *Service) undo(ctx context.Context, inv invocation, originalID, comment, buttonTS string) {
	orig, msg := s.undoTarget(ctx, inv, originalID)
	if orig == nil {
		s.postEphemeral(ctx, inv, msg)
		return
	}
	inverse := orig.Action.Inverse()
	ms := undoMachines(orig)
	args, err := actions.Normalize(inverse, actions.Args{MachineID: ms[0].MachineID, Comment: comment})
	if err != nil {
		s.postEphemeral(ctx, inv, ":warning: "+escapeMrkdwn(err.Error()))
		return
	}
	// One undo per original, whatever the number of submits and replicas:
	// the inverse request's ID claims the original before it is created.
	sub := approval.Submission{ID: uuid.NewString(), Action: inverse, Args: args, MachineName: ms[0].MachineName, RequesterID: inv.UserID,
		RequesterName: inv.UserName, ChannelID: inv.ChannelID, ApprovalChannel: s.cfg.ApprovalChannel}
	if len(ms) > 1 {
		// The machines where the bulk request succeeded, as one request.
		sub.Args.MachineID, sub.MachineName, sub.Targets = "", "", ms
	}
	holder, err := s.deps.Store.ClaimUndo(ctx, orig.ID, sub.ID, s.now(), s.cfg.UndoClaimTTL)
	if err != nil {
		s.log.ErrorContext(ctx, "claiming the undo failed", "request", orig.ID, "error", err)
		s.postEphemeral(ctx, inv, ":warning: Could not record the undo (database error); nothing was requested. Try again.")
		return
	}
	if holder != sub.ID {
		s.postEphemeral(ctx, inv, fmt.Sprintf(":information_source: Undoing request %s was already requested: request `%s`.", requestRef(orig), escapeMrkdwn(holder)))
		return
	}
	created := false
	defer func() {
		if !created {
			if err := s.deps.Store.ReleaseUndo(context.WithoutCancel(ctx), orig.ID, sub.ID); err != nil {
				s.log.ErrorContext(ctx, "releasing the undo claim failed", "request", orig.ID, "error", err)
			}
		}
	}()
	link := func(r *approval.Request) {
		s.core.Audit(ctx, inv.UserID, "undo", r.ID, map[string]any{"undo_of": orig.ID, "action": string(inverse)})
		s.core.Audit(ctx, inv.UserID, "undo_requested", orig.ID, map[string]any{"undo_request": r.ID, "action": string(inverse)})
	}
	var r *approval.Request
	if s.core.RouteOf(inverse) == approval.RouteNoApproval {
		// Exempt from approval: linked before it runs, so that its success
		// finds the original.
		approved, err := s.core.CreateApproved(ctx, sub)
		if err != nil {
			s.reply(ctx, inv, notRecordedText)
			return
		}
		r, created = approved, true
		link(r)
		s.reply(ctx, inv, fmt.Sprintf(":arrow_forward: Request %s needs no approval (approval.actions_without_approval); running it now.", requestRef(r)))
		if err := s.core.Execute(ctx, r); err != nil {
			s.reply(ctx, inv, ":warning: The request is recorded but could not be started (database error); it will be retried shortly.")
		}
	} else {
		if sub.Targets != nil {
			r = s.createBulkRequest(ctx, inv, sub, nil)
		} else {
			r = s.createRequest(ctx, inv, sub, nil)
		}
		if r == nil {
			return // not created, or withdrawn: the original can be undone again
		}
		created = true
		link(r)
	}
	if buttonTS != "" {
		text := fmt.Sprintf(":leftwards_arrow_with_hook: %s asked to undo this: request `%s` (%s).", userRef(inv.UserID), escapeMrkdwn(r.ID), escapeMrkdwn(inverse.Title()))
		if err := s.slackRetry(ctx, func() error {
			_, _, _, err := s.deps.Slack.UpdateMessageContext(ctx, orig.ApprovalChannel, buttonTS,
				slack.MsgOptionText(text, false), slack.MsgOptionBlocks(section(text)))
			return err
		}); err != nil {
			s.log.ErrorContext(ctx, "updating the undo button failed", "request", orig.ID, "error", err)
		}
	}
}

// UndoLinks keeps the link between a request and its undo, at most one per
// request (store.Store has it); any replica finishing the undo finds it.
type UndoLinks interface {
	// ClaimUndo makes undoID the undo of originalID unless another undo
	// holds it, and returns the one that does.
	ClaimUndo(ctx context.Context, originalID, undoID string, now time.Time, ttl time.Duration) (string, error)
	// ReleaseUndo drops undoID's claim: its request was not created.
	ReleaseUndo(ctx context.Context, originalID, undoID string) error
	// UndoOf returns the request undoID undoes, or "".
	UndoOf(ctx context.Context, undoID string) (string, error)
}

// markUndone shows on the original message that r, a succeeded undo,
// undid it, and by whom.
func (s *Service) markUndone(ctx context.Context, r *approval.Request) {
	if r.Action.Inverse() == "" || !undoable(r.Action.Inverse()) || len(undoMachines(r)) == 0 {
		return
	}
	origID, err := s.deps.Store.UndoOf(ctx, r.ID)
	if err != nil {
		s.log.WarnContext(ctx, "reading the undo link failed", "request", r.ID, "error", err)
		return
	}
	if origID == "" {
		return
	}
	orig, err := s.core.Get(ctx, origID)
	if err != nil || orig.ApprovalTS == "" {
		return
	}
	s.core.Audit(ctx, "system", "undone", orig.ID, map[string]any{"undo_request": r.ID, "by": r.RequesterID})
	blocks := renderUndone(orig, r, s.now(), s.cfg.StaleAfter)
	if err := s.slackRetry(ctx, func() error {
		_, _, _, err := s.deps.Slack.UpdateMessageContext(ctx, orig.ApprovalChannel, orig.ApprovalTS,
			slack.MsgOptionText(approvalFallback(orig)+" (undone)", false), slack.MsgOptionBlocks(blocks...))
		return err
	}); err != nil {
		s.log.ErrorContext(ctx, "marking the original request undone failed", "request", orig.ID, "error", err)
	}
}
