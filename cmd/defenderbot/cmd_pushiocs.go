package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/defenderbot/defenderbot/config"
	"github.com/defenderbot/defenderbot/defender"
	"github.com/defenderbot/defenderbot/ioc"
)

// runPushIOCs runs one IOC sync from a STIX feed: a file or directory, or a
// TAXII 2.1 collection. With --dry-run it prints
// the plan and sends no write call. Exit codes: 0 success, 1 failure, 2 usage.
func runPushIOCs(ctx context.Context, c *cli, args []string) int {
	fs, f := newPushFlags(c)
	if code, ok := parseFlagsOnly(c, fs, args); !ok {
		return code
	}
	if *f.output != "text" && *f.output != "json" {
		fmt.Fprintf(c.stderr, "defenderbot push-iocs: --output must be text or json, not %q\n", *f.output)
		return 2
	}

	cfg, err := loadConfig(c, *f.cfgPath)
	if err != nil {
		printConfigError(c.stderr, err)
		return 1
	}
	if code, ok := f.override(c, fs, &cfg.IOCs); !ok {
		return code
	}
	if err := cfg.Validate(config.ForDefender); err != nil {
		printConfigError(c.stderr, err)
		return 1
	}
	collectAtTheLimit(c, cfg)

	logger := newLogger(c, cfg)
	client, err := newDefenderClient(c, cfg, logger)
	if err != nil {
		fmt.Fprintf(c.stderr, "defenderbot: %v\n", err)
		return 1
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		fmt.Fprintf(c.stderr, "defenderbot: %v\n", err)
		return 1
	}
	defer st.Close()

	opts, err := iocOptions(cfg.IOCs, logger)
	if err != nil {
		fmt.Fprintf(c.stderr, "defenderbot push-iocs: %v\n", err)
		return 1
	}
	opts.Force, opts.DryRun = *f.force, *f.dryRun
	syncer, err := ioc.NewSyncer(client, st, opts, logger)
	if err != nil {
		fmt.Fprintf(c.stderr, "defenderbot push-iocs: %v\n", err)
		return 1
	}
	if *f.dryRun {
		return pushDryRun(ctx, c, syncer, *f.output)
	}
	// The same lease as serve's scheduled and Slack runs: a push-iocs run
	// never overlaps another sync on the same store.
	leased, err := syncer.Leased(ioc.JobConfig{Leaser: st, Owner: "cli-" + cfg.Replica(), LeaseTTL: config.IOCLeaseTTL,
		RenewEvery: config.IOCLeaseRenewEvery, RunTimeout: cfg.IOCs.RunTimeout, Logger: logger})
	if err != nil {
		fmt.Fprintf(c.stderr, "defenderbot push-iocs: %v\n", err)
		return 1
	}
	return pushSync(ctx, c, leased, *f.output)
}

// pushFlags are the flags of `defenderbot push-iocs`.
type pushFlags struct {
	cfgPath, path, taxiiURL, taxiiColl *string
	action, severity, sekoia, mode     *string
	genAlert, force, dryRun            *bool
	maxDel                             *float64
	output                             *string
}

func newPushFlags(c *cli) (*flag.FlagSet, *pushFlags) {
	fs := newFlagSet(c, "push-iocs", "push-iocs (--stix-objects-path FILE | --taxii-url URL --taxii-collection ID) [flags]")
	return fs, &pushFlags{
		cfgPath:   configFlag(fs),
		path:      fs.String("stix-objects-path", "", "STIX 2.1 feed: a bundle, a JSON array of objects, or a directory of them (iocs.stix_objects_path)"),
		taxiiURL:  fs.String("taxii-url", "", "TAXII 2.1 API root to read the feed from instead of a file; credentials from iocs.taxii.* or DEFENDERBOT_IOCS_TAXII_* (iocs.taxii.url)"),
		taxiiColl: fs.String("taxii-collection", "", "TAXII collection ID (iocs.taxii.collection)"),
		action:    fs.String("action", "", "indicator action: "+strings.Join(defender.IndicatorActions(), ", ")+" (iocs.action)"),
		severity:  fs.String("severity", "", "indicator severity: "+strings.Join(defender.IndicatorSeverities(), ", ")+" (iocs.severity)"),
		genAlert:  fs.Bool("generate-alert", false, "raise an alert when an indicator matches (iocs.generate_alert)"),
		sekoia:    fs.String("sekoia-base-url", "", "Sekoia.io base URL, for links to Sekoia objects in descriptions (iocs.sekoia_base_url)"),
		mode:      fs.String("mode", "", "incremental (the feed brings additions and revocations) or snapshot (the feed is the whole truth) (iocs.mode)"),
		maxDel:    fs.Float64("max-delete-fraction", -1, "snapshot mode: largest share of managed indicators one run may delete (iocs.max_delete_fraction)"),
		force:     fs.Bool("force", false, "snapshot mode: delete even beyond max-delete-fraction"),
		dryRun:    fs.Bool("dry-run", false, "print what would be done; send no write call"),
		output:    fs.String("output", "text", "output format: text or json"),
	}
}

