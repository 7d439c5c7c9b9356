package stix

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Object is one STIX object of a feed, with the properties an indicator consumer needs. Other
// properties are ignored. Timestamps are UTC.
type Object struct {
	Type           string     `json:"type"`
	ID             string     `json:"id"`
	SpecVersion    string     `json:"spec_version"`
	Name           string     `json:"name"`
	Description    string     `json:"description"`
	Pattern        string     `json:"pattern"`
	PatternType    string     `json:"pattern_type"`
	PatternVersion string     `json:"pattern_version"`
	Created        time.Time  `json:"created"`
	Modified       time.Time  `json:"modified"`
	ValidFrom      time.Time  `json:"valid_from"`
	ValidUntil     *time.Time `json:"valid_until"`
	Revoked        bool       `json:"revoked"`
	Labels         []string   `json:"labels"`
	IndicatorTypes []string   `json:"indicator_types"`
	Confidence     *int       `json:"confidence"`
	// XICObservableTypes is Sekoia's extension; its presence marks a Sekoia-originated object.
	XICObservableTypes []string `json:"x_ic_observable_types"`

	// Source is the file (or the source name given to ReadFeedFrom) the object came from.
	Source string `json:"-"`
	// Index is the object's 0-based position in its source.
	Index int `json:"-"`
}

// ErrBrokenSource is wrapped by an ObjectError that ends the reading of its source (bad JSON syntax,
// truncated or empty file, a top-level value that is no object, array or bundle): objects after that
// point in the source were not read. Match it with errors.Is.
var ErrBrokenSource = errors.New("source unreadable from here on")

// ObjectError reports an object that could not be decoded, or a source that could not be read further
// (then Err wraps ErrBrokenSource).
type ObjectError struct {
	Source string
	Index  int    // 0-based position of the object in its source; where reading stopped for a broken source
	ID     string // the object's id, if it could be read
	Err    error
}

func (e *ObjectError) Error() string {
	s := e.Source + ": object at index " + strconv.Itoa(e.Index)
	if e.ID != "" {
		s += " (" + e.ID + ")"
	}
	if e.Err == nil {
		return s + ": unknown error"
	}
	return s + ": " + e.Err.Error()
}

func (e *ObjectError) Unwrap() error { return e.Err }

// ReadFeed calls visit for every object under path, in order. path is a file holding a bundle, a
// JSON array of objects, or one or more objects, or a directory of such files (*.json, sorted by name,
// not recursive; other files are ignored).
//
// A malformed object (not decodable, properties of the wrong JSON type, bad timestamps) is passed as
// visit(nil, objErr) and reading continues. A broken source (bad JSON syntax, truncated, empty) is
// passed as visit(nil, objErr) with objErr wrapping ErrBrokenSource, and reading goes on with the next
// file. ReadFeed returns an error only for I/O problems (path missing, unreadable file), when visit
// returns one (returned unchanged) or when ctx ends. Memory use does not grow with the feed: objects
// are decoded one at a time.
func ReadFeed(ctx context.Context, path string, visit func(*Object, *ObjectError) error) error {
	files, err := FeedFiles(path)
	if err != nil {
		return err
	}
	for _, f := range files {
		if err := readFile(ctx, f, visit); err != nil {
			return err
		}
	}
	return nil
}

// FeedFiles lists the files ReadFeed reads for path, in its order: path itself when it is not a
// directory, else the directory's regular *.json files (symlinks followed), sorted by name.
func FeedFiles(path string) ([]string, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("stix feed: %w", err)
	}
	if !info.IsDir() {
		return []string{path}, nil
	}
	entries, err := os.ReadDir(path) // sorted by name
	if err != nil {
		return nil, fmt.Errorf("stix feed: %w", err)
	}
	var files []string
	for _, e := range entries {
		if filepath.Ext(e.Name()) != ".json" {
			continue
		}
		full := filepath.Join(path, e.Name())
		fi, err := os.Stat(full) // follows symlinks
		if err != nil {
			return nil, fmt.Errorf("stix feed: %w", err)
		}
		if fi.Mode().IsRegular() {
			files = append(files, full)
		}
	}
	return files, nil
}

func readFile(ctx context.Context, path string, visit func(*Object, *ObjectError) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("stix feed: %w", err)
	}
	defer f.Close() //nolint:errcheck // read-only
	return ReadFeedFrom(ctx, f, path, visit)
}

// ReadFeedFrom is ReadFeed over one stream; source names it in Object.Source and ObjectError.Source.
func ReadFeedFrom(ctx context.Context, r io.Reader, source string, visit func(*Object, *ObjectError) error) error {
	fr := &feedReader{ctx: ctx, dec: json.NewDecoder(r), source: source, visit: visit}
	err := fr.run()
	var b brokenErr
	if errors.As(err, &b) {
		return visit(nil, &ObjectError{Source: source, Index: fr.index, Err: fmt.Errorf("%w: %w", ErrBrokenSource, b.err)})
	}
	return err
}

// brokenErr marks an error that ends the current source but not the feed.
type brokenErr struct{ err error }

func (b brokenErr) Error() string { return b.err.Error() }

type feedReader struct {
	ctx    context.Context
	dec    *json.Decoder
	source string
	visit  func(*Object, *ObjectError) error
	index  int
}

