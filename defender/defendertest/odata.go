package defendertest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// This file implements the subset of OData that Defender's list endpoints
// accept: $filter (eq ne gt ge lt le, and, or, not, in, startswith,
// endswith, contains, parentheses), $top (max 10000), $skip, $orderby and
// $count. Property names are matched case-insensitively; string
// comparisons are case-insensitive, as Defender's are in practice.

const maxTop = 10000

type odataError struct{ msg string }

func (e *odataError) Error() string { return e.msg }

func odataErrf(format string, args ...any) error { return &odataError{fmt.Sprintf(format, args...)} }

// filterNode is a parsed $filter expression.
type filterNode interface {
	eval(rec map[string]any) bool
}

type andNode struct{ l, r filterNode }
type orNode struct{ l, r filterNode }
type notNode struct{ x filterNode }
type cmpNode struct {
	field string
	op    string
	lit   any // string, float64, bool, time.Time or nil
}
type inNode struct {
	field string
	lits  []any
}
type funcNode struct {
	fn, field string
	arg       string
}

func (n andNode) eval(rec map[string]any) bool { return n.l.eval(rec) && n.r.eval(rec) }
func (n orNode) eval(rec map[string]any) bool  { return n.l.eval(rec) || n.r.eval(rec) }
func (n notNode) eval(rec map[string]any) bool { return !n.x.eval(rec) }

func (n cmpNode) eval(rec map[string]any) bool {
	c, ok := compare(rec[n.field], n.lit)
	switch n.op {
	case "eq":
		return ok && c == 0
	case "ne":
		return !ok || c != 0
	case "gt":
		return ok && c > 0
	case "ge":
		return ok && c >= 0
	case "lt":
		return ok && c < 0
	case "le":
		return ok && c <= 0
	}
	return false
}

func (n inNode) eval(rec map[string]any) bool {
	for _, l := range n.lits {
		if c, ok := compare(rec[n.field], l); ok && c == 0 {
			return true
		}
	}
	return false
}

func (n funcNode) eval(rec map[string]any) bool {
	v, ok := rec[n.field].(string)
	if !ok {
		return false
	}
	v, arg := strings.ToLower(v), strings.ToLower(n.arg)
	switch n.fn {
	case "startswith":
		return strings.HasPrefix(v, arg)
	case "endswith":
		return strings.HasSuffix(v, arg)
	default:
		return strings.Contains(v, arg)
	}
}

// compare orders a record value against a literal; ok is false when they
// cannot be compared (null, type mismatch).
func compare(v, lit any) (int, bool) {
	if lit == nil {
		if v == nil {
			return 0, true
		}
		return 1, true
	}
	switch l := lit.(type) {
	case string:
		s, ok := v.(string)
		if !ok {
			return 0, false
		}
		return strings.Compare(strings.ToLower(s), strings.ToLower(l)), true
	case float64:
		f, ok := v.(float64)
		if !ok {
			return 0, false
		}
		switch {
		case f < l:
			return -1, true
		case f > l:
			return 1, true
		}
		return 0, true
	case bool:
		b, ok := v.(bool)
		if !ok || b != l {
			return 1, ok
		}
		return 0, true
	case time.Time:
		s, ok := v.(string)
		if !ok {
			return 0, false
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return 0, false
		}
		return t.Compare(l), true
	}
	return 0, false
}

// tokens of a $filter
type ftok struct {
	kind string // "(", ")", ",", "[", "]", "str", "word"
	val  string
}

func lexFilter(s string) ([]ftok, error) {
	var out []ftok
	i := 0
	for i < len(s) {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			i++
		case strings.IndexByte("(),[]", c) >= 0:
			out = append(out, ftok{kind: string(c)})
			i++
		case c == '\'':
			var b strings.Builder
			i++
			closed := false
			for i < len(s) {
				if s[i] == '\'' {
					if i+1 < len(s) && s[i+1] == '\'' {
						b.WriteByte('\'')
						i += 2
						continue
					}
					i++
					closed = true
					break
				}
				b.WriteByte(s[i])
				i++
			}
			if !closed {
				return nil, odataErrf("unterminated string literal")
			}
			out = append(out, ftok{kind: "str", val: b.String()})
		default:
			j := i
			for j < len(s) && strings.IndexByte(" \t(),[]'", s[j]) < 0 {
				j++
			}
			out = append(out, ftok{kind: "word", val: s[i:j]})
			i = j
		}
	}
	return out, nil
}

