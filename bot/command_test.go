package bot

import (
	"errors"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/defenderbot/defenderbot/actions"
)

func TestParseCommand(t *testing.T) {
	type P = map[string]string
	tests := []struct {
		text    string
		verb    string
		machine string
		params  P
	}{
		{"", "help", "", P{}},
		{"help", "help", "", P{}},
		{"isolate ws-001 full suspicious beacon", "isolate", "ws-001", P{"isolation_type": "Full", "comment": "suspicious beacon"}},
		{"ISOLATE ws-001 Selective c2", "isolate", "ws-001", P{"isolation_type": "Selective", "comment": "c2"}},
		{"isolate ws-001 unmanaged c2", "isolate", "ws-001", P{"isolation_type": "UnManagedDevice", "comment": "c2"}},
		{"isolate ws-001 c2 traffic", "isolate", "ws-001", P{"isolation_type": "Full", "comment": "c2 traffic"}},
		{`isolate ws-001 "full disk encryption off"`, "isolate", "ws-001", P{"isolation_type": "Full", "comment": "full disk encryption off"}},
		{"isolate ws-001 “smart quoted” text", "isolate", "ws-001", P{"isolation_type": "Full", "comment": "smart quoted text"}},
		{"release ws-001 ok now", "release", "ws-001", P{"comment": "ok now"}},
		{"deisolate ws-001 ok", "release", "ws-001", P{"comment": "ok"}},
		{"unisolate ws-001 ok", "release", "ws-001", P{"comment": "ok"}},
		{"restrict " + machineID + " why", "restrict", machineID, P{"comment": "why"}},
		{"unrestrict ws-001 why", "unrestrict", "ws-001", P{"comment": "why"}},
		{"scan ws-001 full deep", "scan", "ws-001", P{"scan_type": "Full", "comment": "deep"}},
		{"scan ws-001 routine", "scan", "ws-001", P{"scan_type": "Quick", "comment": "routine"}},
		{"quarantine ws-001 87662BC3D60E4200CEAF7AAE249D1C343F4B83C9 dropper found", "quarantine", "ws-001",
			P{"sha1": "87662bc3d60e4200ceaf7aae249d1c343f4b83c9", "comment": "dropper found"}},
		{"collect ws-001 for IR", "collect", "ws-001", P{"comment": "for IR"}},
		{"action 7f4c2a8e-0b1d-4c3e-9a2f-1234567890ab", "action", "", P{"action_id": "7f4c2a8e-0b1d-4c3e-9a2f-1234567890ab"}},
		{"cancel 7f4c2a8e mistake", "cancel", "", P{"action_id": "7f4c2a8e", "comment": "mistake"}},
		{"alert comment da637_136 looked at it", "alert comment", "", P{"alert_id": "da637_136", "comment": "looked at it"}},
		{"alert update da637_136 STATUS=resolved classification=falsepositive determination=notmalicious owner=a@b.c done", "alert update", "",
			P{"alert_id": "da637_136", "status": "Resolved", "classification": "FalsePositive", "determination": "NotMalicious", "owner": "a@b.c", "comment": "done"}},
		{`alert update da637_136 "x=1 is a comment"`, "alert update", "", P{"alert_id": "da637_136", "comment": "x=1 is a comment"}},
		{"iocs sync", "iocs sync", "", P{}},
		{"iocs STATUS", "iocs status", "", P{}},
	}
	for _, tc := range tests {
		t.Run(tc.text, func(t *testing.T) {
			c, err := parseCommand(tc.text)
			require.NoError(t, err)
			assert.Equal(t, tc.verb, c.Verb)
			assert.Equal(t, tc.machine, c.Machine)
			assert.Equal(t, tc.params, c.Args.Map())
		})
	}
}

