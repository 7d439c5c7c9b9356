// Package feedgen generates the deterministic STIX feeds the IOC engine is benchmarked with
// (scripts/bench-iocs, BenchmarkEngine), and holds the baseline they are compared to: a plain
// single-pass encoding/json stream decode into a struct.
//
// It must not import any defenderbot package: benchmarks of stix and ioc
// use it, and the feeds must not change when those do.
package feedgen

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"time"
)

// The mix, in percent of the objects: live file hashes, IPs, domains and URLs, expired, revoked,
// unsupported (other pattern types, unsupported paths, non-indicator objects), and versions that
// repeat an earlier object.
var mix = []struct {
	pct  int
	kind string
}{
	{22, "hash"}, {16, "ip"}, {16, "domain"}, {14, "url"}, {7, "multi"},
	{7, "expired"}, {6, "revoked"}, {7, "unsupported"}, {5, "version"},
}

// Write writes a feed of n indicator objects as a JSON array. The same n gives the same bytes.
func Write(w io.Writer, n int) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	g := &generator{r: rand.New(rand.NewPCG(20261203, uint64(n)))}
	base := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	bw.WriteString("[")
	for i := range n {
		if i > 0 {
			bw.WriteString(",\n")
		}
		g.object(bw, base)
	}
	bw.WriteString("]\n")
	return bw.Flush()
}

// object is what a consumer of indicators decodes: the baseline's struct.
type object struct {
	Type               string     `json:"type"`
	ID                 string     `json:"id"`
	SpecVersion        string     `json:"spec_version"`
	Name               string     `json:"name"`
	Description        string     `json:"description"`
	Pattern            string     `json:"pattern"`
	PatternType        string     `json:"pattern_type"`
	PatternVersion     string     `json:"pattern_version"`
	Created            time.Time  `json:"created"`
	Modified           time.Time  `json:"modified"`
	ValidFrom          time.Time  `json:"valid_from"`
	ValidUntil         *time.Time `json:"valid_until"`
	Revoked            bool       `json:"revoked"`
	Labels             []string   `json:"labels"`
	IndicatorTypes     []string   `json:"indicator_types"`
	Confidence         *int       `json:"confidence"`
	XICObservableTypes []string   `json:"x_ic_observable_types"`
}

// Decode is the baseline: it reads the array with one json.Decoder, one element at a time, into
// a struct of the properties an indicator consumer needs, and returns the number of objects.
func Decode(r io.Reader) (int, error) {
	dec := json.NewDecoder(r)
	if _, err := dec.Token(); err != nil {
		return 0, err
	}
	n := 0
	for dec.More() {
		var o object
		if err := dec.Decode(&o); err != nil {
			return n, fmt.Errorf("object %d: %w", n, err)
		}
		n++
	}
	if _, err := dec.Token(); err != nil {
		return n, err
	}
	return n, nil
}

func hex(r *rand.Rand, n int) string {
	const digits = "0123456789abcdef"
	b := make([]byte, n)
	for i := range b {
		b[i] = digits[r.IntN(16)]
	}
	return string(b)
}

func uuid(r *rand.Rand) string {
	h := hex(r, 32)
	return h[:8] + "-" + h[8:12] + "-4" + h[13:16] + "-8" + h[17:20] + "-" + h[20:]
}

var words = []string{"loader", "stealer", "beacon", "phishing", "dropper", "c2", "botnet", "ransomware",
	"campaign", "infrastructure", "payload", "exfiltration", "credential", "harvest", "kit", "panel"}

func sentence(r *rand.Rand, n int) string {
	s := ""
	for i := range n {
		if i > 0 {
			s += " "
		}
		s += words[r.IntN(len(words))]
	}
	return s
}

// generator holds the random source and the earlier objects the "version" kind publishes again.
type generator struct {
	r      *rand.Rand
	recent []version
}

type version struct {
	id, pattern string
	created     time.Time
}