type filterParser struct {
	toks   []ftok
	pos    int
	fields map[string]string // lower name -> JSON name
}

func parseFilter(s string, fields []string) (filterNode, error) {
	toks, err := lexFilter(s)
	if err != nil {
		return nil, err
	}
	if len(toks) == 0 {
		return nil, odataErrf("the $filter expression is empty")
	}
	p := &filterParser{toks: toks, fields: map[string]string{}}
	for _, f := range fields {
		p.fields[strings.ToLower(f)] = f
	}
	n, err := p.or()
	if err != nil {
		return nil, err
	}
	if p.pos != len(p.toks) {
		return nil, odataErrf("syntax error at position %d in '%s'", p.pos, s)
	}
	return n, nil
}

func (p *filterParser) peek() (ftok, bool) {
	if p.pos >= len(p.toks) {
		return ftok{}, false
	}
	return p.toks[p.pos], true
}

func (p *filterParser) next() (ftok, error) {
	t, ok := p.peek()
	if !ok {
		return ftok{}, odataErrf("unexpected end of $filter expression")
	}
	p.pos++
	return t, nil
}

func (p *filterParser) expect(kind string) error {
	t, err := p.next()
	if err != nil {
		return err
	}
	if t.kind != kind {
		return odataErrf("expected '%s' but found '%s%s'", kind, t.kind, t.val)
	}
	return nil
}

func (p *filterParser) keyword(word string) bool {
	t, ok := p.peek()
	if ok && t.kind == "word" && strings.EqualFold(t.val, word) {
		p.pos++
		return true
	}
	return false
}

func (p *filterParser) or() (filterNode, error) {
	l, err := p.and()
	if err != nil {
		return nil, err
	}
	for p.keyword("or") {
		r, err := p.and()
		if err != nil {
			return nil, err
		}
		l = orNode{l, r}
	}
	return l, nil
}

func (p *filterParser) and() (filterNode, error) {
	l, err := p.unary()
	if err != nil {
		return nil, err
	}
	for p.keyword("and") {
		r, err := p.unary()
		if err != nil {
			return nil, err
		}
		l = andNode{l, r}
	}
	return l, nil
}

func (p *filterParser) unary() (filterNode, error) {
	if p.keyword("not") {
		x, err := p.unary()
		if err != nil {
			return nil, err
		}
		return notNode{x}, nil
	}
	return p.primary()
}

func (p *filterParser) field(name string) (string, error) {
	f, ok := p.fields[strings.ToLower(name)]
	if !ok {
		return "", odataErrf("Could not find a property named '%s' on this entity, or it cannot be filtered", name)
	}
	return f, nil
}

