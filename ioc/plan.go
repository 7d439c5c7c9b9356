package ioc

import (
	"cmp"
	"container/heap"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/defenderbot/defenderbot/defender"
	"github.com/defenderbot/defenderbot/stix"
	"github.com/defenderbot/defenderbot/store"
)

// Record statuses (store.IndicatorRecord.Status).
const (
	StatusImported = "imported"
	StatusFailed   = "failed"
)

// entry is the compact state kept per indicator the plan may send: the
// payload and what ranks it, not the STIX object.
type entry struct {
	key       string
	ind       defender.Indicator
	fp        string
	validFrom time.Time
	modified  time.Time
	// Set by the planner for indicators defenderbot already manages.
	update     bool   // Defender already has it from defenderbot
	defenderID string // its Defender id, kept if the update fails
	prevFP     string // fingerprint last sent successfully
	retry      bool   // rebuilt from a failed record, not from the feed
	// src, when not 0, is where the indicator's conversion is in the
	// spool (its offset + 1), and srcIdx its index there: once planned,
	// ind keeps only what ranks it, and the payload is read back when it
	// is sent or listed (plan.indicator).
	src    int64
	srcIdx int
}

// removal is an indicator a revoked or expired object asks to remove.
type removal struct {
	stixID string
	state  ObjectState
}

// keyedSkip is a skip reported in the order of its key.
type keyedSkip struct {
	key  string
	skip Skip
}

func severityRank(s string) int {
	switch s {
	case "High":
		return 4
	case "Medium":
		return 3
	case "Low":
		return 2
	case "Informational":
		return 1
	}
	return 0
}

// instant is a time as seconds and nanoseconds, without the pointer a
// time.Time holds.
type instant struct {
	sec  int64
	nsec int32
}

func instantOf(t time.Time) instant { return instant{sec: t.Unix(), nsec: int32(t.Nanosecond())} }

// time is a (in UTC): what is compared of t, not its location.
func (a instant) time() time.Time { return time.Unix(a.sec, int64(a.nsec)).UTC() }

func (a instant) compare(b instant) int {
	if c := cmp.Compare(a.sec, b.sec); c != 0 {
		return c
	}
	return cmp.Compare(a.nsec, b.nsec)
}

// merit is what decides between two indicators of the same value (better),
// compact: the planner keeps one per value that repeats.
type merit struct {
	severity   int8 // severityRank
	expires    bool
	expiration instant
	modified   instant
	externalID string
}

func meritOf(ind *defender.Indicator, modified time.Time) merit {
	m := merit{severity: int8(severityRank(ind.Severity)), modified: instantOf(modified), externalID: ind.ExternalID}
	if ind.ExpirationTime != nil {
		m.expires, m.expiration = true, instantOf(*ind.ExpirationTime)
	}
	return m
}

func (e *entry) merit() merit { return meritOf(&e.ind, e.modified) }

// better reports whether a should win over b for the same indicator: higher
// severity, then the later expiration (none is latest), then the newer object
// (modified), then the smaller STIX id so that feed order does not matter.
func better(a, b *entry) bool { return a.merit().beats(b.merit()) }

func (a merit) beats(b merit) bool {
	if a.severity != b.severity {
		return a.severity > b.severity
	}
	switch {
	case !a.expires && b.expires:
		return true
	case a.expires && !b.expires:
		return false
	case a.expires && b.expires:
		if c := a.expiration.compare(b.expiration); c != 0 {
			return c > 0
		}
	}
	if c := a.modified.compare(b.modified); c != 0 {
		return c > 0
	}
	return a.externalID < b.externalID
}

// candidate is what the planner keeps of the best indicator so far of a
// value several objects give: what ranks it, and where its conversion is in
// the spool, not its payload (read back once the feed is read).
type candidate struct {
	merit
	off int64 // the conversion's record in the spool
	idx int32 // the indicator's index in it
}

// rankedBefore orders indicators for the tenant limit (compareRanked).
func rankedBefore(a, b *entry) int { return compareRanked(rankOf(a), rankOf(b)) }

// ranked is what rankedBefore compares, compact and without pointers but
// the key: what a left-out indicator keeps while the plan is streamed.
type ranked struct {
	key                 string
	severity            int8
	validFrom, modified instant
}

