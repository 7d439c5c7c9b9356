package main

import (
	"context"
	"fmt"
)

// runAudit is not built yet.
func runAudit(_ context.Context, c *cli, _ []string) int {
	fmt.Fprintln(c.stderr, "defenderbot: not implemented yet")
	return 1
}
