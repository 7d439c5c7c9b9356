package taxiitest

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

const mediaType = "application/taxii+json;version=2.1"

// maxCursors bounds the next tokens kept (a long-running emulator).
const maxCursors = 1000

// cursor is what a next token stands for: the original filters and how far
// the client got.
type cursor struct {
	filters string
	offset  int
	// all is what the first request selected: later pages page through it
	// (objects added meanwhile come after its end, in a later read).
	all []*object
}

// statusWriter remembers the status for the request log.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Flush lets a handler push a partial body out (the cut-off fault).
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	sw := &statusWriter{ResponseWriter: w}
	defer func() {
		s.mu.Lock()
		s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery,
			Accept: r.Header.Get("Accept"), Auth: authKind(r), Status: sw.status})
		s.mu.Unlock()
	}()
	s.route(sw, r)
}

func authKind(r *http.Request) string {
	h := r.Header.Get("Authorization")
	switch {
	case h == "":
		return ""
	case strings.HasPrefix(strings.ToLower(h), "basic "):
		return "basic"
	case strings.HasPrefix(strings.ToLower(h), "bearer "):
		return "bearer"
	}
	return "other"
}

func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(r) {
		switch {
		case s.basic:
			w.Header().Set("WWW-Authenticate", `Basic realm="taxii"`)
		default:
			w.Header().Set("WWW-Authenticate", `Bearer realm="taxii"`)
		}
		writeError(w, http.StatusUnauthorized, "Unauthorized", "missing or wrong credentials")
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		writeError(w, http.StatusMethodNotAllowed, "Method not allowed", "this server is read-only")
		return
	}
	if !acceptable(r.Header.Get("Accept")) {
		writeError(w, http.StatusNotAcceptable, "Not acceptable", "the Accept header must allow "+mediaType)
		return
	}
	p := r.URL.Path
	switch {
	case p == "/taxii2/":
		writeJSON(w, http.StatusOK, map[string]any{"title": "defenderbot TAXII test server",
			"default": s.URL + APIRootPath, "api_roots": []string{s.URL + APIRootPath}})
		return
	case p == APIRootPath:
		writeJSON(w, http.StatusOK, map[string]any{"title": "api1", "versions": []string{mediaType},
			"max_content_length": 100 << 20})
		return
	case p == APIRootPath+"collections/":
		s.mu.Lock()
		var cs []map[string]any
		for _, id := range s.order {
			cs = append(cs, s.collectionResource(s.collections[id]))
		}
		s.mu.Unlock()
		if len(cs) == 0 {
			writeJSON(w, http.StatusOK, map[string]any{})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"collections": cs})
		return
	}
	rest, ok := strings.CutPrefix(p, APIRootPath+"collections/")
	if !ok {
		writeError(w, http.StatusNotFound, "Not found", "no resource at "+p)
		return
	}
	id, sub, _ := strings.Cut(rest, "/")
	s.mu.Lock()
	c, found := s.collections[id]
	var res map[string]any
	if found {
		res = s.collectionResource(c)
	}
	s.mu.Unlock()
	if !found {
		writeError(w, http.StatusNotFound, "ProcessingError", "Collection '"+id+"' not found")
		return
	}
	switch sub {
	case "":
		writeJSON(w, http.StatusOK, res)
	case "objects/":
		s.objects(w, r, id)
	default:
		writeError(w, http.StatusNotFound, "Not found", "no resource at "+p)
	}
}

func (s *Server) collectionResource(c *collection) map[string]any {
	return map[string]any{"id": c.id, "title": c.title, "can_read": c.canRead, "can_write": false,
		"media_types": []string{"application/stix+json;version=2.1"}}
}

func (s *Server) authorized(r *http.Request) bool {
	if !s.basic && s.token == "" {
		return true
	}
	if s.basic {
		if u, p, ok := r.BasicAuth(); ok &&
			subtle.ConstantTimeCompare([]byte(u), []byte(s.user)) == 1 &&
			subtle.ConstantTimeCompare([]byte(p), []byte(s.pass)) == 1 {
			return true
		}
	}
	if s.token != "" {
		h := r.Header.Get("Authorization")
		if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") &&
			subtle.ConstantTimeCompare([]byte(h[7:]), []byte(s.token)) == 1 {
			return true
		}
	}
	return false
}

// acceptable: an Accept naming TAXII 2.1 (or unversioned TAXII, meaning the
// latest), as medallion requires.
func acceptable(accept string) bool {
	for part := range strings.SplitSeq(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil || mt != "application/taxii+json" {
			continue
		}
		if v, ok := params["version"]; !ok || v == "2.1" {
			return true
		}
	}
	return false
}

