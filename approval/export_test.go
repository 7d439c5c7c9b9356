package approval

import "time"

// SetRenewEvery makes c renew its execution leases every d (real time)
// instead of every LeaseTTL/3, so a test can hold a slow call.
func SetRenewEvery(c *Core, d time.Duration) { c.renewEvery = d }
