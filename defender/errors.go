package defender

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/defenderbot/defenderbot/internal/msrest"
)

// ErrInvalidArgument is wrapped by every validation error. Such an error names
// the offending field and, for enums, the allowed values; no request was sent.
var ErrInvalidArgument = errors.New("invalid argument")

// ErrOutcomeUnknown is wrapped when a machine-action request may or may not
// have reached Defender (timeout, dropped connection, 5xx) and a look-up did
// not find the action. The request is deliberately not re-sent: re-sending
// could run the action twice. The message says how to check.
var ErrOutcomeUnknown = errors.New("outcome unknown")

// ErrAuthentication is wrapped when no access token could be obtained
// (the shared transport's sentinel, so one errors.Is covers every client).
var ErrAuthentication = msrest.ErrAuthentication

// Error codes Microsoft returns that callers commonly branch on.
const (
	CodeResourceNotFound           = "ResourceNotFound"
	CodeNotFound                   = "NotFound"
	CodeActiveRequestAlreadyExists = "ActiveRequestAlreadyExists"
	CodeForbidden                  = "Forbidden"
	CodeTooManyRequests            = "TooManyRequests"
	CodeUnauthorized               = "Unauthorized"
)

// APIError is a non-2xx answer from the Defender API. Code, Message and Target
// come from Microsoft's {"error":{...}} envelope when the body has one.
type APIError struct {
	StatusCode int
	Code       string
	Message    string
	// Target is Microsoft's correlation id, useful when contacting support.
	Target string
	Method string
	// Path is the request path without host (query strings are left out).
	Path string
	// RetryAfter is the server's Retry-After, if any (429/503).
	RetryAfter time.Duration
}

// Error implements error.
func (e *APIError) Error() string {
	ref := ""
	if e.Target != "" {
		ref = "target " + e.Target
	}
	return msrest.Describe("defender", e.Method, e.Path, e.StatusCode, e.Code, e.Message, ref, e.RetryAfter)
}

// RateLimitError is returned when Defender still answers 429 after the
// client's retries, or asks for a wait longer than Config.MaxBackoff.
// RetryAfter (on the embedded APIError) says when to try again.
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

// IsNotFound reports whether err is a 404 from Defender (unknown machine,
// action, alert or indicator).
func IsNotFound(err error) bool {
	ae, ok := asAPIError(err)
	return ok && ae.StatusCode == http.StatusNotFound
}

// IsActiveRequestAlreadyExists reports whether Defender refused a machine
// action because the same action is already pending for that machine.
func IsActiveRequestAlreadyExists(err error) bool {
	ae, ok := asAPIError(err)
	if !ok {
		return false
	}
	if strings.EqualFold(ae.Code, CodeActiveRequestAlreadyExists) {
		return true
	}
	// Microsoft's docs only give the message text for this case.
	return ae.StatusCode == http.StatusBadRequest &&
		strings.Contains(strings.ToLower(ae.Message), "already in progress")
}

// IsForbidden reports whether err is a 403 (the app lacks the API role, or
// the device group is out of reach).
func IsForbidden(err error) bool {
	ae, ok := asAPIError(err)
	return ok && ae.StatusCode == http.StatusForbidden
}

// IsUnauthorized reports whether err is a 401 that survived a token refresh.
func IsUnauthorized(err error) bool {
	ae, ok := asAPIError(err)
	return ok && ae.StatusCode == http.StatusUnauthorized
}

// IsRateLimited reports whether err is Defender throttling the client; use
// RetryAfterOf to learn how long to wait.
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
	return fmt.Errorf("defender: %w: %s: %s", ErrInvalidArgument, field, fmt.Sprintf(format, args...))
}
