//go:build unix

package icap

import (
	"io"
	"syscall"
)

const canWaitReadable = true

// readWaiter waits until a connection has data (or EOF, or an error)
// without consuming it, so that an idle connection holds no read buffer.
// It is allocated once per connection: waiting allocates nothing.
type readWaiter struct {
	rc     syscall.RawConn
	polled bool
	err    error
	fn     func(uintptr) bool
}

func newReadWaiter(rc syscall.RawConn) *readWaiter {
	w := &readWaiter{rc: rc}
	w.fn = w.check
	return w
}

// check is the RawConn.Read callback. The runtime poller is edge-triggered
// and RawConn.Read resets its readiness flag, so the first call peeks
// (MSG_PEEK|MSG_DONTWAIT) for data that has already arrived; after the
// poller woke us, data or EOF is there and the next Read finds out which.
func (w *readWaiter) check(fd uintptr) bool {
	if w.polled {
		return true
	}
	w.polled = true
	var b [1]byte
	n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	switch {
	case err == syscall.EAGAIN || err == syscall.EWOULDBLOCK || err == syscall.EINTR:
		return false // wait for the poller
	case err != nil:
		w.err = err
	case n == 0:
		w.err = io.EOF
	}
	return true
}

func (w *readWaiter) wait() error {
	w.polled, w.err = false, nil
	if err := w.rc.Read(w.fn); err != nil {
		return err
	}
	return w.err
}

// peerClosed reports whether the peer has closed the connection or sent
// unexpected data while it sat idle in a pool: a non-blocking MSG_PEEK
// that finds EOF, data or an error. It never blocks.
func peerClosed(rc syscall.RawConn) bool {
	closed := false
	rc.Read(func(fd uintptr) bool {
		var b [1]byte
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		closed = n > 0 || (err != syscall.EAGAIN && err != syscall.EWOULDBLOCK && err != syscall.EINTR)
		return true
	})
	return closed
}

// pending reports whether data has arrived that nobody has read yet (a
// request the client sent while the connection sat idle). It never
// blocks, and it runs through Control, not Read, so it does not wait for
// the connection's own goroutine, which may be parked in wait.
func (w *readWaiter) pending() bool {
	has := false
	w.rc.Control(func(fd uintptr) {
		var b [1]byte
		n, _, _ := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		has = n > 0
	})
	return has
}
