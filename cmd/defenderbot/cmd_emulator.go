package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"

	"github.com/defenderbot/defenderbot/defender/defendertest"
	"github.com/defenderbot/defenderbot/taxii/taxiitest"
)

// runEmulator serves the Defender + Azure AD emulator with sample data until
// ctx is done, and prints how to point defenderbot at it.
func runEmulator(ctx context.Context, c *cli, args []string) int {
	fs := newFlagSet(c, "emulator", "emulator [--listen HOST:PORT] [--taxii-listen HOST:PORT] [--ca-out FILE] [--rate-limits=false]")
	listen := fs.String("listen", "127.0.0.1:8443", "address to listen on (port 0 picks a free port)")
	taxiiListen := fs.String("taxii-listen", "", "address of the TAXII 2.1 server (default: --listen's host, the next port; port 0 picks a free port)")
	caOut := fs.String("ca-out", "", "write the emulator's self-signed CA certificate (PEM) to this file")
	rateLimits := fs.Bool("rate-limits", true, "enforce Microsoft's per-API rate limits")
	if code, ok := parseFlagsOnly(c, fs, args); !ok {
		return code
	}

	l, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(c.stderr, "defenderbot emulator: listen on %s: %v\n", *listen, err)
		return 1
	}
	if *taxiiListen == "" {
		*taxiiListen = nextPort(*listen)
	}
	tl, err := net.Listen("tcp", *taxiiListen)
	if err != nil {
		_ = l.Close()
		fmt.Fprintf(c.stderr, "defenderbot emulator: TAXII server: listen on %s: %v\n", *taxiiListen, err)
		return 1
	}
	ts := taxiitest.New(taxiitest.WithBasicAuth(taxiitest.SampleUsername, taxiitest.SamplePassword))
	ts.AddSampleData()
	if err := ts.Start(tl); err != nil {
		_ = l.Close()
		_ = tl.Close()
		fmt.Fprintf(c.stderr, "defenderbot emulator: TAXII server: %v\n", err)
		return 1
	}
	defer ts.Close()

	s := defendertest.New(defendertest.WithRateLimits(*rateLimits))
	s.AddSampleData()
	if err := s.Start(l); err != nil {
		_ = l.Close()
		fmt.Fprintf(c.stderr, "defenderbot emulator: %v\n", err)
		return 1
	}
	defer s.Close()
	if *caOut != "" {
		if err := os.WriteFile(*caOut, s.CACertPEM(), 0o644); err != nil {
			fmt.Fprintf(c.stderr, "defenderbot emulator: write CA certificate: %v\n", err)
			return 1
		}
	}
	printEmulatorBanner(c, s, *caOut)
	printTAXIIBanner(c, ts)
	<-ctx.Done()
	fmt.Fprintln(c.stdout, "emulator stopped")
	return 0
}

// nextPort is addr with its port plus one (port 0 stays 0: any free port).
func nextPort(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "127.0.0.1:0"
	}
	n, err := strconv.Atoi(port)
	if err != nil || n == 0 || n >= 65535 {
		return net.JoinHostPort(host, "0")
	}
	return net.JoinHostPort(host, strconv.Itoa(n+1))
}

func printTAXIIBanner(c *cli, ts *taxiitest.Server) {
	w := c.stdout
	fmt.Fprintf(w, "\nTAXII 2.1 server listening on %s\n", ts.URL)
	fmt.Fprintf(w, "  API root:      %s\n", ts.APIRoot())
	fmt.Fprintf(w, "  collection id: %s (sample indicators)\n", taxiitest.SampleCollectionID)
	fmt.Fprintf(w, "  username:      %s\n", taxiitest.SampleUsername)
	fmt.Fprintf(w, "  password:      %s (the emulator's fixed test password)\n", taxiitest.SamplePassword)
	fmt.Fprintln(w, "Read IOCs from it with:")
	fmt.Fprintf(w, "  export DEFENDERBOT_IOCS_TAXII_USERNAME=%s DEFENDERBOT_IOCS_TAXII_PASSWORD=%s\n", taxiitest.SampleUsername, taxiitest.SamplePassword)
	fmt.Fprintf(w, "  defenderbot push-iocs --taxii-url %s --taxii-collection %s --dry-run\n", ts.APIRoot(), taxiitest.SampleCollectionID)
	fmt.Fprintln(w, "\nPress Ctrl-C to stop.")
}

func printEmulatorBanner(c *cli, s *defendertest.Server, caOut string) {
	w := c.stdout
	fmt.Fprintf(w, "Defender emulator listening on %s\n", s.URL)
	fmt.Fprintf(w, "  tenant id:     %s\n", defendertest.TenantID)
	fmt.Fprintf(w, "  client id:     %s\n", defendertest.ClientID)
	fmt.Fprintf(w, "  client secret: %s (the emulator's fixed test secret)\n", defendertest.ClientSecret)
	if caOut != "" {
		fmt.Fprintf(w, "  CA certificate written to %s\n", caOut)
	} else {
		fmt.Fprintln(w, "  CA certificate not written (use --ca-out FILE so clients can trust the emulator)")
	}
	fmt.Fprintln(w, "\nSample machines:")
	for _, id := range []string{defendertest.SampleMachineID1, defendertest.SampleMachineID2, defendertest.SampleMachineID3} {
		if m, ok := s.Machine(id); ok {
			fmt.Fprintf(w, "  %s  %-32s %s\n", m.ID, m.ComputerDNSName, m.OSPlatform)
		}
	}
	fmt.Fprintln(w, "Sample alerts:")
	for _, id := range []string{defendertest.SampleAlertID1, defendertest.SampleAlertID2} {
		if a, ok := s.Alert(id); ok {
			fmt.Fprintf(w, "  %s  %s\n", a.ID, a.Title)
		}
	}
	ca := caOut
	if ca == "" {
		ca = "<file given to --ca-out>"
	}
	fmt.Fprintln(w, "\nPoint defenderbot at it with:")
	fmt.Fprintf(w, "  export DEFENDER_BASE_URL=%s\n", s.URL)
	fmt.Fprintf(w, "  export AZURE_AUTHORITY_HOST=%s\n", s.URL)
	fmt.Fprintf(w, "  export AZURE_TENANT_ID=%s\n", defendertest.TenantID)
	fmt.Fprintf(w, "  export AZURE_CLIENT_ID=%s\n", defendertest.ClientID)
	fmt.Fprintf(w, "  export AZURE_CLIENT_SECRET=%s\n", defendertest.ClientSecret)
	fmt.Fprintf(w, "  export SSL_CERT_FILE=%s   # Go on Linux trusts the emulator's certificate through this\n", ca)
}
