package bot

import "github.com/google/uuid"

// The seed's playbook action names (package playbook uses the same strings).
const (
	actCommentAlert = "comment-alert"
	actUpdateAlert  = "update-alert"
	actIsolate      = "isolate"
	actDeisolate    = "deisolate"
	actRestrict     = "restrict-code-execution"
	actUnrestrict   = "unrestrict-code-execution"
	actScan         = "scan"
	actGetAction    = "get-action"
	actCancelAction = "cancel-action"
	actIOCSync      = "iocs-sync" // not a playbook action: bot-internal
	actIOCStatus    = "iocs-status"
	actHelp         = "help"
)

// actionInfo describes each playbook action as the bot needs it.
type actionInfo struct {
	title          string // seed title
	targetsMachine bool
	readOnly       bool
	// defenderType is the MachineAction type Defender records, used to find
	// the action again after a crash ("" for alert actions).
	defenderType string
}

var actionTable = map[string]actionInfo{
	actCommentAlert: {title: "Comment an alert"},
	actUpdateAlert:  {title: "Update an alert"},
	actIsolate:      {title: "Isolate a machine", targetsMachine: true, defenderType: "Isolate"},
	actDeisolate:    {title: "Deisolate a machine", targetsMachine: true, defenderType: "Unisolate"},
	actRestrict:     {title: "Restrict code execution", targetsMachine: true, defenderType: "RestrictCodeExecution"},
	actUnrestrict:   {title: "Unrestrict code execution", targetsMachine: true, defenderType: "UnrestrictCodeExecution"},
	actScan:         {title: "Scan a machine", targetsMachine: true, defenderType: "RunAntiVirusScan"},
	actGetAction:    {title: "Get action info", readOnly: true},
	actCancelAction: {title: "Cancel machine action"},
}

func knownAction(a string) bool {
	_, ok := actionTable[a]
	return ok
}

func newID() string { return uuid.NewString() }
