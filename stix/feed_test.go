package stix

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/defenderbot/defenderbot/config"
	"github.com/defenderbot/defenderbot/internal/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// maxObjectBytes is the cap the product reads a feed with.
const maxObjectBytes = config.DefaultMaxObjectBytes

const (
	id1 = "indicator--f24eb993-4ece-47ff-90e1-fa3f87de85dc"
	id2 = "indicator--8c28aed8-8370-46d5-b7bf-877e6a4840d3"
	id3 = "indicator--11111111-2222-4333-8444-555555555555"
)

func ind(id string) string {
	return fmt.Sprintf(`{"type":"indicator","spec_version":"2.1","id":%q,"pattern":"[ipv4-addr:value = '1.2.3.4']",`+
		`"pattern_type":"stix","valid_from":"2024-01-01T00:00:00Z"}`, id)
}

// events renders what visit saw, in order: "obj <id>" or "err <index> <message>".
func events(t *testing.T, read func(visit func(*Object, *ObjectError) error) error) ([]string, []*Object, []*ObjectError) {
	t.Helper()
	var evs []string
	var objs []*Object
	var errs []*ObjectError
	err := read(func(o *Object, oe *ObjectError) error {
		switch {
		case o != nil && oe == nil:
			evs = append(evs, "obj "+o.ID)
			objs = append(objs, o)
		case o == nil && oe != nil:
			evs = append(evs, fmt.Sprintf("err %d %s", oe.Index, oe.Err))
			errs = append(errs, oe)
		default:
			t.Fatalf("visit got object %v and error %v", o, oe)
		}
		return nil
	})
	require.NoError(t, err)
	return evs, objs, errs
}

func readString(s string) func(visit func(*Object, *ObjectError) error) error {
	return func(visit func(*Object, *ObjectError) error) error {
		return ReadFeedFrom(context.Background(), strings.NewReader(s), "mem", maxObjectBytes, visit)
	}
}

func readPath(p string) func(visit func(*Object, *ObjectError) error) error {
	return func(visit func(*Object, *ObjectError) error) error {
		return ReadFeed(context.Background(), p, maxObjectBytes, visit)
	}
}

func TestReadFeed_Fixtures(t *testing.T) {
	path := testutil.Fixture(t, "sekoia/stix_objects_ipv4_and_file_hash.json")
	evs, objs, _ := events(t, readPath(path))
	require.Equal(t, []string{"obj " + id1, "obj " + id2}, evs)

	o := objs[0]
	assert.Equal(t, "indicator", o.Type)
	assert.Equal(t, "2.1", o.SpecVersion)
	assert.Equal(t, "77.91.78.118", o.Name)
	assert.Equal(t, "[ipv4-addr:value = '77.91.78.118']", o.Pattern)
	assert.Equal(t, "stix", o.PatternType)
	assert.Equal(t, time.Date(2023, 4, 3, 11, 35, 32, 984278000, time.UTC), o.Created)
	assert.Equal(t, time.Date(2023, 4, 19, 9, 3, 46, 63418000, time.UTC), o.Modified)
	assert.Equal(t, time.Date(2023, 4, 3, 0, 0, 0, 0, time.UTC), o.ValidFrom)
	require.NotNil(t, o.ValidUntil)
	assert.Equal(t, time.Date(2023, 4, 29, 0, 0, 0, 0, time.UTC), *o.ValidUntil)
	assert.False(t, o.Revoked)
	assert.Equal(t, []string{"malicious-activity"}, o.IndicatorTypes)
	require.NotNil(t, o.Confidence)
	assert.Equal(t, 100, *o.Confidence)
	assert.Equal(t, []string{"ipv4-addr"}, o.XICObservableTypes)
	assert.Equal(t, path, o.Source)
	assert.Equal(t, 0, o.Index)
	assert.Equal(t, 1, objs[1].Index)
	for _, o := range objs {
		require.NoError(t, o.Validate())
		_, err := ParsePattern(o.Pattern)
		require.NoError(t, err)
	}

	// Single-object files.
	for _, f := range []string{"sekoia/stix_object_ipv4.json", "sekoia/stix_object_file_hash.json"} {
		evs, objs, _ := events(t, readPath(testutil.Fixture(t, f)))
		require.Len(t, evs, 1, f)
		require.NoError(t, objs[0].Validate())
	}
}

