package bot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/slack-go/slack"

	"github.com/defenderbot/defenderbot/actions"
	"github.com/defenderbot/defenderbot/defender"
)

// HandleCommand answers a slash command. The returned message is the
// immediate (ephemeral) HTTP response body; it makes no network call:
// machine look-ups, posting and Defender calls run asynchronously and answer
// through the command's response_url.
func (s *Service) HandleCommand(ctx context.Context, cmd slack.SlashCommand) *slack.Msg {
	command := s.cfg.Command
	inv := invocation{UserID: cmd.UserID, UserName: cmd.UserName, ChannelID: cmd.ChannelID, ResponseURL: cmd.ResponseURL}
	if cmd.UserID == "" {
		return ephemeral("This command has no user; nothing was done.")
	}
	c, err := parseCommand(cmd.Text)
	if err != nil {
		var pe *ParseError
		if !errors.As(err, &pe) {
			pe = &ParseError{Msg: err.Error()}
		}
		if pe.Missing && cmd.TriggerID != "" {
			if view, ok := commandModal(pe.Verb, c, inv); ok {
				s.goAsync(ctx, "open modal", func(ctx context.Context) {
					if err := s.slackRetry(ctx, func() error {
						_, err := s.deps.Slack.OpenViewContext(ctx, cmd.TriggerID, view)
						return err
					}); err != nil {
						s.log.ErrorContext(ctx, "views.open failed", "error", err)
						s.reply(ctx, inv, ":warning: "+escapeMrkdwn(pe.Msg), renderParseError(command, pe)...)
					}
				})
				return ephemeral("Opening a form to complete the request…")
			}
		}
		return blocksMsg(escapeMrkdwn(pe.Msg), renderParseError(command, pe))
	}
	if c.Verb == verbHelp {
		return blocksMsg("defenderbot help", renderHelp(command))
	}
	if msg := s.tooManyMachines(c); msg != "" {
		pe := &ParseError{Verb: c.Verb, Msg: msg}
		return blocksMsg(escapeMrkdwn(pe.Msg), renderParseError(command, pe))
	}
	s.goAsync(ctx, "command "+c.Verb, func(ctx context.Context) { s.submit(ctx, inv, c) })
	what := c.Action.Title()
	switch c.Verb {
	case verbIOCSync:
		what = "IOC sync"
	case verbIOCStatus:
		what = "IOC sync status"
	}
	if c.Machine != "" {
		what += " on " + c.Machine
	}
	if len(c.Machines) > 0 {
		what += " on " + plural(len(c.Machines), "machine")
	}
	return ephemeral(fmt.Sprintf("Working on it: %s…", escapeMrkdwn(what)))
}

// HandleInteraction handles a block_actions or view_submission callback. It
// returns nil (an empty 200) or a *slack.ViewSubmissionResponse carrying
// modal validation errors keyed by input block ID. Slow work runs async.
func (s *Service) HandleInteraction(ctx context.Context, cb slack.InteractionCallback) (any, error) {
	inv := invocation{UserID: cb.User.ID, UserName: cb.User.Name, ChannelID: cb.Channel.ID}
	if inv.ChannelID == "" {
		inv.ChannelID = cb.Container.ChannelID
	}
	// A click on the Home tab carries no channel: answers go by DM and the
	// tab is published again once the click is handled.
	inv.FromHome = cb.View.Type == slack.VTHomeTab
	if inv.UserID == "" {
		return nil, errors.New("interaction without a user")
	}
	switch cb.Type {
	case slack.InteractionTypeBlockActions:
		// The message clicked on, for a click that beats the card's ts to the store.
		var cardTS string
		if !inv.FromHome {
			cardTS = cb.Container.MessageTs
		}
		for _, a := range cb.ActionCallback.BlockActions {
			if a == nil {
				continue
			}
			if s.handleAlertAction(ctx, cb, inv, a) {
				continue
			}
			// Only the request ID is taken from the button: everything else is re-read.
			id := a.Value
			if !validID(id) {
				continue
			}
			switch a.ActionID {
			case actionApprove:
				s.goAsync(ctx, "approve", func(ctx context.Context) {
					s.adoptCard(ctx, id, inv.ChannelID, cardTS)
					s.approve(ctx, inv, id)
					s.refreshHome(ctx, inv)
				})
			case actionUndo:
				trigger, buttonTS := cb.TriggerID, cb.Container.MessageTs
				s.goAsync(ctx, "undo click", func(ctx context.Context) { s.clickUndo(ctx, inv, id, trigger, buttonTS) })
			case actionReject:
				trigger := cb.TriggerID
				s.goAsync(ctx, "reject click", func(ctx context.Context) {
					if !s.canOpenReject(ctx, inv, id) {
						return
					}
					if err := s.slackRetry(ctx, func() error {
						_, err := s.deps.Slack.OpenViewContext(ctx, trigger, rejectModal(id, inv.ChannelID, cardTS, inv.FromHome))
						return err
					}); err != nil {
						s.log.ErrorContext(ctx, "views.open (reject) failed", "error", err)
						s.postEphemeral(ctx, inv, ":warning: Could not open the rejection form; click Reject again.")
					}
				})
			}
		}
		return nil, nil
	case slack.InteractionTypeViewSubmission:
		switch cb.View.CallbackID {
		case callbackReject:
			return s.submitReject(ctx, cb, inv), nil
		case callbackCmd:
			return s.submitCommandModal(ctx, cb, inv), nil
		case callbackUndo:
			return s.submitUndo(ctx, cb, inv), nil
		}
		return nil, nil
	}
	return nil, nil
}

