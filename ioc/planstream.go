package ioc

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
)

// planSpools are the planner's lists as long as the feed, spooled.
type planSpools struct {
	feedSkips, superseded, planSkips *spool[Skip]
	foreignSkips, removalSkips       *spool[keyedSkip]
	leftOut                          *spool[ranked]
}

func newPlanSpools() *planSpools {
	return &planSpools{
		feedSkips:    newSpool[Skip](nil, encSkip, decSkip),
		superseded:   newSpool[Skip](nil, encSkip, decSkip),
		planSkips:    newSpool[Skip](nil, encSkip, decSkip),
		foreignSkips: newSpool(byKeyedSkip, encKeyedSkip, decKeyedSkip),
		removalSkips: newSpool(byKeyedSkip, encKeyedSkip, decKeyedSkip),
		leftOut:      newSpool(compareRanked, encLeftOut, decLeftOut),
	}
}

// skipList is the spool of the planner's list.
func (s *planSpools) skipList(pl *planner, list *[]Skip) *spool[Skip] {
	switch list {
	case &pl.feedSkips:
		return s.feedSkips
	case &pl.superseded:
		return s.superseded
	}
	return s.planSkips
}

func (s *planSpools) keyedList(pl *planner, list *[]keyedSkip) *spool[keyedSkip] {
	if list == &pl.foreignSkips {
		return s.foreignSkips
	}
	return s.removalSkips
}

// eachSkip calls fn with the skips in the order of plan.skipped.
func (s *planSpools) eachSkip(fn func(Skip) error) error {
	for _, l := range []*spool[Skip]{s.feedSkips, s.superseded} {
		if err := l.each(fn); err != nil {
			return err
		}
	}
	for _, l := range []*spool[keyedSkip]{s.foreignSkips, s.removalSkips} {
		if err := l.each(func(k keyedSkip) error { return fn(k.skip) }); err != nil {
			return err
		}
	}
	return s.planSkips.each(fn)
}

func (s *planSpools) close() {
	if s == nil {
		return
	}
	s.feedSkips.close()
	s.superseded.close()
	s.planSkips.close()
	s.foreignSkips.close()
	s.removalSkips.close()
	s.leftOut.close()
}

// WritePlanJSON writes the plan as Plan (the method) returns it, encoded as
// a json.Encoder indenting by two spaces would, byte for byte; but the
// skips and left-out indicators, as long as the feed, are streamed from
// spools rather than held, so that memory does not grow with the feed.
func (s *Syncer) WritePlanJSON(ctx context.Context, w io.Writer) error {
	p, _, err := s.prepareWith(ctx, s.api, listSpool)
	if err != nil {
		return err
	}
	defer p.close()
	bw := bufio.NewWriterSize(w, 64<<10)
	jw := &jsonPlanWriter{w: bw}
	jw.raw("{\n")
	jw.field("import", true)
	imports, err := p.importsJSON()
	if err != nil {
		return err
	}
	for _, b := range imports {
		jw.next()
		jw.bytes(b)
	}
	imports = nil
	jw.end()
	jw.field("delete", false)
	for _, d := range p.deletes {
		jw.str(d.value)
	}
	jw.end()
	jw.field("skipped", false)
	if err := p.spools.eachSkip(func(sk Skip) error { jw.skip(sk); return jw.err }); err != nil {
		return err
	}
	jw.end()
	if p.retried > 0 {
		jw.field("retried", false)
		for _, e := range p.imports {
			if e.retry {
				jw.str(e.key)
			}
		}
		jw.end()
	}
	jw.field("left_out", false)
	if err := p.spools.leftOut.each(func(e ranked) error { jw.str(e.key); return jw.err }); err != nil {
		return err
	}
	jw.end()
	jw.raw(fmt.Sprintf(",\n  \"unchanged\": %d", p.unchanged))
	if p.guard != nil {
		b, err := json.Marshal(p.guard.Error())
		if err != nil {
			return err
		}
		jw.raw(",\n  \"refused\": " + string(b))
	}
	jw.raw("\n}\n")
	if jw.err != nil {
		return fmt.Errorf("write the plan: %w", jw.err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write the plan: %w", err)
	}
	return nil
}

// jsonPlanWriter writes the arrays of the plan one element at a time.
type jsonPlanWriter struct {
	w   *bufio.Writer
	n   int // elements of the current array
	err error
}

func (j *jsonPlanWriter) raw(s string) {
	if j.err == nil {
		_, j.err = j.w.WriteString(s)
	}
}

func (j *jsonPlanWriter) field(name string, first bool) {
	if !first {
		j.raw(",\n")
	}
	j.raw("  \"" + name + "\": [")
	j.n = 0
}

func (j *jsonPlanWriter) item(v any) {
	if j.err != nil {
		return
	}
	b, err := json.MarshalIndent(v, "    ", "  ")
	if err != nil {
		j.err = err
		return
	}
	if j.n > 0 {
		j.raw(",")
	}
	j.raw("\n    ")
	if j.err == nil {
		_, j.err = j.w.Write(b)
	}
	j.n++
}

func (j *jsonPlanWriter) bytes(b []byte) {
	if j.err == nil {
		_, j.err = j.w.Write(b)
	}
}

// str writes a string element, as item would, without reflection (the
// plan's long lists are strings and skips).
func (j *jsonPlanWriter) str(s string) {
	j.next()
	j.quoted(s)
}

// skip writes a Skip element, as item would with Skip.MarshalJSON.
func (j *jsonPlanWriter) skip(sk Skip) {
	j.next()
	j.raw("{\n      \"stix_id\": ")
	j.quoted(sk.StixID)
	j.raw(",\n      \"reason\": ")
	if sk.Detail == "" {
		j.quoted(string(sk.Reason))
	} else {
		j.quoted3(string(sk.Reason), ": ", sk.Detail)
	}
	j.raw("\n    }")
}

// next starts an element.
func (j *jsonPlanWriter) next() {
	if j.n > 0 {
		j.raw(",")
	}
	j.raw("\n    ")
	j.n++
}

// quoted writes s as encoding/json does (HTML characters escaped).
func (j *jsonPlanWriter) quoted(s string) {
	if j.err != nil {
		return
	}
	if plainJSON(s) {
		j.w.WriteByte('"') //nolint:errcheck // the bufio.Writer keeps its error for the next write
		j.w.WriteString(s) //nolint:errcheck // idem
		_, j.err = j.w.WriteString(`"`)
		return
	}
	b, err := json.Marshal(s)
	if err != nil {
		j.err = err
		return
	}
	_, j.err = j.w.Write(b)
}

// quoted3 writes a+b+c quoted, without building the string when none of
// them needs escaping (escapes are per character, and a, b are ASCII).
func (j *jsonPlanWriter) quoted3(a, b, c string) {
	if j.err != nil {
		return
	}
	if !plainJSON(a) || !plainJSON(b) || !plainJSON(c) {
		j.quoted(a + b + c)
		return
	}
	j.w.WriteByte('"') //nolint:errcheck // the bufio.Writer keeps its error for the next write
	j.w.WriteString(a) //nolint:errcheck // idem
	j.w.WriteString(b) //nolint:errcheck // idem
	j.w.WriteString(c) //nolint:errcheck // idem
	_, j.err = j.w.WriteString(`"`)
}

// plainJSON reports whether encoding/json writes s as is between quotes:
// printable ASCII without '"', '\\' and the HTML characters it escapes.
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&':
			return false
		}
	}
	return true
}

func (j *jsonPlanWriter) end() {
	if j.n > 0 {
		j.raw("\n  ")
	}
	j.raw("]")
}