func TestReadFeedFrom_Shapes(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"array", "[" + ind(id1) + "," + ind(id2) + "]", []string{"obj " + id1, "obj " + id2}},
		{"empty array", "[]", nil},
		{"bundle, objects last", `{"type":"bundle","id":"bundle--x","objects":[` + ind(id1) + "," + ind(id2) + "]}", []string{"obj " + id1, "obj " + id2}},
		{"bundle, objects first", `{"objects":[` + ind(id1) + `],"id":"bundle--x","type":"bundle"}`, []string{"obj " + id1}},
		{"bundle without type", `{"objects":[` + ind(id1) + `]}`, []string{"obj " + id1}},
		{"bundle with other type", `{"type":"report","objects":[` + ind(id1) + `]}`,
			[]string{"obj " + id1, `err 1 top-level object has an "objects" array but type "report", not "bundle"`}},
		{"single object", ind(id1), []string{"obj " + id1}},
		{"concatenated objects", ind(id1) + "\n" + ind(id2) + "\n", []string{"obj " + id1, "obj " + id2}},
		{"non-indicator objects are passed on", `[{"type":"malware","id":"malware--11111111-2222-4333-8444-555555555555","name":"x"}]`,
			[]string{"obj malware--11111111-2222-4333-8444-555555555555"}},
		{"broken objects in the middle", "[" + ind(id1) + `, "text", 5, null, {"id":"` + id3 + `","revoked":"yes"},` +
			`{"id":"` + id3 + `","valid_until":"2024-01-01T00:00:00"}, {"id":"` + id3 + `","created":12}, {"labels":[1]},` + ind(id2) + "]",
			[]string{
				"obj " + id1,
				"err 1 object is a JSON string, not a JSON object",
				"err 2 object is a JSON number, not a JSON object",
				"err 3 object is null",
				"err 4 property revoked is a JSON string, want boolean",
				`err 5 property valid_until: bad timestamp "2024-01-01T00:00:00": want RFC 3339 with a time zone, like 2024-01-02T03:04:05Z`,
				"err 6 property created is a JSON number, want string",
				"err 7 property labels is a JSON number, want string",
				"obj " + id2,
			}},
		{"truncated", "[" + ind(id1) + "," + ind(id2)[:40], []string{"obj " + id1, "err 1 source unreadable from here on: truncated JSON at byte 198"}},
		{"syntax error mid array", "[" + ind(id1) + ", {\"id\": ]", []string{"obj " + id1, "err 1 source unreadable from here on: bad JSON at byte 205: invalid character ']' looking for beginning of value"}},
		{"missing comma", "[" + ind(id1) + " " + ind(id2) + "]", []string{"obj " + id1, "err 1 source unreadable from here on: bad JSON at byte 198: expected comma after array element"}},
		{"open bracket only", "[", []string{"err 0 source unreadable from here on: truncated JSON at byte 1"}},
		{"open brace only", "{", []string{"err 0 source unreadable from here on: truncated JSON at byte 1"}},
		{"key only", `{"type"`, []string{"err 0 source unreadable from here on: truncated JSON at byte 7"}},
		{"empty", "  \n", []string{"err 0 source unreadable from here on: empty source: no JSON value"}},
		{"top-level string", `"hello"`, []string{"err 0 source unreadable from here on: top-level value is a string, not a STIX object, an array of objects or a bundle"}},
		{"objects not an array", `{"type":"observed-data","objects":{"0":{}}}`, []string{`err 0 source unreadable from here on: top-level object has an "objects" property that is not an array`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs, _, _ := events(t, readString(tt.in))
			assert.Equal(t, tt.want, evs)
		})
	}
}

