package main

import (
	"context"
	"fmt"
)

// runPushIOCs is not built yet.
func runPushIOCs(_ context.Context, c *cli, _ []string) int {
	fmt.Fprintln(c.stderr, "defenderbot: not implemented yet")
	return 1
}
