package ioc

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/defenderbot/defenderbot/defender"
	"github.com/defenderbot/defenderbot/stix"
)

// Application is the value of the indicator's "application" field. Microsoft
// keeps the application of the first creator, so it also tells indicators
// defenderbot created from those someone else created.
const Application = "defenderbot"

// SkipReason is why an object, or a comparison of an object, gave no
// indicator: one of the Reason constants, the keys of Report.Skipped.
type SkipReason string

// Skip reasons. A Skip has one of these, and may add details.
const (
	ReasonNotIndicator   SkipReason = "not an indicator object"
	ReasonPatternType    SkipReason = "pattern_type is not stix"
	ReasonInvalidObject  SkipReason = "invalid STIX object"
	ReasonUnreadable     SkipReason = "unreadable object"
	ReasonBadPattern     SkipReason = "pattern does not parse"
	ReasonNotSingle      SkipReason = "pattern cannot be expressed as single-value indicators"
	ReasonNoIndicator    SkipReason = "pattern has no supported comparison"
	ReasonOperator       SkipReason = "comparison operator not supported (only = makes an indicator)"
	ReasonNegated        SkipReason = "negated comparison cannot be an indicator"
	ReasonPath           SkipReason = "object path not supported by Defender"
	ReasonNotString      SkipReason = "comparison value is not a string"
	ReasonInvalidValue   SkipReason = "invalid value"
	ReasonCIDR           SkipReason = "CIDR ranges are not supported by Defender"
	ReasonNotYetValid    SkipReason = "not valid yet (valid_from is in the future)"
	ReasonDuplicate      SkipReason = "duplicate of an indicator from another object (merged)"
	ReasonRevokedNothing SkipReason = "revoked, nothing to remove (not managed by defenderbot)"
	ReasonExpiredNothing SkipReason = "expired, nothing to remove (not managed by defenderbot)"
	ReasonForeign        SkipReason = "already in Defender, added by someone else (left untouched)"
	// ReasonSuperseded: an older version of an object the feed also has in
	// a later version (the latest "modified" wins).
	ReasonSuperseded SkipReason = "superseded by a later version of the same object"
	// ReasonVersionUnreadable: another version of the object could not be
	// read, and it may be the latest, so no version is applied.
	ReasonVersionUnreadable SkipReason = "another version of this object is unreadable (no version applied)"
	// ReasonVersionKept: the latest version of an object could not be
	// evaluated (its pattern does not parse, it is not a valid indicator, it
	// is not valid yet), so the values its earlier versions gave are kept.
	ReasonVersionKept SkipReason = "latest version unusable, values of earlier versions kept"
	// ReasonOlderVersion: the feed's version of an object is older than the
	// one defenderbot already applied (a replayed export): ignored.
	ReasonOlderVersion SkipReason = "older than the version already applied (replayed)"
	// ReasonDropHeld: a value the latest version of its object no longer
	// yields is kept because an object without a readable id may be a later
	// version.
	ReasonDropHeld SkipReason = "dropped by a new version, removal held (feed partly unreadable)"
	// ReasonNoRetryPayload: a failed indicator recorded without its payload
	// (before payloads were kept) is retried only when the feed brings it.
	ReasonNoRetryPayload SkipReason = "failed earlier, no stored payload to retry"
	// ReasonBadRetryPayload: a stored payload that does not decode or does
	// not match its record is not sent.
	ReasonBadRetryPayload SkipReason = "failed earlier, stored payload unusable"
)

// Skip is an object, or a comparison of an object, that produced no indicator.
// In JSON (the plan) it is {"stix_id", "reason"}, the reason followed by
// ": " and the details when there are any.
type Skip struct {
	StixID string
	Reason SkipReason
	// Detail says which value, version or error, when there is more to say.
	Detail string
}

// Text is the reason with its details, as the plan shows it.
func (s Skip) Text() string {
	if s.Detail == "" {
		return string(s.Reason)
	}
	return string(s.Reason) + ": " + s.Detail
}

// skipJSON is Skip as the plan writes it.
type skipJSON struct {
	StixID string `json:"stix_id"`
	Reason string `json:"reason"`
}

// MarshalJSON writes the reason and its details as one string.
func (s Skip) MarshalJSON() ([]byte, error) {
	return json.Marshal(skipJSON{StixID: s.StixID, Reason: s.Text()})
}

// UnmarshalJSON reads what MarshalJSON writes: the reason is what comes
// before the first ": " (no reason contains one).
func (s *Skip) UnmarshalJSON(b []byte) error {
	var w skipJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	reason, detail, _ := strings.Cut(w.Reason, ": ")
	*s = Skip{StixID: w.StixID, Reason: SkipReason(reason), Detail: detail}
	return nil
}

