// Package defender is a typed client for the Microsoft Defender for Endpoint
// API (machine actions, machines, alerts, indicators).
//
// Tokens come from MSAL for Go (client credentials). Every input is
// validated before a request is sent; a bad argument yields an error wrapping
// ErrInvalidArgument that names the field. Calls are paced client-side per
// API at Microsoft's documented limits, every attempt has a timeout, and 429
// and 503 answers are retried honouring Retry-After.
//
// Machine actions (isolate, scan, cancel, ...) are never re-sent blindly:
// after a timeout or dropped connection the client looks the action up and
// returns it, or returns an error wrapping ErrOutcomeUnknown that says how
// to check.
//
// Errors from Defender are *APIError values:
//
//	ma, err := c.IsolateMachine(ctx, id, "ticket 42", defender.IsolationFull)
//	var ae *defender.APIError
//	switch {
//	case defender.IsActiveRequestAlreadyExists(err):
//		// an isolation is already pending
//	case defender.IsRateLimited(err):
//		// try again after defender.RetryAfterOf(err)
//	case errors.As(err, &ae):
//		log.Error("defender", "code", ae.Code, "target", ae.Target)
//	}
//
// It owns the Defender API: paths, bodies, pacing limits, tokens and the
// one check of IDs and text sent to it (IDProblem, TextProblem); the HTTP
// transport (retries, 401 refresh, error envelope) is internal/msrest,
// shared with package graph. It must not import any other defenderbot
// package but internal/msrest and internal/httpwait (actions, bot,
// approval and ioc build on it).
package defender
