package icap

import "syscall"

// cork sets (on) or clears TCP_CORK on a plain TCP connection while a
// large chunk is spliced: the chunk-size line (and whatever else the
// write buffer held) then leaves in the same segment as the first data
// instead of as a segment of its own, which the client must be woken
// for. Clearing the cork pushes out the rest at once, so nothing waits
// for the kernel's 200 ms cork timeout. Errors are ignored: a connection
// that cannot be corked works as before.
func (c *conn) cork(on bool) {
	if c.waiter == nil {
		return
	}
	if on {
		c.waiter.rc.Control(corkOn)
	} else {
		c.waiter.rc.Control(corkOff)
	}
}

// corkOn and corkOff capture nothing, so that Control does not allocate.
func corkOn(fd uintptr)  { syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_CORK, 1) }
func corkOff(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_CORK, 0) }