func rankOf(e *entry) ranked {
	return ranked{key: e.key, severity: int8(severityRank(e.ind.Severity)), validFrom: instantOf(e.validFrom), modified: instantOf(e.modified)}
}

// compareRanked orders indicators for the tenant limit: highest severity
// first, then newest (valid_from, then modified), then by key.
func compareRanked(a, b ranked) int {
	if c := cmp.Compare(b.severity, a.severity); c != 0 {
		return c
	}
	if c := b.validFrom.compare(a.validFrom); c != 0 {
		return c
	}
	if c := b.modified.compare(a.modified); c != 0 {
		return c
	}
	return cmp.Compare(a.key, b.key)
}

// freshEntry is what the planner keeps of an indicator that would take a
// new slot in the tenant while the feed is read: what ranks it and where its
// conversion is in the spool, a tenth of an entry. The heap can hold
// tenant_limit of them (an unchanged sync fills it with candidates that are
// all left out): the entries of those kept are rebuilt from the spool once
// the feed is read (planner.freshEntries).
type freshEntry struct {
	ranked
	severity string // entry.ind.Severity, for a left-out one listed in memory
	src      int64  // entry.src
	srcIdx   int32  // entry.srcIdx
	e        *entry // the entry itself when it is not spooled (src 0: a retry)
}

func freshOf(e *entry) freshEntry {
	f := freshEntry{ranked: rankOf(e), severity: e.ind.Severity, src: e.src, srcIdx: int32(e.srcIdx)}
	if e.src == 0 {
		f.e = planned(e)
	}
	return f
}

// freshHeap holds the indicators that would take a new slot in the tenant,
// the lowest ranked on top, so that only as many as can fit are kept.
type freshHeap []freshEntry

func (h freshHeap) Len() int           { return len(h) }
func (h freshHeap) Less(i, j int) bool { return compareRanked(h[i].ranked, h[j].ranked) > 0 }
func (h freshHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *freshHeap) Push(x any)        { *h = append(*h, x.(freshEntry)) }
func (h *freshHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = freshEntry{}
	*h = old[:len(old)-1]
	return e
}

// deletion is one managed indicator to remove.
type deletion struct {
	key        string
	value      string
	defenderID string // empty: not in Defender, only the record goes
}

// plan is what a run will do.
type plan struct {
	imports []*entry
	// position is where the read of a positioned feed got to (Feed.Streams).
	position string
	deletes  []deletion
	// retried counts the imports that re-send a failed indicator's stored
	// payload because the feed did not bring its object this time.
	retried int
	// forget lists records to drop without any Defender call: failed
	// indicators never created by defenderbot whose value someone else
	// has added since.
	forget []string
	// skipCounts counts the skips by category; skipped and leftOut list
	// them only when the plan was asked to (they are as long as the feed).
	skipCounts   map[SkipReason]int
	skipped      []Skip
	leftOut      []*entry
	leftOutCount int
	// spools holds skipped and leftOut instead, on disk past a few
	// thousand, when the plan was asked to stream them (planInput.spool).
	spools *planSpools
	// convs holds the payloads of the imports (entry.src).
	convs     *convSpool
	unchanged int
	// dropped counts deletions of values the latest version of their object
	// no longer yields.
	dropped int
	// compound counts the live indicators taken from compound patterns.
	compound int
	// snapshotDeletes counts deletions caused by snapshot mode.
	snapshotDeletes int
	// snapshotHeld is set when snapshot deletions were not planned because
	// the feed could not be read completely, or held no object.
	snapshotHeld bool
	// guard is set when the snapshot delete guard refused the plan.
	guard error
}

// planInput is everything the planner looks at besides the feed.
type planInput struct {
	// records points into the store's listing: a map of the records
	// themselves would hold a second copy of every one.
	records map[string]*store.IndicatorRecord
	// inDefender is Defender's indicators by key; nil when not listed.
	inDefender map[string]listed
	// active is the number of active indicators in Defender (all creators).
	active            int
	now               time.Time
	snapshot          bool
	force             bool
	maxDeleteFraction float64
	tenantLimit       int
	// list: keep every skip and left-out indicator (Plan), not only counts (Run).
	list bool
	// spool (with list): keep them in spools, so that memory does not grow
	// with the feed (the streamed JSON plan).
	spool bool
}