func skip(id string, reason SkipReason, detail ...string) Skip {
	s := Skip{StixID: id, Reason: reason}
	if len(detail) > 0 && detail[0] != "" {
		s.Detail = strings.Join(detail, ", ")
	}
	return s
}

// ObjectState is what an object asks for.
type ObjectState int

// Object states.
const (
	// StateIgnored: nothing to import or remove (skipped).
	StateIgnored ObjectState = iota
	// StateLive: its indicators must be in Defender.
	StateLive
	// StateRevoked: its indicators must be removed.
	StateRevoked
	// StateExpired: valid_until is past; its indicators must not be imported
	// and are removed if defenderbot imported them earlier.
	StateExpired
)

func (s ObjectState) String() string {
	return [...]string{"ignored", "live", "revoked", "expired"}[s]
}

// Conversion is the result of converting one STIX object.
type Conversion struct {
	StixID string
	State  ObjectState
	// Indicators are the object's indicators (to import when live, to
	// remove when revoked or expired), with normalised values.
	Indicators []defender.Indicator
	Skipped    []Skip

	// ranking data, used to merge duplicates and to choose what to leave out
	// at the tenant limit.
	validFrom, modified time.Time
	// keys and fps are the Key and (for a live payload) the Fingerprint of
	// each indicator, computed with the conversion, on a worker.
	keys, fps []string
	// evaluated is set once the object was found valid and its pattern
	// parsed: only then does the conversion say which values the object
	// no longer asserts.
	evaluated bool
	// Compound is set when the indicators come from a pattern that is not
	// a plain disjunction (AND, FOLLOWEDBY or a qualifier): PatternsAll
	// took them out of it.
	Compound bool
}

// ConvertOptions are the indicator fields set from configuration.
type ConvertOptions struct {
	Action        string
	Severity      string
	GenerateAlert bool
	// SekoiaBaseURL, when set, adds a link to the object in Sekoia's UI to the
	// description of objects that carry x_ic_observable_types.
	SekoiaBaseURL string
	// Patterns chooses which patterns give indicators: PatternsAll or
	// PatternsSimple (required by Validate: iocs.patterns).
	Patterns string
}

// Pattern modes (ConvertOptions.Patterns, iocs.patterns).
const (
	// PatternsAll takes every "=" comparison on a supported path, wherever
	// it stands: inside AND, OR or FOLLOWEDBY, under qualifiers. This is
	// what the Sekoia.io playbook takes. It broadens compound patterns (a
	// file's name AND hash becomes the hash alone), which is the point: a
	// feed's AND joins facts about one threat, each worth blocking.
	PatternsAll = "all"
	// PatternsSimple takes only patterns made of comparisons joined by OR
	// (any AND, FOLLOWEDBY or qualifier skips the whole pattern), so that
	// no indicator matches more than the pattern did.
	PatternsSimple = "simple"
)

// ErrInvalidOptions is wrapped by every options error.
var ErrInvalidOptions = errors.New("invalid IOC sync options")

// Validate checks the options as Microsoft would, before anything is sent.
func (o ConvertOptions) Validate() error {
	if actions := defender.IndicatorActions(); !slices.Contains(actions, o.Action) {
		return fmt.Errorf("%w: action %q must be one of %s", ErrInvalidOptions, o.Action, strings.Join(actions, ", "))
	}
	if severities := defender.IndicatorSeverities(); o.Severity != "" && !slices.Contains(severities, o.Severity) {
		return fmt.Errorf("%w: severity %q must be one of %s", ErrInvalidOptions, o.Severity, strings.Join(severities, ", "))
	}
	if o.Action == "Audit" && !o.GenerateAlert {
		return fmt.Errorf("%w: action Audit requires generate_alert (Microsoft refuses an Audit indicator that raises no alert)", ErrInvalidOptions)
	}
	if o.Patterns != PatternsAll && o.Patterns != PatternsSimple {
		return fmt.Errorf("%w: patterns %q must be %s or %s", ErrInvalidOptions, o.Patterns, PatternsAll, PatternsSimple)
	}
	if o.SekoiaBaseURL != "" {
		if _, err := normalizeURL(o.SekoiaBaseURL); err != nil {
			return fmt.Errorf("%w: sekoia_base_url: %w", ErrInvalidOptions, err)
		}
	}
	return nil
}