func TestReadFeedFrom_ErrorDetails(t *testing.T) {
	in := `[{"id":"` + id3 + `","revoked":"yes"}, {]`
	_, _, errs := events(t, readString(in))
	require.Len(t, errs, 2)
	assert.Equal(t, id3, errs[0].ID, "the id is recovered from a partly decodable object")
	assert.False(t, errors.Is(errs[0], ErrBrokenSource))
	assert.Equal(t, "mem: object at index 0 ("+id3+"): property revoked is a JSON string, want boolean", errs[0].Error())
	assert.ErrorIs(t, errs[1], ErrBrokenSource)
	assert.Equal(t, "mem", errs[1].Source)
}

func TestReadFeed_Directory(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600))
	}
	write("b.json", `{"type":"bundle","id":"bundle--1","objects":[`+ind(id2)+`]}`)
	write("a.json", "["+ind(id1)+"]")
	write("c.json", "["+ind(id3)+", {") // broken: reported, then reading goes on
	write("d.json", ind(id1))
	write("notes.txt", "not json")
	write("e.json.bak", "[")
	require.NoError(t, os.Mkdir(filepath.Join(dir, "sub.json"), 0o700))

	evs, objs, errs := events(t, readPath(dir))
	assert.Equal(t, []string{
		"obj " + id1, "obj " + id2, "obj " + id3,
		"err 1 source unreadable from here on: truncated JSON at byte 198",
		"obj " + id1,
	}, evs)
	assert.Equal(t, filepath.Join(dir, "a.json"), objs[0].Source)
	assert.Equal(t, filepath.Join(dir, "b.json"), objs[1].Source)
	assert.Equal(t, filepath.Join(dir, "c.json"), errs[0].Source)
	assert.Equal(t, 0, objs[3].Index, "index restarts with each file")

	files, err := FeedFiles(dir)
	require.NoError(t, err)
	want := []string{"a.json", "b.json", "c.json", "d.json"}
	for i, name := range want {
		want[i] = filepath.Join(dir, name)
	}
	assert.Equal(t, want, files, "the files ReadFeed read, in its order")
	files, err = FeedFiles(want[0])
	require.NoError(t, err)
	assert.Equal(t, want[:1], files)
	_, err = FeedFiles(filepath.Join(dir, "missing"))
	assert.ErrorIs(t, err, os.ErrNotExist)
}

func TestReadFeed_Errors(t *testing.T) {
	ctx := context.Background()
	noop := func(*Object, *ObjectError) error { return nil }

	err := ReadFeed(ctx, filepath.Join(t.TempDir(), "missing.json"), maxObjectBytes, noop)
	require.ErrorIs(t, err, os.ErrNotExist)

	t.Run("visit error stops reading and is returned unchanged", func(t *testing.T) {
		stop := errors.New("stop")
		n := 0
		err := ReadFeedFrom(ctx, strings.NewReader("["+ind(id1)+","+ind(id2)+"]"), "mem", maxObjectBytes, func(*Object, *ObjectError) error {
			n++
			return stop
		})
		require.ErrorIs(t, err, stop)
		assert.Equal(t, 1, n)
	})
	t.Run("visit error on a broken source", func(t *testing.T) {
		stop := errors.New("stop")
		err := ReadFeedFrom(ctx, strings.NewReader("[{"), "mem", maxObjectBytes, func(*Object, *ObjectError) error { return stop })
		require.ErrorIs(t, err, stop)
	})
	t.Run("context cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(ctx)
		n := 0
		err := ReadFeedFrom(ctx, strings.NewReader("["+ind(id1)+","+ind(id2)+","+ind(id3)+"]"), "mem", maxObjectBytes, func(*Object, *ObjectError) error {
			n++
			cancel()
			return nil
		})
		require.ErrorIs(t, err, context.Canceled)
		assert.Equal(t, 1, n)
	})
	t.Run("I/O error is returned, not reported as a broken source", func(t *testing.T) {
		boom := errors.New("disk on fire")
		r := &failingReader{data: "[" + ind(id1) + ",", err: boom}
		n := 0
		err := ReadFeedFrom(ctx, r, "mem", maxObjectBytes, func(o *Object, oe *ObjectError) error {
			require.Nil(t, oe)
			n++
			return nil
		})
		require.ErrorIs(t, err, boom)
		assert.Equal(t, 1, n)
	})
}