// planner goes over the spooled conversions once the feed is read: it applies the latest version of
// every object and decides, as it goes, what each indicator needs. Its state
// is bounded by the records, Defender's indicators, the tenant limit and the
// sketch's candidates (ids and values that repeat), not by the feed.
type planner struct {
	in planInput
	sk *sketch

	read           int
	incomplete     bool // some object or source could not be read
	anonUnreadable bool // an unreadable object had no readable id: it may be a later version of any object

	// recIDs holds the STIX ids of the records: only their objects' yields
	// matter. yields holds, for those whose latest version was evaluated,
	// the keys that version asserts live (none when revoked, expired or not
	// expressible); kept holds those whose latest version could not be
	// evaluated. The planner removes what a new version dropped.
	recIDs map[string]bool
	yields map[string][]string
	kept   map[string]bool
	// recModified is, per STIX id, the latest "modified" its records came
	// from; older holds the ids whose version in the feed is older (a
	// replay): nothing of it is applied.
	recModified map[string]time.Time
	older       map[string]bool
	// dups merges the live indicators of repeated values (the sketch's
	// candidates), by the value's hash; every other value is decided as
	// soon as it is read.
	dups map[hash128]candidate
	// convs holds the conversions; off is where the current one starts.
	convs *convSpool
	off   int64
	// removals holds what revoked or expired objects remove, for managed or
	// repeated values; live the managed or repeated values a live object asserts.
	removals map[string]removal
	live     map[string]bool

	skipCounts                 map[SkipReason]int
	feedSkips, superseded      []Skip
	planSkips                  []Skip
	foreignSkips, removalSkips []keyedSkip

	unchanged  int
	compound   int
	inTenant   []*entry // imports that take no new slot (updates)
	forget     []string
	feedForget []string
	fresh      freshHeap
	freshCap   int // most fresh indicators that can fit; -1: no limit
	leftOut    []*entry
	leftOutN   int
	sp         *planSpools // the lists above, spooled (planInput.spool)

	// managedInDefender counts the records whose deletion would reach
	// Defender (defenderIDOf not empty).
	managedInDefender int
}

// ownIndicator reports whether Defender's indicator for k is one
// defenderbot created for the STIX object stixID (application and
// externalId), whether or not a record of it survived.
func (in *planInput) ownIndicator(k, stixID string) bool {
	d, ok := in.inDefender[k]
	return ok && stixID != "" && d.Application == Application && d.ExternalID == stixID
}

func newPlanner(in planInput, sk *sketch) *planner {
	pl := &planner{in: in, sk: sk, recIDs: map[string]bool{}, yields: map[string][]string{}, kept: map[string]bool{},
		recModified: map[string]time.Time{}, older: map[string]bool{},
		dups: map[hash128]candidate{}, removals: map[string]removal{}, live: map[string]bool{}, skipCounts: map[SkipReason]int{},
		freshCap: -1}
	if in.list && in.spool {
		pl.sp = newPlanSpools()
	}
	for k, r := range in.records {
		if r.StixID != "" {
			pl.recIDs[r.StixID] = true
			if r.StixModified.After(pl.recModified[r.StixID]) {
				pl.recModified[r.StixID] = r.StixModified
			}
		}
		if pl.defenderIDOf(k, r) != "" {
			pl.managedInDefender++
		}
	}
	if in.tenantLimit > 0 {
		// Deletions free at most one slot per managed indicator in Defender.
		pl.freshCap = max(in.tenantLimit-in.active+pl.managedInDefender, 0)
	}
	return pl
}

func (pl *planner) skip(list *[]Skip, s Skip) {
	pl.skipCounts[s.Reason]++
	switch {
	case pl.sp != nil:
		pl.sp.skipList(pl, list).add(s)
	case pl.in.list:
		*list = append(*list, s)
	}
}

func (pl *planner) keyedSkip(list *[]keyedSkip, key string, s Skip) {
	pl.skipCounts[s.Reason]++
	switch {
	case pl.sp != nil:
		pl.sp.keyedList(pl, list).add(keyedSkip{key, s})
	case pl.in.list:
		*list = append(*list, keyedSkip{key, s})
	}
}