func (s *Service) submitReject(ctx context.Context, cb slack.InteractionCallback, inv invocation) any {
	var meta modalMeta
	_ = json.Unmarshal([]byte(cb.View.PrivateMetadata), &meta)
	if !validID(meta.RequestID) {
		return slack.NewErrorsViewSubmissionResponse(map[string]string{blockReason: "This form is no longer valid; click Reject again."})
	}
	reason := strings.TrimSpace(inputValue(cb.View.State, blockReason))
	switch {
	case reason == "":
		return slack.NewErrorsViewSubmissionResponse(map[string]string{blockReason: "Give a reason: the requester sees it."})
	case len(reason) > actions.MaxCommentLen:
		return slack.NewErrorsViewSubmissionResponse(map[string]string{blockReason: fmt.Sprintf("At most %d characters.", actions.MaxCommentLen)})
	}
	if meta.ChannelID != "" {
		inv.ChannelID = meta.ChannelID
	}
	inv.FromHome = meta.FromHome
	s.goAsync(ctx, "reject", func(ctx context.Context) {
		s.adoptCard(ctx, meta.RequestID, inv.ChannelID, meta.TS)
		s.reject(ctx, inv, meta.RequestID, reason)
		s.refreshHome(ctx, inv)
	})
	return nil
}

func (s *Service) submitCommandModal(ctx context.Context, cb slack.InteractionCallback, inv invocation) any {
	var meta modalMeta
	_ = json.Unmarshal([]byte(cb.View.PrivateMetadata), &meta)
	spec, ok := actions.ByVerb(meta.Verb)
	if !ok {
		return slack.NewClearViewSubmissionResponse()
	}
	c := Command{Verb: meta.Verb, Action: spec.Name}
	for _, f := range spec.Form {
		v := strings.TrimSpace(inputValue(cb.View.State, f))
		if f == "machine" {
			c.setMachines(v)
		} else {
			c.Args.Set(f, v)
		}
	}
	// An alert card's form: the alert and status are the card's.
	if meta.AlertID != "" {
		c.Args.AlertID, inv.AlertID = meta.AlertID, meta.AlertID
	}
	if meta.Status != "" {
		c.Args.Status = meta.Status
	}
	// Whoever resolves from the card owns the alert: the card then says who.
	if meta.AlertID != "" && meta.Status == string(defender.AlertResolved) && c.Args.Owner == "" {
		c.Args.Owner = cmpOr(inv.UserName, inv.UserID)
	}
	errs := validateCommand(&c)
	if msg := s.tooManyMachines(c); msg != "" {
		errs = append([]fieldError{{field: "machine", msg: msg}}, errs...)
	}
	if len(errs) > 0 {
		m := map[string]string{}
		for _, e := range errs {
			if _, dup := m[e.field]; !dup && slices.Contains(spec.Form, e.field) && hasInput(cb.View, e.field) {
				m[e.field] = e.msg
			}
		}
		if len(m) == 0 {
			// Never submit what failed validation: show the problem on the
			// form's first field rather than dropping it.
			m[firstInput(cb.View, spec.Form)] = errs[0].msg
		}
		return slack.NewErrorsViewSubmissionResponse(m)
	}
	inv.ChannelID, inv.ResponseURL = meta.ChannelID, meta.ResponseURL
	s.goAsync(ctx, "modal "+string(c.Action), func(ctx context.Context) { s.submit(ctx, inv, c) })
	return nil
}

// inputValue reads one input block's value (text or selected option).
func inputValue(st *slack.ViewState, blockID string) string {
	if st == nil {
		return ""
	}
	for _, a := range st.Values[blockID] {
		if a.SelectedOption.Value != "" {
			return a.SelectedOption.Value
		}
		return a.Value
	}
	return ""
}

func ephemeral(text string) *slack.Msg {
	return &slack.Msg{ResponseType: slack.ResponseTypeEphemeral, Text: text}
}

func blocksMsg(text string, blocks []slack.Block) *slack.Msg {
	m := ephemeral(text)
	m.Blocks = slack.Blocks{BlockSet: blocks}
	return m
}

// hasInput reports whether the submitted view has the input field (a view
// without blocks is assumed to have every input of its form).
func hasInput(v slack.View, field string) bool {
	if len(v.Blocks.BlockSet) == 0 {
		return true
	}
	for _, b := range v.Blocks.BlockSet {
		if in, ok := b.(*slack.InputBlock); ok && in.BlockID == field {
			return true
		}
	}
	return false
}

// firstInput is the first of fields that the submitted view has as an input.
func firstInput(v slack.View, fields []string) string {
	for _, b := range v.Blocks.BlockSet {
		if in, ok := b.(*slack.InputBlock); ok && slices.Contains(fields, in.BlockID) {
			return in.BlockID
		}
	}
	return fields[0]
}
