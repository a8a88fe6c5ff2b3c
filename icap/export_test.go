package icap

import "time"

// SetClientClock replaces the client's clock, for tests of time-based
// behaviour without waiting.
func SetClientClock(c *Client, now func() time.Time) { c.now = now }
