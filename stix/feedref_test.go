package stix

// The reader as it was before the hand-written scanner (encoding/json, one object at a time): the
// reference the differential fuzz test compares the scanner with.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// refReadFeedFrom is ReadFeed over one stream; source names it in Object.Source and ObjectError.Source.
func refReadFeedFrom(ctx context.Context, r io.Reader, source string, visit func(*Object, *ObjectError) error) error {
	fr := &refFeedReader{ctx: ctx, dec: json.NewDecoder(r), source: source, visit: visit}
	err := fr.run()
	var b refBrokenErr
	if errors.As(err, &b) {
		return visit(nil, &ObjectError{Source: source, Index: fr.index, Err: fmt.Errorf("%w: %w", ErrBrokenSource, b.err)})
	}
	return err
}

// refBrokenErr marks an error that ends the current source but not the feed.
type refBrokenErr struct{ err error }

func (b refBrokenErr) Error() string { return b.err.Error() }

type refFeedReader struct {
	ctx    context.Context
	dec    *json.Decoder
	source string
	visit  func(*Object, *ObjectError) error
	index  int
}

// classify separates bad input (the source is broken) from I/O failures (the feed read fails).
func (fr *refFeedReader) classify(err error) error {
	var syn *json.SyntaxError
	switch {
	case errors.As(err, &syn):
		return refBrokenErr{fmt.Errorf("bad JSON at byte %d: %w", syn.Offset, err)}
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF): // EOF inside an array or object
		return refBrokenErr{fmt.Errorf("truncated JSON at byte %d", fr.dec.InputOffset())}
	}
	return fmt.Errorf("stix feed %s: read: %w", fr.source, err)
}

func (fr *refFeedReader) run() error {
	seen := false
	for {
		tok, err := fr.dec.Token()
		if errors.Is(err, io.EOF) {
			if !seen {
				return refBrokenErr{errors.New("empty source: no JSON value")}
			}
			return nil
		}
		if err != nil {
			return fr.classify(err)
		}
		seen = true
		switch tok {
		case json.Delim('['):
			if err := fr.elements(); err != nil {
				return err
			}
		case json.Delim('{'):
			if err := fr.topObject(); err != nil {
				return err
			}
		default:
			return refBrokenErr{fmt.Errorf("top-level value is %s, not a STIX object, an array of objects or a bundle", refDescribeToken(tok))}
		}
	}
}