func TestParseCommandErrors(t *testing.T) {
	tests := []struct {
		text    string
		verb    string
		missing bool
		msg     string
	}{
		{"frobnicate", "", false, `unknown command "frobnicate"`},
		{`"isolate" x y`, "", false, "unknown command"},
		{`isolate ws-001 "unterminated`, "", false, "unterminated quote"},
		{"isolate", "isolate", true, "which machine?"},
		{"isolate ws-001", "isolate", true, "a comment is required"},
		{"isolate ws-001 full", "isolate", true, "a comment is required"},
		{"isolate ws/../001 x", "isolate", false, "neither a machine ID"},
		{"scan ws-001", "scan", true, "a comment is required"},
		{"release", "release", true, "which machine?"},
		{"quarantine ws-001", "quarantine", true, "sha1 is required"},
		{"quarantine ws-001 87662bc3d60e4200ceaf7aae249d1c343f4b83c9", "quarantine", true, "a comment is required"},
		{"quarantine ws-001 abc dropper", "quarantine", false, "not a SHA-1 hash"},
		{"collect ws-001", "collect", true, "a comment is required"},
		{"get-package-uri 7f4c2a8e", "", false, "unknown command"},
		{"action", "action", true, "which action?"},
		{"action a b", "action", false, "only the action ID"},
		{"action ../etc", "action", false, "not a valid action ID"},
		{"cancel", "cancel", true, "which action?"},
		{"cancel abc", "cancel", true, "a comment is required"},
		{"alert", "alert", true, "needs a subcommand"},
		{"alert delete x", "alert", false, "unknown alert subcommand"},
		{"alert comment", "alert comment", true, "which alert?"},
		{"alert comment a1", "alert comment", true, "a comment is required"},
		{"alert update a1", "alert update", true, "nothing to update"},
		{"alert update a1 status=closed", "alert update", false, `status "closed" is not one of`},
		{"alert update a1 classification=bad", "alert update", false, "classification \"bad\""},
		{"alert update a1 determination=malware", "alert update", false, "needs a classification"},
		{"alert update a1 classification=FalsePositive determination=Malware", "alert update", false, "does not match classification FalsePositive"},
		{"alert update a1 color=red", "alert update", false, `unknown field "color"`},
		{"alert update a1 status=new status=resolved", "alert update", false, "status is given twice"},
		{"iocs", "iocs", false, "needs a subcommand"},
		{"iocs sync now", "iocs sync", false, "takes no arguments"},
		{"help me", "help", false, "takes no arguments"},
	}
	for _, tc := range tests {
		t.Run(tc.text, func(t *testing.T) {
			_, err := parseCommand(tc.text)
			var pe *ParseError
			require.True(t, errors.As(err, &pe), "got %v", err)
			assert.Equal(t, tc.verb, pe.Verb)
			assert.Equal(t, tc.missing, pe.Missing)
			assert.Contains(t, pe.Msg, tc.msg)
		})
	}
}

func TestParseCommandLongComment(t *testing.T) {
	long := make([]byte, actions.MaxCommentLen+1)
	for i := range long {
		long[i] = 'a'
	}
	_, err := parseCommand("isolate ws-001 " + string(long))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "too long")
}

func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{"", "isolate ws full x", `alert update a "b=c" status=new`, "scan “x", "iocs sync", "cancel a b c", "alert comment \x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := parseCommand(s)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Msg == "" {
				t.Fatalf("error without a message: %v", err)
			}
			return
		}
		if !slices.Contains(allVerbs(), c.Verb) {
			t.Fatalf("unknown verb %q", c.Verb)
		}
		if c.Action.TargetsMachine() && !machineIDRe.MatchString(c.Machine) && !machineNameRe.MatchString(c.Machine) {
			t.Fatalf("bad machine accepted: %q", c.Machine)
		}
		for _, v := range []string{c.Args.ActionID, c.Args.AlertID} {
			if v != "" && !validID(v) {
				t.Fatalf("bad ID accepted: %q", v)
			}
		}
	})
}
