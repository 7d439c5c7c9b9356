package bot

import (
	"encoding/json"
	"slices"

	"github.com/slack-go/slack"

	"github.com/defenderbot/defenderbot/actions"
)

// modalMeta travels in a modal's private_metadata.
type modalMeta struct {
	Verb        string `json:"v,omitempty"`
	RequestID   string `json:"r,omitempty"`
	ChannelID   string `json:"c,omitempty"`
	ResponseURL string `json:"u,omitempty"`
	TS          string `json:"t,omitempty"` // the message whose button opened the form
	FromHome    bool   `json:"h,omitempty"` // opened from the Home tab
	// AlertID and Status are set by an alert card's form (not inputs).
	AlertID string `json:"a,omitempty"`
	Status  string `json:"s,omitempty"`
}

func options(values ...string) []*slack.OptionBlockObject {
	o := make([]*slack.OptionBlockObject, len(values))
	for i, v := range values {
		o[i] = slack.NewOptionBlockObject(v, plain(v), nil)
	}
	return o
}

func selectInput(id, label string, initial string, values ...string) *slack.InputBlock {
	opts := options(values...)
	sel := slack.NewOptionsSelectBlockElement(slack.OptTypeStatic, plain("Choose"), id, opts...)
	for _, o := range opts {
		if o.Value == initial {
			sel.InitialOption = o
		}
	}
	return slack.NewInputBlock(id, plain(label), nil, sel)
}

func textInput(id, label, initial string, multiline bool) *slack.InputBlock {
	el := slack.NewPlainTextInputBlockElement(nil, id).WithMultiline(multiline)
	if id == actions.ArgComment {
		el = el.WithMaxLength(actions.MaxCommentLen)
	}
	if initial != "" {
		el = el.WithInitialValue(initial)
	}
	return slack.NewInputBlock(id, plain(label), nil, el)
}

// machineLabel labels the form's machine input.
func machineLabel(spec actions.Spec) string {
	if spec.Bulk {
		return "Machine (ID or computer DNS name; several: comma-separated)"
	}
	return "Machine (ID or computer DNS name)"
}

// commandModal is the form of a verb whose arguments were missing,
// prefilled with what was given: the registry's Form inputs, in order.
func commandModal(verb string, c Command, inv invocation) (slack.ModalViewRequest, bool) {
	spec, ok := actions.ByVerb(verb)
	if !ok {
		return slack.ModalViewRequest{}, false
	}
	var blocks []slack.Block
	for _, f := range spec.Form {
		if f == "machine" {
			blocks = append(blocks, textInput(f, machineLabel(spec), c.machinesText(), false))
			continue
		}
		as, _ := actions.ArgSpecOf(f)
		optional := !slices.Contains(spec.Required, f) && f != spec.SlackChoice
		var in *slack.InputBlock
		switch {
		case as.Choices != nil:
			initial := ""
			if f == spec.SlackChoice {
				initial = spec.SlackDefault
			}
			in = selectInput(f, as.Label, initial, as.Choices...)
		default:
			in = textInput(f, as.Label, c.Args.Get(f), f == actions.ArgComment)
		}
		blocks = append(blocks, in.WithOptional(optional))
	}
	meta, _ := json.Marshal(modalMeta{Verb: verb, ChannelID: inv.ChannelID, ResponseURL: inv.ResponseURL, FromHome: inv.FromHome})
	return fitView(slack.ModalViewRequest{
		Type:            slack.VTModal,
		Title:           plain(spec.Title),
		Submit:          plain("Request"),
		Close:           plain("Cancel"),
		Blocks:          slack.Blocks{BlockSet: blocks},
		CallbackID:      callbackCmd,
		PrivateMetadata: string(meta),
	}), true
}

// rejectModal asks an approver why they reject.
func rejectModal(requestID, channelID, cardTS string, fromHome bool) slack.ModalViewRequest {
	meta, _ := json.Marshal(modalMeta{RequestID: requestID, ChannelID: channelID, TS: cardTS, FromHome: fromHome})
	return fitView(slack.ModalViewRequest{
		Type:   slack.VTModal,
		Title:  plain("Reject request"),
		Submit: plain("Reject"),
		Close:  plain("Cancel"),
		Blocks: slack.Blocks{BlockSet: []slack.Block{
			section("The requester will see your reason."),
			textInput(blockReason, "Reason", "", true),
		}},
		CallbackID:      callbackReject,
		PrivateMetadata: string(meta),
	})
}

// alertModal is an alert card's Resolve… or Comment… form: the registry's
// form of verb with only inputs kept; the alert (and, to resolve, the
// status) travel in the metadata, not as editable inputs.
func alertModal(verb, title, alertID, status string, inputs []string, inv invocation) (slack.ModalViewRequest, bool) {
	v, ok := commandModal(verb, Command{}, inv)
	if !ok {
		return v, false
	}
	kept := []slack.Block{section("Alert `" + escapeMrkdwn(alertID) + "`")}
	for _, b := range v.Blocks.BlockSet {
		if in, ok := b.(*slack.InputBlock); ok && slices.Contains(inputs, in.BlockID) {
			if in.BlockID == actions.ArgClassification || (in.BlockID == actions.ArgComment && verb == "alert comment") {
				in.Optional = false
			}
			kept = append(kept, in)
		}
	}
	v.Blocks.BlockSet = kept
	v.Title = plain(truncate(title, 24))
	meta, _ := json.Marshal(modalMeta{Verb: verb, ChannelID: inv.ChannelID, AlertID: alertID, Status: status})
	v.PrivateMetadata = string(meta)
	return v, true
}