func (p *filterParser) primary() (filterNode, error) {
	t, err := p.next()
	if err != nil {
		return nil, err
	}
	if t.kind == "(" {
		n, err := p.or()
		if err != nil {
			return nil, err
		}
		return n, p.expect(")")
	}
	if t.kind != "word" {
		return nil, odataErrf("expected a property name but found '%s%s'", t.kind, t.val)
	}
	if nt, ok := p.peek(); ok && nt.kind == "(" {
		fn := strings.ToLower(t.val)
		if fn != "startswith" && fn != "endswith" && fn != "contains" {
			return nil, odataErrf("unknown function '%s'", t.val)
		}
		p.pos++
		ft, err := p.next()
		if err != nil {
			return nil, err
		}
		if ft.kind != "word" {
			return nil, odataErrf("%s expects a property name", fn)
		}
		field, err := p.field(ft.val)
		if err != nil {
			return nil, err
		}
		if err := p.expect(","); err != nil {
			return nil, err
		}
		at, err := p.next()
		if err != nil {
			return nil, err
		}
		if at.kind != "str" {
			return nil, odataErrf("%s expects a string literal", fn)
		}
		if err := p.expect(")"); err != nil {
			return nil, err
		}
		n := funcNode{fn: fn, field: field, arg: at.val}
		// Accept "startswith(x,'a') eq true" as well.
		if p.keyword("eq") {
			lt, err := p.next()
			if err != nil {
				return nil, err
			}
			if lt.kind != "word" || !strings.EqualFold(lt.val, "true") && !strings.EqualFold(lt.val, "false") {
				return nil, odataErrf("%s can only be compared with true or false", fn)
			}
			if strings.EqualFold(lt.val, "false") {
				return notNode{n}, nil
			}
		}
		return n, nil
	}
	field, err := p.field(t.val)
	if err != nil {
		return nil, err
	}
	opTok, err := p.next()
	if err != nil {
		return nil, err
	}
	op := strings.ToLower(opTok.val)
	if opTok.kind != "word" {
		return nil, odataErrf("expected an operator after '%s'", t.val)
	}
	switch op {
	case "eq", "ne", "gt", "ge", "lt", "le":
		lit, err := p.literal()
		if err != nil {
			return nil, err
		}
		return cmpNode{field: field, op: op, lit: lit}, nil
	case "in":
		open, err := p.next()
		if err != nil {
			return nil, err
		}
		closer := ")"
		switch open.kind {
		case "(":
		case "[":
			closer = "]"
		default:
			return nil, odataErrf("'in' expects a list in parentheses")
		}
		var lits []any
		for {
			lit, err := p.literal()
			if err != nil {
				return nil, err
			}
			lits = append(lits, lit)
			sep, err := p.next()
			if err != nil {
				return nil, err
			}
			if sep.kind == closer {
				break
			}
			if sep.kind != "," {
				return nil, odataErrf("expected ',' or '%s' in 'in' list", closer)
			}
		}
		return inNode{field: field, lits: lits}, nil
	}
	return nil, odataErrf("unknown operator '%s'", opTok.val)
}

func (p *filterParser) literal() (any, error) {
	t, err := p.next()
	if err != nil {
		return nil, err
	}
	if t.kind == "str" {
		return t.val, nil
	}
	if t.kind != "word" {
		return nil, odataErrf("expected a literal but found '%s'", t.kind)
	}
	switch strings.ToLower(t.val) {
	case "null":
		return nil, nil
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	if t.val != "" && (unicode.IsDigit(rune(t.val[0])) || t.val[0] == '-') {
		if strings.ContainsAny(t.val, "T:") || strings.Count(t.val, "-") >= 2 {
			for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
				if tm, err := time.Parse(layout, t.val); err == nil {
					return tm, nil
				}
			}
			return nil, odataErrf("'%s' is not a valid date-time literal", t.val)
		}
		if f, err := strconv.ParseFloat(t.val, 64); err == nil {
			return f, nil
		}
	}
	return nil, odataErrf("'%s' is not a valid literal (strings must be in single quotes)", t.val)
}

// toRecord turns an entity into its JSON object form for filtering.
func toRecord(v any) map[string]any {
	b, _ := json.Marshal(v)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}

type collection struct {
	Context  string `json:"@odata.context"`
	Count    *int   `json:"@odata.count,omitempty"`
	Value    []any  `json:"value"`
	NextLink string `json:"@odata.nextLink,omitempty"`
}

