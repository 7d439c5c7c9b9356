// Package ioc turns STIX 2.1 indicators into Microsoft Defender indicators and
// keeps Defender in sync with a feed, sending only what changed.
//
// Conversion: only "indicator" objects whose pattern_type is "stix" (or
// absent) are read. A pattern must be a pure disjunction (OR); AND,
// FOLLOWEDBY and qualifiers narrow a match and are skipped whole, because
// splitting them into single values would block more than the feed asked.
// Only non-negated "=" comparisons on ipv4-addr/ipv6-addr/domain-name/url
// values, file MD5/SHA-1/SHA-256 hashes and x509-certificate SHA-1 hashes make
// indicators; every other comparison is skipped with a reason. Values are
// validated and normalised (NormalizeValue). Several objects giving the same
// type and value merge into one indicator: the highest severity wins, then
// the latest valid_until (none is latest), then the newest object, then the
// smallest STIX id.
//
// Ownership: an indicator is defenderbot's when the store has a record for
// it, or when Defender reports application "defenderbot" (Microsoft keeps the
// first creator's application, so a crash between an import call and its
// record loses nothing: the next run adopts it). A value someone else added
// to Defender is never overwritten, recorded or deleted; the feed's object is
// reported as skipped. Only recorded indicators are ever deleted.
//
// Sync: each run lists Defender's indicators (for the 15,000 tenant limit,
// foreign values and drift), compares the feed with the records'
// fingerprints and sends only new or changed indicators, in batches of 500,
// recording after each batch. Revoked objects, and objects past valid_until,
// remove the indicators defenderbot imported. In snapshot mode managed
// indicators absent from the feed are removed too, unless part of the feed
// was unreadable, or the run would delete more than MaxDeleteFraction of the
// managed indicators Defender has (without Force): the guard counts only
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
// readable id is unreadable (it may be a later version). The record does not
// keep the version's "modified", so a feed that replays a stale version is
// believed.
//
// Scheduling: ScheduledJob holds the "iocs-sync" lease, renews it during the
// run and cancels the run if the lease is lost, so replicas never overlap.
package ioc
