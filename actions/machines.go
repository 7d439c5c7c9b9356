package actions

import (
	"fmt"
	"strings"
)

// MachineListFault is what is wrong with the list of machines one request
// names.
type MachineListFault int

// The faults CheckMachines finds, in the order it looks for them.
const (
	FaultOneMachine MachineListFault = iota + 1 // the action runs on one machine per request
	FaultTooMany                                // more machines than the limit
	FaultEmpty                                  // an empty entry
	FaultTwice                                  // a machine listed twice
)

// MachineListError is a list of machines a request may not name. The
// approval core, the Slack command and the CLI apply the same rule
// (CheckMachines); each words the fault for its own readers.
type MachineListError struct {
	Fault  MachineListFault
	Action Name
	// Count and Max: FaultTooMany.
	Count, Max int
	// Machine is the entry listed again and First the same machine as
	// listed first (FaultTwice; they may differ in case).
	Machine, First string
}

func (e *MachineListError) Error() string {
	switch e.Fault {
	case FaultOneMachine:
		return fmt.Sprintf("%s runs on one machine per request", e.Action)
	case FaultTooMany:
		return fmt.Sprintf("%d machines, at most %d per request", e.Count, e.Max)
	case FaultEmpty:
		return "a machine in the list is empty"
	}
	return fmt.Sprintf("machine %q is listed twice", e.Machine)
}

// UnknownMax is CheckMachines' max for a caller that does not know the
// limit yet (the Slack parser, the CLI before it reads its configuration).
const UnknownMax = -1

// CheckMachines applies the rules of a request that names a list of
// machines: only an action that may run on several (Bulk), at most max of
// them (approval.max_bulk; UnknownMax: not checked here), none empty, none
// twice. Machine IDs (hex) and computer DNS names compare without case.
func CheckMachines(action Name, machines []string, max int) *MachineListError {
	if !action.Bulk() {
		return &MachineListError{Fault: FaultOneMachine, Action: action}
	}
	if max >= 0 && len(machines) > max {
		return &MachineListError{Fault: FaultTooMany, Action: action, Count: len(machines), Max: max}
	}
	first := make(map[string]string, len(machines))
	for _, m := range machines {
		if m == "" {
			return &MachineListError{Fault: FaultEmpty, Action: action}
		}
		k := strings.ToLower(m)
		if f, dup := first[k]; dup {
			return &MachineListError{Fault: FaultTwice, Action: action, Machine: m, First: f}
		}
		first[k] = m
	}
	return nil
}
