// Package graph is a typed client for the Microsoft Graph security API's
// alerts (v1.0 security/alerts_v2): list with OData filters and paging, get,
// update (status, classification, determination, assignedTo) and comments.
//
// Tokens come from the same app registration as Defender's, through
// defender.NewTokenProvider with the Graph scope (Scope). Calls are paced
// client-side at Graph's documented limit for alerts (150 requests a minute
// per app and tenant), every attempt has a timeout, 429 and 503 answers are
// retried honouring Retry-After, and a 401 is retried once with a fresh token.
// A comment is never re-sent when Graph may have received it (it would be
// posted twice).
//
// Errors from Graph are *APIError values (*RateLimitError when throttling
// outlasts the retries); bad arguments wrap defender.ErrInvalidArgument:
//
//	alerts, err := c.ListAlerts(ctx, graph.ListAlertsOptions{CreatedSince: since})
//	var ae *graph.APIError
//	switch {
//	case graph.IsRateLimited(err):
//		// try again after graph.RetryAfterOf(err)
//	case errors.As(err, &ae):
//		log.Error("graph", "code", ae.Code, "request_id", ae.RequestID)
//	}
//
// It owns Graph's alert paths, bodies and types; the HTTP transport is
// internal/msrest, shared with package defender. It must not import any
// defenderbot package but defender (the token provider and the legacy
// alert types of DefenderAlerts), internal/msrest and internal/httpwait:
// alerts, bot and cmd build on it.
package graph
