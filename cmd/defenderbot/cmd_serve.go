package main

import (
	"context"
	"fmt"
)

// runServe is not built yet.
func runServe(_ context.Context, c *cli, _ []string) int {
	fmt.Fprintln(c.stderr, "defenderbot: not implemented yet")
	return 1
}
