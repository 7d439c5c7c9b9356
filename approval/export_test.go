package approval

import (
	"context"
	"time"
)

// SetRenewEvery makes c renew its execution leases every d (real time)
// instead of every leaseTTL/3, so a test can hold a slow call.
func SetRenewEvery(c *Core, d time.Duration) { c.renewEvery = d }

// The halves of Scan and its timings, for the core's own tests.
func Sweep(ctx context.Context, c *Core)  { c.sweep(ctx) }
func Resume(ctx context.Context, c *Core) { c.resume(ctx) }
func LeaseTTL(c *Core) time.Duration      { return c.leaseTTL() }
func ScanEvery(c *Core) time.Duration     { return c.scanEvery() }
