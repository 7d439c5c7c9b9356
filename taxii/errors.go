package taxii

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Categories of failure, matched with errors.Is on an *Error (or on the
// error wrapping one).
var (
	// ErrUnauthorized: the server refused the credentials (401).
	ErrUnauthorized = errors.New("unauthorized")
	// ErrForbidden: the credentials may not read the collection (403).
	ErrForbidden = errors.New("forbidden")
	// ErrNotFound: no such API root or collection, or one the credentials
	// may not see (TAXII servers may answer 404 instead of 401/403).
	ErrNotFound = errors.New("not found")
	// ErrThrottled: the server still answered 429 after the retries, or
	// asked to wait longer than the client's MaxWait.
	ErrThrottled = errors.New("throttled")
	// ErrServer: the server still failed (5xx) after the retries.
	ErrServer = errors.New("server error")
	// ErrBadResponse: a 2xx answer that is not a TAXII 2.1 envelope (wrong
	// media type, bad JSON, cut off, a page that does not move forward).
	ErrBadResponse = errors.New("not a valid TAXII 2.1 response")
)

// maxErrorBody caps how much of an error response is read.
const maxErrorBody = 64 << 10

// Error is a non-2xx answer from a TAXII server. Title, Description,
// ErrorID and ErrorCode come from the TAXII error resource when the body
// is one. It never holds credentials: URL is the request URL without its
// query, and credentials never travel in a URL.
type Error struct {
	StatusCode  int
	Method      string
	URL         string
	Title       string
	Description string
	ErrorID     string
	ErrorCode   string
	// RetryAfter is the server's Retry-After, if it sent one (429, 503).
	RetryAfter time.Duration
}

// Error implements error.
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "taxii: %s %s: %d %s", e.Method, e.URL, e.StatusCode, http.StatusText(e.StatusCode))
	switch {
	case e.Title != "" && e.Description != "":
		b.WriteString(": " + e.Title + ": " + e.Description)
	case e.Title != "":
		b.WriteString(": " + e.Title)
	case e.Description != "":
		b.WriteString(": " + e.Description)
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter)
	}
	if hint := e.hint(); hint != "" {
		b.WriteString("; " + hint)
	}
	return b.String()
}

func (e *Error) hint() string {
	switch e.StatusCode {
	case http.StatusUnauthorized:
		return "check iocs.taxii.username and password, or token"
	case http.StatusForbidden:
		return "the credentials may not read this collection"
	case http.StatusNotFound:
		return "check iocs.taxii.url (the API root) and iocs.taxii.collection, and that the credentials may see them"
	}
	return ""
}

// Is matches the category sentinels by status code.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrUnauthorized:
		return e.StatusCode == http.StatusUnauthorized
	case ErrForbidden:
		return e.StatusCode == http.StatusForbidden
	case ErrNotFound:
		return e.StatusCode == http.StatusNotFound
	case ErrThrottled:
		return e.StatusCode == http.StatusTooManyRequests
	case ErrServer:
		return e.StatusCode >= 500
	}
	return false
}

// errorResource is TAXII 2.1's error body (§3.6.1); http_status is a string.
type errorResource struct {
	Title       string `json:"title"`
	Description string `json:"description"`
	ErrorID     string `json:"error_id"`
	ErrorCode   string `json:"error_code"`
}

func newError(method, u string, status int, body []byte, retryAfter time.Duration) *Error {
	e := &Error{StatusCode: status, Method: method, URL: u, RetryAfter: retryAfter}
	var r errorResource
	if json.Unmarshal(body, &r) == nil {
		e.Title, e.Description = clip(r.Title), clip(r.Description)
		e.ErrorID, e.ErrorCode = clip(r.ErrorID), clip(r.ErrorCode)
	}
	return e
}

// clip keeps a server-chosen string to a readable length, on one line.
func clip(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// BadResponseError explains an ErrBadResponse.
type BadResponseError struct {
	Method, URL string
	Reason      string
}

func (e *BadResponseError) Error() string {
	return fmt.Sprintf("taxii: %s %s: %s: %s", e.Method, e.URL, ErrBadResponse, e.Reason)
}

// Is matches ErrBadResponse.
func (e *BadResponseError) Is(target error) bool { return target == ErrBadResponse }