func (s *Server) objects(w http.ResponseWriter, r *http.Request, id string) {
	s.mu.Lock()
	var f Fault
	if len(s.faults) > 0 {
		f = s.faults[0]
		s.faults = s.faults[1:]
	}
	c := s.collections[id]
	canRead := c.canRead
	s.mu.Unlock()
	if f.Delay > 0 {
		t := time.NewTimer(f.Delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	if f.Status != 0 {
		if f.RetryAfter != "" {
			w.Header().Set("Retry-After", f.RetryAfter)
		}
		writeError(w, f.Status, http.StatusText(f.Status), "injected fault")
		return
	}
	if !canRead {
		writeError(w, http.StatusForbidden, "Forbidden", "the collection may not be read")
		return
	}
	qv := r.URL.Query()
	q, limit, msg := s.parseQuery(qv)
	if msg != "" {
		writeError(w, http.StatusBadRequest, "Bad filter", msg)
		return
	}
	filters := filterKey(qv)

	s.mu.Lock()
	offset := 0
	var all []*object
	if tok := qv.Get("next"); tok != "" {
		cur, ok := s.cursors[tok]
		switch {
		case !ok:
			s.mu.Unlock()
			writeError(w, http.StatusBadRequest, "Bad next", "next "+tok+" is unknown or expired")
			return
		case cur.filters != id+"?"+filters:
			s.mu.Unlock()
			writeError(w, http.StatusBadRequest, "Bad next", "next must be sent with the same filters as the first request")
			return
		}
		offset, all = cur.offset, cur.all
	} else {
		all = c.match(q)
	}
	if offset > len(all) {
		offset = len(all)
	}
	page := all[offset:min(offset+limit, len(all))]
	more := offset+len(page) < len(all)
	next := ""
	if more && !s.noNext {
		s.nextID++
		next = "n" + strconv.Itoa(s.nextID)
		s.cursors[next] = &cursor{filters: id + "?" + filters, offset: offset + len(page), all: all}
		// Tokens stay valid for retries; the oldest expire past maxCursors.
		s.cursorOrder = append(s.cursorOrder, next)
		if len(s.cursorOrder) > maxCursors {
			delete(s.cursors, s.cursorOrder[0])
			s.cursorOrder = s.cursorOrder[1:]
		}
	}
	var body bytes.Buffer
	if len(page) == 0 {
		body.WriteString("{}")
	} else {
		body.WriteString(`{"more":` + strconv.FormatBool(more))
		if next != "" {
			b, _ := json.Marshal(next)
			body.WriteString(`,"next":` + string(b))
		}
		body.WriteString(`,"objects":[`)
		for i, o := range page {
			if i > 0 {
				body.WriteByte(',')
			}
			body.Write(o.raw)
		}
		body.WriteString("]}")
		w.Header().Set("X-TAXII-Date-Added-First", page[0].dateAdded.Format(TimestampLayout))
		w.Header().Set("X-TAXII-Date-Added-Last", page[len(page)-1].dateAdded.Format(TimestampLayout))
	}
	s.mu.Unlock()

	w.Header().Set("Content-Type", mediaType)
	if f.CutOff {
		w.Header().Set("Content-Length", strconv.Itoa(body.Len()))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body.Bytes()[:body.Len()/2])
		if fl, ok := w.(http.Flusher); ok {
			fl.Flush()
		}
		panic(http.ErrAbortHandler) // drops the connection mid-body
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body.Bytes())
}

// parseQuery checks the filters; msg explains a 400.
func (s *Server) parseQuery(qv url.Values) (q query, limit int, msg string) {
	limit = s.maxPage
	if v := qv.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return q, 0, "limit must be a positive integer"
		}
		limit = min(n, s.maxPage)
	}
	if v := qv.Get("added_after"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return q, 0, "added_after must be a timestamp such as 2024-01-02T03:04:05.000000Z"
		}
		t = t.UTC()
		q.addedAfter = &t
	}
	list := func(key string) map[string]bool {
		v := qv.Get(key)
		if v == "" {
			return nil
		}
		m := map[string]bool{}
		for x := range strings.SplitSeq(v, ",") {
			m[strings.TrimSpace(x)] = true
		}
		return m
	}
	q.types, q.ids = list("match[type]"), list("match[id]")
	switch v := qv.Get("match[version]"); v {
	case "", "last":
		q.version = "last"
	case "first", "all":
		q.version = v
	default:
		return q, 0, "match[version] must be last, first or all here"
	}
	return q, limit, ""
}

// filterKey is the request's filters, without next and limit, in a stable order.
func filterKey(qv url.Values) string {
	var keys []string
	for k := range qv {
		if k != "next" && k != "limit" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k + "=" + strings.Join(qv[k], ",") + "&")
	}
	return b.String()
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"title":"encode error"}`)
	}
	w.Header().Set("Content-Type", mediaType)
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// writeError sends TAXII's error resource (http_status is a string).
func writeError(w http.ResponseWriter, status int, title, description string) {
	writeJSON(w, status, map[string]string{"title": title, "description": description, "http_status": strconv.Itoa(status)})
}