// classify separates bad input (the source is broken) from I/O failures (the feed read fails).
func (fr *feedReader) classify(err error) error {
	var syn *json.SyntaxError
	switch {
	case errors.As(err, &syn):
		return brokenErr{fmt.Errorf("bad JSON at byte %d: %w", syn.Offset, err)}
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF): // EOF inside an array or object
		return brokenErr{fmt.Errorf("truncated JSON at byte %d", fr.dec.InputOffset())}
	}
	return fmt.Errorf("stix feed %s: read: %w", fr.source, err)
}

func (fr *feedReader) run() error {
	seen := false
	for {
		tok, err := fr.dec.Token()
		if errors.Is(err, io.EOF) {
			if !seen {
				return brokenErr{errors.New("empty source: no JSON value")}
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
			return brokenErr{fmt.Errorf("top-level value is %s, not a STIX object, an array of objects or a bundle", describeToken(tok))}
		}
	}
}

func describeToken(tok json.Token) string {
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
func (fr *feedReader) elements() error {
	for fr.dec.More() {
		if err := fr.ctx.Err(); err != nil {
			return err
		}
		var w *wireObject
		if err := fr.dec.Decode(&w); err != nil {
			var typ *json.UnmarshalTypeError
			if !errors.As(err, &typ) {
				return fr.classify(err)
			}
			id := ""
			if w != nil {
				id = w.ID
			}
			if err := fr.emitError(id, typeError(typ)); err != nil {
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
func (fr *feedReader) topObject() error {
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
				return brokenErr{errors.New(`top-level object has an "objects" property that is not an array`)}
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
	var w *wireObject
	if err := json.Unmarshal(whole, &w); err != nil {
		var typ *json.UnmarshalTypeError
		id := ""
		if w != nil {
			id = w.ID
		}
		if errors.As(err, &typ) {
			err = typeError(typ)
		}
		return fr.emitError(id, err)
	}
	return fr.emit(w)
}

func typeError(e *json.UnmarshalTypeError) error {
	if e.Field == "" {
		return fmt.Errorf("object is a JSON %s, not a JSON object", e.Value)
	}
	return fmt.Errorf("property %s is a JSON %s, want %s", e.Field, e.Value, jsonTypeName(e.Type.String()))
}

func jsonTypeName(goType string) string {
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

func (fr *feedReader) emitError(id string, err error) error {
	oe := &ObjectError{Source: fr.source, Index: fr.index, ID: id, Err: err}
	fr.index++
	return fr.visit(nil, oe)
}

func (fr *feedReader) emit(w *wireObject) error {
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

// wireObject is Object as JSON carries it: timestamps stay strings so that their format is checked
// here, with a clear message, rather than by time.Time's lenient unmarshaller.
type wireObject struct {
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

func (w *wireObject) object() (*Object, error) {
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

// ParseTimestamp reads a STIX timestamp (RFC 3339, "2024-01-02T03:04:05.678Z") and returns it in UTC.
// A numeric offset ("+02:00") is tolerated and converted; a timestamp without a time zone is refused,
// since its instant is unknown.
func ParseTimestamp(s string) (time.Time, error) {
	if t, msg := parseTimestamp(s); msg == "" {
		return t, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("bad timestamp %q: want RFC 3339 with a time zone, like 2024-01-02T03:04:05Z", s)
	}
	return t.UTC(), nil
}

// Validate checks the properties STIX 2.1 requires of the object: a type, and an id "<type>--<UUID>".
// For an indicator it also checks pattern, pattern_type and valid_from are present, valid_until (if
// any) is after valid_from, modified is not before created, and confidence is within 0..100. It
// returns every problem found, joined. It does not parse the pattern (see ParsePattern).
func (o *Object) Validate() error {
	if o == nil {
		return errors.New("nil object")
	}
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	switch {
	case o.Type == "":
		add("type is missing")
	case o.ID == "":
		add("id is missing")
	case !validID(o.Type, o.ID):
		add("id %q is not %s--<UUID>", o.ID, o.Type)
	}
	if !o.Created.IsZero() && !o.Modified.IsZero() && o.Modified.Before(o.Created) {
		add("modified %s is before created %s", o.Modified.Format(time.RFC3339Nano), o.Created.Format(time.RFC3339Nano))
	}
	if o.Confidence != nil && (*o.Confidence < 0 || *o.Confidence > 100) {
		add("confidence %d is outside 0..100", *o.Confidence)
	}
	if o.Type == "indicator" {
		if o.Pattern == "" {
			add("pattern is missing")
		}
		if o.PatternType == "" {
			add("pattern_type is missing")
		}
		if o.ValidFrom.IsZero() {
			add("valid_from is missing")
		} else if o.ValidUntil != nil && !o.ValidUntil.After(o.ValidFrom) {
			add("valid_until %s is not after valid_from %s", o.ValidUntil.Format(time.RFC3339Nano), o.ValidFrom.Format(time.RFC3339Nano))
		}
	}
	return errors.Join(errs...)
}

// validID checks "<type>--<UUID>" with the STIX schema's UUID rule (RFC 4122 version 1-5, variant 10xx).
func validID(typ, id string) bool {
	prefix := typ + "--"
	if len(id) != len(prefix)+36 || id[:len(prefix)] != prefix {
		return false
	}
	u := id[len(prefix):]
	for i := 0; i < 36; i++ {
		c := u[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		case 14:
			if c < '1' || c > '5' {
				return false
			}
		case 19:
			if !(c == '8' || c == '9' || c == 'a' || c == 'b' || c == 'A' || c == 'B') {
				return false
			}
		default:
			if !isHexDigit(c) {
				return false
			}
		}
	}
	return true
}

func isHexDigit(c byte) bool {
	return isDigit(c) || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F')
}
