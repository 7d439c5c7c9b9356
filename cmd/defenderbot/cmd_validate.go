package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/defenderbot/defenderbot/config"
)

// runValidateConfig loads the configuration and prints every problem, one
// per line (exit 1), or "configuration OK" (exit 0). Nothing secret is
// printed: problems name keys, not values of secrets.
func runValidateConfig(_ context.Context, c *cli, args []string) int {
	fs := newFlagSet(c, "validate-config", "validate-config [--config FILE] [--for all|defender|serve]")
	cfgPath := configFlag(fs)
	forFlag := fs.String("for", "all", "what the configuration is for: all (everything), defender (action, push-iocs) or serve")
	if code, ok := parseFlagsOnly(c, fs, args); !ok {
		return code
	}
	purpose, err := config.ParsePurpose(*forFlag)
	if err != nil {
		fmt.Fprintf(c.stderr, "defenderbot validate-config: --for: %v\n", err)
		return 2
	}
	for _, name := range c.unknownEnv() {
		fmt.Fprintf(c.stderr, "defenderbot: warning: %s is not a configuration variable and is ignored (misspelled?)\n", name)
	}
	// Warnings do not change the exit status: the configuration works, just
	// not as its author probably expects.
	if cfg, err := loadConfig(c, *cfgPath); err == nil {
		for _, w := range cfg.Warnings() {
			fmt.Fprintf(c.stderr, "defenderbot: warning: %s\n", w)
		}
	}
	// Check, unlike Load then Validate, also validates what could be read
	// when some keys are bad, so every problem is listed at once.
	if err := config.Check(configPath(c, *cfgPath), c.env, purpose); err != nil {
		var verr *config.ValidationError
		if errors.As(err, &verr) {
			for _, p := range verr.Problems {
				fmt.Fprintln(c.stdout, p)
			}
			fmt.Fprintf(c.stderr, "defenderbot: %d configuration problem(s) (checked --for %s)\n", len(verr.Problems), purpose)
			return 1
		}
		fmt.Fprintln(c.stdout, err)
		return 1
	}
	fmt.Fprintln(c.stdout, "configuration OK")
	return 0
}
