package main

import (
	"context"
	"fmt"
)

// runAction is not built yet.
func runAction(_ context.Context, c *cli, _ []string) int {
	fmt.Fprintln(c.stderr, "defenderbot: not implemented yet")
	return 1
}
