// Command benchfeed generates the deterministic STIX feeds scripts/bench-iocs measures defenderbot
// with, and times the baseline the issue compares against: a plain single-pass encoding/json stream
// decode of the same file into a struct (internal/feedgen).
//
//	benchfeed gen -n 200000 -o feed.json
//	benchfeed decode feed.json
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/defenderbot/defenderbot/internal/feedgen"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: benchfeed gen -n N -o FILE | benchfeed decode FILE")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "gen":
		fs := flag.NewFlagSet("gen", flag.ExitOnError)
		n := fs.Int("n", 200_000, "number of objects")
		out := fs.String("o", "feed.json", "output file")
		_ = fs.Parse(os.Args[2:])
		err = generate(*n, *out)
	case "decode":
		if len(os.Args) != 3 {
			err = errors.New("usage: benchfeed decode FILE")
			break
		}
		err = decode(os.Args[2])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchfeed:", err)
		os.Exit(1)
	}
}

func generate(n int, out string) error {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	if err := feedgen.Write(f, n); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

func decode(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	start := time.Now()
	n, err := feedgen.Decode(f)
	if err != nil {
		return err
	}
	d := time.Since(start)
	fmt.Printf("decoded %d objects in %.3fs: %.0f objects/s\n", n, d.Seconds(), float64(n)/d.Seconds())
	return nil
}