func (g *generator) object(w io.Writer, base time.Time) {
	r, recent := g.r, g.recent
	defer func() { g.recent = recent }()
	p := r.IntN(100)
	kind := mix[len(mix)-1].kind
	for _, m := range mix {
		if p < m.pct {
			kind = m.kind
			break
		}
		p -= m.pct
	}
	id := "indicator--" + uuid(r)
	created := base.Add(-time.Duration(r.IntN(300*24)) * time.Hour)
	modified := created.Add(time.Duration(r.IntN(48)) * time.Hour)
	validFrom := created
	validUntil := base.AddDate(4, 0, 30+r.IntN(365)) // live for years from the feed's date
	patternType := "stix"
	revoked := false
	var pattern, obs string
	switch kind {
	case "expired", "revoked":
		pattern = fmt.Sprintf("[file:hashes.'SHA-256' = '%s' OR file:hashes.MD5 = '%s']", hex(r, 64), hex(r, 32))
		obs = `["file"]`
	case "ip":
		pattern = fmt.Sprintf("[ipv4-addr:value = '%d.%d.%d.%d']", 1+r.IntN(223), r.IntN(256), r.IntN(256), 1+r.IntN(254))
		obs = `["ipv4-addr"]`
	case "domain":
		pattern = fmt.Sprintf("[domain-name:value = '%s-%s.example']", words[r.IntN(len(words))], hex(r, 8))
		obs = `["domain-name"]`
	case "url":
		pattern = fmt.Sprintf("[url:value = 'https://%s.example/%s/%s.php?id=%d']", hex(r, 10), words[r.IntN(len(words))], hex(r, 6), r.IntN(100000))
		obs = `["url"]`
	case "multi":
		pattern = fmt.Sprintf("[domain-name:value = 'cdn-%s.example' OR ipv4-addr:value = '%d.%d.%d.%d' OR file:hashes.'SHA-1' = '%s']",
			hex(r, 8), 1+r.IntN(223), r.IntN(256), r.IntN(256), 1+r.IntN(254), hex(r, 40))
		obs = `["domain-name","ipv4-addr","file"]`
	case "unsupported":
		switch r.IntN(3) {
		case 0:
			pattern = fmt.Sprintf("[email-addr:value = 'x%s@example.com']", hex(r, 6))
			obs = `["email-addr"]`
		case 1:
			pattern = "title: suspicious powershell\ndetection:\n  selection:\n    CommandLine|contains: '-enc'"
			patternType = "sigma"
			obs = `[]`
		default:
			pattern = fmt.Sprintf("[ipv4-addr:value ISSUBSET '10.%d.0.0/16']", r.IntN(256))
			obs = `["ipv4-addr"]`
		}
	}
	switch kind {
	case "expired":
		validUntil = base.Add(-time.Duration(1+r.IntN(100)) * 24 * time.Hour)
	case "revoked":
		revoked = true
	}
	if kind == "version" {
		// A later version of a recent object: same id and value, modified later.
		if len(recent) == 0 {
			kind = "hash"
		} else {
			v := recent[r.IntN(len(recent))]
			id, pattern, obs, created = v.id, v.pattern, `["file"]`, v.created
			modified = v.created.Add(time.Duration(49+r.IntN(48)) * time.Hour)
			validFrom = created
		}
	}
	if kind == "hash" {
		pattern = fmt.Sprintf("[file:hashes.'SHA-256' = '%s' OR file:hashes.MD5 = '%s']", hex(r, 64), hex(r, 32))
		obs = `["file"]`
		if len(recent) < 1000 {
			recent = append(recent, version{id, pattern, created})
		} else {
			recent[r.IntN(len(recent))] = version{id, pattern, created}
		}
	}
	name := sentence(r, 3)
	desc := sentence(r, 3+r.IntN(6))
	fmt.Fprintf(w, `{"type":"indicator","spec_version":"2.1","id":%q,"created_by_ref":"identity--357447d7-9229-4ce1-b7fa-f1b83587048e",`+
		`"created":"%s","modified":"%s","name":%q,"description":%q,"pattern":%q,"pattern_type":%q,"pattern_version":"2.1",`+
		`"valid_from":"%s","valid_until":"%s","revoked":%v,"confidence":%d,"labels":["malicious-activity"],`+
		`"indicator_types":["malicious-activity"],"kill_chain_phases":[{"kill_chain_name":"mitre-attack","phase_name":"command-and-control"}],`+
		`"x_ic_observable_types":%s,"x_ic_is_in_flint":false,`+
		`"object_marking_refs":["marking-definition--f88d31f6-486f-44da-b317-01333bde0b82"]}`,
		id, created.Format("2006-01-02T15:04:05.000Z"), modified.Format("2006-01-02T15:04:05.000Z"), name, desc, pattern, patternType,
		validFrom.Format(time.RFC3339), validUntil.Format(time.RFC3339), revoked, 50+r.IntN(51), obs)
}
