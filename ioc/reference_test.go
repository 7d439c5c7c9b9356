package ioc

// The planner as it was before it streamed (everything of the feed in memory),
// kept as the oracle of TestPlannerMatchesReference.

import (
	"fmt"
	"slices"
	"time"

	"github.com/defenderbot/defenderbot/defender"
	"github.com/defenderbot/defenderbot/stix"
	"github.com/defenderbot/defenderbot/store"
)

// refFeedState accumulates the conversions of a streamed feed.
type refFeedState struct {
	read int
	// versions holds the conversion of the latest version of every object,
	// in order of first appearance (so reports follow the feed); byID
	// indexes it by STIX id. They are turned into desired and removals by
	// finish, once the whole feed is read.
	versions   []Conversion
	byID       map[string]int
	unreadable map[string]bool // ids with a version that could not be read
	superseded []Skip
	desired    map[string]*entry
	removals   map[string]removal
	// yields holds, for every object whose latest version was evaluated,
	// the keys that version asserts live (none when revoked, expired or
	// not expressible); kept holds the objects whose latest version could
	// not be evaluated. The planner removes what a new version dropped.
	yields map[string][]string
	kept   map[string]bool
	// recModified: the latest "modified" the records of each id came
	// from (set before finish); older: ids whose feed version is older.
	recModified map[string]time.Time
	older       map[string]bool
	skipped     []Skip
	compound    int  // live indicators from compound patterns
	incomplete  bool // some object or source could not be read
	// anonUnreadable: an unreadable object had no readable id, so it may be
	// a later version of any object.
	anonUnreadable bool
}

func newRefFeedState() *refFeedState {
	return &refFeedState{byID: map[string]int{}, unreadable: map[string]bool{},
		desired: map[string]*entry{}, removals: map[string]removal{},
		yields: map[string][]string{}, kept: map[string]bool{}, recModified: map[string]time.Time{}, older: map[string]bool{}}
}

// addObject records one read object.
func (f *refFeedState) addObject(obj *stix.Object, opts ConvertOptions, now time.Time) {
	f.read++
	f.addVersion(Convert(obj, opts, now))
}

// addError records an object that could not be read.
func (f *refFeedState) addError(e *stix.ObjectError) {
	f.read++
	f.incomplete = true
	if e.ID != "" {
		f.unreadable[e.ID] = true
	} else {
		f.anonUnreadable = true
	}
	// Its own slot keeps the skip in feed order.
	f.versions = append(f.versions, Conversion{Skipped: []Skip{skip(e.ID, ReasonUnreadable, e.Error())}})
}

// addVersion keeps c unless a later version of the same object is already
// kept. STIX objects are versioned by "modified": the latest version is the
// object, whatever the order of the feed, so an older revoked copy removes
// nothing and a later revoked version removes the value.
func (f *refFeedState) addVersion(c Conversion) {
	if c.StixID == "" {
		f.versions = append(f.versions, c)
		return
	}
	i, seen := f.byID[c.StixID]
	if !seen {
		f.byID[c.StixID] = len(f.versions)
		f.versions = append(f.versions, c)
		return
	}
	old := f.versions[i]
	if refNewerVersion(&c, &old) {
		f.versions[i], old, c = c, c, old
	}
	f.superseded = append(f.superseded, skip(c.StixID, ReasonSuperseded,
		"modified "+c.modified.UTC().Format(time.RFC3339Nano)+", kept "+old.modified.UTC().Format(time.RFC3339Nano)))
}

// refNewerVersion reports whether a is a later version than b. Versions with
// the same modified time are ranked revoked, expired, live, ignored so the
// choice does not depend on feed order; identical ranks keep b (the first).
func refNewerVersion(a, b *Conversion) bool {
	if !a.modified.Equal(b.modified) {
		return a.modified.After(b.modified)
	}
	rank := func(s ObjectState) int {
		return [...]int{StateIgnored: 0, StateLive: 1, StateExpired: 2, StateRevoked: 3}[s]
	}
	return rank(a.State) > rank(b.State)
}

// finish applies the kept versions once the whole feed is read. An object
// with an unreadable version is not applied at all: the unreadable copy may
// be the latest one.
func (f *refFeedState) finish() {
	for _, c := range f.versions {
		if c.StixID != "" && f.unreadable[c.StixID] {
			f.skipped = append(f.skipped, skip(c.StixID, ReasonVersionUnreadable))
			continue
		}
		if m, ok := f.recModified[c.StixID]; ok && c.StixID != "" && c.modified.Before(m) {
			f.older[c.StixID] = true
			f.skipped = append(f.skipped, skip(c.StixID, ReasonOlderVersion,
				"modified "+c.modified.UTC().Format(time.RFC3339Nano)+", applied "+m.UTC().Format(time.RFC3339Nano)))
			continue
		}
		f.noteYield(&c)
		f.add(c)
	}
	f.skipped = append(f.skipped, f.superseded...)
	f.versions, f.byID, f.superseded = nil, nil, nil
}

