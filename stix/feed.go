package stix

import (
	"context"
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
// A malformed object (not decodable, properties of the wrong JSON type, bad timestamps, larger than
// maxObjectBytes) is passed as visit(nil, objErr) and reading continues. A broken source (bad
// JSON syntax, truncated, empty, a bundle with two "objects") is passed as visit(nil, objErr) with
// objErr wrapping ErrBrokenSource, and reading goes on with the next file. ReadFeed returns an error
// only for I/O problems (path missing, unreadable file), when visit returns one (returned unchanged)
// or when ctx ends. Memory use does not grow with the feed, nor with the size of one object.
// Process does the same on several cores.
func ReadFeed(ctx context.Context, path string, maxObjectBytes int, visit func(*Object, *ObjectError) error) error {
	return Process(ctx, path, ReadOptions{MaxObjectBytes: maxObjectBytes, Workers: 1}, pair, visitPair(visit))
}

// ReadFeedFrom is ReadFeed over one stream; source names it in Object.Source and ObjectError.Source.
func ReadFeedFrom(ctx context.Context, r io.Reader, source string, maxObjectBytes int, visit func(*Object, *ObjectError) error) error {
	return ProcessFrom(ctx, r, source, ReadOptions{MaxObjectBytes: maxObjectBytes, Workers: 1}, pair, visitPair(visit))
}

type objOrErr struct {
	o *Object
	e *ObjectError
}

func pair(o *Object, e *ObjectError) objOrErr { return objOrErr{o, e} }

func visitPair(visit func(*Object, *ObjectError) error) func(objOrErr) error {
	return func(p objOrErr) error { return visit(p.o, p.e) }
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