func refDescribeToken(tok json.Token) string {
	switch tok.(type) {
	case string:
		return "a string"
	case float64, json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%v", tok)
}

// elements streams the members of an array whose '[' was just read, and its closing ']'.
func (fr *refFeedReader) elements() error {
	for fr.dec.More() {
		if err := fr.ctx.Err(); err != nil {
			return err
		}
		var w *refWireObject
		if err := fr.dec.Decode(&w); err != nil {
			var typ *json.UnmarshalTypeError
			if !errors.As(err, &typ) {
				return fr.classify(err)
			}
			id := ""
			if w != nil {
				id = w.ID
			}
			if err := fr.emitError(id, refTypeError(typ)); err != nil {
				return err
			}
			continue
		}
		if err := fr.emit(w); err != nil {
			return err
		}
	}
	if _, err := fr.dec.Token(); err != nil { // the closing ']'
		return fr.classify(err)
	}
	return nil
}

// topObject reads a top-level object whose '{' was just read: a bundle (an "objects" array, streamed
// whatever its position among the keys) or a single STIX object (kept whole; it is one object).
func (fr *refFeedReader) topObject() error {
	rest := map[string]json.RawMessage{}
	bundle := false
	for fr.dec.More() {
		tok, err := fr.dec.Token()
		if err != nil {
			return fr.classify(err)
		}
		key, _ := tok.(string)
		if key == "objects" && !bundle {
			tok, err := fr.dec.Token()
			if err != nil {
				return fr.classify(err)
			}
			if tok != json.Delim('[') {
				return refBrokenErr{errors.New(`top-level object has an "objects" property that is not an array`)}
			}
			bundle = true
			if err := fr.elements(); err != nil {
				return err
			}
			continue
		}
		var v json.RawMessage
		if err := fr.dec.Decode(&v); err != nil {
			return fr.classify(err)
		}
		rest[key] = v
	}
	if _, err := fr.dec.Token(); err != nil { // the closing '}'
		return fr.classify(err)
	}
	if bundle {
		var typ string
		if raw, ok := rest["type"]; ok && (json.Unmarshal(raw, &typ) != nil || typ != "bundle") {
			return fr.emitError("", fmt.Errorf(`top-level object has an "objects" array but type %s, not "bundle"`, raw))
		}
		return nil
	}
	whole, err := json.Marshal(rest)
	if err != nil {
		return fr.emitError("", err)
	}
	var w *refWireObject
	if err := json.Unmarshal(whole, &w); err != nil {
		var typ *json.UnmarshalTypeError
		id := ""
		if w != nil {
			id = w.ID
		}
		if errors.As(err, &typ) {
			err = refTypeError(typ)
		}
		return fr.emitError(id, err)
	}
	return fr.emit(w)
}

func refTypeError(e *json.UnmarshalTypeError) error {
	if e.Field == "" {
		return fmt.Errorf("object is a JSON %s, not a JSON object", e.Value)
	}
	return fmt.Errorf("property %s is a JSON %s, want %s", e.Field, e.Value, refJSONTypeName(e.Type.String()))
}

func refJSONTypeName(goType string) string {
	switch goType {
	case "string", "*string":
		return "string"
	case "bool":
		return "boolean"
	case "int", "*int":
		return "integer"
	case "[]string":
		return "array of strings"
	}
	return goType
}

func (fr *refFeedReader) emitError(id string, err error) error {
	oe := &ObjectError{Source: fr.source, Index: fr.index, ID: id, Err: err}
	fr.index++
	return fr.visit(nil, oe)
}

func (fr *refFeedReader) emit(w *refWireObject) error {
	if w == nil {
		return fr.emitError("", errors.New("object is null"))
	}
	o, err := w.object()
	if err != nil {
		return fr.emitError(w.ID, err)
	}
	o.Source, o.Index = fr.source, fr.index
	fr.index++
	return fr.visit(o, nil)
}

// refWireObject is Object as JSON carries it: timestamps stay strings so that their format is checked
// here, with a clear message, rather than by time.Time's lenient unmarshaller.
type refWireObject struct {
	Type               string   `json:"type"`
	ID                 string   `json:"id"`
	SpecVersion        string   `json:"spec_version"`
	Name               string   `json:"name"`
	Description        string   `json:"description"`
	Pattern            string   `json:"pattern"`
	PatternType        string   `json:"pattern_type"`
	PatternVersion     string   `json:"pattern_version"`
	Created            *string  `json:"created"`
	Modified           *string  `json:"modified"`
	ValidFrom          *string  `json:"valid_from"`
	ValidUntil         *string  `json:"valid_until"`
	Revoked            bool     `json:"revoked"`
	Labels             []string `json:"labels"`
	IndicatorTypes     []string `json:"indicator_types"`
	Confidence         *int     `json:"confidence"`
	XICObservableTypes []string `json:"x_ic_observable_types"`
}

func (w *refWireObject) object() (*Object, error) {
	o := &Object{
		Type: w.Type, ID: w.ID, SpecVersion: w.SpecVersion, Name: w.Name, Description: w.Description,
		Pattern: w.Pattern, PatternType: w.PatternType, PatternVersion: w.PatternVersion,
		Revoked: w.Revoked, Labels: w.Labels, IndicatorTypes: w.IndicatorTypes, Confidence: w.Confidence,
		XICObservableTypes: w.XICObservableTypes,
	}
	var errs []error
	for _, f := range []struct {
		name string
		in   *string
		out  *time.Time
	}{{"created", w.Created, &o.Created}, {"modified", w.Modified, &o.Modified}, {"valid_from", w.ValidFrom, &o.ValidFrom}} {
		if f.in == nil {
			continue
		}
		t, err := ParseTimestamp(*f.in)
		if err != nil {
			errs = append(errs, fmt.Errorf("property %s: %w", f.name, err))
		}
		*f.out = t
	}
	if w.ValidUntil != nil {
		t, err := ParseTimestamp(*w.ValidUntil)
		if err != nil {
			errs = append(errs, fmt.Errorf("property valid_until: %w", err))
		}
		o.ValidUntil = &t
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return o, nil
}