// noteYield records which values the latest version of an object asserts,
// or that it could not be evaluated.
func (f *refFeedState) noteYield(c *Conversion) {
	if c.StixID == "" {
		return
	}
	if !c.evaluated {
		f.kept[c.StixID] = true
		return
	}
	var keys []string
	if c.State == StateLive {
		keys = make([]string, len(c.Indicators))
		for i, ind := range c.Indicators {
			keys[i] = Key(ind.IndicatorType, ind.IndicatorValue)
		}
	}
	f.yields[c.StixID] = keys
}

func (f *refFeedState) add(c Conversion) {
	f.skipped = append(f.skipped, c.Skipped...)
	switch c.State {
	case StateLive:
		if c.Compound {
			f.compound += len(c.Indicators)
		}
		for i := range c.Indicators {
			e := &entry{ind: c.Indicators[i], validFrom: c.validFrom, modified: c.modified}
			e.key = Key(e.ind.IndicatorType, e.ind.IndicatorValue)
			e.fp = Fingerprint(&e.ind)
			old, dup := f.desired[e.key]
			switch {
			case !dup:
				f.desired[e.key] = e
			case better(e, old):
				f.desired[e.key] = e
				f.skipped = append(f.skipped, skip(old.ind.ExternalID, ReasonDuplicate, e.key+" kept from "+e.ind.ExternalID))
			default:
				f.skipped = append(f.skipped, skip(e.ind.ExternalID, ReasonDuplicate, e.key+" kept from "+old.ind.ExternalID))
			}
		}
	case StateRevoked, StateExpired:
		for _, ind := range c.Indicators {
			k := Key(ind.IndicatorType, ind.IndicatorValue)
			// Revocation wins over expiry when both are in the feed.
			if old, ok := f.removals[k]; !ok || old.state == StateExpired {
				f.removals[k] = removal{stixID: c.StixID, state: c.State}
			}
		}
	}
}

// refPlanInput is everything the planner looks at.
type refPlanInput struct {
	feed    *refFeedState
	records map[string]store.IndicatorRecord
	// inDefender is Defender's indicators by key; nil when not listed.
	inDefender map[string]defender.Indicator
	// active is the number of active indicators in Defender (all creators).
	active            int
	now               time.Time
	snapshot          bool
	force             bool
	maxDeleteFraction float64
	tenantLimit       int
}