// addConversion takes one converted object. STIX objects are versioned by "modified": the
// latest version is the object, whatever the order of the feed, so an older
// revoked copy removes nothing and a later revoked version removes the value.
// The sketch tells whether the object has other versions; if so, only the
// first occurrence of its latest version is applied, where it stands.
func (pl *planner) addConversion(c *Conversion) {
	pl.read++
	var st *idState
	if c.StixID != "" {
		st = pl.sk.id(c.StixID)
	}
	if st == nil {
		pl.apply(c) // its only version
		return
	}
	v := versionOf(c)
	pl.start(st, &v)
	if !st.hasRunning {
		st.running, st.hasRunning = v, true
	} else {
		old, kept := v, st.running
		if v.newer(st.running) {
			old, kept, st.running = st.running, v, v
		}
		pl.skip(&pl.superseded, skip(c.StixID, ReasonSuperseded,
			"modified "+old.modified().Format(time.RFC3339Nano)+", kept "+kept.modified().Format(time.RFC3339Nano)))
	}
	if st.applied || !v.same(st.win) {
		return
	}
	st.applied = true
	if st.unreadable {
		// The unreadable copy may be the latest one: apply no version.
		pl.skip(&pl.feedSkips, skip(c.StixID, ReasonVersionUnreadable))
		return
	}
	pl.apply(c)
}

// start completes, at the first occurrence of a repeated id, what the
// sketch knows of its versions: it saw the later ones, this is the first.
func (pl *planner) start(st *idState, first *version) {
	if st.started {
		return
	}
	st.started = true
	st.win, st.hasWin = st.laterMax, st.hasLaterMax
	if first != nil && (!st.hasWin || first.newer(st.win)) {
		st.win, st.hasWin = *first, true
	}
}

// addError records an object that could not be read.
func (pl *planner) addError(e *stix.ObjectError) {
	pl.read++
	pl.incomplete = true
	if e.ID == "" {
		pl.anonUnreadable = true
	} else if st := pl.sk.id(e.ID); st != nil {
		pl.start(st, nil)
		st.unreadable = true
	}
	pl.skip(&pl.feedSkips, skip(e.ID, ReasonUnreadable, e.Error()))
}

// apply takes the latest version of an object into account.
func (pl *planner) apply(c *Conversion) {
	if m, ok := pl.recModified[c.StixID]; ok && c.StixID != "" && c.modified.Before(m) {
		// A replay of an older version never overrides the newer one
		// defenderbot applied: nothing is imported, removed or dropped.
		pl.older[c.StixID] = true
		pl.skip(&pl.feedSkips, skip(c.StixID, ReasonOlderVersion,
			"modified "+c.modified.UTC().Format(time.RFC3339Nano)+", applied "+m.UTC().Format(time.RFC3339Nano)))
		return
	}
	pl.noteYield(c)
	for _, s := range c.Skipped {
		pl.skip(&pl.feedSkips, s)
	}
	switch c.State {
	case StateLive:
		if c.Compound {
			pl.compound += len(c.Indicators)
		}
		for i := range c.Indicators {
			k := c.key(i)
			h := pl.sk.hash('k', k)
			if !pl.sk.repeatsHash(h) {
				e := liveEntry(c, i, pl.off)
				pl.final(&e) // no other object gives this value
				continue
			}
			m := meritOf(&c.Indicators[i], c.modified)
			old, dup := pl.dups[h]
			switch {
			case !dup:
				pl.dups[h] = candidate{merit: m, off: pl.off, idx: int32(i)}
			case m.beats(old.merit):
				pl.skip(&pl.feedSkips, skip(old.externalID, ReasonDuplicate, k+" kept from "+m.externalID))
				pl.dups[h] = candidate{merit: m, off: pl.off, idx: int32(i)}
			default:
				pl.skip(&pl.feedSkips, skip(m.externalID, ReasonDuplicate, k+" kept from "+old.externalID))
			}
		}
	case StateRevoked, StateExpired:
		for i := range c.Indicators {
			k := c.key(i)
			if _, managed := pl.in.records[k]; !managed && !pl.sk.repeats(k) && !pl.in.ownIndicator(k, c.StixID) {
				// No other object gives this value and defenderbot does not
				// manage it: nothing to remove.
				pl.keyedSkip(&pl.removalSkips, k, removalSkip(k, removal{c.StixID, c.State}))
				continue
			}
			// Revocation wins over expiry when both are in the feed.
			if old, ok := pl.removals[k]; !ok || old.state == StateExpired {
				pl.removals[k] = removal{stixID: c.StixID, state: c.State}
			}
		}
	}
}

