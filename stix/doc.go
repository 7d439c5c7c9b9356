// Package stix reads STIX 2.1 feeds (bundles, arrays of objects, single objects or directories of
// such files) one object at a time, with a hand-written scanner that cuts the stream into objects and
// a decoder that reads only the properties a consumer needs, on several cores (Process), with each
// object's size capped; and it lexes and parses the whole STIX 2.1 patterning language into a
// typed syntax tree.
//
// The parser follows the official ANTLR grammar (STIXPattern.g4) and adds the checks a consumer needs
// to trust a pattern: literal types per operator, integer range, calendar-valid timestamps, duplicate
// qualifiers, START before STOP and positive WITHIN/REPEATS values. It never panics and bounds nesting
// depth so that a hostile feed cannot exhaust the stack. The shape nearly every indicator has, equality
// comparisons joined by OR in one observation, is read by a fast path that gives the same tree (simple.go,
// held to the parser by FuzzSimpleMatchesParser).
package stix
