// Package ioc turns STIX 2.1 indicators into Microsoft Defender indicators and
// keeps Defender in sync with a feed, sending only what changed.
//
// Conversion: only "indicator" objects whose pattern_type is "stix" (or
// absent) are read. With PatternsAll (iocs.patterns all) every non-negated "="
// comparison of the pattern on a supported path makes an indicator,
// wherever it stands (inside AND, OR, FOLLOWEDBY, under qualifiers), as the
// Sekoia.io playbook does; the report counts those taken from compound
// patterns. With PatternsSimple a pattern must be a pure disjunction (OR):
// AND, FOLLOWEDBY and qualifiers narrow a match and skip the pattern whole.
// Supported paths: ipv4-addr/ipv6-addr/domain-name/url values, file
// MD5/SHA-1/SHA-256 hashes and x509-certificate SHA-1 hashes; every other
// comparison is skipped with a reason. Values are
// validated and normalised (NormalizeValue). Several objects giving the same
// type and value merge into one indicator: the highest severity wins, then
// the latest valid_until (none is latest), then the newest object, then the
// smallest STIX id.
//
// Ownership: an indicator is defenderbot's when the store has a record of
// it with the same Defender id, or when Defender reports application
// "defenderbot" (Microsoft keeps the first creator's application). Each
// import batch is recorded (as failed, "unconfirmed") before the call, so a
// process killed between Defender's answer and the final record still knows
// the indicators; and a revocation finding no record still removes an
// indicator whose application is defenderbot and whose externalId is the
// revoked object's id. A value someone else holds in Defender (another
// application and another id than the record's, e.g. an analyst who
// replaced ours) is never overwritten, adopted or deleted; the feed's
// object is reported as skipped and a stale record dropped (the report's
// StaleDropped).
//
// Sync: each run lists Defender's indicators (for the 15,000 tenant limit,
// foreign values and drift) while it reads the feed, compares the feed with the records'
// fingerprints and sends only new or changed indicators, in batches of 500,
// recording after each batch. Revoked objects, and objects past valid_until,
// remove the indicators defenderbot imported. In snapshot mode managed
// indicators absent from the feed are removed too, unless part of the feed
// was unreadable or it held no object at all (even with Force), or the run
// would delete more than MaxDeleteFraction of the managed indicators
// Defender has (without Force): the guard counts only
// deletions that reach Defender, so forgetting the record of an indicator
// that never got there (a failed import) is not a deletion. A value someone
// else holds in Defender is never deleted: only defenderbot's record goes.
// Every per-indicator failure is recorded with the payload attempted and
// reported; incremental runs retry it from that payload even if the feed no
// longer brings its object, unless the feed revoked or expired it since, its
// expiration passed, or someone else added the value meanwhile.
//
// Versions: a STIX id seen several times is one object; only its version
// with the latest "modified" counts (on a tie: revoked, then expired, then
// live), so an older revoked copy removes nothing. If one version is
// unreadable no version is applied. Across runs, in both modes, the latest
// version of an object replaces what earlier versions gave: a managed value
// recorded for that STIX id which the version no longer yields as live
// (changed pattern; revoked, expired, or a pattern that parses but cannot be
// expressed) is removed, unless another live object of the feed still
// asserts it, in which case the record follows that object. A latest
// version that cannot be evaluated (invalid object, pattern that does not
// parse, not valid yet) removes nothing: its earlier values are kept and
// reported. Nor is anything removed this way while an object without a
// readable id is unreadable (it may be a later version). Each record keeps
// the "modified" of the version it came from, so a feed that replays an
// older version of an object is ignored for that object (reported), never
// believed over the newer one.
//
// Memory: a run does not hold the feed, nor anything per object of it, so a
// 1 GB feed does not need 1 GB of RAM. The feed is read, decoded and
// converted once, on every core; the conversions go, in feed order, to an
// unlinked temporary file (a compact binary record per object), and a
// Bloom filter of one bit per 8 bytes of feed (8 KiB to 16 MiB) finds the
// STIX ids and the values that occur more than once; only those are
// tracked, by a 128-bit hash (the sketch holds no string). The planner then goes over the spooled conversions (no
// JSON, no pattern parsing, a few times cheaper than the read; decoded on
// every core, applied in order): it applies
// the latest version of each object where that version stands in the
// feed, and settles every value that occurs once on the spot: unchanged
// ones are counted, updates kept (as many as defenderbot's records and
// Defender's indicators), new ones kept in a heap no larger than the
// tenant limit plus the managed indicators deletions may free, the rest
// counted as left out. The pass skims the spool (the indicators' titles
// and descriptions are skipped), and what waits to be sent keeps only what
// ranks it: each payload is read back from the spool when its batch is
// sent or the plan is written. Run counts skips and left-out values; Plan lists
// them (its output is as long as what it lists) and the streamed JSON plan
// (WritePlanJSON) spools them to disk. What still grows with the feed:
// each STIX id that occurs more than once (its versions' ranking), each
// value several objects give (what ranks its best indicator so far and
// where that indicator's conversion is in the spool, ~100 bytes: it is
// read back once the feed is read), the filter's false
// positives (~0.1% of ids and values up to ~2 GB of feed, more beyond,
// where the filter stops growing), and Plan's lists. Reading once also
// means a TAXII collection is downloaded once per run, and a file
// rewritten during a run does not matter: the run plans from what it read.
//
// Scheduling: every run (scheduled, from Slack, push-iocs) takes this
// process's run lock first, then the "iocs-sync" lease, renews the lease
// during the run (every 30 s, lapsing 90 s after the last renewal, so a
// killed run's lease is taken over within 2 minutes) and cancels the run if
// the lease is lost, so replicas never overlap. A refused run gets a
// *RunningError naming since when and on which replica the sync runs (and,
// for a lease held elsewhere, when it expires if that run is dead); it
// never touches, let alone releases, the lease of the run it found.
package ioc
