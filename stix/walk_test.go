package stix

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestComparisons(t *testing.T) {
	p := mustParse(t, "([a:b = 1 AND a:c = 2] FOLLOWEDBY [d:e = 3 OR (d:f = 4 OR d:g = 5)]) WITHIN 5 SECONDS OR [EXISTS h:i]")
	var got []string
	for _, c := range p.Comparisons() {
		got = append(got, c.String())
	}
	assert.Equal(t, []string{"a:b = 1", "a:c = 2", "d:e = 3", "d:f = 4", "d:g = 5", "EXISTS h:i"}, got)
	assert.Nil(t, (*Pattern)(nil).Comparisons())
}

func TestDisjuncts(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []string
		wantErr error
	}{
		{"single", "[ipv4-addr:value = '1.2.3.4']", []string{"ipv4-addr:value = '1.2.3.4'"}, nil},
		{"or inside", "[file:hashes.'SHA-256' = 'a' OR file:hashes.MD5 = 'b' OR file:hashes.'SHA-1' = 'c']",
			[]string{"file:hashes.'SHA-256' = 'a'", "file:hashes.MD5 = 'b'", "file:hashes.'SHA-1' = 'c'"}, nil},
		{"or between observations with parens", "([a:b = 1] OR ([c:d = 2] OR [e:f = 3 OR (e:g = 4)]))",
			[]string{"a:b = 1", "c:d = 2", "e:f = 3", "e:g = 4"}, nil},
		{"other operators are still returned", "[a:b NOT LIKE 'x%' OR a:c IN (1, 2)]", []string{"a:b NOT LIKE 'x%'", "a:c IN (1, 2)"}, nil},
		{"AND inside", "[file:hashes.MD5 = 'a' AND file:name = 'b']", nil, ErrComparisonAND},
		{"AND inside nested", "[a:b = 1 OR (a:c = 2 AND a:d = 3)]", nil, ErrComparisonAND},
		{"AND between observations", "[a:b = 1] AND [c:d = 2]", nil, ErrObservationAND},
		{"FOLLOWEDBY", "[a:b = 1] FOLLOWEDBY [c:d = 2]", nil, ErrFollowedBy},
		{"qualifier", "[a:b = 1] REPEATS 2 TIMES", nil, ErrQualifier},
		{"qualifier deep in OR", "[a:b = 1] OR ([c:d = 2] WITHIN 5 SECONDS)", nil, ErrQualifier},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs, err := mustParse(t, tt.in).Disjuncts()
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				assert.Nil(t, cs)
				return
			}
			require.NoError(t, err)
			var got []string
			for _, c := range cs {
				got = append(got, c.String())
			}
			assert.Equal(t, tt.want, got)
		})
	}
	assert.Equal(t, "pattern joins comparisons with AND: a single indicator cannot express it", ErrComparisonAND.Error())
}

func TestNormalizeHashKey(t *testing.T) {
	tests := map[string]string{
		"SHA-256": "SHA-256", "sha256": "SHA-256", "SHA256": "SHA-256", "'SHA-256'": "SHA-256", "sha-256": "SHA-256", "Sha_256": "SHA-256",
		"MD5": "MD5", "md5": "MD5", "SHA-1": "SHA-1", "sha1": "SHA-1", "SHA1": "SHA-1", "SHA-512": "SHA-512", "sha512": "SHA-512",
		"SHA3-256": "SHA3-256", "sha3256": "SHA3-256", "sha3-512": "SHA3-512", "ssdeep": "SSDEEP", "SSDEEP": "SSDEEP", "tlsh": "TLSH",
		"ripemd160": "RIPEMD-160", "whirlpool": "WHIRLPOOL", "sha-224": "SHA-224",
		"x_foo_hash": "X_FOO_HASH", "imphash": "IMPHASH", "": "", " md5 ": "MD5",
	}
	for in, want := range tests {
		assert.Equal(t, want, NormalizeHashKey(in), "NormalizeHashKey(%q)", in)
	}
}

func TestObjectPath_HashAlgorithm(t *testing.T) {
	tests := []struct {
		in     string
		want   string
		wantOK bool
	}{
		{"[file:hashes.'SHA-256' = 'x']", "SHA-256", true},
		{"[file:hashes.sha256 = 'x']", "SHA-256", true},
		{"[x509-certificate:hashes.'SHA-1' = 'x']", "SHA-1", true},
		{"[file:hashes.MD5.x = 'x']", "", false},
		{"[file:name = 'x']", "", false},
		{"[file:hashes[0] = 'x']", "", false},
	}
	for _, tt := range tests {
		alg, ok := mustParse(t, tt.in).Comparisons()[0].Path.HashAlgorithm()
		assert.Equal(t, tt.wantOK, ok, tt.in)
		assert.Equal(t, tt.want, alg, tt.in)
	}
	_, ok := mustParse(t, "[a:b[0] = 1]").Comparisons()[0].Path.Keys()
	assert.False(t, ok)
}

func TestCheckHashValue(t *testing.T) {
	sha256 := "0451b9c358b1404717f5060aea5711327cf169cd4c5648f5ac23f1a1fb740716"
	tests := []struct{ alg, v, want string }{
		{"SHA-256", sha256, ""},
		{"sha256", "0451B9C358B1404717F5060AEA5711327CF169CD4C5648F5AC23F1A1FB740716", ""},
		{"MD5", "ab03a48a29967e738583140e6eb84f0b", ""},
		{"SHA-1", "f4db6264e2f9aa0aa1f889dd8cfaa886857c3bd0", ""},
		{"SSDEEP", "3:AXGBicFlgVNhBGcL6wCrFQEv:AXGHsNhxLsr2C", ""},
		{"TLSH", "T1A3B2C1D4E5F60718293A4B5C6D7E8F90A1B2C3D4E5F60718293A4B5C6D7E8F90A1B2", ""},
		{"x_custom", "anything", ""},
		{"MD5", "ab03", `MD5 hash "ab03" has 4 characters, want 32 hex digits`},
		{"SHA-256", sha256[:63] + "g", `SHA-256 hash "` + sha256[:63] + `g" is not hexadecimal`},
		{"md5", "", "empty MD5 hash"},
		{"SSDEEP", "3:a b", `SSDEEP hash "3:a b" is not 1 to 128 characters of [A-Za-z0-9/+:.]`},
		{"TLSH", "T1", `TLSH hash "T1" is not 70 alphanumeric characters`},
	}
	for _, tt := range tests {
		err := CheckHashValue(tt.alg, tt.v)
		if tt.want == "" {
			assert.NoError(t, err, "%s %s", tt.alg, tt.v)
		} else {
			assert.EqualError(t, err, tt.want)
		}
	}
}
