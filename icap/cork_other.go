//go:build !linux

package icap

// cork is a no-op where TCP_CORK does not exist.
func (c *conn) cork(on bool) {}
