package bot

import (
	"github.com/google/uuid"

	"github.com/defenderbot/defenderbot/playbook"
)

// Action names as stored in store.Request.Action: the playbook's own names,
// plus the bot's verbs that are not playbook actions.
const (
	actCommentAlert = string(playbook.CommentAlert)
	actUpdateAlert  = string(playbook.UpdateAlert)
	actIsolate      = string(playbook.Isolate)
	actDeisolate    = string(playbook.Deisolate)
	actRestrict     = string(playbook.RestrictCodeExecution)
	actUnrestrict   = string(playbook.UnrestrictCodeExecution)
	actScan         = string(playbook.Scan)
	actGetAction    = string(playbook.GetAction)
	actCancelAction = string(playbook.CancelAction)
	actIOCSync      = "iocs-sync" // not a playbook action: bot-internal
	actIOCStatus    = "iocs-status"
	actHelp         = "help"
)

// knownAction reports whether a is a playbook action.
func knownAction(a string) bool { return playbook.Name(a).Valid() }

// targetsMachine reports whether action a acts on a machine (its <machine>
// argument is resolved to a machine ID before the request is made).
func targetsMachine(a string) bool { return playbook.Name(a).TargetsMachine() }

// readOnly reports whether action a changes nothing in Defender.
func readOnly(a string) bool { return playbook.Name(a).ReadOnly() }

// actionTitle is the seed's title of action a ("Isolate a machine"), or a
// itself for the bot's own verbs.
func actionTitle(a string) string { return playbook.Name(a).Title() }

func newID() string { return uuid.NewString() }
