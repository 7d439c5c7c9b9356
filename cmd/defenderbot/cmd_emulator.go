package main

import (
	"context"
	"fmt"
)

// runEmulator is not built yet.
func runEmulator(_ context.Context, c *cli, _ []string) int {
	fmt.Fprintln(c.stderr, "defenderbot: not implemented yet")
	return 1
}