// Convert turns one STIX object into Defender indicators. now decides whether
// the object is expired or not valid yet. It never fails: everything that
// produces no indicator is listed in Skipped with its reason.
func Convert(obj *stix.Object, opts ConvertOptions, now time.Time) Conversion {
	c := Conversion{StixID: obj.ID, validFrom: obj.ValidFrom, modified: obj.Modified}
	if obj.Type != "indicator" {
		c.Skipped = append(c.Skipped, skip(obj.ID, ReasonNotIndicator, "type "+strconv.Quote(obj.Type)))
		return c
	}
	// Absent pattern_type is tolerated (STIX 2.0 feeds and the spec's own
	// example omit it); anything else must be "stix".
	if obj.PatternType != "" && obj.PatternType != "stix" {
		c.Skipped = append(c.Skipped, skip(obj.ID, ReasonPatternType, strconv.Quote(obj.PatternType)))
		return c
	}
	checked := *obj
	checked.PatternType = "stix"
	if err := checked.Validate(); err != nil {
		c.Skipped = append(c.Skipped, skip(obj.ID, ReasonInvalidObject, err.Error()))
		return c
	}
	switch {
	case obj.Revoked:
		c.State = StateRevoked
	case obj.ValidUntil != nil && !obj.ValidUntil.After(now):
		c.State = StateExpired
	case !obj.ValidFrom.IsZero() && obj.ValidFrom.After(now):
		c.Skipped = append(c.Skipped, skip(obj.ID, ReasonNotYetValid, obj.ValidFrom.UTC().Format(time.RFC3339)))
		return c
	default:
		c.State = StateLive
	}
	p, err := stix.ParsePattern(obj.Pattern)
	if err != nil {
		c.State = StateIgnored
		c.Skipped = append(c.Skipped, skip(obj.ID, ReasonBadPattern, err.Error()))
		return c
	}
	c.evaluated = true
	comps, err := p.Disjuncts()
	if err != nil {
		if opts.Patterns == PatternsSimple {
			// AND, FOLLOWEDBY and qualifiers narrow the match; simple mode
			// never blocks more than the pattern matched.
			c.State = StateIgnored
			c.Skipped = append(c.Skipped, skip(obj.ID, ReasonNotSingle, err.Error()))
			return c
		}
		comps, c.Compound = p.Comparisons(), true
	}
	// Only a live object's indicators are sent: those of a revoked or
	// expired one carry their type and value, all a removal needs.
	var base defender.Indicator
	payload := c.State == StateLive
	if payload {
		base = buildBase(obj, opts)
	}
	c.Indicators = make([]defender.Indicator, 0, len(comps))
	c.keys = make([]string, 0, len(comps))
	if payload {
		c.fps = make([]string, 0, len(comps))
	}
	for _, cmp := range comps {
		t, v, sk := comparisonValue(obj.ID, cmp)
		if sk != nil {
			c.Skipped = append(c.Skipped, *sk)
			continue
		}
		k := Key(t, v)
		if slices.Contains(c.keys, k) {
			continue
		}
		c.keys = append(c.keys, k)
		ind := base
		ind.IndicatorType = t
		ind.IndicatorValue = v
		if payload {
			ind.Title = title(obj, t, v)
		}
		c.Indicators = append(c.Indicators, ind)
		if payload {
			c.fps = append(c.fps, Fingerprint(&c.Indicators[len(c.Indicators)-1]))
		}
	}
	if len(c.Indicators) == 0 {
		c.Indicators, c.keys, c.fps = nil, nil, nil
		c.Compound = false
		if len(c.Skipped) == 0 {
			c.Skipped = append(c.Skipped, skip(obj.ID, ReasonNoIndicator))
		}
		c.State = StateIgnored
	}
	return c
}

// comparisonValue maps one comparison to an indicator type and normalised value.
func comparisonValue(id string, cmp *stix.Comparison) (defender.IndicatorType, string, *Skip) {
	fail := func(reason SkipReason, detail ...string) (defender.IndicatorType, string, *Skip) {
		s := skip(id, reason, append([]string{cmp.String()}, detail...)...)
		return "", "", &s
	}
	if cmp.Negated {
		return fail(ReasonNegated)
	}
	if cmp.Op != "=" {
		return fail(ReasonOperator)
	}
	t, ok := indicatorType(cmp.Path)
	if !ok {
		return fail(ReasonPath)
	}
	if cmp.Value.Invalid != "" {
		return fail(ReasonInvalidValue, cmp.Value.Invalid)
	}
	if cmp.Value.Kind != stix.KindString {
		return fail(ReasonNotString)
	}
	var v string
	var err error
	if t == defender.IndicatorIPAddress {
		v, err = normalizeIPFor(cmp.Path.ObjectType, cmp.Value.Str)
	} else {
		v, err = NormalizeValue(t, cmp.Value.Str)
	}
	if errors.Is(err, errCIDR) {
		return fail(ReasonCIDR)
	}
	if err != nil {
		return fail(ReasonInvalidValue, err.Error())
	}
	return t, v, nil
}