// listResponse applies the request's OData options to items (entities in
// their default order) and renders the collection.
func (s *Server) listResponse(r *http.Request, set string, fields []string, items []any) response {
	q := r.URL.Query()
	// The JSON object forms are built only to filter or order: a plain
	// listing of a tenant's 15,000 indicators would spend most of its time
	// here (the IOC engine's benchmark runs this emulator on its cores).
	var records []map[string]any
	f, ob := strings.TrimSpace(q.Get("$filter")), strings.TrimSpace(q.Get("$orderby"))
	if f != "" || ob != "" {
		records = make([]map[string]any, len(items))
		for i, it := range items {
			records[i] = toRecord(it)
		}
	}
	idx := make([]int, 0, len(items))
	if f != "" {
		node, err := parseFilter(f, fields)
		if err != nil {
			return errorResponse(http.StatusBadRequest, "ODataError", "Invalid filter clause: "+err.Error())
		}
		for i, rec := range records {
			if node.eval(rec) {
				idx = append(idx, i)
			}
		}
	} else {
		for i := range items {
			idx = append(idx, i)
		}
	}
	if ob != "" {
		if err := orderBy(ob, fields, records, idx); err != nil {
			return errorResponse(http.StatusBadRequest, "ODataError", "Invalid $orderby: "+err.Error())
		}
	}
	top, hasTop, err := intParam(q, "$top")
	if err != nil {
		return errorResponse(http.StatusBadRequest, "ODataError", err.Error())
	}
	if top > maxTop {
		return errorResponse(http.StatusBadRequest, "ODataError",
			fmt.Sprintf("The limit of '%d' for Top query has been exceeded. The value from the incoming request is '%d'.", maxTop, top))
	}
	skip, _, err := intParam(q, "$skip")
	if err != nil {
		return errorResponse(http.StatusBadRequest, "ODataError", err.Error())
	}
	total := len(idx)
	rest := idx[min(skip, len(idx)):]
	limit := len(rest)
	if hasTop {
		limit = min(limit, top)
	}
	page := min(limit, s.cfg.pageSize)
	out := collection{Context: metadata(r, set), Value: make([]any, 0, page)}
	for _, i := range rest[:page] {
		out.Value = append(out.Value, items[i])
	}
	if page < limit {
		nq := url.Values{}
		for k, v := range q {
			nq[k] = v
		}
		nq.Set("$skip", strconv.Itoa(skip+page))
		if hasTop {
			nq.Set("$top", strconv.Itoa(top-page))
		}
		out.NextLink = baseURL(r) + r.URL.Path + "?" + nq.Encode()
	}
	if strings.EqualFold(q.Get("$count"), "true") {
		out.Count = &total
	}
	return jsonResponse(http.StatusOK, out)
}

func intParam(q url.Values, name string) (int, bool, error) {
	v, ok := q[name]
	if !ok {
		return 0, false, nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(v[0]))
	if err != nil || n < 0 {
		return 0, false, odataErrf("Invalid value '%s' for %s query option: a non-negative integer is required", v[0], name)
	}
	return n, true, nil
}

func orderBy(spec string, fields []string, records []map[string]any, idx []int) error {
	type key struct {
		field string
		desc  bool
	}
	known := map[string]string{}
	for _, f := range fields {
		known[strings.ToLower(f)] = f
	}
	var keys []key
	for _, part := range strings.Split(spec, ",") {
		words := strings.Fields(part)
		if len(words) == 0 || len(words) > 2 {
			return odataErrf("'%s' is not a valid ordering", part)
		}
		f, ok := known[strings.ToLower(words[0])]
		if !ok {
			return odataErrf("Could not find a property named '%s' on this entity", words[0])
		}
		k := key{field: f}
		if len(words) == 2 {
			switch strings.ToLower(words[1]) {
			case "asc":
			case "desc":
				k.desc = true
			default:
				return odataErrf("'%s' is not asc or desc", words[1])
			}
		}
		keys = append(keys, k)
	}
	sort.SliceStable(idx, func(a, b int) bool {
		for _, k := range keys {
			c := orderCompare(records[idx[a]][k.field], records[idx[b]][k.field])
			if c == 0 {
				continue
			}
			if k.desc {
				return c > 0
			}
			return c < 0
		}
		return false
	})
	return nil
}

func orderCompare(a, b any) int {
	switch x := a.(type) {
	case string:
		y, _ := b.(string)
		if tx, err := time.Parse(time.RFC3339Nano, x); err == nil {
			if ty, err := time.Parse(time.RFC3339Nano, y); err == nil {
				return tx.Compare(ty)
			}
		}
		return strings.Compare(strings.ToLower(x), strings.ToLower(y))
	case float64:
		y, _ := b.(float64)
		switch {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	case bool:
		y, _ := b.(bool)
		switch {
		case x == y:
			return 0
		case !x:
			return -1
		}
		return 1
	case nil:
		if b == nil {
			return 0
		}
		return -1
	}
	return 0
}