// liveEntry is the entry of indicator i of a live conversion, spooled at off.
func liveEntry(c *Conversion, i int, off int64) entry {
	return entry{key: c.key(i), ind: c.Indicators[i], fp: c.fingerprint(i), validFrom: c.validFrom, modified: c.modified,
		src: off + 1, srcIdx: i}
}

// planned is a copy of e, about to wait for the end of the feed among the
// imports, that keeps only what ranks it; its payload stays in the spool.
// (A copy: the entries of values unchanged or left out, most of a large
// feed, are never allocated.)
func planned(e *entry) *entry {
	p := new(entry)
	*p = *e
	if p.src != 0 {
		p.ind = defender.Indicator{Severity: e.ind.Severity, ExternalID: e.ind.ExternalID}
	}
	return p
}

// settleDups takes the winner of each value several objects give, read
// back from the spool once the whole feed is read. They are read in spool
// order, in one sequential pass (final's outcome does not depend on the
// order: what it lists is sorted later), and only one entry is built at a time.
func (pl *planner) settleDups() error {
	type winner struct {
		h   hash128
		off int64
		idx int
	}
	winners := make([]winner, 0, len(pl.dups))
	for h, d := range pl.dups {
		winners = append(winners, winner{h: h, off: d.off, idx: int(d.idx)})
	}
	pl.dups = nil
	slices.SortFunc(winners, func(a, b winner) int { return cmp.Or(cmp.Compare(a.off, b.off), cmp.Compare(a.idx, b.idx)) })
	if len(winners) == 0 {
		return nil
	}
	fw, err := pl.convs.forward(true)
	if err != nil {
		return err
	}
	for _, w := range winners {
		r, err := fw.at(w.off)
		if err != nil {
			return err
		}
		if r.err != nil || w.idx >= len(r.c.Indicators) {
			return fmt.Errorf("read the spooled feed: record at %d has no indicator %d", w.off, w.idx)
		}
		c := &r.c
		if pl.sk.hash('k', c.key(w.idx)) != w.h {
			return fmt.Errorf("read the spooled feed: record at %d is not the conversion it was", w.off)
		}
		e := liveEntry(c, w.idx, w.off)
		pl.final(&e)
	}
	return nil
}

func removalSkip(k string, rm removal) Skip {
	reason := ReasonRevokedNothing
	if rm.state == StateExpired {
		reason = ReasonExpiredNothing
	}
	return skip(rm.stixID, reason, k)
}

// noteYield records which values the latest version of an object asserts,
// or that it could not be evaluated, for the objects of records.
func (pl *planner) noteYield(c *Conversion) {
	if c.StixID == "" || !pl.recIDs[c.StixID] {
		return
	}
	if !c.evaluated {
		pl.kept[c.StixID] = true
		return
	}
	var keys []string
	if c.State == StateLive {
		keys = make([]string, len(c.Indicators))
		for i := range c.Indicators {
			keys[i] = c.key(i)
		}
	}
	pl.yields[c.StixID] = keys
}

// final takes e, the feed's indicator for its value once duplicates are
// merged.
func (pl *planner) final(e *entry) {
	if _, managed := pl.in.records[e.key]; managed || pl.sk.repeats(e.key) {
		pl.live[e.key] = true
	}
	pl.consider(e.key, e)
}

