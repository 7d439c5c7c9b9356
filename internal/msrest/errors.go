package msrest

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"
	"unicode"

	"github.com/defenderbot/defenderbot/internal/httpwait"
)

// newStatusError reads Microsoft's error envelope (body is at most
// maxErrorBody): {"error":{"code","message","target","innerError":{"request-id"}}}.
func newStatusError(method, path string, status int, header http.Header, body []byte, now time.Time) *StatusError {
	se := &StatusError{StatusCode: status, Method: method, Path: path}
	se.RetryAfter, _ = httpwait.RetryAfter(header.Get("Retry-After"), now)
	var env struct {
		Error *struct {
			Code       string `json:"code"`
			Message    string `json:"message"`
			Target     string `json:"target"`
			InnerError struct {
				RequestID string `json:"request-id"`
			} `json:"innerError"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &env); err == nil && env.Error != nil {
		se.Code, se.Message, se.Target, se.RequestID = env.Error.Code, env.Error.Message, env.Error.Target, env.Error.InnerError.RequestID
	} else {
		se.Message = snippet(body)
	}
	if se.RequestID == "" {
		se.RequestID = header.Get("request-id")
	}
	return se
}

// snippet returns a short, printable excerpt of a non-JSON error body (an
// HTML error page from a proxy, for example).
func snippet(body []byte) string {
	const max = 200
	s := strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return ' '
		}
		return r
	}, string(body))
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > max {
		s = string(r[:max]) + "…"
	}
	return s
}
