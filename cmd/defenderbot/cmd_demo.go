package main

import (
	"context"
	"fmt"
)

// runDemo is not built yet.
func runDemo(_ context.Context, c *cli, _ []string) int {
	fmt.Fprintln(c.stderr, "defenderbot: not implemented yet")
	return 1
}
