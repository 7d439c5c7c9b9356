package ioc

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"

	"github.com/defenderbot/defenderbot/config"
	"github.com/defenderbot/defenderbot/taxii"
	"github.com/defenderbot/defenderbot/taxii/taxiitest"
)

// BenchmarkTAXIIPlan compares a dry run over the same indicators read from
// a file and from a TAXII collection served on loopback, 1,000 per page
// (the collection is downloaded once per run, like the file is read once).
//
//	go test -run '^$' -bench TAXIIPlan -benchtime 1x ./ioc/
func BenchmarkTAXIIPlan(b *testing.B) {
	const n = 50_000
	objs := make([]feedObj, n)
	for i := range objs {
		objs[i] = feedObj{N: i, Pattern: fmt.Sprintf("[domain-name:value = 'd%d.example']", i), Name: fmt.Sprintf("indicator %d", i)}
	}
	h := newHarness(b)
	path := writeFeed(b, h.dir, objs)
	srv := taxiitest.NewServer(b, taxiitest.WithMaxPageSize(1000))
	var arr []json.RawMessage
	raw, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := json.Unmarshal(raw, &arr); err != nil {
		b.Fatal(err)
	}
	for _, o := range arr {
		if _, err := srv.AddObjects(taxiiColl, o); err != nil {
			b.Fatal(err)
		}
	}
	tc := config.Default().IOCs.TAXII.Client()
	tc.APIRoot = srv.APIRoot()
	client, err := taxii.New(tc)
	if err != nil {
		b.Fatal(err)
	}
	feed := &TAXIIFeed{Client: client, Collection: taxiiColl, PageSize: 1000}
	for _, tc := range []struct {
		name string
		mod  func(*Options)
	}{
		{"file", nil},
		{"taxii", func(o *Options) { o.StixObjectsPath, o.Feed = "", feed }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			s := h.syncer(b, func(o *Options) {
				o.TenantLimit = 1 << 30
				if tc.mod != nil {
					tc.mod(o)
				}
			})
			for b.Loop() {
				p, err := s.Plan(context.Background())
				if err != nil {
					b.Fatal(err)
				}
				if len(p.Import) != n {
					b.Fatalf("got %d indicators", len(p.Import))
				}
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "objects/s")
		})
	}
}