// consider plans the import of e unless it is unchanged or foreign.
func (pl *planner) consider(k string, e *entry) {
	rec, managed := pl.in.records[k]
	d, present := pl.in.inDefender[k]
	if present && d.Application != Application && (!managed || rec.DefenderID != d.ID) {
		// Someone else owns this value: never overwrite it, never
		// record it, so it can never be deleted by defenderbot. A
		// record of an attempt that never created it, or of an
		// indicator of ours someone replaced by their own (another id),
		// is stale: it is dropped.
		s := skip(e.ind.ExternalID, ReasonForeign, k)
		if e.retry {
			pl.skip(&pl.planSkips, s)
		} else {
			pl.keyedSkip(&pl.foreignSkips, k, s)
		}
		if managed {
			if e.retry {
				pl.forget = append(pl.forget, k)
			} else {
				pl.feedForget = append(pl.feedForget, k)
			}
		}
		return
	}
	listed := pl.in.inDefender != nil
	inTenant := present || (!listed && managed && rec.DefenderID != "")
	if managed && rec.Status == StatusImported && rec.Fingerprint == e.fp && inTenant {
		pl.unchanged++
		return
	}
	e.update = inTenant
	if managed {
		e.defenderID, e.prevFP = rec.DefenderID, rec.Fingerprint
	}
	if present {
		e.defenderID = d.ID
	}
	if inTenant {
		pl.inTenant = append(pl.inTenant, planned(e))
		return
	}
	// A new slot in the tenant: keep only what the tenant limit can take.
	switch {
	case pl.freshCap < 0 || len(pl.fresh) < pl.freshCap:
		heap.Push(&pl.fresh, freshOf(e))
	case len(pl.fresh) > 0 && compareRanked(rankOf(e), pl.fresh[0].ranked) < 0:
		pl.leave(pl.fresh[0])
		pl.fresh[0] = freshOf(e)
		heap.Fix(&pl.fresh, 0)
	default:
		pl.leave(freshEntry{ranked: rankOf(e), severity: e.ind.Severity})
	}
}

// leave counts (and, for Plan, lists) an indicator the tenant limit leaves out.
func (pl *planner) leave(f freshEntry) {
	pl.leftOutN++
	if pl.sp != nil {
		pl.sp.leftOut.add(f.ranked)
		return
	}
	if pl.in.list {
		pl.leftOut = append(pl.leftOut, &entry{key: f.key, ind: defender.Indicator{Severity: f.severity},
			validFrom: f.validFrom.time(), modified: f.modified.time()})
	}
}

// freshEntries rebuilds the entries of the fresh indicators kept, reading
// the spooled ones back in one sequential pass, as consider planned them.
func (pl *planner) freshEntries() ([]*entry, error) {
	out := make([]*entry, 0, len(pl.fresh))
	var spooled []freshEntry
	for _, f := range pl.fresh {
		if f.e != nil {
			out = append(out, f.e)
		} else {
			spooled = append(spooled, f)
		}
	}
	if len(spooled) == 0 {
		return out, nil
	}
	slices.SortFunc(spooled, func(a, b freshEntry) int {
		return cmp.Or(cmp.Compare(a.src, b.src), cmp.Compare(a.srcIdx, b.srcIdx))
	})
	fw, err := pl.convs.forward(true)
	if err != nil {
		return nil, err
	}
	for _, f := range spooled {
		off, idx := f.src-1, int(f.srcIdx)
		r, err := fw.at(off)
		if err != nil {
			return nil, err
		}
		if _, err := spooledIndicator(r, off, idx, f.key); err != nil {
			return nil, err
		}
		e := liveEntry(&r.c, idx, off)
		// A fresh indicator is not in the tenant: consider set no more.
		if rec, managed := pl.in.records[e.key]; managed {
			e.defenderID, e.prevFP = rec.DefenderID, rec.Fingerprint
		}
		out = append(out, planned(&e))
	}
	return out, nil
}

// isLive reports whether a live object of the feed asserts the managed or
// repeated value k.
func (pl *planner) isLive(k string) bool { return pl.live[k] }

