package main

import (
	"context"
	"fmt"
)

// runValidateConfig is not built yet.
func runValidateConfig(_ context.Context, c *cli, _ []string) int {
	fmt.Fprintln(c.stderr, "defenderbot: not implemented yet")
	return 1
}