type failingReader struct {
	data string
	err  error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if r.data == "" {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestObject_Validate(t *testing.T) {
	from := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	before := from.Add(-time.Hour)
	valid := func() *Object {
		return &Object{Type: "indicator", ID: id1, Pattern: "[a:b = 1]", PatternType: "stix", ValidFrom: from}
	}
	tests := []struct {
		name   string
		mutate func(o *Object)
		want   string
	}{
		{"valid", func(*Object) {}, ""},
		{"valid until later", func(o *Object) { u := from.Add(time.Second); o.ValidUntil = &u }, ""},
		{"non-indicator needs no pattern", func(o *Object) { *o = Object{Type: "malware", ID: "malware--11111111-2222-4333-8444-555555555555"} }, ""},
		{"no type", func(o *Object) { o.Type = "" }, "type is missing"},
		{"no id", func(o *Object) { o.ID = "" }, "id is missing"},
		{"wrong prefix", func(o *Object) { o.ID = "malware--f24eb993-4ece-47ff-90e1-fa3f87de85dc" }, `id "malware--f24eb993-4ece-47ff-90e1-fa3f87de85dc" is not indicator--<UUID>`},
		{"not a uuid", func(o *Object) { o.ID = "indicator--1234" }, `id "indicator--1234" is not indicator--<UUID>`},
		{"bad uuid version", func(o *Object) { o.ID = "indicator--f24eb993-4ece-07ff-90e1-fa3f87de85dc" }, `id "indicator--f24eb993-4ece-07ff-90e1-fa3f87de85dc" is not indicator--<UUID>`},
		{"bad uuid variant", func(o *Object) { o.ID = "indicator--f24eb993-4ece-47ff-c0e1-fa3f87de85dc" }, `id "indicator--f24eb993-4ece-47ff-c0e1-fa3f87de85dc" is not indicator--<UUID>`},
		{"no pattern", func(o *Object) { o.Pattern = "" }, "pattern is missing"},
		{"no pattern_type", func(o *Object) { o.PatternType = "" }, "pattern_type is missing"},
		{"no valid_from", func(o *Object) { o.ValidFrom = time.Time{} }, "valid_from is missing"},
		{"valid_until equal", func(o *Object) { u := from; o.ValidUntil = &u }, "valid_until 2024-01-01T00:00:00Z is not after valid_from 2024-01-01T00:00:00Z"},
		{"valid_until before", func(o *Object) { o.ValidUntil = &before }, "valid_until 2023-12-31T23:00:00Z is not after valid_from 2024-01-01T00:00:00Z"},
		{"modified before created", func(o *Object) { o.Created, o.Modified = from, before }, "modified 2023-12-31T23:00:00Z is before created 2024-01-01T00:00:00Z"},
		{"confidence", func(o *Object) { c := 101; o.Confidence = &c }, "confidence 101 is outside 0..100"},
		{"several problems", func(o *Object) { o.Pattern, o.PatternType = "", "" }, "pattern is missing\npattern_type is missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := valid()
			tt.mutate(o)
			err := o.Validate()
			if tt.want == "" {
				assert.NoError(t, err)
				return
			}
			assert.EqualError(t, err, tt.want)
		})
	}
}

func TestParseTimestamp(t *testing.T) {
	got, err := ParseTimestamp("2024-01-02T03:04:05.678Z")
	require.NoError(t, err)
	assert.Equal(t, time.Date(2024, 1, 2, 3, 4, 5, 678000000, time.UTC), got)
	got, err = ParseTimestamp("2024-01-02T05:04:05+02:00")
	require.NoError(t, err)
	assert.Equal(t, time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC), got)
	assert.Equal(t, time.UTC, got.Location())
	for _, bad := range []string{"", "2024-01-02", "2024-01-02T03:04:05", "2024-02-30T00:00:00Z", "yesterday"} {
		_, err := ParseTimestamp(bad)
		assert.Error(t, err, bad)
	}
}
