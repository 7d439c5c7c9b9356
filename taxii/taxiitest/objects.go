package taxiitest

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"
)

// TimestampLayout is TAXII's timestamp: UTC, microseconds mandatory.
const TimestampLayout = "2006-01-02T15:04:05.000000Z"

type collection struct {
	id, title string
	canRead   bool
	objects   []*object // in date_added order
}

type object struct {
	id, typ   string
	version   time.Time // modified (or created)
	dateAdded time.Time
	raw       []byte
}

// AddCollection adds a readable, empty collection (no-op if it exists).
func (s *Server) AddCollection(id, title string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.collection(id, title)
}

func (s *Server) collection(id, title string) *collection {
	if c, ok := s.collections[id]; ok {
		return c
	}
	c := &collection{id: id, title: title, canRead: true}
	s.collections[id] = c
	s.order = append(s.order, id)
	return c
}

// SetCanRead sets whether the collection may be read (false: 403).
func (s *Server) SetCanRead(id string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.collection(id, id).canRead = ok
}

// AddObjects adds STIX objects (each one JSON object with type and id) to
// the collection, creating it if needed. Each is stamped with a date_added
// from the server's clock, strictly after the previous one's. It returns
// the date_added of the last object, in TAXII's format.
func (s *Server) AddObjects(id string, objs ...[]byte) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addObjects(id, s.now(), objs)
}

// AddObjectsAt is AddObjects with the date_added given (still kept strictly
// increasing).
func (s *Server) AddObjectsAt(id string, at time.Time, objs ...[]byte) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addObjects(id, at, objs)
}

func (s *Server) addObjects(id string, at time.Time, objs [][]byte) (string, error) {
	parsed := make([]*object, 0, len(objs))
	for i, raw := range objs {
		var head struct {
			Type     string `json:"type"`
			ID       string `json:"id"`
			Created  string `json:"created"`
			Modified string `json:"modified"`
		}
		if err := json.Unmarshal(raw, &head); err != nil {
			return "", fmt.Errorf("object %d: %w", i, err)
		}
		if head.Type == "" || head.ID == "" {
			return "", fmt.Errorf("object %d: type and id are required", i)
		}
		v := head.Modified
		if v == "" {
			v = head.Created
		}
		ver, _ := time.Parse(time.RFC3339Nano, v)
		parsed = append(parsed, &object{id: head.ID, typ: head.Type, version: ver, raw: append([]byte(nil), raw...)})
	}
	c := s.collection(id, id)
	last := ""
	for _, o := range parsed {
		t := at.UTC().Truncate(time.Microsecond)
		if !t.After(s.lastAdded) {
			t = s.lastAdded.Add(time.Microsecond)
		}
		s.lastAdded = t
		o.dateAdded = t
		c.objects = append(c.objects, o)
		last = t.Format(TimestampLayout)
	}
	return last, nil
}

// query is a parsed objects request.
type query struct {
	addedAfter *time.Time
	types, ids map[string]bool
	version    string // last, first, all
}

// match returns the collection's objects the query selects, in date_added order.
func (c *collection) match(q query) []*object {
	var sel []*object
	for _, o := range c.objects {
		if q.addedAfter != nil && !o.dateAdded.After(*q.addedAfter) {
			continue
		}
		if q.types != nil && !q.types[o.typ] {
			continue
		}
		if q.ids != nil && !q.ids[o.id] {
			continue
		}
		sel = append(sel, o)
	}
	if q.version == "all" {
		return sel
	}
	best := map[string]*object{}
	for _, o := range sel {
		b, ok := best[o.id]
		switch {
		case !ok:
			best[o.id] = o
		case q.version == "first" && o.version.Before(b.version):
			best[o.id] = o
		case q.version != "first" && !o.version.Before(b.version):
			best[o.id] = o
		}
	}
	out := make([]*object, 0, len(best))
	for _, o := range sel {
		if best[o.id] == o {
			out = append(out, o)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].dateAdded.Before(out[j].dateAdded) })
	return out
}
