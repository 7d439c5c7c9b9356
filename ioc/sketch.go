package ioc

import (
	"hash/maphash"
	"math"
	"math/bits"
	"os"
	"time"

	"github.com/defenderbot/defenderbot/stix"
)

// The feed's conversions are gone over twice, as the feed is read and then
// from the spool, so that memory does not grow with the feed. Most STIX ids
// and most values appear once; only those that repeat (versions of an
// object, values several objects give) need state across the feed. The read
// (sketch) finds them with a Bloom filter of fixed maximum size: an id or
// value whose bits are all set already is a candidate, kept by its hash. A false positive only makes a unique id or value
// a candidate (a few bytes more, same outcome); there are no false negatives,
// so a repeated one is never missed.

// Bloom filter size: one bit per 8 bytes of feed (some 20 bits per id or
// value of Sekoia-shaped objects: about 0.1% false positives), between 8 KiB
// and 16 MiB. Past some 2 GB of feed the rate of false positives, hence the
// exact state, starts to grow.
const (
	minBloomBits = 1 << 16
	maxBloomBits = 1 << 27
	bloomProbes  = 4
)

// version is what ranks the versions of one STIX object. It holds no
// pointer (the "modified" instant as seconds and nanoseconds), nor does
// idState, so that the sketch costs the collector nothing to scan.
type version struct {
	sec  int64
	nsec int32
	rank int8 // ignored 0, live 1, expired 2, revoked 3: ties go to removal
}

func versionOf(c *Conversion) version {
	return version{sec: c.modified.Unix(), nsec: int32(c.modified.Nanosecond()),
		rank: [...]int8{StateIgnored: 0, StateLive: 1, StateExpired: 2, StateRevoked: 3}[c.State]}
}

// modified is the version's "modified", in UTC.
func (a version) modified() time.Time { return time.Unix(a.sec, int64(a.nsec)).UTC() }

// newer reports whether a is a later version than b (latest modified; on a
// tie revoked, then expired, then live, then ignored). Equal versions keep
// the first seen.
func (a version) newer(b version) bool {
	if a.sec != b.sec || a.nsec != b.nsec {
		return a.sec > b.sec || a.sec == b.sec && a.nsec > b.nsec
	}
	return a.rank > b.rank
}

func (a version) same(b version) bool { return a == b }

// idState is kept for a STIX id that (probably) appears more than once.
type idState struct {
	// As the feed is read: the latest readable version among the
	// occurrences after the first one (the planner sees the first one
	// first), and whether one of them was unreadable.
	laterMax    version
	hasLaterMax bool
	unreadable  bool
	// The planner's pass over the spool.
	started    bool    // first occurrence seen
	win        version // the latest version: the first occurrence equal to it is applied
	hasWin     bool
	applied    bool
	running    version // latest so far, for the "superseded" messages
	hasRunning bool
}

// hash128 names an id or a value in the sketch: two 64-bit hashes with
// independent seeds. Two strings of a feed share one with a probability of
// about n²/2^129 (some 10^-27 for a million), far below a disk's error
// rate; in exchange the sketch keeps 16 bytes and no pointer per id or
// value that repeats, not its string.
type hash128 [2]uint64

// sketch is the result of the read: which ids and values may repeat.
type sketch struct {
	seeds [2][2]maphash.Seed // by kind (ids, values), then half of the hash
	bloom []uint64
	nbits uint64
	// ids and keys that may repeat; everything else appears once. ids
	// indexes states.
	ids    map[hash128]int32
	states []idState
	keys   map[hash128]struct{}
	read   int
}

func newSketch(feedBytes int64) *sketch {
	n := min(max(uint64(max(feedBytes, 0))/8, minBloomBits), maxBloomBits)
	n = (n + 63) &^ 63
	seeds := [2][2]maphash.Seed{{maphash.MakeSeed(), maphash.MakeSeed()}, {maphash.MakeSeed(), maphash.MakeSeed()}}
	return &sketch{seeds: seeds, bloom: make([]uint64, n/64), nbits: n,
		ids: map[hash128]int32{}, keys: map[hash128]struct{}{}}
}

// hash names v, an id (kind 'i') or a value ('k'). Each kind has seeds of
// its own (an id and a value with the same text are told apart), so each
// half is one maphash.String: a maphash.Hash would copy v into its buffer.
func (s *sketch) hash(kind byte, v string) hash128 {
	seeds := &s.seeds[0]
	if kind == 'k' {
		seeds = &s.seeds[1]
	}
	return hash128{maphash.String(seeds[0], v), maphash.String(seeds[1], v)}
}

// id is the state of a STIX id that may repeat, nil for one that appears
// once.
func (s *sketch) id(id string) *idState {
	if i, ok := s.ids[s.hash('i', id)]; ok {
		return &s.states[i]
	}
	return nil
}

// repeats reports whether the value k may be given by several objects.
func (s *sketch) repeats(k string) bool { return s.repeatsHash(s.hash('k', k)) }

// repeatsHash is repeats of the value whose hash('k', ...) is h.
func (s *sketch) repeatsHash(h hash128) bool {
	_, ok := s.keys[h]
	return ok
}

// readDone ends the read: the filter (up to 16 MiB) is not needed by the
// planner, only the candidates it found.
func (s *sketch) readDone() { s.bloom = nil }

// seen adds h to the filter and reports whether it may have been added
// before.
func (s *sketch) seen(h hash128) bool {
	x := h[0]
	// Double hashing: h1 + i*h2 gives the probes. The reduction below keeps
	// the high bits, so the stride must be a full 64-bit value.
	h1, h2 := x, bits.RotateLeft64(x, 32)*0x9e3779b97f4a7c15|1
	hit := true
	for i := range uint64(bloomProbes) {
		b, _ := bits.Mul64(h1+i*h2, s.nbits) // uniform in [0, nbits)
		w, m := b/64, uint64(1)<<(b%64)
		if s.bloom[w]&m == 0 {
			hit = false
			s.bloom[w] |= m
		}
	}
	return hit
}

// addObject notes a readable object as the feed is read.
func (s *sketch) addObject(c *Conversion) {
	s.read++
	if h := s.hash('i', c.StixID); c.StixID != "" && s.seen(h) {
		st := s.idState(h)
		if v := versionOf(c); !st.hasLaterMax || v.newer(st.laterMax) {
			st.laterMax, st.hasLaterMax = v, true
		}
	}
	for i := range c.Indicators {
		if h := s.hash('k', c.key(i)); s.seen(h) {
			s.keys[h] = struct{}{}
		}
	}
}

// addError notes an unreadable object as the feed is read.
func (s *sketch) addError(id string) {
	s.read++
	if h := s.hash('i', id); id != "" && s.seen(h) {
		s.idState(h).unreadable = true
	}
}

// idState is the state of h, made if need be (the pointer is good until
// the next call).
func (s *sketch) idState(h hash128) *idState {
	i, ok := s.ids[h]
	if !ok {
		i = int32(len(s.states))
		s.states = append(s.states, idState{})
		s.ids[h] = i
	}
	return &s.states[i]
}

// feedSize is the size of the files ReadFeed would read under path (0 if
// unknown: ReadFeed reports the problem).
func feedSize(path string) int64 {
	files, err := stix.FeedFiles(path)
	if err != nil {
		return 0
	}
	var n int64
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil && n < math.MaxInt64-fi.Size() {
			n += fi.Size()
		}
	}
	return n
}