// refMakePlan decides what to import and delete. It is pure: no I/O.
func refMakePlan(in refPlanInput) *plan {
	p := &plan{skipped: in.feed.skipped, compound: in.feed.compound}
	listed := in.inDefender != nil
	var fresh []*entry // indicators that will take a new slot in the tenant

	// consider plans the import of e unless it is unchanged or foreign.
	consider := func(k string, e *entry) {
		rec, managed := in.records[k]
		d, present := in.inDefender[k]
		if present && d.Application != Application && (!managed || rec.DefenderID != d.ID) {
			// Someone else owns this value: never overwrite it, never
			// record it, so it can never be deleted by defenderbot. A
			// record of an attempt that never created it is dropped.
			p.skipped = append(p.skipped, skip(e.ind.ExternalID, ReasonForeign, k))
			if managed {
				p.forget = append(p.forget, k)
			}
			return
		}
		inTenant := present || (!listed && managed && rec.DefenderID != "")
		if managed && rec.Status == StatusImported && rec.Fingerprint == e.fp && inTenant {
			p.unchanged++
			return
		}
		e.update = inTenant
		if managed {
			e.defenderID, e.prevFP = rec.DefenderID, rec.Fingerprint
		}
		if present {
			e.defenderID = d.ID
		}
		if !inTenant {
			fresh = append(fresh, e)
		}
		p.imports = append(p.imports, e)
	}
	for _, k := range sortedKeys(in.feed.desired) {
		consider(k, in.feed.desired[k])
	}

	// defenderIDOf is the Defender id a deletion of the record would hit;
	// empty when only the record would go.
	defenderIDOf := func(k string, rec store.IndicatorRecord) string {
		if !listed {
			return rec.DefenderID
		}
		d, ok := in.inDefender[k]
		switch {
		case !ok:
			// Already gone from Defender (expired, removed by hand): only the
			// record goes, and BatchDelete is spared a 404.
			return ""
		case d.Application != Application && d.ID != rec.DefenderID:
			// Someone else added the value (defenderbot's attempt failed, or
			// its indicator was replaced by hand): never delete theirs.
			return ""
		}
		return d.ID
	}
	deleted := map[string]bool{}
	addDelete := func(k string, rec store.IndicatorRecord) {
		p.deletes = append(p.deletes, deletion{key: k, value: rec.Value, defenderID: defenderIDOf(k, rec)})
		deleted[k] = true
	}
	for _, k := range sortedKeys(in.feed.removals) {
		if _, live := in.feed.desired[k]; live {
			continue // another object of the feed still asserts it
		}
		rm := in.feed.removals[k]
		rec, managed := in.records[k]
		if d, own := in.inDefender[k]; !managed && own && rm.stixID != "" && d.Application == Application && d.ExternalID == rm.stixID {
			p.deletes = append(p.deletes, deletion{key: k, value: d.IndicatorValue, defenderID: d.ID})
			deleted[k] = true
			continue
		}
		if !managed {
			reason := ReasonRevokedNothing
			if rm.state == StateExpired {
				reason = ReasonExpiredNothing
			}
			p.skipped = append(p.skipped, skip(rm.stixID, reason, k))
			continue
		}
		addDelete(k, rec)
	}
	// A new version of an object replaces the old one: a managed value it no
	// longer yields goes, unless another live object asserts it (its import
	// then points the record to that object). A version that could not be
	// evaluated removes nothing.
	for _, k := range sortedKeys(in.records) {
		rec := in.records[k]
		if rec.StixID == "" || deleted[k] || in.feed.older[rec.StixID] {
			continue
		}
		if in.feed.kept[rec.StixID] {
			p.skipped = append(p.skipped, skip(rec.StixID, ReasonVersionKept, k))
			continue
		}
		keys, seen := in.feed.yields[rec.StixID]
		if !seen || slices.Contains(keys, k) {
			continue
		}
		if _, live := in.feed.desired[k]; live {
			continue
		}
		if in.feed.anonUnreadable {
			p.skipped = append(p.skipped, skip(rec.StixID, ReasonDropHeld, k))
			continue
		}
		addDelete(k, rec)
		p.dropped++
	}
	if !in.snapshot {
		// Incremental feeds bring an object once: a failed indicator is
		// retried from its stored payload until it succeeds, unless the
		// feed revoked or expired it since (deleted above) or it expired.
		for _, k := range sortedKeys(in.records) {
			rec := in.records[k]
			if rec.Status != StatusFailed || deleted[k] {
				continue
			}
			if _, live := in.feed.desired[k]; live {
				continue
			}
			e, reason := retryEntry(rec)
			if e == nil {
				p.skipped = append(p.skipped, skip(rec.StixID, reason, k))
				continue
			}
			if e.ind.ExpirationTime != nil && !e.ind.ExpirationTime.After(in.now) {
				addDelete(k, rec) // as its expired object would
				continue
			}
			e.retry = true
			consider(k, e)
		}
	}
	if in.snapshot {
		var absent []string
		for _, k := range sortedKeys(in.records) {
			if _, live := in.feed.desired[k]; live || deleted[k] {
				continue
			}
			if id := in.records[k].StixID; in.feed.kept[id] || in.feed.older[id] {
				continue // its object is in the feed, in a version that could not be evaluated
			}
			absent = append(absent, k)
		}
		switch {
		case len(absent) == 0:
		case in.feed.incomplete || in.feed.read == 0:
			// Part of the feed was unreadable: absence proves nothing.
			p.snapshotHeld = true
		default:
			for _, k := range absent {
				addDelete(k, in.records[k])
				p.snapshotDeletes++
			}
		}
		// Only deletions that reach Defender count, against the managed
		// indicators Defender has: forgetting the record of an indicator that
		// never got there (a failed import) deletes nothing.
		managed, hits := 0, 0
		for k, r := range in.records {
			if defenderIDOf(k, r) != "" {
				managed++
			}
		}
		for _, d := range p.deletes {
			if d.defenderID != "" {
				hits++
			}
		}
		if hits > 0 && !in.force && float64(hits) > in.maxDeleteFraction*float64(managed) {
			p.guard = fmt.Errorf("%w: snapshot would delete %d of %d managed indicators in Defender (%.1f%%), more than max_delete_fraction %.0f%%; check the feed, then raise iocs.max_delete_fraction or run `defenderbot push-iocs --force` once",
				ErrDeleteGuard, hits, managed, 100*float64(hits)/float64(managed), 100*in.maxDeleteFraction)
		}
	}

	// Tenant limit: the new slots may not exceed what is left after deletions.
	if in.tenantLimit > 0 {
		freed := 0
		for _, d := range p.deletes {
			if d.defenderID != "" {
				freed++
			}
		}
		room := max(in.tenantLimit-in.active+freed, 0)
		if len(fresh) > room {
			slices.SortFunc(fresh, rankedBefore)
			out := map[string]bool{}
			for _, e := range fresh[room:] {
				out[e.key] = true
			}
			p.leftOut = fresh[room:]
			p.imports = slices.DeleteFunc(p.imports, func(e *entry) bool { return out[e.key] })
		}
	}
	for _, e := range p.imports {
		if e.retry {
			p.retried++
		}
	}
	return p
}
