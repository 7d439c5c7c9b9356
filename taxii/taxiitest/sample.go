package taxiitest

import (
	"fmt"
	"time"
)

// Sample data served by `defenderbot emulator`.
const (
	// SampleCollectionID is the collection AddSampleData fills.
	SampleCollectionID = "365fed99-08fa-fdcd-a1b3-fb247eb41d01"
	// SampleUsername and SamplePassword are the emulator's fixed test credentials.
	SampleUsername = "defenderbot"
	SamplePassword = "taxii-emulator-password"
)

// AddSampleData adds SampleCollectionID with a few indicators of each kind
// the IOC sync converts (file hash, IP, domain, URL), one revoked and one of
// a kind it does not convert.
func (s *Server) AddSampleData() {
	s.AddCollection(SampleCollectionID, "defenderbot sample indicators")
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ind := func(n int, name, pattern string, extra string) []byte {
		return fmt.Appendf(nil, `{"type":"indicator","spec_version":"2.1","id":"indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd%02x",`+
			`"created":"2026-01-01T00:00:00.000Z","modified":"2026-01-01T00:00:00.000Z","name":%q,"pattern":%q,`+
			`"pattern_type":"stix","valid_from":"2026-01-01T00:00:00Z","indicator_types":["malicious-activity"]%s}`, n, name, pattern, extra)
	}
	objs := [][]byte{
		ind(1, "Sample dropper", "[file:hashes.'SHA-256' = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855']", ""),
		ind(2, "Sample C2 address", "[ipv4-addr:value = '198.51.100.7']", ""),
		ind(3, "Sample phishing domain", "[domain-name:value = 'login-example.invalid']", ""),
		ind(4, "Sample payload URL", "[url:value = 'http://malware.example.invalid/payload.bin']", ""),
		ind(5, "Sample revoked address", "[ipv4-addr:value = '203.0.113.9']", `,"revoked":true`),
		ind(6, "Sample sender (not convertible)", "[email-addr:value = 'phish@example.invalid']", ""),
	}
	for _, o := range objs {
		if _, err := s.AddObjectsAt(SampleCollectionID, at, o); err != nil {
			panic(err) // the sample objects above are well-formed
		}
		at = at.Add(time.Minute)
	}
}
