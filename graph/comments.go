package graph

import (
	"context"
	"strings"
	"unicode/utf8"
)

// maxComment bounds a comment (Graph's limit is undocumented; the portal's
// comment box takes far less).
const maxComment = 30000

// CreateComment adds a comment to an alert and returns all its comments, as
// Graph answers. It is never re-sent once Graph may have received it: a
// retry could post it twice.
//
// Graph API docs: https://learn.microsoft.com/graph/api/security-alert-post-comments
//
// API: POST /v1.0/security/alerts_v2/{id}/comments
func (c *Client) CreateComment(ctx context.Context, alertID, comment string) ([]Comment, error) {
	p, err := alertPath(alertID)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(comment) == "" {
		return nil, invalid("comment", "is required")
	}
	if !utf8.ValidString(comment) || len(comment) > maxComment {
		return nil, invalid("comment", "must be valid text of at most %d bytes", maxComment)
	}
	body := map[string]string{"@odata.type": "microsoft.graph.security.alertComment", "comment": comment}
	var out struct {
		Value []Comment `json:"value"`
	}
	if err := c.do(ctx, &call{method: "POST", path: p + "/comments", body: body, once: true}, &out); err != nil {
		return nil, err
	}
	return out.Value, nil
}
