package taxii

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
)

// ObjectsOptions filter a collection's objects.
type ObjectsOptions struct {
	// AddedAfter, when set, asks only for objects added after this TAXII
	// timestamp (exclusive), typically a previous run's DateAddedLast.
	AddedAfter string
	// Types are sent as match[type] (e.g. "indicator"); empty: every type.
	Types []string
	// Limit is the page size asked for (config: iocs.taxii.page_size); the
	// server may send fewer. It must be positive.
	Limit int
}

// Page is one page of a collection's objects.
type Page struct {
	// Number counts pages from 1.
	Number int
	// Objects streams the page's objects as a JSON array. It is only
	// valid during the callback.
	Objects io.Reader
	// DateAddedFirst and DateAddedLast are the page's X-TAXII-Date-Added-*
	// headers (empty if the server sent none).
	DateAddedFirst, DateAddedLast string
}

// Result summarises a read that reached the end of the collection.
type Result struct {
	Pages int
	// DateAddedLast is the latest X-TAXII-Date-Added-Last seen, or the
	// AddedAfter given when no page brought one (nothing new): the
	// AddedAfter of the next incremental read.
	DateAddedLast string
}

// envelope is TAXII 2.1's objects envelope; objects is kept raw and handed
// on as it is, so each object is decoded once, by the consumer.
type envelope struct {
	More    bool            `json:"more"`
	Next    string          `json:"next"`
	Objects json.RawMessage `json:"objects"`
}

// Objects reads a collection's objects page by page, following more/next
// to the end, and calls fn with each page that has objects, in order. A
// page is read whole before fn sees it (so memory is bounded by one page),
// which lets a page cut off in transit be fetched again without handing on
// any object twice. It returns once the collection is read to the end, or
// the first error: from the server (*Error, *BadResponseError), from fn
// (returned unchanged), or ctx's.
//
// API: GET {api-root}/collections/{id}/objects/?match[type]=…&limit=N[&added_after=…][&next=…]
func (c *Client) Objects(ctx context.Context, collection string, opts ObjectsOptions, fn func(*Page) error) (Result, error) {
	res := Result{DateAddedLast: opts.AddedAfter}
	if strings.TrimSpace(collection) == "" {
		return res, errors.New("taxii: collection ID is required")
	}
	if opts.Limit <= 0 {
		return res, errors.New("taxii: limit must be positive")
	}
	u := c.collectionURL(collection, "objects/")
	q := url.Values{}
	if len(opts.Types) > 0 {
		q.Set("match[type]", strings.Join(opts.Types, ","))
	}
	q.Set("limit", strconv.Itoa(opts.Limit))
	if opts.AddedAfter != "" {
		q.Set("added_after", opts.AddedAfter)
	}
	var env envelope
	var buf bytes.Buffer // one page's body, reused
	check := func(body []byte) error {
		// The objects' buffer is reused too: Unmarshal copies into it.
		env = envelope{Objects: env.Objects[:0]}
		if err := json.Unmarshal(body, &env); err != nil {
			return fmt.Errorf("the page is not a TAXII envelope (cut off?): %w", err)
		}
		return nil
	}
	for n := 1; ; n++ {
		hdr, _, err := c.get(ctx, u, q, &buf, check)
		if err != nil {
			return res, err
		}
		res.Pages = n
		first, last := hdr.Get("X-TAXII-Date-Added-First"), hdr.Get("X-TAXII-Date-Added-Last")
		if last != "" {
			res.DateAddedLast = last
		}
		if hasObjects(env.Objects) {
			if err := fn(&Page{Number: n, Objects: bytes.NewReader(env.Objects), DateAddedFirst: first, DateAddedLast: last}); err != nil {
				return res, err
			}
		}
		if !env.More {
			return res, nil
		}
		switch {
		case env.Next != "":
			if env.Next == q.Get("next") {
				return res, &BadResponseError{Method: "GET", URL: u, Reason: "the server says there is more but repeats the same next token"}
			}
			q.Set("next", env.Next)
		case last != "" && last != q.Get("added_after"):
			// No next: carry on after the last object seen (TAXII 2.1 §3.4).
			q.Del("next")
			q.Set("added_after", last)
		default:
			return res, &BadResponseError{Method: "GET", URL: u, Reason: "the server says there is more but gives no next token nor a new X-TAXII-Date-Added-Last"}
		}
	}
}

// hasObjects reports whether raw is anything but absent, null or [].
func hasObjects(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || string(t) == "null" {
		return false
	}
	if t[0] == '[' && len(bytes.TrimSpace(t[1:])) > 0 && bytes.TrimSpace(t[1:])[0] == ']' {
		return false
	}
	return true
}
