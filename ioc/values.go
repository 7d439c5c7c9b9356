package ioc

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/defenderbot/defenderbot/defender"
)

// errCIDR marks an IP value that is a network range; it is reported with the
// exact reason the brief asks for.
var errCIDR = errors.New(string(ReasonCIDR))

// NormalizeValue validates raw as a value of type t and returns its canonical
// form: hashes lower-case hex, IP addresses in netip's canonical text (a /32
// or /128 suffix dropped), domains lower-case without a trailing dot, URLs
// with scheme and authority lower-cased. The same function normalises the
// values read back from Defender, so that keys compare equal.
func NormalizeValue(t defender.IndicatorType, raw string) (string, error) {
	v := strings.TrimSpace(raw)
	if v == "" {
		return "", errors.New("empty value")
	}
	if !utf8.ValidString(v) {
		return "", errors.New("value is not valid UTF-8")
	}
	switch t {
	case defender.IndicatorFileMd5:
		return normalizeHex(v, 32, "MD5")
	case defender.IndicatorFileSha1:
		return normalizeHex(v, 40, "SHA-1")
	case defender.IndicatorFileSha256:
		return normalizeHex(v, 64, "SHA-256")
	case defender.IndicatorCertificateThumbprint:
		// Thumbprints are often written with colons (AB:CD:...).
		return normalizeHex(strings.ReplaceAll(v, ":", ""), 40, "SHA-1 thumbprint")
	case defender.IndicatorIPAddress:
		a, err := normalizeIP(v)
		if err != nil {
			return "", err
		}
		return a.String(), nil
	case defender.IndicatorDomainName:
		return normalizeDomain(v)
	case defender.IndicatorURL:
		return normalizeURL(v)
	}
	return "", fmt.Errorf("unsupported indicator type %q", t)
}

func normalizeHex(v string, n int, alg string) (string, error) {
	if len(v) != n {
		return "", fmt.Errorf("%s hash must be %d hex characters, got %d characters", alg, n, utf8.RuneCountInString(v))
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return "", fmt.Errorf("%s hash has a non-hex character %q", alg, c)
		}
	}
	return strings.ToLower(v), nil
}

// normalizeIP accepts a single address, or a /32 (/128) "range" of one.
func normalizeIP(v string) (netip.Addr, error) {
	if strings.Contains(v, "/") {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			return netip.Addr{}, fmt.Errorf("%q is not an IP address: %w", v, err)
		}
		if p.Bits() != p.Addr().BitLen() {
			return netip.Addr{}, errCIDR
		}
		return p.Addr(), nil
	}
	a, err := netip.ParseAddr(v)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%q is not an IP address", v)
	}
	if a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("%q has an IPv6 zone, which Defender cannot match", v)
	}
	return a, nil
}

// normalizeIPFor checks that the address family matches the STIX object type.
func normalizeIPFor(objectType, v string) (string, error) {
	a, err := normalizeIP(v)
	if err != nil {
		return "", err
	}
	if objectType == "ipv4-addr" && !a.Is4() {
		return "", fmt.Errorf("%q is not an IPv4 address", v)
	}
	if objectType == "ipv6-addr" && a.Is4() {
		return "", fmt.Errorf("%q is not an IPv6 address", v)
	}
	return a.String(), nil
}

func normalizeDomain(v string) (string, error) {
	d := strings.ToLower(strings.TrimSuffix(v, "."))
	if _, err := netip.ParseAddr(d); err == nil {
		return "", fmt.Errorf("%q is an IP address, not a domain name", v)
	}
	if len(d) > 253 {
		return "", fmt.Errorf("domain name is %d characters long, more than 253", len(d))
	}
	labels := strings.Split(d, ".")
	// A single label ("com", "localhost") would block a whole TLD or an
	// internal name: refused on purpose.
	if len(labels) < 2 {
		return "", fmt.Errorf("%q is not a fully qualified domain name", v)
	}
	for _, l := range labels {
		if l == "" {
			return "", fmt.Errorf("%q has an empty label", v)
		}
		if len(l) > 63 {
			return "", fmt.Errorf("%q has a label longer than 63 characters", v)
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return "", fmt.Errorf("%q has a label starting or ending with '-'", v)
		}
		for _, r := range l {
			// Letters beyond ASCII are allowed: IDN labels (RFC 5890).
			if r != '-' && r != '_' && !unicode.IsLetter(r) && !unicode.IsDigit(r) {
				return "", fmt.Errorf("%q has an invalid character %q", v, r)
			}
		}
	}
	return d, nil
}

func normalizeURL(v string) (string, error) {
	for _, r := range v {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return "", fmt.Errorf("URL %q contains a space or control character", v)
		}
	}
	u, err := url.Parse(v)
	if err != nil {
		return "", fmt.Errorf("URL %q does not parse: %w", v, err)
	}
	if u.Scheme == "" || u.Host == "" {
		return "", fmt.Errorf("URL %q needs a scheme and a host", v)
	}
	if u.Hostname() == "" {
		return "", fmt.Errorf("URL %q has an empty host", v)
	}
	// Lower-case scheme and authority only: paths and queries are case-sensitive.
	rest := v[len(u.Scheme):] // "://host/path..."
	if !strings.HasPrefix(rest, "://") {
		return "", fmt.Errorf("URL %q needs a scheme and a host", v)
	}
	rest = rest[3:]
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	return strings.ToLower(u.Scheme) + "://" + strings.ToLower(rest[:end]) + rest[end:], nil
}
