package store

import "errors"

// Errors added beside the contract's, matchable with errors.Is.
var (
	// ErrConflict: CreateRequest with an ID that already exists.
	ErrConflict = errors.New("already exists")
	// ErrInvalidTransition: a state change the life cycle does not allow.
	ErrInvalidTransition = errors.New("invalid state transition")
)

// Valid reports whether s is one of the known states.
func (s RequestState) Valid() bool {
	switch s {
	case StatePending, StateApproved, StateExecuting, StateRunning,
		StateSucceeded, StateFailed, StateRejected, StateExpired:
		return true
	}
	return false
}

// CanTransitionTo reports whether the life cycle allows moving from s to
// next. Besides the diagram on RequestState, executing -> succeeded covers
// actions that finish within the Defender call, and approved -> failed a
// request that could not start.
func (s RequestState) CanTransitionTo(next RequestState) bool {
	switch s {
	case StatePending:
		return next == StateApproved || next == StateRejected || next == StateExpired
	case StateApproved:
		return next == StateExecuting || next == StateFailed
	case StateExecuting:
		return next == StateRunning || next == StateSucceeded || next == StateFailed
	case StateRunning:
		return next == StateSucceeded || next == StateFailed
	}
	return false
}
