package graph

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/defenderbot/defenderbot/defender"
	"github.com/defenderbot/defenderbot/internal/msrest"
)

// ErrInvalidArgument is wrapped by every validation error (no request was
// sent). It is defender's sentinel, so one errors.Is covers both clients.
var ErrInvalidArgument = defender.ErrInvalidArgument

// Graph error codes callers may branch on (Graph's codes are camelCase).
const (
	CodeItemNotFound    = "itemNotFound"
	CodeTooManyRequests = "TooManyRequests"
)

// APIError is a non-2xx answer from Graph. Code and Message come from the
// {"error":{code,message,innerError}} envelope when the body has one.
type APIError struct {
	StatusCode int
	Code       string
	Message    string
	// RequestID is innerError.request-id, for Microsoft support.
	RequestID string
	Method    string
	// Path is the request path without host or query.
	Path string
	// RetryAfter is the server's Retry-After, if any (429/503).
	RetryAfter time.Duration
}

// Error implements error.
func (e *APIError) Error() string {
	ref := ""
	if e.RequestID != "" {
		ref = "request-id " + e.RequestID
	}
	return msrest.Describe("graph", e.Method, e.Path, e.StatusCode, e.Code, e.Message, ref, e.RetryAfter)
}

// RateLimitError is returned when Graph still answers 429 after the
// client's retries, or asks for a wait longer than Config.MaxBackoff.
type RateLimitError struct {
	*APIError
}

// Error implements error.
func (e *RateLimitError) Error() string { return e.APIError.Error() }

// Unwrap lets errors.As find the embedded *APIError.
func (e *RateLimitError) Unwrap() error { return e.APIError }

func asAPIError(err error) (*APIError, bool) {
	var ae *APIError
	if errors.As(err, &ae) && ae != nil {
		return ae, true
	}
	return nil, false
}

// IsNotFound reports whether err is a 404 (unknown alert).
func IsNotFound(err error) bool {
	ae, ok := asAPIError(err)
	return ok && ae.StatusCode == http.StatusNotFound
}

// IsForbidden reports whether err is a 403 (the app lacks a SecurityAlert
// permission).
func IsForbidden(err error) bool {
	ae, ok := asAPIError(err)
	return ok && ae.StatusCode == http.StatusForbidden
}

// IsRateLimited reports whether err is Graph throttling the client.
func IsRateLimited(err error) bool {
	var rl *RateLimitError
	if errors.As(err, &rl) {
		return true
	}
	ae, ok := asAPIError(err)
	return ok && ae.StatusCode == http.StatusTooManyRequests
}

// RetryAfterOf returns the server-requested wait carried by err, or 0.
func RetryAfterOf(err error) time.Duration {
	if ae, ok := asAPIError(err); ok {
		return ae.RetryAfter
	}
	return 0
}

// invalid builds a validation error naming the field.
func invalid(field, format string, args ...any) error {
	return fmt.Errorf("graph: %w: %s: %s", ErrInvalidArgument, field, fmt.Sprintf(format, args...))
}
