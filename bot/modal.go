package bot

import (
	"encoding/json"

	"github.com/slack-go/slack"

	"github.com/defenderbot/defenderbot/defender"
	"github.com/defenderbot/defenderbot/playbook"
)

// modalMeta travels in a modal's private_metadata.
type modalMeta struct {
	Verb        string `json:"v,omitempty"`
	RequestID   string `json:"r,omitempty"`
	ChannelID   string `json:"c,omitempty"`
	ResponseURL string `json:"u,omitempty"`
}

// modalFields lists each action's inputs; the block ID is the field name.
var modalFields = map[string][]string{
	actIsolate:      {"machine", "isolation_type", "comment"},
	actDeisolate:    {"machine", "comment"},
	actRestrict:     {"machine", "comment"},
	actUnrestrict:   {"machine", "comment"},
	actScan:         {"machine", "scan_type", "comment"},
	actGetAction:    {"action_id"},
	actCancelAction: {"action_id", "comment"},
	actCommentAlert: {"alert_id", "comment"},
	actUpdateAlert:  {"alert_id", "status", "classification", "determination", "owner", "comment"},
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
	if id == "comment" {
		el = el.WithMaxLength(maxCommentLen)
	}
	if initial != "" {
		el = el.WithInitialValue(initial)
	}
	return slack.NewInputBlock(id, plain(label), nil, el)
}

// commandModal is the form for a verb whose arguments were missing,
// prefilled with what was given.
func commandModal(verb string, c Command, inv invocation) (slack.ModalViewRequest, bool) {
	action, ok := verbAction[verb]
	fields, ok2 := modalFields[action]
	if !ok || !ok2 {
		return slack.ModalViewRequest{}, false
	}
	p := c.Params
	if p == nil {
		p = map[string]string{}
	}
	var blocks []slack.Block
	for _, f := range fields {
		switch f {
		case "machine":
			blocks = append(blocks, textInput(f, "Machine (ID or computer DNS name)", c.Machine, false))
		case "isolation_type":
			blocks = append(blocks, selectInput(f, "Isolation type", string(defender.IsolationFull),
				string(defender.IsolationFull), string(defender.IsolationSelective), string(defender.IsolationUnManagedDevice)))
		case "scan_type":
			blocks = append(blocks, selectInput(f, "Scan type", string(defender.ScanQuick), string(defender.ScanQuick), string(defender.ScanFull)))
		case "action_id":
			blocks = append(blocks, textInput(f, "Machine action ID", p[f], false))
		case "alert_id":
			blocks = append(blocks, textInput(f, "Alert ID", p[f], false))
		case "status":
			blocks = append(blocks, selectInput(f, "Status", "", alertStatuses...).WithOptional(true))
		case "classification":
			blocks = append(blocks, selectInput(f, "Classification", "", classifications...).WithOptional(true))
		case "determination":
			var all []string
			for _, cl := range classifications {
				all = append(all, playbook.Determinations(cl)...)
			}
			blocks = append(blocks, selectInput(f, "Determination (must match the classification)", "", dedupe(all)...).WithOptional(true))
		case "owner":
			blocks = append(blocks, textInput(f, "Owner (user principal name)", p[f], false).WithOptional(true))
		case "comment":
			in := textInput(f, "Comment (recorded in Defender)", p[f], true)
			if action == actUpdateAlert {
				in = in.WithOptional(true)
			}
			blocks = append(blocks, in)
		}
	}
	meta, _ := json.Marshal(modalMeta{Verb: verb, ChannelID: inv.ChannelID, ResponseURL: inv.ResponseURL})
	return slack.ModalViewRequest{
		Type:            slack.VTModal,
		Title:           plain(truncate(actionTitle(action), 24)),
		Submit:          plain("Request"),
		Close:           plain("Cancel"),
		Blocks:          slack.Blocks{BlockSet: blocks},
		CallbackID:      callbackCmd,
		PrivateMetadata: string(meta),
	}, true
}

// rejectModal asks an approver why they reject.
func rejectModal(requestID, channelID string) slack.ModalViewRequest {
	meta, _ := json.Marshal(modalMeta{RequestID: requestID, ChannelID: channelID})
	return slack.ModalViewRequest{
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
	}
}

func dedupe(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
