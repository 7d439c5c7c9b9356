package ioc

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/defenderbot/defenderbot/config"
	"github.com/defenderbot/defenderbot/defender"
	"github.com/defenderbot/defenderbot/internal/testutil"
	"github.com/defenderbot/defenderbot/stix"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func TestNormalizeValue(t *testing.T) {
	tests := []struct {
		typ     defender.IndicatorType
		in      string
		want    string
		wantErr string
	}{
		{defender.IndicatorFileMd5, "AB03A48A29967E738583140E6EB84F0B", "ab03a48a29967e738583140e6eb84f0b", ""},
		{defender.IndicatorFileMd5, "ab03a48a", "", "MD5 hash must be 32 hex characters, got 8"},
		{defender.IndicatorFileSha1, "f4db6264e2f9aa0aa1f889dd8cfaa886857c3bdg", "", "non-hex character 'g'"},
		{defender.IndicatorFileSha256, strings.Repeat("A", 64), strings.Repeat("a", 64), ""},
		{defender.IndicatorFileSha256, strings.Repeat("a", 63), "", "SHA-256 hash must be 64"},
		{defender.IndicatorCertificateThumbprint, "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01", "abcdef0123456789abcdef0123456789abcdef01", ""},
		{defender.IndicatorIPAddress, " 203.0.113.7 ", "203.0.113.7", ""},
		{defender.IndicatorIPAddress, "203.0.113.7/32", "203.0.113.7", ""},
		{defender.IndicatorIPAddress, "2001:DB8:0:0::1", "2001:db8::1", ""},
		{defender.IndicatorIPAddress, "2001:db8::1/128", "2001:db8::1", ""},
		{defender.IndicatorIPAddress, "203.0.113.0/24", "", string(ReasonCIDR)},
		{defender.IndicatorIPAddress, "010.0.0.1", "", "not an IP address"},
		{defender.IndicatorIPAddress, "fe80::1%eth0", "", "zone"},
		{defender.IndicatorDomainName, "Bad.Example.", "bad.example", ""},
		{defender.IndicatorDomainName, "xn--bcher-kva.example", "xn--bcher-kva.example", ""},
		{defender.IndicatorDomainName, "Bücher.Example", "bücher.example", ""},
		{defender.IndicatorDomainName, "com", "", "not a fully qualified"},
		{defender.IndicatorDomainName, "a..example", "", "empty label"},
		{defender.IndicatorDomainName, "-a.example", "", "starting or ending"},
		{defender.IndicatorDomainName, "a b.example", "", "invalid character"},
		{defender.IndicatorDomainName, "https://a.example/", "", "invalid character"},
		{defender.IndicatorDomainName, "192.0.2.1", "", "is an IP address"},
		{defender.IndicatorDomainName, strings.Repeat("a", 64) + ".example", "", "longer than 63"},
		{defender.IndicatorURL, "HTTPS://Bad.Example/Login?User=A", "https://bad.example/Login?User=A", ""},
		{defender.IndicatorURL, "http://EVIL.example", "http://evil.example", ""},
		{defender.IndicatorURL, "/relative", "", "needs a scheme and a host"},
		{defender.IndicatorURL, "evil.example/path", "", "needs a scheme and a host"},
		{defender.IndicatorURL, "http://a.example/x y", "", "space or control"},
		{defender.IndicatorURL, "mailto:a@b.example", "", "needs a scheme and a host"},
		{defender.IndicatorURL, "", "", "empty value"},
		{defender.IndicatorURL, "http://a.example/\xff", "", "UTF-8"},
		{"Bogus", "x", "", "unsupported indicator type"},
	}
	for _, tt := range tests {
		t.Run(string(tt.typ)+"/"+tt.in, func(t *testing.T) {
			got, err := NormalizeValue(tt.typ, tt.in)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

var testNow = time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC)

func obj(id, pattern string) *stix.Object {
	return &stix.Object{
		Type: "indicator", ID: id, SpecVersion: "2.1", Pattern: pattern, PatternType: "stix",
		Created: testNow.Add(-48 * time.Hour), Modified: testNow.Add(-48 * time.Hour), ValidFrom: testNow.Add(-48 * time.Hour),
	}
}

func TestConvertSingleObjects(t *testing.T) {
	opts := ConvertOptions{Action: "Block", Severity: "High", GenerateAlert: true}
	const id = "indicator--11111111-1111-4111-8111-111111111111"
	tests := []struct {
		name    string
		pattern string
		mutate  func(*stix.Object)
		state   ObjectState
		want    []string // type|value
		skipped []SkipReason
		simple  bool // PatternsSimple
	}{
		{name: "ipv4", pattern: "[ipv4-addr:value = '198.51.100.9']", state: StateLive, want: []string{"IpAddress|198.51.100.9"}},
		{name: "double equals", pattern: "[ipv4-addr:value == '198.51.100.9']", state: StateLive, want: []string{"IpAddress|198.51.100.9"}},
		{name: "cidr", pattern: "[ipv4-addr:value = '198.51.100.0/24']", state: StateIgnored, skipped: []SkipReason{ReasonCIDR}},
		{name: "same value twice in one pattern", pattern: "[domain-name:value = 'a.example'] OR [domain-name:value = 'A.EXAMPLE.']", state: StateLive, want: []string{"DomainName|a.example"}},
		{name: "or of observations", pattern: "([url:value = 'http://x.example/a'] OR [file:hashes.MD5 = 'ab03a48a29967e738583140e6eb84f0b'])", state: StateLive,
			want: []string{"Url|http://x.example/a", "FileMd5|ab03a48a29967e738583140e6eb84f0b"}},
		{name: "simple: and inside brackets", simple: true, pattern: "[file:hashes.MD5 = 'ab03a48a29967e738583140e6eb84f0b' AND file:size = 3]", state: StateIgnored, skipped: []SkipReason{ReasonNotSingle}},
		{name: "simple: observation and", simple: true, pattern: "[domain-name:value = 'a.example'] AND [url:value = 'http://b.example/']", state: StateIgnored, skipped: []SkipReason{ReasonNotSingle}},
		{name: "and inside brackets", pattern: "[file:hashes.MD5 = 'ab03a48a29967e738583140e6eb84f0b' AND file:size = 3]", state: StateLive,
			want: []string{"FileMd5|ab03a48a29967e738583140e6eb84f0b"}, skipped: []SkipReason{ReasonPath}},
		{name: "observation and", pattern: "[domain-name:value = 'a.example'] AND [url:value = 'http://b.example/']", state: StateLive,
			want: []string{"DomainName|a.example", "Url|http://b.example/"}},
		{name: "compound with no usable comparison", pattern: "[file:name = 'x.exe' AND file:size = 3]", state: StateIgnored, skipped: []SkipReason{ReasonPath, ReasonPath}},
		{name: "impossible date spoils only its comparison", pattern: "[file:hashes.MD5 = 'ab03a48a29967e738583140e6eb84f0b' AND file:created = t'2024-02-30T12:00:00Z']", state: StateLive,
			want: []string{"FileMd5|ab03a48a29967e738583140e6eb84f0b"}, skipped: []SkipReason{ReasonPath}},
		{name: "simple: impossible date spoils only its comparison", simple: true, pattern: "[file:hashes.MD5 = 'ab03a48a29967e738583140e6eb84f0b'] OR [file:created = t'2024-02-30T12:00:00Z']", state: StateLive,
			want: []string{"FileMd5|ab03a48a29967e738583140e6eb84f0b"}, skipped: []SkipReason{ReasonPath}},
		{name: "negated", pattern: "[domain-name:value NOT = 'a.example']", state: StateIgnored, skipped: []SkipReason{ReasonNegated}},
		{name: "not equal", pattern: "[domain-name:value != 'a.example']", state: StateIgnored, skipped: []SkipReason{ReasonOperator}},
		{name: "list index path", pattern: "[file:hashes.MD5[0] = 'ab03a48a29967e738583140e6eb84f0b']", state: StateIgnored, skipped: []SkipReason{ReasonPath}},
		{name: "x509 sha256 unsupported", pattern: "[x509-certificate:hashes.'SHA-256' = '" + strings.Repeat("a", 64) + "']", state: StateIgnored, skipped: []SkipReason{ReasonPath}},
		{name: "bad pattern", pattern: "[ipv4-addr:value = ", state: StateIgnored, skipped: []SkipReason{ReasonBadPattern}},
		{name: "empty pattern", pattern: "", state: StateIgnored, skipped: []SkipReason{ReasonInvalidObject}},
		{name: "valid_until before valid_from", pattern: "[ipv4-addr:value = '198.51.100.9']", mutate: func(o *stix.Object) { u := o.ValidFrom.Add(-time.Hour); o.ValidUntil = &u }, state: StateIgnored, skipped: []SkipReason{ReasonInvalidObject}},
		{name: "revoked", pattern: "[ipv4-addr:value = '198.51.100.9']", mutate: func(o *stix.Object) { o.Revoked = true }, state: StateRevoked, want: []string{"IpAddress|198.51.100.9"}},
		{name: "expired", pattern: "[ipv4-addr:value = '198.51.100.9']", mutate: func(o *stix.Object) { u := testNow; o.ValidUntil = &u }, state: StateExpired, want: []string{"IpAddress|198.51.100.9"}},
		{name: "not yet valid", pattern: "[ipv4-addr:value = '198.51.100.9']", mutate: func(o *stix.Object) { o.ValidFrom = testNow.Add(time.Hour) }, state: StateIgnored, skipped: []SkipReason{ReasonNotYetValid}},
		{name: "not an indicator", pattern: "", mutate: func(o *stix.Object) { o.Type = "malware" }, state: StateIgnored, skipped: []SkipReason{ReasonNotIndicator}},
		{name: "sigma", pattern: "title: x", mutate: func(o *stix.Object) { o.PatternType = "sigma" }, state: StateIgnored, skipped: []SkipReason{ReasonPatternType}},
		{name: "absent pattern_type is stix", pattern: "[ipv4-addr:value = '198.51.100.9']", mutate: func(o *stix.Object) { o.PatternType = "" }, state: StateLive, want: []string{"IpAddress|198.51.100.9"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := obj(id, tt.pattern)
			if tt.mutate != nil {
				tt.mutate(o)
			}
			opts := opts
			if tt.simple {
				opts.Patterns = PatternsSimple
			}
			c := Convert(o, opts, testNow)
			assert.Equal(t, tt.state, c.State, "state")
			var got []string
			for _, ind := range c.Indicators {
				got = append(got, Key(ind.IndicatorType, ind.IndicatorValue))
			}
			assert.Equal(t, tt.want, got)
			require.Len(t, c.Skipped, len(tt.skipped), "%+v", c.Skipped)
			for i, r := range tt.skipped {
				assert.Equal(t, r, c.Skipped[i].Reason, "reason of %+v", c.Skipped[i])
				assert.Equal(t, id, c.Skipped[i].StixID)
			}
		})
	}
}

func TestConvertBuildsPayload(t *testing.T) {
	o := obj("indicator--22222222-2222-4222-8222-222222222222", "[domain-name:value = 'Evil.Example']")
	until := testNow.Add(72 * time.Hour)
	o.ValidUntil = &until
	o.XICObservableTypes = []string{"domain-name"}

	c := Convert(o, ConvertOptions{Action: "Audit", Severity: "Low", GenerateAlert: true, SekoiaBaseURL: "https://app.sekoia.io/"}, testNow)
	require.Len(t, c.Indicators, 1)
	ind := c.Indicators[0]
	assert.Equal(t, "STIX indicator DomainName evil.example", ind.Title, "fallback title")
	assert.Equal(t, "https://app.sekoia.io/intelligence/objects/indicator--22222222-2222-4222-8222-222222222222", ind.Description)
	assert.Equal(t, "Audit", ind.Action)
	assert.Equal(t, "Low", ind.Severity)
	assert.True(t, ind.GenerateAlert)
	assert.Equal(t, o.ID, ind.ExternalID)
	assert.Equal(t, Application, ind.Application)
	require.NotNil(t, ind.ExpirationTime)
	assert.True(t, ind.ExpirationTime.Equal(until))

	o.Name, o.Description = "Evil domain", "From report 42"
	c = Convert(o, ConvertOptions{Action: "Block"}, testNow)
	assert.Equal(t, "Evil domain", c.Indicators[0].Title)
	assert.Equal(t, "From report 42", c.Indicators[0].Description, "no link without sekoia_base_url")

	o.XICObservableTypes = nil
	c = Convert(o, ConvertOptions{Action: "Block", SekoiaBaseURL: "https://app.sekoia.io"}, testNow)
	assert.Equal(t, "From report 42", c.Indicators[0].Description, "no link for non-Sekoia objects")

	o.Description = ""
	c = Convert(o, ConvertOptions{Action: "Block"}, testNow)
	assert.NotEmpty(t, c.Indicators[0].Description, "description is always set")

	o.Name = strings.Repeat("é", 400)
	c = Convert(o, ConvertOptions{Action: "Block"}, testNow)
	assert.LessOrEqual(t, len(c.Indicators[0].Title), maxTitle)
	assert.True(t, strings.HasSuffix(c.Indicators[0].Title, "…"))
}

func TestConvertOptionsValidate(t *testing.T) {
	tests := []struct {
		opts    ConvertOptions
		wantErr string
	}{
		{ConvertOptions{Action: "Block", Severity: "High", Patterns: PatternsAll}, ""},
		{ConvertOptions{Action: "Audit", GenerateAlert: true, Patterns: PatternsSimple}, ""},
		{ConvertOptions{Action: "Block", Severity: "High"}, `patterns "" must be all or simple`},
		{ConvertOptions{Action: "Audit"}, "Audit requires generate_alert"},
		{ConvertOptions{Action: "block"}, `action "block" must be one of`},
		{ConvertOptions{Action: ""}, `action "" must be one of`},
		{ConvertOptions{Action: "Block", Severity: "Critical"}, `severity "Critical"`},
		{ConvertOptions{Action: "Block", Patterns: PatternsAll, SekoiaBaseURL: "app.sekoia.io"}, "sekoia_base_url"},
	}
	for _, tt := range tests {
		err := tt.opts.Validate()
		if tt.wantErr == "" {
			assert.NoError(t, err)
			continue
		}
		require.Error(t, err)
		assert.ErrorIs(t, err, ErrInvalidOptions)
		assert.Contains(t, err.Error(), tt.wantErr)
	}
}

func TestFingerprintChangesWithEveryField(t *testing.T) {
	base := defender.Indicator{IndicatorType: "IpAddress", IndicatorValue: "1.2.3.4", Action: "Block", Title: "t", Description: "d", Severity: "High"}
	fp := Fingerprint(&base)
	assert.Equal(t, fp, Fingerprint(&base), "stable")
	exp := testNow
	for name, mut := range map[string]func(*defender.Indicator){
		"value":       func(i *defender.Indicator) { i.IndicatorValue = "1.2.3.5" },
		"action":      func(i *defender.Indicator) { i.Action = "Audit" },
		"title":       func(i *defender.Indicator) { i.Title = "u" },
		"description": func(i *defender.Indicator) { i.Description = "e" },
		"severity":    func(i *defender.Indicator) { i.Severity = "Low" },
		"alert":       func(i *defender.Indicator) { i.GenerateAlert = true },
		"expiration":  func(i *defender.Indicator) { i.ExpirationTime = &exp },
		"boundaries":  func(i *defender.Indicator) { i.Title, i.Description = "td", "" },
	} {
		c := base
		mut(&c)
		assert.NotEqual(t, fp, Fingerprint(&c), name)
	}
}

// TestFingerprintIsStable pins fingerprints as the store keeps them: a
// change would make every recorded indicator look changed, and the next
// run re-send the whole tenant.
func TestFingerprintIsStable(t *testing.T) {
	exp := time.Date(2030, 5, 6, 7, 8, 9, 123000000, time.FixedZone("", 3600))
	ind := defender.Indicator{IndicatorType: defender.IndicatorURL, IndicatorValue: "https://ex.ample/é?<a>", Action: "Block", Severity: "High",
		GenerateAlert: true, Title: "t:1", Description: "d\nx", ExpirationTime: &exp, Application: Application, ExternalID: "indicator--x",
		RecommendedActions: "r", RBACGroupNames: []string{"a", "b"}}
	assert.Equal(t, "0ee140fc878f249a85f3c3b9beb52047", Fingerprint(&ind))
	assert.Equal(t, "5984c0b0024ccafa1daf24c8439da79a", Fingerprint(&defender.Indicator{IndicatorType: defender.IndicatorFileSha256, IndicatorValue: "ab"}))
}

// TestGoldenPlans converts whole feeds (dry run, empty state) and compares the
// plan with testdata/<name>.golden. Run with -update to rewrite them.
func TestGoldenPlans(t *testing.T) {
	sekoiaValid := time.Date(2023, 4, 20, 0, 0, 0, 0, time.UTC) // both Sekoia fixtures live
	tests := []struct {
		name string
		path string
		now  time.Time
		opts func(*Options)
	}{
		{"all_kinds", filepath.Join("testdata", "all_kinds.json"), testNow, nil},
		{"all_kinds_simple", filepath.Join("testdata", "all_kinds.json"), testNow, func(o *Options) { o.Patterns = PatternsSimple }},
		{"sekoia_live", testutil.Fixture(t, "sekoia/stix_objects_ipv4_and_file_hash.json"), sekoiaValid,
			func(o *Options) {
				o.Action, o.Severity, o.GenerateAlert, o.SekoiaBaseURL = "Warn", "Medium", false, "https://app.sekoia.io"
			}},
		{"sekoia_expired_today", testutil.Fixture(t, "sekoia/stix_objects_ipv4_and_file_hash.json"), testNow, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := Options{StixObjectsPath: tt.path, Action: "Block", MaxObjectBytes: config.DefaultMaxObjectBytes, Mode: ModeIncremental, Patterns: PatternsAll, TenantLimit: config.DefaultTenantLimit, Severity: "High", GenerateAlert: true, Now: func() time.Time { return tt.now }}
			if tt.opts != nil {
				tt.opts(&opts)
			}
			s, err := NewSyncer(newFakeAPI(), newTestStore(t), opts, nil)
			require.NoError(t, err)
			p, err := s.Plan(context.Background())
			require.NoError(t, err)
			got, err := json.MarshalIndent(p, "", "  ")
			require.NoError(t, err)
			golden(t, filepath.Join("testdata", tt.name+".golden"), append(got, '\n'))
		})
	}
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		require.NoError(t, os.WriteFile(path, got, 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "golden file missing: run go test ./ioc -run Golden -update")
	assert.Equal(t, string(want), string(got))
}

// TestSkipJSON: a skip's reason and details are one "reason" string in the
// plan, as before reasons had a type, and read back into the same Skip.
func TestSkipJSON(t *testing.T) {
	for _, tt := range []struct {
		skip Skip
		json string
	}{
		{skip("indicator--1", ReasonCIDR, "[ipv4-addr:value = '198.51.100.0/24']"),
			`{"stix_id":"indicator--1","reason":"CIDR ranges are not supported by Defender: [ipv4-addr:value = '198.51.100.0/24']"}`},
		{skip("indicator--2", ReasonNotIndicator), `{"stix_id":"indicator--2","reason":"not an indicator object"}`},
		{skip("", ReasonDuplicate, "", "ignored"), `{"stix_id":"","reason":"duplicate of an indicator from another object (merged)"}`},
	} {
		b, err := json.Marshal(tt.skip)
		require.NoError(t, err)
		assert.JSONEq(t, tt.json, string(b))
		var back Skip
		require.NoError(t, json.Unmarshal(b, &back))
		assert.Equal(t, tt.skip, back)
	}
	assert.Equal(t, "invalid value: x, y", skip("id", ReasonInvalidValue, "x", "y").Text())
}
