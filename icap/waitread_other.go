//go:build !unix

package icap

import "syscall"

const canWaitReadable = false

type readWaiter struct{}

func newReadWaiter(syscall.RawConn) *readWaiter { return nil }

func (*readWaiter) wait() error { panic("unreachable") }

func peerClosed(syscall.RawConn) bool { return false }

func (*readWaiter) pending() bool { return false }