// defenderIDOf is the Defender id a deletion of the record would hit;
// empty when only the record would go.
func (pl *planner) defenderIDOf(k string, rec *store.IndicatorRecord) string {
	if pl.in.inDefender == nil {
		return rec.DefenderID
	}
	d, ok := pl.in.inDefender[k]
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

// finish decides what to import and delete once the whole feed is read. Its
// only I/O reads back the spooled fresh imports kept (freshEntries).
func (pl *planner) finish() (*plan, error) {
	in := pl.in
	p := &plan{}

	deleted := map[string]bool{}
	addDelete := func(k string, rec *store.IndicatorRecord) {
		p.deletes = append(p.deletes, deletion{key: k, value: rec.Value, defenderID: pl.defenderIDOf(k, rec)})
		deleted[k] = true
	}
	for _, k := range sortedKeys(pl.removals) {
		if pl.isLive(k) {
			continue // another object of the feed still asserts it
		}
		rm := pl.removals[k]
		rec, managed := in.records[k]
		if !managed && in.ownIndicator(k, rm.stixID) {
			// No record (a run died between Defender's answer and the
			// record), but Defender's indicator is ours for this object.
			d := in.inDefender[k]
			p.deletes = append(p.deletes, deletion{key: k, value: d.IndicatorValue, defenderID: d.ID})
			deleted[k] = true
			continue
		}
		if !managed {
			pl.keyedSkip(&pl.removalSkips, k, removalSkip(k, rm))
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
		if rec.StixID == "" || deleted[k] || pl.older[rec.StixID] {
			continue
		}
		if pl.kept[rec.StixID] {
			pl.skip(&pl.planSkips, skip(rec.StixID, ReasonVersionKept, k))
			continue
		}
		keys, seen := pl.yields[rec.StixID]
		if !seen || slices.Contains(keys, k) {
			continue
		}
		if pl.isLive(k) {
			continue
		}
		if pl.anonUnreadable {
			pl.skip(&pl.planSkips, skip(rec.StixID, ReasonDropHeld, k))
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
			if rec.Status != StatusFailed || deleted[k] || pl.isLive(k) {
				continue
			}
			e, reason := retryEntry(*rec)
			if e == nil {
				pl.skip(&pl.planSkips, skip(rec.StixID, reason, k))
				continue
			}
			if e.ind.ExpirationTime != nil && !e.ind.ExpirationTime.After(in.now) {
				addDelete(k, rec) // as its expired object would
				continue
			}
			e.retry = true
			pl.consider(k, e)
		}
	}
	if in.snapshot {
		var absent []string
		for _, k := range sortedKeys(in.records) {
			if pl.isLive(k) || deleted[k] {
				continue
			}
			if id := in.records[k].StixID; pl.kept[id] || pl.older[id] {
				continue // its object is in the feed, in a version that could not be evaluated
			}
			absent = append(absent, k)
		}
		switch {
		case len(absent) == 0:
		case pl.incomplete || pl.read == 0:
			// Part of the feed was unreadable, or it holds no object at all
			// (an empty directory or file, a failed export): absence proves
			// nothing, and an empty snapshot must never wipe the tenant.
			p.snapshotHeld = true
		default:
			for _, k := range absent {
				addDelete(k, in.records[k])
				p.snapshotDeletes++
			}
		}
	}

	// Only deletions that reach Defender count, for the snapshot guard
	// (against the managed indicators Defender has: forgetting the record of
	// an indicator that never got there, a failed import, deletes nothing)
	// and for the slots they free.
	hits := 0
	for _, d := range p.deletes {
		if d.defenderID != "" {
			hits++
		}
	}
	if managed := pl.managedInDefender; in.snapshot && hits > 0 && !in.force && float64(hits) > in.maxDeleteFraction*float64(managed) {
		p.guard = fmt.Errorf("%w: snapshot would delete %d of %d managed indicators in Defender (%.1f%%), more than max_delete_fraction %.0f%%; check the feed, then raise iocs.max_delete_fraction or run `defenderbot push-iocs --force` once",
			ErrDeleteGuard, hits, managed, 100*float64(hits)/float64(managed), 100*in.maxDeleteFraction)
	}

	// Tenant limit: the new slots may not exceed what is left after deletions.
	if in.tenantLimit > 0 {
		room := max(in.tenantLimit-in.active+hits, 0)
		for len(pl.fresh) > room {
			pl.leave(heap.Pop(&pl.fresh).(freshEntry))
		}
	}
	fresh, err := pl.freshEntries()
	if err != nil {
		return nil, err
	}
	// Imports in key order, the feed's first, then the retried ones.
	var retried []*entry
	for _, e := range slices.Concat(pl.inTenant, fresh) {
		if e.retry {
			retried = append(retried, e)
		} else {
			p.imports = append(p.imports, e)
		}
	}
	byKey := func(a, b *entry) int { return cmp.Compare(a.key, b.key) }
	slices.SortFunc(p.imports, byKey)
	slices.SortFunc(retried, byKey)
	p.imports = append(p.imports, retried...)
	p.retried = len(retried)
	pl.inTenant, pl.fresh = nil, nil

	slices.Sort(pl.feedForget)
	p.forget = append(pl.feedForget, pl.forget...)
	p.unchanged = pl.unchanged
	p.compound = pl.compound
	p.skipCounts = pl.skipCounts
	p.leftOutCount = pl.leftOutN
	p.spools = pl.sp
	if in.list && pl.sp == nil {
		slices.SortFunc(pl.leftOut, rankedBefore)
		p.leftOut = pl.leftOut
		byKeyS := func(a, b keyedSkip) int { return cmp.Compare(a.key, b.key) }
		slices.SortFunc(pl.foreignSkips, byKeyS)
		slices.SortFunc(pl.removalSkips, byKeyS)
		p.skipped = slices.Concat(pl.feedSkips, pl.superseded)
		for _, ks := range slices.Concat(pl.foreignSkips, pl.removalSkips) {
			p.skipped = append(p.skipped, ks.skip)
		}
		p.skipped = append(p.skipped, pl.planSkips...)
	}
	return p, nil
}

// indicator is the payload of e, read back from the spool if need be.
func (p *plan) indicator(e *entry) (defender.Indicator, error) {
	if e.src == 0 {
		return e.ind, nil
	}
	r, err := p.convs.at(e.src - 1)
	if err != nil {
		return defender.Indicator{}, err
	}
	ind, err := spooledIndicator(r, e.src-1, e.srcIdx, e.key)
	if err != nil {
		return defender.Indicator{}, err
	}
	return *ind, nil
}

// spooledIndicator is indicator idx of r, the record read back at off,
// once checked to be the one of key.
func spooledIndicator(r *read, off int64, idx int, key string) (*defender.Indicator, error) {
	if r.err != nil || idx >= len(r.c.Indicators) || r.c.key(idx) != key {
		return nil, fmt.Errorf("read the spooled feed: record at %d is not the conversion of %s", off, key)
	}
	return &r.c.Indicators[idx], nil
}

// payloads calls fn with each import's payload (i: its index in
// p.imports), reading the spooled ones back in one sequential pass rather
// than one read per import.
func (p *plan) payloads(fn func(i int, ind *defender.Indicator) error) error {
	order := make([]int, 0, len(p.imports))
	for i, e := range p.imports {
		if e.src == 0 {
			if err := fn(i, &e.ind); err != nil {
				return err
			}
			continue
		}
		order = append(order, i)
	}
	if len(order) == 0 {
		return nil
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(p.imports[a].src, p.imports[b].src) })
	fw, err := p.convs.forward(false)
	if err != nil {
		return err
	}
	for _, i := range order {
		e := p.imports[i]
		r, err := fw.at(e.src - 1)
		if err != nil {
			return err
		}
		ind, err := spooledIndicator(r, e.src-1, e.srcIdx, e.key)
		if err != nil {
			return err
		}
		if err := fn(i, ind); err != nil {
			return err
		}
	}
	return nil
}

// importsJSON is the JSON of each import's payload as the plan lists it
// (json.MarshalIndent, four spaces in).
func (p *plan) importsJSON() ([][]byte, error) {
	out := make([][]byte, len(p.imports))
	err := p.payloads(func(i int, ind *defender.Indicator) (err error) {
		out[i], err = json.MarshalIndent(ind, "    ", "  ")
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// load reads the payloads of all the imports back (Plan lists them all).
func (p *plan) load() error {
	loaded := make([]defender.Indicator, len(p.imports))
	if err := p.payloads(func(i int, ind *defender.Indicator) error { loaded[i] = *ind; return nil }); err != nil {
		return err
	}
	for i, e := range p.imports {
		e.ind, e.src = loaded[i], 0
	}
	return nil
}

// close releases the plan's files.
func (p *plan) close() {
	p.spools.close()
	p.convs.close()
}

// retryEntry rebuilds the entry of a failed record from its stored payload;
// it returns nil and a skip reason when there is nothing usable to send.
func retryEntry(rec store.IndicatorRecord) (*entry, SkipReason) {
	if rec.Payload == "" {
		return nil, ReasonNoRetryPayload
	}
	var ind defender.Indicator
	if err := json.Unmarshal([]byte(rec.Payload), &ind); err != nil {
		return nil, ReasonBadRetryPayload
	}
	// The payload must be the record's own indicator, as defenderbot built it.
	v, err := NormalizeValue(ind.IndicatorType, ind.IndicatorValue)
	if err != nil || Key(ind.IndicatorType, v) != rec.Key || ind.Application != Application || ind.ID != "" {
		return nil, ReasonBadRetryPayload
	}
	e := &entry{key: rec.Key, ind: ind, modified: rec.StixModified}
	e.fp = Fingerprint(&e.ind)
	return e, ""
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
