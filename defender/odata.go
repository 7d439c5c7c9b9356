package defender

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// maxPageSize is Microsoft's largest $top.
const maxPageSize = 10000

// maxPages stops a list that never ends (a server repeating nextLink).
const maxPages = 1000

// odataString quotes s as an OData string literal, doubling any quote.
func odataString(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// odataTime formats t as an unquoted OData datetime.
func odataTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05Z")
}

// eqFilter joins "field eq 'value'" clauses for the non-empty values, in
// the given order.
func eqFilter(pairs ...string) string {
	var parts []string
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] != "" {
			parts = append(parts, pairs[i]+" eq "+odataString(pairs[i+1]))
		}
	}
	return strings.Join(parts, " and ")
}

// escapeQuery encodes a query value with %20 for spaces (Microsoft's
// examples use both; %20 is unambiguous).
func escapeQuery(v string) string {
	return strings.ReplaceAll(url.QueryEscape(v), "+", "%20")
}

// odataQuery builds "$filter=...&$top=...&$skip=..." (keys unescaped, as in
// Microsoft's docs).
func odataQuery(filter string, top, skip int) string {
	var parts []string
	if filter != "" {
		parts = append(parts, "$filter="+escapeQuery(filter))
	}
	if top > 0 {
		parts = append(parts, "$top="+strconv.Itoa(top))
	}
	if skip > 0 {
		parts = append(parts, "$skip="+strconv.Itoa(skip))
	}
	return strings.Join(parts, "&")
}

func validatePaging(top, skip int) error {
	if top < 0 || top > maxPageSize {
		return invalid("Top", "must be between 0 and %d", maxPageSize)
	}
	if skip < 0 {
		return invalid("Skip", "must not be negative")
	}
	return nil
}

// collection is Microsoft's OData collection envelope.
type collection struct {
	Value    []json.RawMessage `json:"value"`
	NextLink string            `json:"@odata.nextLink"`
}

// list fetches a collection. With top > 0 it returns at most top items from
// skip; with top == 0 it returns everything, following @odata.nextLink or,
// when the server gives none, advancing $skip while pages come back full.
// notFoundEmpty treats a 404 as an empty collection (GET /api/machines
// answers 404 when nothing matches).
func (c *Client) list(ctx context.Context, api, path, filter string, top, skip int, notFoundEmpty bool) ([]json.RawMessage, error) {
	pageSize := top
	if top == 0 {
		pageSize = maxPageSize
	}
	var items []json.RawMessage
	cl := &call{api: api, method: "GET", path: path, query: odataQuery(filter, pageSize, skip)}
	for pages := 0; ; pages++ {
		if pages >= maxPages {
			return nil, fmt.Errorf("defender: GET %s: more than %d pages, giving up", path, maxPages)
		}
		var page collection
		if _, err := c.do(ctx, cl, &page); err != nil {
			if notFoundEmpty && IsNotFound(err) && len(items) == 0 {
				return nil, nil
			}
			return nil, err
		}
		items = append(items, page.Value...)
		if top > 0 && len(items) >= top {
			return items[:top], nil
		}
		switch {
		case page.NextLink != "":
			cl = &call{api: api, method: "GET", path: path, next: page.NextLink}
		case len(page.Value) == pageSize && top == 0:
			skip += pageSize
			cl = &call{api: api, method: "GET", path: path, query: odataQuery(filter, pageSize, skip)}
		default:
			return items, nil
		}
	}
}
