package slackfake

import (
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// Block Kit limits Slack enforces, as documented (api.slack.com/reference/block-kit):
// an over-limit message is refused with invalid_blocks, an over-limit view
// with invalid_arguments; each problem is named with a JSON pointer.
const (
	MaxMessageBlocks  = 50
	MaxViewBlocks     = 100
	MaxSectionText    = 3000
	MaxSectionFields  = 10
	MaxFieldText      = 2000
	MaxHeaderText     = 150
	MaxContextItems   = 10
	MaxActionElements = 25
	MaxIDLen          = 255 // block_id, action_id, callback_id
	MaxButtonText     = 75
	MaxButtonValue    = 2000
	MaxButtonURL      = 3000
	MaxViewTitle      = 24 // title, submit and close of a modal
	MaxPrivateMeta    = 3000
	MaxTextObject     = 3000 // any other text object (context elements, input labels…)
)

// limitErrors lists, Slack-style ("must be less than 3001 characters
// [json-pointer:/blocks/0/text/text]"), every limit the blocks break.
// ptr is the pointer of the blocks array ("/blocks" or "/view/blocks").
func limitErrors(blocks json.RawMessage, maxBlocks int, ptr string) []string {
	if len(blocks) == 0 || string(blocks) == "null" {
		return nil
	}
	var bs []map[string]any
	if err := json.Unmarshal(blocks, &bs); err != nil {
		return []string{fmt.Sprintf("invalid JSON: %v [json-pointer:%s]", err, ptr)}
	}
	var l limitCheck
	if len(bs) > maxBlocks {
		l.fail(ptr, "must contain at most %d items", maxBlocks)
	}
	for i, b := range bs {
		p := fmt.Sprintf("%s/%d", ptr, i)
		l.str(b, "block_id", p, MaxIDLen)
		switch b["type"] {
		case "section":
			l.text(b["text"], p+"/text", MaxSectionText)
			if fields, ok := b["fields"].([]any); ok {
				if len(fields) > MaxSectionFields {
					l.fail(p+"/fields", "must contain at most %d items", MaxSectionFields)
				}
				for j, f := range fields {
					l.text(f, fmt.Sprintf("%s/fields/%d", p, j), MaxFieldText)
				}
			}
			if acc, ok := b["accessory"].(map[string]any); ok {
				l.element(acc, p+"/accessory")
			}
		case "header":
			l.text(b["text"], p+"/text", MaxHeaderText)
		case "context":
			els, _ := b["elements"].([]any)
			if len(els) > MaxContextItems {
				l.fail(p+"/elements", "must contain at most %d items", MaxContextItems)
			}
			for j, e := range els {
				if m, ok := e.(map[string]any); ok && m["type"] != "image" {
					l.text(m, fmt.Sprintf("%s/elements/%d", p, j), MaxTextObject)
				}
			}
		case "actions":
			els, _ := b["elements"].([]any)
			if len(els) > MaxActionElements {
				l.fail(p+"/elements", "must contain at most %d items", MaxActionElements)
			}
			for j, e := range els {
				if m, ok := e.(map[string]any); ok {
					l.element(m, fmt.Sprintf("%s/elements/%d", p, j))
				}
			}
		case "input":
			l.text(b["label"], p+"/label", MaxFieldText)
			if el, ok := b["element"].(map[string]any); ok {
				l.element(el, p+"/element")
			}
		}
	}
	return l.errs
}

// viewLimitErrors checks a modal or Home tab view.
func viewLimitErrors(view json.RawMessage) []string {
	var v struct {
		Type            string          `json:"type"`
		Title           any             `json:"title"`
		Submit          any             `json:"submit"`
		Close           any             `json:"close"`
		CallbackID      string          `json:"callback_id"`
		PrivateMetadata string          `json:"private_metadata"`
		Blocks          json.RawMessage `json:"blocks"`
	}
	if err := json.Unmarshal(view, &v); err != nil {
		return []string{fmt.Sprintf("invalid JSON: %v [json-pointer:/view]", err)}
	}
	var l limitCheck
	l.text(v.Title, "/view/title", MaxViewTitle)
	l.text(v.Submit, "/view/submit", MaxViewTitle)
	l.text(v.Close, "/view/close", MaxViewTitle)
	if n := utf8.RuneCountInString(v.CallbackID); n > MaxIDLen {
		l.fail("/view/callback_id", "must be less than %d characters", MaxIDLen+1)
	}
	if n := utf8.RuneCountInString(v.PrivateMetadata); n > MaxPrivateMeta {
		l.fail("/view/private_metadata", "must be less than %d characters", MaxPrivateMeta+1)
	}
	return append(l.errs, limitErrors(v.Blocks, MaxViewBlocks, "/view/blocks")...)
}

type limitCheck struct{ errs []string }

func (l *limitCheck) fail(ptr, format string, args ...any) {
	l.errs = append(l.errs, fmt.Sprintf(format, args...)+" [json-pointer:"+ptr+"]")
}

// text checks a text object's text.
func (l *limitCheck) text(obj any, ptr string, max int) {
	m, ok := obj.(map[string]any)
	if !ok {
		return
	}
	l.str(m, "text", ptr, max)
}

func (l *limitCheck) str(m map[string]any, key, ptr string, max int) {
	s, _ := m[key].(string)
	if utf8.RuneCountInString(s) > max {
		l.fail(ptr+"/"+key, "must be less than %d characters", max+1)
	}
}

// element checks an interactive element (button, select, input…).
func (l *limitCheck) element(m map[string]any, ptr string) {
	l.str(m, "action_id", ptr, MaxIDLen)
	if m["type"] == "button" {
		l.text(m["text"], ptr+"/text", MaxButtonText)
		l.str(m, "value", ptr, MaxButtonValue)
		l.str(m, "url", ptr, MaxButtonURL)
	}
}

// MessageProblems lists the Block Kit limits a message's blocks (JSON)
// break, worded as Slack words them; empty when Slack would accept them.
func MessageProblems(blocks json.RawMessage) []string {
	return limitErrors(blocks, MaxMessageBlocks, "/blocks")
}

// ViewProblems is MessageProblems for a modal or Home tab view (JSON).
func ViewProblems(view json.RawMessage) []string { return viewLimitErrors(view) }