// override sets the iocs.* keys from the flags given and checks that one
// feed, a file or a TAXII collection, is chosen. When ok is false the
// command ends with code.
func (f *pushFlags) override(c *cli, fs *flag.FlagSet, i *config.IOCs) (code int, ok bool) {
	fileFlag, taxiiFlag := false, false
	fs.Visit(func(fl *flag.Flag) {
		switch fl.Name {
		case "stix-objects-path":
			// A feed named on the command line replaces the configured one.
			i.STIXObjectsPath, i.TAXII.URL, fileFlag = *f.path, "", true
		case "taxii-url":
			i.TAXII.URL, i.STIXObjectsPath, taxiiFlag = *f.taxiiURL, "", true
		case "taxii-collection":
			i.TAXII.Collection = *f.taxiiColl
		case "action":
			i.Action = *f.action
		case "severity":
			i.Severity = *f.severity
		case "generate-alert":
			i.GenerateAlert = *f.genAlert
		case "sekoia-base-url":
			i.SekoiaBaseURL = *f.sekoia
		case "mode":
			i.Mode = *f.mode
		case "max-delete-fraction":
			i.MaxDeleteFraction = *f.maxDel
		}
	})
	switch {
	case fileFlag && taxiiFlag:
		fmt.Fprintln(c.stderr, "defenderbot push-iocs: give --stix-objects-path or --taxii-url, not both")
		return 2, false
	case i.STIXObjectsPath == "" && i.TAXII.URL == "":
		fmt.Fprintln(c.stderr, "defenderbot push-iocs: --stix-objects-path or --taxii-url (or iocs.stix_objects_path or iocs.taxii.url) is required")
		return 2, false
	case i.STIXObjectsPath != "" && i.TAXII.URL != "":
		fmt.Fprintln(c.stderr, "defenderbot push-iocs: iocs.stix_objects_path and iocs.taxii.url are both set: give --stix-objects-path or --taxii-url to choose")
		return 2, false
	}
	return 0, true
}

// pushDryRun prints the plan (--dry-run) and sends no write call.
func pushDryRun(ctx context.Context, c *cli, syncer *ioc.Syncer, output string) int {
	if output == "json" {
		// Streamed: the skips and left-out indicators, as many as the feed
		// has objects, are never all in memory.
		if err := syncer.WritePlanJSON(ctx, c.stdout); err != nil {
			fmt.Fprintf(c.stderr, "defenderbot push-iocs: %v\n", err)
			return 1
		}
		return 0
	}
	plan, err := syncer.Plan(ctx)
	if err != nil {
		fmt.Fprintf(c.stderr, "defenderbot push-iocs: %v\n", err)
		return 1
	}
	fmt.Fprintf(c.stdout, "dry run: would import %d, delete %d; %d unchanged, %d skipped, %d left out (tenant limit)\n",
		len(plan.Import), len(plan.Delete), plan.Unchanged, len(plan.Skipped), len(plan.LeftOut))
	for _, s := range plan.Skipped {
		fmt.Fprintf(c.stdout, "skipped %s: %s\n", s.StixID, s.Text())
	}
	if plan.Refused != "" {
		fmt.Fprintf(c.stdout, "refused: %s\n", plan.Refused)
	}
	return 0
}

// pushSync runs the sync under the lease and prints its report.
func pushSync(ctx context.Context, c *cli, leased *ioc.LeasedSyncer, output string) int {
	rep, err := leased.Run(ctx, "cli")
	if rep != nil {
		if output == "json" {
			if code := pushIOCsJSON(c, rep); code != 0 {
				return code
			}
		} else {
			fmt.Fprintln(c.stdout, rep.Text())
		}
	}
	if err != nil {
		switch {
		case errors.Is(err, ioc.ErrDeleteGuard):
			fmt.Fprintf(c.stderr, "defenderbot push-iocs: %v\n", err)
		case errors.Is(err, ioc.ErrLeaseHeld) || errors.Is(err, ioc.ErrRunning):
			// Refused before it started: nothing failed.
			fmt.Fprintf(c.stderr, "defenderbot push-iocs: not run: %v\n", err)
		default:
			fmt.Fprintf(c.stderr, "defenderbot push-iocs: sync failed: %v\n", err)
		}
		return 1
	}
	return 0
}

func pushIOCsJSON(c *cli, v any) int {
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		fmt.Fprintf(c.stderr, "defenderbot: write output: %v\n", err)
		return 1
	}
	return 0
}
