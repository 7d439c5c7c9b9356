package stix

import (
	"fmt"
	"strings"
)

// hashNames maps a hash key, upper-cased and stripped of '-', '_' and spaces, to its STIX vocabulary
// spelling (2.1 names plus the 2.0 ones).
var hashNames = map[string]string{
	"MD5":       "MD5",
	"MD6":       "MD6",
	"SHA1":      "SHA-1",
	"SHA224":    "SHA-224",
	"SHA256":    "SHA-256",
	"SHA384":    "SHA-384",
	"SHA512":    "SHA-512",
	"SHA3224":   "SHA3-224",
	"SHA3256":   "SHA3-256",
	"SHA3384":   "SHA3-384",
	"SHA3512":   "SHA3-512",
	"RIPEMD160": "RIPEMD-160",
	"SSDEEP":    "SSDEEP",
	"TLSH":      "TLSH",
	"WHIRLPOOL": "WHIRLPOOL",
}

// NormalizeHashKey returns the STIX hash-vocabulary spelling of a hash key as feeds write it:
// "SHA-256", "sha256", "SHA256", "'SHA-256'", "sha_256" all give "SHA-256"; likewise MD5, SHA-1,
// SHA-512, SHA3-256, SHA3-512, SSDEEP, TLSH and the STIX 2.0 names. Surrounding quotes and spaces
// are dropped. An unknown key is returned upper-cased and otherwise unchanged.
func NormalizeHashKey(k string) string {
	k = strings.TrimSpace(k)
	if len(k) >= 2 && (k[0] == '\'' || k[0] == '"') && k[len(k)-1] == k[0] {
		k = strings.TrimSpace(k[1 : len(k)-1])
	}
	up := strings.ToUpper(k)
	// Squash '-', '_' and ' ' out, on the stack: this runs for every hash comparison of a feed.
	var buf [16]byte
	squashed := buf[:0]
	for i := 0; i < len(up) && len(squashed) <= len(buf); i++ {
		if c := up[i]; c != '-' && c != '_' && c != ' ' {
			squashed = append(squashed, c)
		}
	}
	if name, ok := hashNames[string(squashed)]; ok {
		return name
	}
	return up
}

// hashHexLen is the length in hex digits of each fixed-size algorithm of the STIX vocabulary.
var hashHexLen = map[string]int{
	"MD5": 32, "SHA-1": 40, "SHA-224": 56, "SHA-256": 64, "SHA-384": 96, "SHA-512": 128,
	"SHA3-224": 56, "SHA3-256": 64, "SHA3-384": 96, "SHA3-512": 128, "RIPEMD-160": 40,
}

// CheckHashValue checks a hash value against the STIX schema's format for its algorithm (alg in any
// spelling NormalizeHashKey understands): the right number of hex digits (either case) for MD5, SHA-1,
// SHA-256, SHA-512, SHA3-256..., [A-Za-z0-9/+:.]{1,128} for SSDEEP, 70 alphanumerics for TLSH. Unknown
// algorithms only need a non-empty value.
func CheckHashValue(alg, v string) error {
	name := NormalizeHashKey(alg)
	if v == "" {
		return fmt.Errorf("empty %s hash", name)
	}
	if n, ok := hashHexLen[name]; ok {
		if len(v) != n {
			return fmt.Errorf("%s hash %q has %d characters, want %d hex digits", name, v, len(v), n)
		}
		for i := 0; i < len(v); i++ {
			if !isHexDigit(v[i]) {
				return fmt.Errorf("%s hash %q is not hexadecimal", name, v)
			}
		}
		return nil
	}
	switch name {
	case "SSDEEP":
		if len(v) > 128 || strings.IndexFunc(v, func(r rune) bool {
			return !(r < 128 && (isIdentPart(byte(r)) && r != '_' || strings.ContainsRune("/+:.", r)))
		}) >= 0 {
			return fmt.Errorf("SSDEEP hash %q is not 1 to 128 characters of [A-Za-z0-9/+:.]", v)
		}
	case "TLSH":
		if len(v) != 70 || strings.IndexFunc(v, func(r rune) bool { return !(r < 128 && isIdentPart(byte(r)) && r != '_') }) >= 0 {
			return fmt.Errorf("TLSH hash %q is not 70 alphanumeric characters", v)
		}
	}
	return nil
}