// indicatorType maps a STIX object path to the Defender indicator type.
func indicatorType(p stix.ObjectPath) (defender.IndicatorType, bool) {
	switch p.ObjectType {
	case "ipv4-addr", "ipv6-addr", "domain-name", "url":
		if k, ok := p.Keys(); !ok || k != "value" {
			return "", false
		}
		switch p.ObjectType {
		case "domain-name":
			return defender.IndicatorDomainName, true
		case "url":
			return defender.IndicatorURL, true
		}
		return defender.IndicatorIPAddress, true
	case "file":
		alg, ok := p.HashAlgorithm()
		if !ok {
			return "", false
		}
		switch alg {
		case "SHA-256":
			return defender.IndicatorFileSha256, true
		case "SHA-1":
			return defender.IndicatorFileSha1, true
		case "MD5":
			return defender.IndicatorFileMd5, true
		}
	case "x509-certificate":
		if alg, ok := p.HashAlgorithm(); ok && alg == "SHA-1" {
			return defender.IndicatorCertificateThumbprint, true
		}
	}
	return "", false
}

// Limits on free text sent to Defender, well under what the portal shows.
const (
	maxTitle       = 250
	maxDescription = 4000
)

func buildBase(obj *stix.Object, opts ConvertOptions) defender.Indicator {
	ind := defender.Indicator{
		Action:        opts.Action,
		Severity:      opts.Severity,
		GenerateAlert: opts.GenerateAlert,
		Application:   Application,
		ExternalID:    obj.ID,
		Description:   description(obj, opts.SekoiaBaseURL),
	}
	if obj.ValidUntil != nil {
		t := obj.ValidUntil.UTC()
		ind.ExpirationTime = &t
	}
	return ind
}

func title(obj *stix.Object, t defender.IndicatorType, v string) string {
	name := strings.TrimSpace(obj.Name)
	if name == "" {
		name = fmt.Sprintf("STIX indicator %s %s", t, v)
	}
	return truncate(name, maxTitle)
}

// description is always set (Microsoft requires it): the STIX description,
// and a link to the object in Sekoia's UI for Sekoia objects.
func description(obj *stix.Object, sekoiaBaseURL string) string {
	d := strings.TrimSpace(obj.Description)
	var link string
	if sekoiaBaseURL != "" && obj.XICObservableTypes != nil {
		link = strings.TrimRight(sekoiaBaseURL, "/") + "/intelligence/objects/" + obj.ID
	}
	switch {
	case d == "" && link == "":
		return "STIX indicator " + obj.ID + " (imported by defenderbot)"
	case d == "":
		return link
	case link == "":
		return truncate(d, maxDescription)
	}
	return truncate(d, maxDescription-len(link)-1) + "\n" + link
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// key is Key of indicator i.
func (c *Conversion) key(i int) string {
	if i < len(c.keys) {
		return c.keys[i]
	}
	return Key(c.Indicators[i].IndicatorType, c.Indicators[i].IndicatorValue)
}

// fingerprint is Fingerprint of indicator i.
func (c *Conversion) fingerprint(i int) string {
	if i < len(c.fps) {
		return c.fps[i]
	}
	return Fingerprint(&c.Indicators[i])
}

// Key is the upsert key of an indicator: type and normalised value.
func Key(t defender.IndicatorType, value string) string { return string(t) + "|" + value }

// Fingerprint hashes every field of the payload that Defender stores, so that
// an unchanged indicator is never sent again.
func Fingerprint(ind *defender.Indicator) string {
	// One buffer hashed at once: writing each field to a hash.Hash copied
	// every string (a third of the conversion's allocations).
	var stack [1024]byte
	b := stack[:0]
	field := func(f string) {
		// Length-prefixed so that field boundaries cannot be forged.
		b = strconv.AppendInt(b, int64(len(f)), 10)
		b = append(b, ':')
		b = append(b, f...)
	}
	field(string(ind.IndicatorType))
	field(ind.IndicatorValue)
	field(ind.Action)
	field(ind.Severity)
	field(strconv.FormatBool(ind.GenerateAlert))
	field(ind.Title)
	field(ind.Description)
	if ind.ExpirationTime != nil {
		var t [64]byte
		field(string(ind.ExpirationTime.UTC().AppendFormat(t[:0], time.RFC3339Nano)))
	} else {
		field("")
	}
	field(ind.Application)
	field(ind.ExternalID)
	field(ind.RecommendedActions)
	field(strings.Join(ind.RBACGroupNames, ","))
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}
